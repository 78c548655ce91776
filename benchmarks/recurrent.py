"""Recurrent networks on digits-seq: does recurrence matter, and what do the pruners keep of it? (issue #31)

    python benchmarks/recurrent.py OUT [--seeds 0 1 2] [--epochs 20] [--hidden 128] [--workers 2]
                                       [--pruners dpap gmp structured] [--markdown]

1. Recurrent vs feed-forward at equal neuron count: ``rmlp`` and ``mlp``
   with the same hidden layers, trained dense on ``digits-seq`` (one image
   column at a time; docs/datasets.md). Each model's learning rate is
   chosen among ``LEARNING_RATES`` on the mean validation accuracy over the
   seeds; only then is the chosen rate's test accuracy (mean and spread over
   the seeds) read (every trial measures it, none is chosen by it).
2. The pruners on ``rmlp`` (its chosen rate): ``dpap tune``'s search
   (``dpap_neuro.tune.tune``, ``--max-drop 1.0`` on validation) for each of
   ``--pruners``; per pruner its answer: validation accuracy against dense,
   the share of recurrent synapses kept, Loihi energy against dense. Test
   accuracies of the answers: ``benchmarks/tune_verdict.py OUT/tune``.

Every trial is ``dpap tune``'s (``dpap_neuro.tune.run_trial``, cached in
``OUT/trials``: a second call reuses what is there). Prints measured figures
only; ``--markdown`` adds the tables docs/datasets.md carries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATASET = "digits-seq"
LEARNING_RATES = (2e-3, 5e-3)  # candidates of each model, chosen on validation
VAL_FRACTION = 0.2


def base_config(model: str, args: argparse.Namespace, learning_rate: float) -> dict:
    from dpap_neuro.config import RunConfig

    return RunConfig(dataset=DATASET, model=model, epochs=args.epochs, hidden_sizes=tuple(args.hidden),
                     learning_rate=learning_rate, val_fraction=VAL_FRACTION).to_dict()


def run(specs: list[dict], args: argparse.Namespace) -> list[dict]:
    from dpap_neuro.tune import TrialCache, run_trials

    done = []

    def report(result: dict) -> None:
        done.append(result)
        print(f"  [{len(done)}/{len(specs)}] {result['pruner']} {result['strength']} seed {result['seed']}: "
              f"validation {result['validation_accuracy']:.4f}", flush=True)

    return run_trials(specs, TrialCache(args.out / "trials"), args.workers, report)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def dense_comparison(args: argparse.Namespace) -> dict:
    """Per model: the validation-chosen learning rate, its validation and test accuracies per seed."""
    from dpap_neuro.tune import trial_spec, trial_threads

    threads = trial_threads(args.workers)
    chosen = {}
    for model in ("rmlp", "mlp"):
        # Each trial measures the test split too (no second training); only the chosen rate's is reported.
        by_rate = {rate: run([trial_spec(base_config(model, args, rate), threads, "none", f"lr {rate:g}", seed,
                                         test=True) for seed in args.seeds], args) for rate in LEARNING_RATES}
        rate = max(LEARNING_RATES, key=lambda r: statistics.fmean(t["validation_accuracy"] for t in by_rate[r]))
        tested = by_rate[rate]
        chosen[model] = {"learning_rate": rate, "neurons": tested[0]["neurons"], "synapses": tested[0]["synapses"],
                         "validation": [t["validation_accuracy"] for t in tested],
                         "test": [t["test_accuracy"] for t in tested],
                         "validation_by_rate": {f"{r:g}": [t["validation_accuracy"] for t in by_rate[r]]
                                                for r in LEARNING_RATES}}
    return chosen


def pruned(args: argparse.Namespace, learning_rate: float) -> dict:
    """Per pruner: its answer of ``dpap tune --max-drop 1.0`` on rmlp (the point, ``meets``, ``validation_drop`` below dense)."""
    from dpap_neuro.tune import Budget, tune

    outcome = tune(base_config("rmlp", args, learning_rate), args.pruners, Budget(max_drop_points=1.0), args.seeds,
                   args.out / "tune", args.workers, progress=False)
    dense = outcome["dense"]["validation_accuracy"]
    return {pruner: {**answer, "validation_drop": dense - answer["validation_accuracy"]}
            for pruner, answer in outcome["per_pruner"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the trials and recurrent.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden layer sizes of both models")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pruners", nargs="*", default=["dpap", "gmp", "structured"],
                        help="pruners searched on rmlp (none: the dense comparison only)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    dense = dense_comparison(args)
    result = {"dataset": DATASET, "seeds": args.seeds, "epochs": args.epochs, "hidden": args.hidden,
              "dense": dense}
    args.out.mkdir(parents=True, exist_ok=True)
    from hw_export.files import atomic_write_text

    if args.pruners:
        result["tune"] = pruned(args, dense["rmlp"]["learning_rate"])
    atomic_write_text(args.out / "recurrent.json", json.dumps(result, indent=1) + "\n")
    for model, entry in dense.items():
        test_mean, test_std = mean_std(entry["test"])
        print(f"{model}: lr {entry['learning_rate']:g} (validation), {entry['neurons']} neurons, "
              f"{entry['synapses']} synapses; test {100 * test_mean:.2f} ± {100 * test_std:.2f} %")
    gap = statistics.fmean(dense["rmlp"]["test"]) - statistics.fmean(dense["mlp"]["test"])
    print(f"recurrent_minus_feedforward_test_points: {100 * gap:.2f}")
    for pruner, answer in result.get("tune", {}).items():
        print(f"{pruner}: {answer['strength']} ({'within' if answer['meets'] else 'outside'} 1 point), validation "
              f"{100 * answer['validation_drop']:.2f} points below dense, recurrent synapses kept "
              f"{answer['recurrent_synapses_kept']:.3f}, energy {answer['energy_ratio']:.3f}x dense")
    if args.markdown:
        print("\n| model | lr (validation) | neurons | synapses | validation % | test % |\n|---|---|---|---|---|---|")
        for model, entry in dense.items():
            print(f"| {model} | {entry['learning_rate']:g} | {entry['neurons']} | {entry['synapses']} | "
                  f"{100 * statistics.fmean(entry['validation']):.2f} | "
                  "{:.2f} ± {:.2f} |".format(*(100 * v for v in mean_std(entry["test"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
