"""The tonic datasets end to end: loading (binning against the frame cache) and a `dpap run` on each.

    python benchmarks/tonic_datasets.py                      # fixture files, all four datasets
    python benchmarks/tonic_datasets.py --data-dir DIR --datasets nmnist shd --epochs 20   # your files

Without ``--data-dir`` each dataset is a fixture written in its real on-disk
format (``dpap_neuro.data.fixtures``: a few samples per class, synthetic
blobs), so the accuracies say only that the pipeline learns something; with
``--data-dir`` the real files are read (nothing is downloaded). Per dataset
it prints: samples per second reading the training split once binning
events (cold cache) and once from the cache (warm), their ratio, then the
run's dense and pruned accuracy, synapses and neurons kept, and Loihi
energy per sample, with the number of test samples the Lava figures cover.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path


def read_once(dataset, workers: int) -> float:
    """Samples per second reading every sample of ``dataset`` once (batches of 32)."""
    from dpap_neuro.data import batches, sequential_batches

    started = time.perf_counter()
    for _ in batches(dataset, sequential_batches(len(dataset), 32), workers):
        pass
    return len(dataset) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    from dpap_neuro.data import NEUROMORPHIC
    from dpap_neuro.data.fixtures import WRITERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(NEUROMORPHIC), choices=list(NEUROMORPHIC))
    parser.add_argument("--data-dir", default=None, help="your files in tonic's layout (default: fixtures)")
    parser.add_argument("--n-per-class", type=int, default=6, help="fixture samples per class and split")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lava-samples", type=int, default=None, help="test samples simulated in Lava")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data.neuromorphic import EventFrames, FrameSettings
    from dpap_neuro.pipeline import run

    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="dpap-tonic-bench-") as tmp:
        for name in args.datasets:
            spec = NEUROMORPHIC[name]
            data_dir = args.data_dir
            if data_dir is None:
                data_dir = str(Path(tmp) / "data")
                WRITERS[name](data_dir, n_per_class=args.n_per_class)
            settings = FrameSettings(spec.default_timesteps, spec.default_downsample)
            cache = Path(tmp) / "cache"
            cold = read_once(EventFrames(name, data_dir, True, settings, cache), args.workers)
            warm = read_once(EventFrames(name, data_dir, True, settings, cache), args.workers)
            config = RunConfig(dataset=name, data_dir=data_dir, timesteps=spec.default_timesteps,
                               downsample=spec.default_downsample, model=spec.default_model, epochs=args.epochs,
                               cache_dir=str(cache), workers=args.workers, lava_samples=args.lava_samples,
                               batch_size=4 if args.data_dir is None else RunConfig().batch_size)
            try:
                report = run(config, Path(tmp) / f"run-{name}", progress=False)
            except ValueError as exc:  # e.g. an export that fails: name it and go on with the next dataset
                print(f"{name}: run failed: {exc}", flush=True)
                failed.append(name)
                continue
            dense, pruned = report["models"]["dense"], report["models"][config.pruner]
            ratios = report["comparison"]["ratios"]
            rows.append((name, report["dataset"], cold, warm, dense, pruned, ratios))
            print(f"{name}: read {cold:.0f} samples/s binning, {warm:.0f} from the cache "
                  f"(cache_speedup {warm / cold:.2f}x)", flush=True)
    source = args.data_dir or f"fixtures ({args.n_per_class} per class and split)"
    print(f"\nsource: {source}; {args.epochs} epochs; default model, bins and downsampling per dataset")
    print("| dataset | train/test (Lava) | dense acc. | dpap acc. | synapses kept | neurons kept | energy dpap/dense |")
    print("|---|---|---|---|---|---|---|")
    for name, ds, cold, warm, dense, pruned, ratios in rows:
        print(f"| {name} | {ds['n_train']}/{ds['n_test']} ({ds['n_lava']}) | {dense['accuracy']['norse']:.3f} | "
              f"{pruned['accuracy']['norse']:.3f} | {ratios['synapses']:.3f} | {ratios['neurons']:.3f} | "
              f"{ratios['energy']:.3f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
