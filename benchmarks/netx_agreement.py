"""lava-dl against our fixed-point path, on every test sample of a `dpap run` directory.

For each model of the run (``<model>.h5`` beside ``report.json``): export the
netx HDF5 file, run it in lava-dl's own netx reader (``tools/netx_oracle.py``
in the lava-dl venv that ``make netx-env`` builds; spikes go to ``net.inp``,
the readout voltage is monitored), run the same file's network through
``dpap simulate --precision fixed``'s path (our Lava processes, fixed point),
and compare sample by sample. With the Norse checkpoint beside it, also the
fixed-point prediction agreement with the float (Norse) model.

    python benchmarks/netx_agreement.py RUN_DIR [--samples N] [--chunk 60] [--netx-python PATH]

Prints, per model: samples compared, lava-dl == ours prediction agreement,
the fraction of samples whose readout voltage trace is identical, lava-dl's
and ours' accuracy, and the fixed vs float (Norse) prediction agreement.
Exit status 1 if lava-dl and ours disagree on any prediction.
"""

from __future__ import annotations

import lava.magma.core.process.process  # noqa: F401  (Lava must set up multiprocessing first)

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT / "tools" / "netx_oracle.py"


def lava_dl_voltage(netx_python: str, net_path: Path, spikes: np.ndarray, chunk: int, tmp: Path) -> np.ndarray:
    """lava-dl's readout voltage ``[T, N, n_out]`` for ``spikes`` ``[T, N, n_inputs]``, ``chunk`` samples per run."""
    from tqdm import tqdm

    parts = []
    for start in tqdm(range(0, spikes.shape[1], chunk), desc=f"lava-dl {net_path.stem}", leave=False):
        inputs, out = tmp / "inputs.npz", tmp / "voltage.npz"
        np.savez(inputs, spikes=spikes[:, start : start + chunk].astype(np.uint8))
        done = subprocess.run([netx_python, str(ORACLE), str(net_path), str(inputs), str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"netx_agreement: lava-dl failed on {net_path}:\n{done.stderr[-3000:]}")
        parts.append(np.load(out)["voltage"])
    return np.concatenate(parts, axis=1)


def main() -> int:
    warnings.filterwarnings("ignore")
    import torch

    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.data import SpikeDataset, load_dataset
    from dpap_neuro.models import predict
    from dpap_neuro.train import evaluate
    from hw_export.h5io import read_sparsenet
    from hw_export.lava_sim import SimOptions
    from hw_export.lava_subprocess import simulate_in_subprocess
    from hw_export.netx import write_netx
    from hw_export.quantize import quantize

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    parser.add_argument("--chunk", type=int, default=60, help="samples per lava-dl run")
    parser.add_argument("--netx-python", default=os.environ.get("DPAP_NETX_PYTHON", str(ROOT / ".venv-netx/bin/python")))
    args = parser.parse_args()
    report_path = args.run_dir / "report.json"
    if not report_path.is_file():
        print(f"netx_agreement: {report_path}: no such file (not a finished `dpap run` directory)", file=sys.stderr)
        return 2
    if not Path(args.netx_python).is_file():
        print(f"netx_agreement: {args.netx_python}: no lava-dl Python (run `make netx-env`)", file=sys.stderr)
        return 2
    models = json.loads(report_path.read_text())["models"]
    all_agree = True
    with tempfile.TemporaryDirectory(prefix="netx-agreement-") as tmp_dir:
        tmp = Path(tmp_dir)
        for name in models:
            net = read_sparsenet(args.run_dir / f"{name}.h5")
            meta = net.metadata
            _, test = load_dataset(meta["dataset"], int(meta["timesteps"]), int(meta["seed"]),
                                   float(meta["test_fraction"]), train=False)
            spikes = test.spikes.flatten(2).numpy().astype(np.uint8)[:, : args.samples]  # [T, N, n_inputs]
            labels = test.labels[: spikes.shape[1]]
            netx_path = tmp / f"{name}.netx.h5"
            write_netx(net, netx_path)
            theirs = lava_dl_voltage(args.netx_python, netx_path, spikes, args.chunk, tmp)
            ours = simulate_in_subprocess(args.run_dir / f"{name}.h5", spikes, SimOptions(precision="fixed"),
                                          progress=True)
            ours_v = np.rint(ours.readout_v * quantize(net).layers[-1].voltage_scale).astype(np.int64)
            their_pred = predict(torch.from_numpy(theirs)).numpy()
            our_pred = predict(torch.from_numpy(ours_v)).numpy()
            agree = float((their_pred == our_pred).mean())
            identical = float((theirs == ours_v).all(axis=(0, 2)).mean())
            line = (f"{name:>6}: {spikes.shape[1]} samples; lava-dl vs ours (fixed): predictions {agree:.4f}, "
                    f"identical voltage traces {identical:.4f}; accuracy lava-dl {(their_pred == labels.numpy()).mean():.4f}, "
                    f"ours {(our_pred == labels.numpy()).mean():.4f}")
            checkpoint = args.run_dir / f"{name}.pt"
            if checkpoint.is_file():
                model, _ = load_checkpoint(checkpoint)
                norse = evaluate(model, SpikeDataset(test.spikes[:, : spikes.shape[1]], labels))
                line += (f"; float (Norse) accuracy {norse.accuracy:.4f}, fixed vs float predictions "
                         f"{(our_pred == norse.predictions.numpy()).mean():.4f}")
            print(line, flush=True)
            all_agree &= agree == 1.0
    print(f"lava_dl_prediction_agreement_all: {all_agree}")
    return 0 if all_agree else 1


if __name__ == "__main__":
    sys.exit(main())
