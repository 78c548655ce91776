"""Confirmation of the Pareto benchmark's verdict: the best DPAP-family point against the best baseline near its energy.

Reads the selection of ``benchmarks/pareto.py`` (OUT/pareto.json), picks for one
dataset and model

* the DPAP-family point (``dpap``, ``dpap (authors)``, ``dpap+``) with the best
  mean validation accuracy among those at or under ``--max-energy`` times
  dense Loihi energy, and
* the baseline point with the best mean validation accuracy among those whose
  energy lies within ``--energy-window`` (relative) of that DPAP point's,

trains both, with the settings and training recipe the selection chose, and the
dense model, on ``--seeds`` (5 by default), and prints per seed the paired test
accuracy difference (DPAP minus baseline, same split, initial weights and
batch order) and energies, then the mean difference with a bootstrap 95 %
interval (10,000 resamples of the per-seed differences, seeded). Selection uses
validation accuracy only; test accuracy is read for the report.

    python benchmarks/confirm.py --dataset digits-events --model mlp [--max-energy 0.2] [--seeds 0 1 2 3 4]

Last lines: ``mean_difference_points: X`` and ``bootstrap_95_interval_points: [lo, hi]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pareto import DPAP_METHODS, RESULTS, run_all  # noqa: E402  (the same worker: train, validate, test, measure)

N_BOOTSTRAP = 10_000


def pick(rows: list[dict], dataset: str, model: str, max_energy: float, window: float) -> tuple[dict, dict]:
    """(DPAP-family point, baseline point) as the docstring says; SystemExit naming what is missing."""
    pair = [r for r in rows if r["dataset"] == dataset and r["model"] == model]
    family = [r for r in pair if r["method"] in DPAP_METHODS and r["energy_ratio"] <= max_energy]
    if not family:
        sys.exit(f"confirm.py: error: no DPAP-family point of {dataset}/{model} at <= {max_energy}x dense energy")
    dpap = max(family, key=lambda r: r["validation_accuracy"])
    near = [r for r in pair if r["method"] not in DPAP_METHODS + ("dense",)
            and abs(r["energy_ratio"] - dpap["energy_ratio"]) <= window * dpap["energy_ratio"]]
    if not near:
        sys.exit(f"confirm.py: error: no baseline point within {window:.0%} of {dpap['energy_ratio']:.3f}x energy")
    return dpap, max(near, key=lambda r: r["validation_accuracy"])


def bootstrap_interval(differences: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``differences`` over ``N_BOOTSTRAP`` resamples with replacement."""
    rng = np.random.default_rng(seed)
    means = rng.choice(differences, size=(N_BOOTSTRAP, differences.size), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def jobs_for(point: dict, dataset: str, model: str, seeds: list[int], epochs: int, hidden) -> list[dict]:
    return [{"dataset": dataset, "model": model, "seed": seed, "epochs": epochs, "hidden": hidden,
             "method": point["method"], "strength": point["strength"], "pruner": point["pruner"],
             "options": point["options"], "recipe": point.get("recipe", {})} for seed in seeds]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-energy", type=float, default=1.0, help="DPAP points at or under this x dense energy")
    parser.add_argument("--energy-window", type=float, default=0.25, help="baselines within this share of its energy")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    saved = json.loads((args.out / "pareto.json").read_text())
    dpap, baseline = pick(saved["selected"], args.dataset, args.model, args.max_energy, args.energy_window)
    dense = next(r for r in saved["selected"] if (r["dataset"], r["model"], r["method"]) ==
                 (args.dataset, args.model, "dense"))
    dense = {**dense, "pruner": "none"}
    points = {"dpap": dpap, "baseline": baseline, "dense": dense}
    jobs = [job for point in points.values()
            for job in jobs_for(point, args.dataset, args.model, args.seeds, saved["epochs"], saved.get("hidden"))]
    runs = run_all(jobs, args.workers)
    by = {(r["method"], r["seed"]): r for r in runs}
    return report(points, by, args)


def report(points: dict, by: dict, args: argparse.Namespace) -> int:
    dpap, baseline = points["dpap"], points["baseline"]
    print(f"{args.dataset} {args.model}: {dpap['method']} {dpap['strength']} against {baseline['method']} "
          f"{baseline['strength']} (settings and recipe as pareto.py chose them on validation)")
    print("| seed | dpap test acc. % | baseline test acc. % | difference (points) | dpap energy / dense | "
          "baseline energy / dense |\n|---|---|---|---|---|---|")
    differences = []
    for seed in args.seeds:
        d, b, dense = by[(dpap["method"], seed)], by[(baseline["method"], seed)], by[("dense", seed)]
        differences.append(100 * (d["test_accuracy"] - b["test_accuracy"]))
        print(f"| {seed} | {100 * d['test_accuracy']:.2f} | {100 * b['test_accuracy']:.2f} | {differences[-1]:+.2f} | "
              f"{d['energy_j'] / dense['energy_j']:.3f} | {b['energy_j'] / dense['energy_j']:.3f} |")
    low, high = bootstrap_interval(np.array(differences))
    one_sample = 100 / 360
    print(f"one test sample is {one_sample:.2f} points; the interval "
          + ("excludes 0: the difference is larger than the seed-to-seed spread" if low > 0 or high < 0 else
             "includes 0: these seeds cannot tell the two apart"))
    print(f"mean_difference_points: {np.mean(differences):.2f}")
    print(f"bootstrap_95_interval_points: [{low:.2f}, {high:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
