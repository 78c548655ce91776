"""Recurrent networks on digits-seq: does recurrence matter, and what do the pruners keep of it? (issue #31)

    python benchmarks/recurrent.py OUT [--seeds 0 1 2] [--epochs 20] [--hidden 128] [--workers 2]
                                       [--pruners dpap gmp structured] [--portable-kernels] [--markdown]

1. Recurrent vs feed-forward at equal neuron count: ``rmlp`` and ``mlp``
   with the same hidden layers, trained dense on ``digits-seq`` (one image
   column at a time; docs/datasets.md). Each model's learning rate and
   initial weight gain (``weight_init_gain``: the feed-forward baseline's
   results hang on it) are chosen on the mean validation accuracy over the
   seeds, the same grid for both (``LEARNING_RATES`` x ``INIT_GAINS``);
   only then is the chosen setting's test accuracy (mean and spread over the
   seeds) read (every trial measures it, none is chosen by it).
2. The pruners on ``rmlp`` (its chosen setting): ``dpap tune``'s search
   (``dpap_neuro.tune.tune``, ``--max-drop 1.0`` on validation) for each of
   ``--pruners``; per pruner its answer: validation accuracy against dense,
   the share of recurrent synapses kept, Loihi energy against dense. Test
   accuracies of the answers: ``benchmarks/tune_verdict.py OUT/tune``.

Every trial is ``dpap tune``'s (``dpap_neuro.tune.run_trial``, cached in
``OUT/trials``: a second call reuses what is there). Prints measured figures
only; ``--markdown`` adds the tables docs/datasets.md carries. ``--portable-kernels``
pins the CPU kernels as ``dpap run --portable-kernels`` does (dpap_neuro/kernels.py): the
same figures on any x86 CPU (without it they move between CPUs, several points here).
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
# Initial gain on PyTorch's default initialisation (None: the models' default, 4). Scratch runs of the mlp on
# validation (15 epochs, lr 5e-3, 3 seeds): gain 1: 66.1 %, 2: 70.9 %, 4: 63.8 %, 8-16 worse: 2 and 4 bracket it.
INIT_GAINS = (None, 2.0)
VAL_FRACTION = 0.2


def base_config(model: str, args: argparse.Namespace, setting: tuple[float, float | None]) -> dict:
    """``setting``: (learning rate, initial gain or None for the default)."""
    from dpap_neuro.config import RunConfig

    learning_rate, gain = setting
    return RunConfig(dataset=DATASET, model=model, epochs=args.epochs, hidden_sizes=tuple(args.hidden),
                     learning_rate=learning_rate, weight_init_gain=gain, val_fraction=VAL_FRACTION,
                     portable_kernels=args.portable_kernels).to_dict()


def label(setting: tuple[float, float | None]) -> str:
    """A setting's name in the trials (the default gain's as before gains were searched: its cache stays valid)."""
    learning_rate, gain = setting
    return f"lr {learning_rate:g}" + ("" if gain is None else f" gain {gain:g}")


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
    """Per model: the validation-chosen setting (learning rate, initial gain), its validation and test
    accuracies per seed, and every setting's validation accuracies."""
    import itertools

    from dpap_neuro.tune import trial_spec, trial_threads

    threads = trial_threads(args.workers)
    settings = list(itertools.product(LEARNING_RATES, INIT_GAINS))
    chosen = {}
    for model in ("rmlp", "mlp"):
        # Each trial measures the test split too (no second training); only the chosen setting's is reported.
        runs = run([trial_spec(base_config(model, args, setting), threads, "none", label(setting), seed, test=True)
                    for setting in settings for seed in args.seeds], args)
        by_setting = {setting: [r for r in runs if r["strength"] == label(setting)] for setting in settings}
        best = max(settings, key=lambda s: statistics.fmean(t["validation_accuracy"] for t in by_setting[s]))
        tested = by_setting[best]
        chosen[model] = {"learning_rate": best[0], "init_gain": best[1], "setting": label(best),
                         "neurons": tested[0]["neurons"], "synapses": tested[0]["synapses"],
                         "validation": [t["validation_accuracy"] for t in tested],
                         "test": [t["test_accuracy"] for t in tested],
                         "validation_by_setting": {label(s): [t["validation_accuracy"] for t in by_setting[s]]
                                                   for s in settings}}
    return chosen


def pruned(args: argparse.Namespace, setting: tuple[float, float | None]) -> dict:
    """Per pruner: its answer of ``dpap tune --max-drop 1.0`` on rmlp (the point, ``meets``, ``validation_drop`` below dense)."""
    from dpap_neuro.tune import Budget, tune

    outcome = tune(base_config("rmlp", args, setting), args.pruners, Budget(max_drop_points=1.0), args.seeds,
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
    parser.add_argument("--portable-kernels", action="store_true",
                        help="pin the CPU kernels (the same figures on any x86 CPU), as dpap run --portable-kernels")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.portable_kernels:
        from dpap_neuro import kernels

        kernels.pin_environment()  # before torch loads, here and in the trial processes (they inherit it)
    dense = dense_comparison(args)
    result = {"dataset": DATASET, "seeds": args.seeds, "epochs": args.epochs, "hidden": args.hidden,
              "dense": dense}
    args.out.mkdir(parents=True, exist_ok=True)
    from hw_export.files import atomic_write_text

    if args.pruners:
        result["tune"] = pruned(args, (dense["rmlp"]["learning_rate"], dense["rmlp"]["init_gain"]))
    atomic_write_text(args.out / "recurrent.json", json.dumps(result, indent=1) + "\n")
    for model, entry in dense.items():
        test_mean, test_std = mean_std(entry["test"])
        print(f"{model}: {entry['setting']} (validation), {entry['neurons']} neurons, "
              f"{entry['synapses']} synapses; test {100 * test_mean:.2f} ± {100 * test_std:.2f} %")
    gap = statistics.fmean(dense["rmlp"]["test"]) - statistics.fmean(dense["mlp"]["test"])
    print(f"recurrent_minus_feedforward_test_points: {100 * gap:.2f}")
    for pruner, answer in result.get("tune", {}).items():
        print(f"{pruner}: {answer['strength']} ({'within' if answer['meets'] else 'outside'} 1 point), validation "
              f"{100 * answer['validation_drop']:.2f} points below dense, recurrent synapses kept "
              f"{answer['recurrent_synapses_kept']:.3f}, energy {answer['energy_ratio']:.3f}x dense")
    if args.markdown:
        print("\n| model | setting (validation) | neurons | synapses | validation % | test % |\n|---|---|---|---|---|---|")
        for model, entry in dense.items():
            print(f"| {model} | {entry['setting']} | {entry['neurons']} | {entry['synapses']} | "
                  f"{100 * statistics.fmean(entry['validation']):.2f} | "
                  "{:.2f} ± {:.2f} |".format(*(100 * v for v in mean_std(entry["test"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
