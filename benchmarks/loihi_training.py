"""Loihi-exact training against float training: accuracy on Loihi, and the time it costs.

For every dataset x model x seed, the dense model is trained three ways on the
same split, initial weights and batch order (``dpap_neuro.experiment.fit``):

* ``float``: Norse float training; on Loihi it runs after a post-training
  conversion (8-bit weights, 12-bit decays, integer state: ``hw_export/quantize.py``);
* ``finetune``: the float model, then ``--loihi-finetune-epochs`` epochs of
  Loihi-exact fine-tuning (``RunConfig.loihi_finetune_epochs``);
* ``loihi``: Loihi-exact training from the start (``RunConfig.train_precision``).

The accuracy "on Loihi" is the test accuracy of the model's Loihi-exact twin
(``hw_export.norse.loihi.loihi_exact`` of a copy), which Lava's fixed-point
simulation reproduces spike for spike (``tests/hw_export/norse/test_loihi.py``),
so no Lava run is needed here; for Loihi-trained models it is their own
accuracy. Also printed: the float model's own accuracy, the agreement of its
Loihi predictions with its float ones, and training time per epoch.

    python benchmarks/loihi_training.py [--datasets digits-events digits] [--models mlp conv] [--seeds 0 1 2]
                                        [--epochs 20] [--finetune-epochs 2] [--workers 2] [--out DIR]

Writes OUT/loihi_training.json (every run, with the commit). Last lines:
``loihi_minus_float_points: X`` (mean over every dataset, model and seed of the
Loihi-trained accuracy minus the float model's own) and
``loihi_training_overhead: Y`` (training time per epoch, Loihi-exact / float).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import sys
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("float", "finetune", "loihi")


def one_run(job: dict) -> dict:
    """Train one model one way and measure its float and Loihi accuracy (in a worker process, one thread)."""
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import fit, load_splits
    from dpap_neuro.train import evaluate
    from hw_export.norse.loihi import loihi_exact

    variant = job["variant"]
    config = RunConfig(dataset=job["dataset"], model=job["model"], epochs=job["epochs"], seed=job["seed"],
                       train_precision="loihi" if variant == "loihi" else "float",
                       loihi_finetune_epochs=job["finetune_epochs"] if variant == "finetune" else 0)
    splits = load_splits(config)
    model, history, _ = fit(config, "none", {}, splits.train)
    on_loihi = evaluate(loihi_exact(twin(model, config, splits.train.input_shape)), splits.test, keep_spikes=False)
    own = evaluate(model, splits.test, keep_spikes=False)
    return {**job, "own_accuracy": own.accuracy, "loihi_accuracy": on_loihi.accuracy,
            "prediction_agreement": float((own.predictions == on_loihi.predictions).double().mean()),
            "train_wall_time_s": history.wall_time_s, "epochs_trained": len(history.loss)}


def twin(model, config, input_shape):
    """A copy of ``model`` (masks included) built from its state dict: masked layers cannot be deep-copied."""
    from dpap_neuro.data import n_classes
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import ensure_mask

    copy = build_model(input_shape, config.hidden_sizes, n_classes(config.dataset), **config.model_kwargs())
    state = model.state_dict()
    for name, module in copy.named_modules():
        if f"{name}.weight_mask" in state:
            ensure_mask(module)
    copy.load_state_dict(state)
    return copy


def summarise(runs: list[dict]) -> tuple[list[str], float, float]:
    """Markdown rows (means over seeds), the mean Loihi-minus-float accuracy and the time overhead."""
    rows, differences, overheads = [], [], []
    for dataset, model in sorted({(r["dataset"], r["model"]) for r in runs}):
        group = {v: [r for r in runs if (r["dataset"], r["model"], r["variant"]) == (dataset, model, v)]
                 for v in VARIANTS}
        for variant, chosen in group.items():
            if not chosen:
                continue
            acc = 100 * np.array([r["own_accuracy"] for r in chosen])
            loihi = 100 * np.array([r["loihi_accuracy"] for r in chosen])
            per_epoch = np.mean([r["train_wall_time_s"] / r["epochs_trained"] for r in chosen])
            rows.append(f"| {dataset} | {model} | {variant} | {acc.mean():.2f} ± {acc.std():.2f} | "
                        f"{loihi.mean():.2f} ± {loihi.std():.2f} | "
                        f"{np.mean([r['prediction_agreement'] for r in chosen]):.4f} | {per_epoch:.1f} s |")
        if group["float"] and group["loihi"]:
            pairs = {r["seed"]: r for r in group["float"]}
            differences += [100 * (r["own_accuracy"] - pairs[r["seed"]]["own_accuracy"]) for r in group["loihi"]
                            if r["seed"] in pairs]
            overheads.append(np.mean([r["train_wall_time_s"] / r["epochs_trained"] for r in group["loihi"]])
                             / np.mean([r["train_wall_time_s"] / r["epochs_trained"] for r in group["float"]]))
    return rows, float(np.mean(differences)) if differences else float("nan"), \
        float(np.mean(overheads)) if overheads else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["digits-events", "digits"])
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from dpap_neuro.provenance import source_commit
    from hw_export.files import atomic_write_text

    commit = source_commit()
    jobs = [{"dataset": d, "model": m, "seed": s, "variant": v, "epochs": args.epochs,
             "finetune_epochs": args.finetune_epochs} for d in args.datasets for m in args.models
            for s in args.seeds for v in VARIANTS]
    runs = []
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        for run in pool.map(one_run, jobs):
            runs.append({**run, "commit": commit})
            print(f"{run['dataset']} {run['model']} seed {run['seed']} {run['variant']}: own "
                  f"{run['own_accuracy']:.4f}, on Loihi {run['loihi_accuracy']:.4f}", flush=True)
    atomic_write_text(args.out / "loihi_training.json", json.dumps({"commit": commit, "runs": runs}, indent=1) + "\n")
    rows, difference, overhead = summarise(runs)
    print("| dataset | model | training | own test acc. % | on Loihi acc. % | Loihi = own predictions | "
          "time / epoch |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"loihi_minus_float_points: {difference:.2f}")
    print(f"loihi_training_overhead: {overhead:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
