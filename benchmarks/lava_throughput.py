"""Lava simulation throughput: one sample per Lava run vs many samples per run, vs Norse.

Uses the dense and pruned networks of a `dpap run` directory (default
runs/demo, made by `make demo`) on the same test inputs:

* one-at-a-time Lava: one Lava runtime per sample (float models);
* batched Lava: ``--batch`` samples per runtime as independent network copies
  (block-diagonal Sparse weights);
* Norse CPU inference of the trained checkpoint (float32, batch 256).

    python benchmarks/lava_throughput.py [--run runs/demo] [--single 24] [--batch 128]

Last line: ``batched_speedup: X`` (batched over one-at-a-time, pruned model).
"""

from __future__ import annotations

import lava.magma.core.process.process  # noqa: F401  (Lava must set up multiprocessing first)

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> int:
    warnings.filterwarnings("ignore")
    import torch

    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.data import load_dataset
    from hw_export.h5io import read_sparsenet
    from hw_export.lava_sim import SimOptions, simulate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/demo", help="a `dpap run` output directory")
    parser.add_argument("--single", type=int, default=24, help="samples for the one-at-a-time measurement")
    parser.add_argument("--batch", type=int, default=128, help="samples per batched Lava run")
    args = parser.parse_args()
    run = Path(args.run)
    if not (run / "report.json").is_file():
        print(f"error: {run}/report.json not found; run `make demo` first", file=sys.stderr)
        return 2
    report = json.loads((run / "report.json").read_text())
    dataset = report["dataset"]
    names = [report["comparison"]["baseline"], report["comparison"]["pruned"]]
    torch.set_num_threads(2)

    rows = {}
    for name in names:
        net = read_sparsenet(run / report["models"][name]["files"]["network"])
        meta = net.metadata
        _, test = load_dataset(dataset["name"], dataset["timesteps"], int(meta.get("seed", 0)))
        inputs = test.spikes.flatten(2).numpy()
        n_all = inputs.shape[1]

        started = time.perf_counter()
        single = simulate(net, inputs[:, : args.single], SimOptions(batch_size=1), progress=False)
        single_rate = args.single / (time.perf_counter() - started)

        started = time.perf_counter()
        batched = simulate(net, inputs, SimOptions(batch_size=args.batch), progress=False)
        batched_rate = n_all / (time.perf_counter() - started)
        for a, b in zip(single.layer_spikes, batched.layer_spikes):
            assert np.array_equal(a, b[:, : args.single]), "batched and one-at-a-time results differ"

        model, _ = load_checkpoint(run / report["models"][name]["files"]["checkpoint"])
        started = time.perf_counter()
        with torch.no_grad():
            for start in range(0, n_all, 256):
                model(test.spikes[:, start : start + 256])
        norse_rate = n_all / (time.perf_counter() - started)
        rows[name] = (single_rate, batched_rate, norse_rate, net.n_synapses)

    print(f"{'model':<8} {'synapses':>9} {'Lava 1-at-a-time':>17} {'Lava batched':>13} {'Norse CPU':>10}  (samples/s)")
    for name, (single_rate, batched_rate, norse_rate, synapses) in rows.items():
        print(f"{name:<8} {synapses:9d} {single_rate:17.1f} {batched_rate:13.1f} {norse_rate:10.1f}")
    dense, pruned = rows[names[0]], rows[names[1]]
    print(f"batched pruned / batched dense throughput: {pruned[1] / dense[1]:.2f}")
    print(f"Norse / batched Lava (pruned): {pruned[2] / pruned[1]:.1f}x")
    print(f"batched_speedup: {pruned[1] / pruned[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
