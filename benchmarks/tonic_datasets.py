"""The tonic datasets end to end: loading (binning against the frame cache) and a `dpap run` on each.

    python benchmarks/tonic_datasets.py                      # N-MNIST stand-in + fixtures of the other three
    python benchmarks/tonic_datasets.py --data-dir DIR --datasets nmnist shd --epochs 20   # your files

Without ``--data-dir``, N-MNIST is the stand-in (``dpap_neuro.data.nmnist_standin``:
the 1,797 scikit-learn digits recorded as saccade events in N-MNIST's file
format, 1,437 train / 360 test; realistic activity, learnable, but not
N-MNIST), run with the dataset's defaults (``dpap_neuro.data.dataset_defaults``);
the other datasets are fixtures written in their real on-disk format
(``dpap_neuro.data.fixtures``: a few samples per class, synthetic blobs), so
their accuracies say only that the pipeline learns something. With
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


FIXTURE_EPOCHS = 8


def _fmt(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.3f}"  # a ratio is null where the dense value is 0


def prepare_data(name: str, args, folder: Path) -> tuple[str, str]:
    """``(data_dir, source)``: the user's files, else the N-MNIST stand-in or a fixture written into ``folder``."""
    from dpap_neuro.data.fixtures import WRITERS
    from dpap_neuro.data.nmnist_standin import write_nmnist_standin

    if args.data_dir is not None:
        return args.data_dir, "your files"
    if name == "nmnist":
        write_nmnist_standin(folder / "nmnist-standin")
        return str(folder / "nmnist-standin"), "stand-in"
    WRITERS[name](folder / name, n_per_class=args.n_per_class)
    return str(folder / name), f"fixture ({args.n_per_class} per class and split)"


def run_settings(source: str, epochs: int | None) -> dict:
    """RunConfig fields over the dataset's defaults: fixtures train for FIXTURE_EPOCHS epochs in batches of 4."""
    settings = {}
    if source.startswith("fixture"):
        settings.update(epochs=FIXTURE_EPOCHS, batch_size=4)
    if epochs is not None:
        settings["epochs"] = epochs
    return settings


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    from dpap_neuro.data import NEUROMORPHIC

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(NEUROMORPHIC), choices=list(NEUROMORPHIC))
    parser.add_argument("--data-dir", default=None,
                        help="your files in tonic's layout (default: the N-MNIST stand-in, fixtures of the others)")
    parser.add_argument("--n-per-class", type=int, default=6, help="fixture samples per class and split")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"default: {FIXTURE_EPOCHS} on fixtures, the dataset's own on the stand-in and your files")
    parser.add_argument("--lava-samples", type=int, default=None, help="test samples simulated in Lava")
    parser.add_argument("--lava-chunk-size", type=int, default=None,
                        help="test samples per Lava subprocess (default: RunConfig's); smaller chunks take less "
                             "memory: all 360 stand-in test samples in one chunk were killed at 15 GB")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data.neuromorphic import EventFrames, FrameSettings
    from dpap_neuro.run import run

    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="dpap-tonic-bench-") as tmp:
        for name in args.datasets:
            spec = NEUROMORPHIC[name]
            data_dir, source = prepare_data(name, args, Path(tmp) / "data")
            settings = FrameSettings(spec.default_timesteps, spec.default_downsample)
            cache = Path(tmp) / "cache"
            cold = read_once(EventFrames(name, data_dir, True, settings, cache), args.workers)
            warm = read_once(EventFrames(name, data_dir, True, settings, cache), args.workers)
            config = RunConfig(**run_settings(source, args.epochs), dataset=name, data_dir=data_dir,
                               cache_dir=str(cache), workers=args.workers, lava_samples=args.lava_samples,
                               **({} if args.lava_chunk_size is None else {"lava_chunk_size": args.lava_chunk_size}))
            try:
                report = run(config, Path(tmp) / f"run-{name}", progress=False)
            except ValueError as exc:  # e.g. an export that fails: name it and go on with the next dataset
                print(f"{name}: run failed: {exc}", flush=True)
                failed.append(name)
                continue
            dense, pruned = report["models"]["dense"], report["models"][config.pruner]
            ratios = report["comparison"]["ratios"]
            rows.append((name, source, config.epochs, report["dataset"], dense, pruned, ratios))
            print(f"{name}: read {cold:.0f} samples/s binning, {warm:.0f} from the cache "
                  f"(cache_speedup {warm / cold:.2f}x); dense trained in {dense['training']['wall_time_s']:.0f} s",
                  flush=True)
    print("\nmodel, bins and downsampling: each dataset's defaults")
    print("| dataset | source | epochs | train/test (Lava) | dense acc. | dpap acc. | synapses kept | neurons kept "
          "| energy dpap/dense |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, source, epochs, ds, dense, pruned, ratios in rows:
        print(f"| {name} | {source} | {epochs} | {ds['n_train']}/{ds['n_test']} ({ds['n_lava']}) | "
              f"{dense['accuracy']['norse']:.3f} | {pruned['accuracy']['norse']:.3f} | {_fmt(ratios['synapses'])} | "
              f"{_fmt(ratios['neurons'])} | {_fmt(ratios['energy'])} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
