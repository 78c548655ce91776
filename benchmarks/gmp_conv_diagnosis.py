"""Why gmp collapses on the `digits` conv net: its schedule, allocation and sparsity taken apart, one seed.

Each setting is one training run of `dpap run`'s recipe (``experiment.fit``,
20 epochs, the dataset's defaults) on the training split less a 10 %
validation split; printed per setting: validation accuracy, training
accuracy at epochs 5, 10, 15 and 20 (how fast it learns) and the sparsity
reached. The settings isolate one cause each: the dense model (how fast this
net learns at all), gmp at 0.5 and 0.7 (is it the strength?), at 0.8 with
each allocation and with its schedule early (5-30 % of the run), as usual
(10-70 %) and late (60-90 %) (is it the allocation or the schedule?), random
masks at 0.8 set once at 15 % of the run (is it the sparsity itself, or the
choice by magnitude?), and a smaller learning rate (is it the recipe?).

    python benchmarks/gmp_conv_diagnosis.py [--dataset digits] [--seed 1] [--epochs 20] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "gmp_conv_diagnosis"


def gmp(target: float, allocation: str, start: float = 0.1, end: float = 0.7) -> tuple[str, dict]:
    return "gmp", {"target_sparsity": target, "allocation": allocation, "start_fraction": start,
                   "end_fraction": end}


# label -> (pruner, options, learning rate or None for the dataset's default)
SETTINGS = {
    "dense": ("none", {}, None),
    "gmp 0.5 global": (*gmp(0.5, "global"), None),
    "gmp 0.7 uniform": (*gmp(0.7, "uniform"), None),
    "gmp 0.7 global": (*gmp(0.7, "global"), None),
    "gmp 0.8 uniform": (*gmp(0.8, "uniform"), None),
    "gmp 0.8 global": (*gmp(0.8, "global"), None),
    "gmp 0.8 first-dense": (*gmp(0.8, "first-dense"), None),
    "gmp 0.8 uniform, early (0.05-0.3)": (*gmp(0.8, "uniform", 0.05, 0.3), None),
    "gmp 0.8 global, early (0.05-0.3)": (*gmp(0.8, "global", 0.05, 0.3), None),
    "gmp 0.8 uniform, late (0.6-0.9)": (*gmp(0.8, "uniform", 0.6, 0.9), None),
    "gmp 0.8 global, late (0.6-0.9)": (*gmp(0.8, "global", 0.6, 0.9), None),
    "random 0.8 at 0.15": ("random", {"sparsity": 0.8, "at_fraction": 0.15}, None),
    "dense, lr 2e-3": ("none", {}, 2e-3),
    "gmp 0.8 global, lr 2e-3": (*gmp(0.8, "global"), 2e-3),
}


def one_run(job: dict) -> dict:
    """Train one setting (in a worker process, one thread); its validation accuracy and learning curve."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import fit, load_splits
    from dpap_neuro.train import evaluate

    overrides = {} if job["learning_rate"] is None else {"learning_rate": job["learning_rate"]}
    config = RunConfig(dataset=job["dataset"], model="conv", epochs=job["epochs"], seed=job["seed"], val_fraction=0.1,
                       **overrides)
    splits = load_splits(config)
    options = {**job["options"], "seed": job["seed"]} if job["pruner"] == "random" else job["options"]
    model, history, pruner = fit(config, job["pruner"], options, splits.train, warn=False)
    return {**job, "validation_accuracy": evaluate(model, splits.validation, keep_spikes=False).accuracy,
            "train_accuracy": history.train_accuracy, "sparsity": pruner.sparsity()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--settings", nargs="+", default=None, help="only these labels (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for runs.json and trials/ ({RESULTS})")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from dpap_neuro.provenance import source_commit
    from dpap_neuro.tune import TrialCache, run_trials

    unknown = set(args.settings or ()) - set(SETTINGS)
    if unknown:
        sys.exit(f"gmp_conv_diagnosis.py: error: unknown setting {', '.join(sorted(unknown))}")
    jobs = [{"label": label, "dataset": args.dataset, "seed": args.seed, "pruner": pruner, "options": options,
             "learning_rate": rate, "epochs": args.epochs} for label, (pruner, options, rate) in SETTINGS.items()
            if args.settings is None or label in args.settings]
    commit = source_commit()
    cache = None if commit.endswith("+uncommitted") else TrialCache(args.out / "trials" / commit)
    with tqdm(total=len(jobs), desc="runs", unit="run") as bar:
        runs = run_trials(jobs, cache, args.workers, lambda _: bar.update(1), trial=one_run)
    print(f"{args.dataset} conv, seed {args.seed}, commit {commit}")
    print(f"{'setting':<36} {'validation':>10}  train accuracy a quarter, half, 3/4 and all the way   sparsity")
    for run in runs:
        quarters = sorted({max(1, round(args.epochs * q / 4)) for q in (1, 2, 3, 4)})
        curve = "/".join(f"{run['train_accuracy'][e - 1]:.2f}" for e in quarters)
        print(f"{run['label']:<36} {run['validation_accuracy']:10.4f}  {curve:<36} {run['sparsity']:.2f}")
    from hw_export.files import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "runs.json", json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
