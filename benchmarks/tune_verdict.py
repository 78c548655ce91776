"""Each pruner's answer of a finished `dpap tune`, compared on the test split: the verdict of issue #32.

`dpap tune` chooses on validation and reads test accuracy for its pick alone.
This benchmark comes after the choice: it takes every pruner's own answer from
OUT/tune.json (its lowest-energy point within the budget, or its point closest
to the budget where none is within), trains it again with the tune's seeds (or
``--seeds``: a tune searched with one seed is compared with three), measuring
the test split too (``dpap_neuro.tune.run_trial`` with ``test``), and prints one row per pruner: validation accuracy (what chose it), test accuracy
(mean ± std over the seeds), test energy per sample against the dense model of
the same seed, synapses kept, and whether it met the budget. Nothing here
changes the tune's choice; the runs are cached in OUT/trials like the tune's.
A tune run with ``--portable-kernels`` has its test runs pinned the same way.

    python benchmarks/tune_verdict.py OUT [--seeds 0 1 2] [--workers 2] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def verdict_rows(tune_result: dict, runs: dict[tuple, list[dict]]) -> list[dict]:
    """One row per pruner (dense first), from its test runs ``runs[(pruner, strength)]`` (one per seed)."""
    import numpy as np

    profile = tune_result["energy_profile"]
    dense = {r["seed"]: r for r in runs[("none", "-")]}
    answers = [("none", {"strength": "-", "options": {}, "validation_accuracy":
                         tune_result["dense"]["validation_accuracy"], "meets": True, "energy_ratio": 1.0})]
    answers += list(tune_result["per_pruner"].items())
    rows = []
    for pruner, point in answers:
        mine = runs[(pruner, point["strength"])]
        test = [r["test_accuracy"] for r in mine]
        energy = [r["test_energy_j"][profile] / dense[r["seed"]]["test_energy_j"][profile] for r in mine]
        rows.append({"pruner": "dense" if pruner == "none" else pruner, "strength": point["strength"],
                     "options": point["options"], "meets": point["meets"],
                     "validation_accuracy": point["validation_accuracy"],
                     "test_accuracy": float(np.mean(test)), "test_accuracy_std": float(np.std(test)),
                     "test_energy_ratio": float(np.mean(energy)),
                     "synapses_kept": float(np.mean([r["synapses_kept"] for r in mine])),
                     "seeds": [r["seed"] for r in mine], "commits": sorted({r["commit"] for r in mine}),
                     "pick": tune_result["pick"] is not None and pruner == tune_result["pick"]["pruner"]
                             and point["strength"] == tune_result["pick"]["strength"]})
    return rows


def markdown(rows: list[dict], budget: str) -> list[str]:
    from dpap_neuro.tune import STRENGTHS, knob_options

    lines = [f"| pruner | strength | settings | validation acc. | within {budget} | test acc. % (mean ± std) "
             "| test energy / dense | hidden synapses kept |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        knob = set(knob_options(r["pruner"], 0.0)) if r["pruner"] in STRENGTHS else set()  # the strength's
        settings = ", ".join(f"{k}={v}" for k, v in r["options"].items() if k not in knob) or "defaults"
        lines.append(f"| {r['pruner']}{' (pick)' if r['pick'] else ''} | {r['strength']} | {settings} | "
                     f"{r['validation_accuracy']:.4f} | {'yes' if r['meets'] else 'no'} | "
                     f"{100 * r['test_accuracy']:.2f} ± {100 * r['test_accuracy_std']:.2f} | "
                     f"{r['test_energy_ratio']:.3f} | {r['synapses_kept']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a `dpap tune --out` folder (its tune.json and trials/)")
    parser.add_argument("--workers", type=int, default=2, help="trials trained at once (default: 2)")
    parser.add_argument("--markdown", action="store_true", help="also print the rows as a markdown table")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of the comparison (default: the tune's; more where the search used fewer)")
    args = parser.parse_args(argv)
    path = args.out / "tune.json"
    if not path.is_file():
        sys.exit(f"tune_verdict.py: error: {path}: no such file (run `dpap tune --out {args.out}` first)")
    result = json.loads(path.read_text())
    if result["config"].get("portable_kernels"):  # as the tune's trials: before torch and numpy load
        from dpap_neuro import kernels

        kernels.pin_environment()
    from tqdm import tqdm

    from dpap_neuro.tune import Budget, TrialCache, per_pruner, run_trials, trial_spec, trial_threads

    budget = Budget(**result["budget"])
    if "per_pruner" not in result:  # tune.json of a tune before the field existed: the same rule, here
        result["per_pruner"] = per_pruner(result["points"], budget, result["dense"]["validation_accuracy"])
    wanted = [("none", "-", {})] + [(p, a["strength"], a["options"]) for p, a in result["per_pruner"].items()]
    threads = trial_threads(args.workers)
    specs = [trial_spec(result["config"], threads, pruner, strength, seed, test=True, options=options)
             for pruner, strength, options in wanted for seed in args.seeds or result["seeds"]]
    with tqdm(total=len(specs), desc="test runs", unit="run") as bar:
        done = run_trials(specs, TrialCache(args.out / "trials"), args.workers, lambda _: bar.update(1))
    runs: dict[tuple, list[dict]] = {}
    for run in done:
        runs.setdefault((run["pruner"], run["strength"]), []).append(run)
    rows = verdict_rows(result, runs)
    for r in rows:
        print(f"{r['pruner']:>10} {str(r['strength']):<6} validation {r['validation_accuracy']:.4f} "
              f"({'within' if r['meets'] else 'outside'} {budget.describe()}), test "
              f"{100 * r['test_accuracy']:.2f} ± {100 * r['test_accuracy_std']:.2f} %, energy "
              f"{r['test_energy_ratio']:.3f}x dense, synapses {r['synapses_kept']:.3f}" + ("  <- pick" if r["pick"] else ""))
    if args.markdown:
        print("\n".join(markdown(rows, budget.describe())))
    from hw_export.files import atomic_write_text

    atomic_write_text(args.out / "verdict.json", json.dumps({"budget": result["budget"], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
