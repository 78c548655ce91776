"""Energy-accuracy Pareto benchmark: DPAP against the baselines, every setting chosen on validation.

Two stages. ``--stage recipes`` trains the dense model of every dataset x model
x seed with each training recipe (``RECIPES``: Adam at a constant learning
rate, AdamW with a cosine schedule) and keeps, per dataset and model, the one
with the best mean *validation* accuracy; every method of that dataset and
model then trains with it, alike. ``--stage grid`` trains each method at
several strengths; where a method has free settings besides its strength (two
candidates for every method), each candidate is trained too and the one with
the best mean validation accuracy over the seeds is kept, for every method
alike. Test accuracy is read once, for the kept settings. Every run is the one
training run of `dpap run` (``dpap_neuro.tune.run_trial``, `dpap tune`'s trial: same
data, split, architecture, epochs and seed as its dense model), on the
training split minus a stratified 10 % validation split.

Measured per run, on the exported network (what hardware gets: dead neurons
removed): hidden synapses kept (share of the dense model's export of the
same seed), hidden neurons kept (share of the trained widths), spikes, and
Loihi energy per test sample (`hw_export.energy`, Loihi profile) from the
Norse model's spikes on the test set (Lava reproduces them spike for spike;
docs/lava.md), with its ratio to the dense model of the seed.

    python benchmarks/pareto.py --stage recipes [--datasets ...] [--models ...] [--seeds 0 1 2]
    python benchmarks/pareto.py [--datasets digits-events digits] [--models mlp conv] [--seeds 0 1 2]
                                [--epochs 20] [--workers 2] [--grid full|quick] [--methods ...] [--hidden N ...]
                                [--out DIR]
    python benchmarks/pareto.py --plot-only [--markdown] [--out DIR]      # select and draw again from the runs
    python benchmarks/pareto.py --update --methods dpap+ [...]   # redo some methods, keep the other runs

Prints one row per method and strength (means over seeds, with the standard
deviation of accuracy), each method's Pareto front, whether any baseline
point dominates a DPAP point (>= test accuracy at <= energy, better in one),
and the goal checks. Writes OUT/pareto.json (every run with the git commit
of the code that ran it, and the selection), OUT/trials/COMMIT/ (each finished
run of committed code, so that the same call continues after an interrupt) and
OUT/pareto_<dataset>_<model>.png (test accuracy against energy ratio and
against synapses kept; fronts drawn as lines).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VAL_FRACTION = 0.1  # of the training split: where every setting is chosen
BATCHES = {"schedule_unit": "batches"}
DPAP_METHODS = ("dpap", "dpap (authors)", "dpap+")

# DPAP has no target: its strength is the offset c of the adaptive rule (higher c: more pruned), here for FC
# neurons and conv channels alike, over the `builtin` preset (the calibrated rule, docs/dpap.md).
DPAP_STRENGTHS = {"mlp": (0.8, 1.0, 1.25, 1.5), "conv": (0.65, 0.8, 1.0, 1.25)}


def builtin_dpap(pruner: str, c: float) -> tuple[str, dict]:
    return pruner, {"preset": "builtin", "fc_neuron_c": c, "conv_channel_c": c}


# method -> model -> strength label -> (pruner, options); candidate settings chosen on validation below.
GRIDS = {
    "full": {
        "dpap (authors)": {m: {"authors": ("dpap", {"preset": "authors"})} for m in DPAP_STRENGTHS},
        "dpap": {m: {f"c={c}": builtin_dpap("dpap", c) for c in cs} for m, cs in DPAP_STRENGTHS.items()},
        # dpap+: the builtin preset with a magnitude-weighted synapse score (ours).
        "dpap+": {m: {"c=1.0": builtin_dpap("dpap+", 1.0)} for m in DPAP_STRENGTHS},
        "gmp": {m: {f"{s}": ("gmp", {"target_sparsity": s}) for s in (0.8, 0.9, 0.95)} for m in DPAP_STRENGTHS},
        "magnitude": {m: {f"{s}": ("magnitude", {"sparsity": s}) for s in (0.8, 0.9)} for m in DPAP_STRENGTHS},
        "random": {m: {"0.5": ("random", {"sparsity": 0.5})} for m in DPAP_STRENGTHS},
        "structured": {m: {f"{s}": ("structured", {"target_sparsity": s}) for s in (0.25, 0.5, 0.75)}
                       for m in DPAP_STRENGTHS},
    },
}
GRIDS["quick"] = {method: {m: dict(list(points.items())[:1]) for m, points in by_model.items()}
                  for method, by_model in GRIDS["full"].items()}
# Settings besides the strength, two for every method, tried at every strength and chosen on validation accuracy.
CANDIDATES = {
    "dpap (authors)": [{}],  # the authors' constants and schedule: nothing to choose
    "dpap": [{"prune_after_fraction": 0.2}, {"prune_after_fraction": 0.4}],  # 0.2: the builtin preset's
    "dpap+": [{"prune_after_fraction": 0.2}, {"prune_after_fraction": 0.4}],
    # gmp: its schedule, and how its target is spread over the layers (uniform: Zhu & Gupta's; see gmp.py)
    "gmp": [{"start_fraction": start, "end_fraction": end, "allocation": allocation}
            for allocation in ("uniform", "first-dense", "global") for start, end in ((0.1, 0.7), (0.2, 0.8))],
    "magnitude": [{"at_epoch": 2}, {"at_epoch": 5}],
    "random": [{"at_fraction": 0.15}, {"at_fraction": 0.3}],
    "structured": [{"start_fraction": 0.1, "end_fraction": 0.7}, {"start_fraction": 0.2, "end_fraction": 0.8}],
}
# Training recipes (RunConfig's optimiser and schedule fields), tried on the dense model of every dataset and
# model; the one with the best mean validation accuracy trains every method of that dataset and model alike.
RECIPES = {
    "adam": {},
    "adamw-cosine": {"optimizer": "adamw", "weight_decay": 0.01, "lr_schedule": "cosine", "warmup_epochs": 1.0},
    "adamw-cosine-1e-2": {"optimizer": "adamw", "weight_decay": 0.01, "lr_schedule": "cosine", "warmup_epochs": 1.0,
                          "learning_rate": 1e-2},
}


def choose_recipes(runs: list[dict]) -> dict[str, str]:
    """``"dataset/model"`` -> the recipe whose dense model has the best mean validation accuracy over the seeds."""
    scores: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        if r["method"] == "dense" and "recipe_name" in r:
            scores.setdefault(f"{r['dataset']}/{r['model']}", {}).setdefault(r["recipe_name"], []).append(
                r["validation_accuracy"])
    return {pair: max(by_recipe, key=lambda name: np.mean(by_recipe[name])) for pair, by_recipe in scores.items()}


def job_spec(job: dict) -> dict:
    """The trial `dpap tune` would train for ``job`` (``dpap_neuro.tune.trial_spec``), measured on test too."""
    from dpap_neuro.config import RunConfig
    from dpap_neuro.tune import trial_spec

    config = RunConfig(dataset=job["dataset"], model=job["model"], epochs=job["epochs"], val_fraction=VAL_FRACTION,
                       hidden_sizes=tuple(job.get("hidden") or RunConfig().hidden_sizes), **job.get("recipe", {}))
    base = {k: v for k, v in config.to_dict().items() if k not in ("seed", "pruner", "pruner_options")}
    return trial_spec(base, 1, job["pruner"], job["strength"], job["seed"], test=True, options=job["options"])


def one_run(job: dict) -> dict:
    """Train one model and measure it (in a worker process, one thread): `dpap tune`'s trial
    (``dpap_neuro.tune.run_trial``), on the validation and the test split; energy and spikes are the test's."""
    warnings.filterwarnings("ignore")
    from dpap_neuro.tune import run_trial

    result = run_trial(job_spec(job))
    run = {**{k: job[k] for k in ("dataset", "model", "seed", "method", "strength", "pruner", "options")},
           "recipe": job.get("recipe", {}), "recipe_name": job.get("recipe_name"),
           **{k: result[k] for k in ("validation_accuracy", "test_accuracy", "mask_sparsity", "synapses_kept",
                                     "neurons_kept") if k in result},
           "train_wall_time_s": result["training_time_s"]}
    if "channels_kept" in result:
        run["channels_kept"] = result["channels_kept"]
    if "test_energy_j" in result:  # an ANN twin has no spiking export: no spikes, no energy
        run.update(spikes_per_sample=result["test_spikes_per_sample"], energy_j=result["test_energy_j"]["loihi"])
    return run


def run_all(jobs: list[dict], workers: int, cache_dir: Path | None = None) -> list[dict]:
    """Every job's ``one_run`` in ``workers`` processes (``dpap_neuro.tune.run_trials``, the runner `dpap tune`
    uses); with ``cache_dir``, each finished run is kept there, so an interrupted call continues."""
    from tqdm import tqdm

    from dpap_neuro.tune import TrialCache, run_trials

    with tqdm(total=len(jobs), desc="runs", unit="run") as bar:
        return run_trials(jobs, None if cache_dir is None else TrialCache(cache_dir), max(1, workers),
                          lambda _: bar.update(1), trial=one_run)


def group_key(run: dict) -> tuple:
    return run["dataset"], run["model"], run["method"], run["strength"]


def select(runs: list[dict]) -> list[dict]:
    """Per dataset, model, method and strength: the candidate settings with the best mean validation accuracy
    (``dpap_neuro.tune.chosen``).

    Energy is divided by the dense model's of the same seed. Returns one
    summary row per point (means over seeds; test accuracy read only here).
    """
    from dpap_neuro.tune import chosen as chosen_candidates

    dense = {(r["dataset"], r["model"], r["seed"]): r for r in runs if r["method"] == "dense"}
    by_point: dict[tuple, dict[str, list[dict]]] = {}
    for r in runs:
        reference = dense[(r["dataset"], r["model"], r["seed"])]
        r["energy_ratio"] = r["energy_j"] / reference["energy_j"]
        # Against the dense model's export: an unrolled conv has fewer synapses than its fully connected
        # form (padding, pooling), so the dense conv itself keeps under 100 % of that.
        r["synapses_vs_dense"] = r["synapses_kept"] / reference["synapses_kept"]
        r["time_ratio"] = r["train_wall_time_s"] / reference["train_wall_time_s"]  # same seed, same machine
        settings = json.dumps({"options": r["options"], "recipe": r.get("recipe", {})}, sort_keys=True)
        by_point.setdefault(group_key(r), {}).setdefault(settings, []).append(r)
    # Each point's candidate settings chosen on mean validation accuracy, as `dpap tune` chooses its own.
    candidates = [{"key": point, "settings": settings, "runs": runs,
                   "validation_accuracy": float(np.mean([r["validation_accuracy"] for r in runs]))}
                  for point, by_settings in by_point.items() for settings, runs in by_settings.items()]
    best = chosen_candidates(candidates, key=lambda c: c["key"])
    rows = []
    for point in sorted(best):
        dataset, model, method, strength = point
        settings, chosen = json.loads(best[point]["settings"]), best[point]["runs"]

        def mean(key):
            return float(np.mean([r[key] for r in chosen]))

        rows.append({"dataset": dataset, "model": model, "method": method, "strength": strength,
                     "pruner": chosen[0]["pruner"], "options": settings["options"], "recipe": settings["recipe"],
                     "n_seeds": len(chosen), "candidates": len(by_point[point]),
                     "validation_accuracy": mean("validation_accuracy"), "test_accuracy": mean("test_accuracy"),
                     "test_accuracy_std": float(np.std([r["test_accuracy"] for r in chosen])),
                     "synapses_kept": mean("synapses_vs_dense"), "neurons_kept": mean("neurons_kept"),
                     "spikes_per_sample": mean("spikes_per_sample"), "energy_ratio": mean("energy_ratio"),
                     "time_ratio": mean("time_ratio"),  # training time / dense's (compaction since commit eaae7de)
                     # conv output channels kept; recorded since commit b826be3, None for older runs
                     "channels_kept": mean("channels_kept") if all("channels_kept" in r for r in chosen) else None})
    return rows


def dominates(a: dict, b: dict) -> bool:
    """``a`` is at least as accurate at no more energy, and strictly better in one."""
    return (a["test_accuracy"] >= b["test_accuracy"] and a["energy_ratio"] <= b["energy_ratio"]
            and (a["test_accuracy"] > b["test_accuracy"] or a["energy_ratio"] < b["energy_ratio"]))


def dominates_with_time(a: dict, b: dict) -> bool:
    """``a`` is at least as accurate, at no more energy and no more training time, and strictly better in one."""
    keys = ("energy_ratio", "time_ratio")
    return (a["test_accuracy"] >= b["test_accuracy"] and all(a[k] <= b[k] for k in keys)
            and (a["test_accuracy"] > b["test_accuracy"] or any(a[k] < b[k] for k in keys)))


def pareto_front(rows: list[dict]) -> list[dict]:
    """The rows no other row of the list dominates, by increasing energy."""
    front = [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]
    return sorted(front, key=lambda r: r["energy_ratio"])


def plot(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for dataset, model in sorted({(r["dataset"], r["model"]) for r in rows}):
        subset = [r for r in rows if r["dataset"] == dataset and r["model"] == model]
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4), sharey=True)
        methods = sorted({r["method"] for r in subset})
        # Zoom on the useful range (down to 8 points under dense); a point below it is drawn on the
        # bottom edge as a triangle, with its accuracy in the legend.
        dense_accuracy = 100 * next((r["test_accuracy"] for r in subset if r["method"] == "dense"), 1.0)
        shown = [100 * r["test_accuracy"] for r in subset if 100 * r["test_accuracy"] >= dense_accuracy - 8]
        low, high = min(shown) - 1.0, max(100 * r["test_accuracy"] for r in subset) + 1.0
        for ax, key, label in ((axes[0], "energy_ratio", "Loihi energy per sample / dense"),
                               (axes[1], "synapses_kept", "hidden synapses kept (share of dense)")):
            for index, method in enumerate(methods):
                points = [r for r in subset if r["method"] == method]
                color, marker = f"C{index}", "*" if method in DPAP_METHODS else "o"
                inside = [r for r in points if 100 * r["test_accuracy"] >= low]
                outside = [r for r in points if 100 * r["test_accuracy"] < low]
                ax.errorbar([r[key] for r in inside], [100 * r["test_accuracy"] for r in inside],
                            yerr=[100 * r["test_accuracy_std"] for r in inside], fmt=marker, color=color,
                            capsize=2, markersize=10 if marker == "*" else 5,
                            label=method + (" (off scale: " + ", ".join(
                                f"{r['strength']}: {100 * r['test_accuracy']:.0f} %" for r in outside) + ")"
                                if outside else ""))
                ax.scatter([r[key] for r in outside], [low + 0.15] * len(outside), marker="v", color=color, s=50)
                if key == "energy_ratio" and len(inside) > 1:
                    front = pareto_front(inside)
                    ax.plot([r[key] for r in front], [100 * r["test_accuracy"] for r in front], color=color, alpha=0.5)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        axes[0].set_ylim(low, high)
        axes[0].set_ylabel("test accuracy (%), mean ± std over seeds")
        axes[1].legend(fontsize=8, loc="lower right")
        fig.suptitle(f"{dataset}, {model}: each method at several strengths, settings chosen on validation "
                     "(lines: each method's Pareto front)")
        fig.tight_layout()
        path = out_dir / f"pareto_{dataset}_{model}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown(rows: list[dict]) -> list[str]:
    """The selected points as the markdown table of docs/pruning.md ("DPAP against the baselines")."""
    lines = ["| dataset | model | method | strength | test acc. % (mean ± std) | validation acc. | hidden synapses kept "
             "| hidden neurons kept | conv channels kept | spikes/sample | Loihi energy / dense | training time / dense "
             "| recipe |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        recipe = next((name for name, recipe in RECIPES.items() if recipe == r["recipe"]), "other")
        channels = "–" if r.get("channels_kept") is None else f"{r['channels_kept']:.3f}"
        lines.append(f"| {r['dataset']} | {r['model']} | {r['method']} | {r['strength']} | "
                     f"{100 * r['test_accuracy']:.2f} ± {100 * r['test_accuracy_std']:.2f} | "
                     f"{r['validation_accuracy']:.4f} | {r['synapses_kept']:.3f} | {r['neurons_kept']:.3f} | "
                     f"{channels} | {r['spikes_per_sample']:.0f} | {r['energy_ratio']:.3f} | {r['time_ratio']:.2f} | "
                     f"{recipe} |")
    return lines


def report(rows: list[dict]) -> list[str]:
    """The printed table, fronts, dominance check and goal checks."""
    lines = [f"{'dataset':<14} {'model':<5} {'method':<15} {'strength':<9} {'val. acc':>8} {'test acc %':>14} "
             f"{'syn. kept':>9} {'neur. kept':>10} {'spikes':>8} {'energy/dense':>12}  settings"]
    for r in rows:
        lines.append(f"{r['dataset']:<14} {r['model']:<5} {r['method']:<15} {r['strength']:<9} "
                     f"{r['validation_accuracy']:8.4f} {100 * r['test_accuracy']:7.2f} ± {100 * r['test_accuracy_std']:4.2f} "
                     f"{r['synapses_kept']:9.3f} {r['neurons_kept']:10.3f} {r['spikes_per_sample']:8.1f} "
                     f"{r['energy_ratio']:12.3f}  {json.dumps(r['options'], sort_keys=True)}")
    lines.append("")
    for dataset, model in sorted({(r["dataset"], r["model"]) for r in rows}):
        subset = [r for r in rows if r["dataset"] == dataset and r["model"] == model]
        dense = next(r for r in subset if r["method"] == "dense")
        dpap = [r for r in subset if r["method"] in DPAP_METHODS]
        baselines = [r for r in subset if r["method"] not in DPAP_METHODS + ("dense",)]
        for method in sorted({r["method"] for r in subset} - {"dense"}):
            front = pareto_front([r for r in subset if r["method"] == method])
            lines.append(f"{dataset} {model} {method} front: "
                         + ", ".join(f"{r['strength']} ({100 * r['test_accuracy']:.2f} %, {r['energy_ratio']:.3f})"
                                     for r in front))
        for point in dpap:
            beaten_by = [b for b in baselines if dominates(b, point)]
            lines.append(f"{dataset} {model}: {point['method']} {point['strength']} dominated by: "
                         + (", ".join(f"{b['method']} {b['strength']}" for b in beaten_by) or "none"))
            with_time = [b for b in baselines if dominates_with_time(b, point)]
            lines.append(f"{dataset} {model}: {point['method']} {point['strength']} (training time "
                         f"{point['time_ratio']:.2f}x dense) dominated on accuracy, energy and training time by: "
                         + (", ".join(f"{b['method']} {b['strength']} ({b['time_ratio']:.2f}x)" for b in with_time)
                            or "none"))
        # The goals of issue #9, for each DPAP point.
        for point in dpap:
            lost = 100 * (dense["test_accuracy"] - point["test_accuracy"])
            checks = {"<= 1 point lost": lost <= 1.0, "not dominated": not any(dominates(b, point) for b in baselines)}
            if model == "mlp":
                checks.update({"synapses <= 15 %": point["synapses_kept"] <= 0.15,
                               "neurons <= 50 %": point["neurons_kept"] <= 0.50,
                               "energy <= 0.2x": point["energy_ratio"] <= 0.2})
            else:
                checks["fewer spikes than dense"] = point["spikes_per_sample"] < dense["spikes_per_sample"]
            verdict = ", ".join(f"{name}: {'met' if ok else 'missed'}" for name, ok in checks.items())
            lines.append(f"{dataset} {model}: goals for {point['method']} {point['strength']} "
                         f"({lost:+.2f} points lost): {verdict}; all met: {all(checks.values())}")
    return lines


def kept_runs(path: Path, args: argparse.Namespace, rerun: set[str]) -> list[dict]:
    """``--update``: the saved runs that this call does not redo, each with the commit it came from."""
    if not path.is_file():
        sys.exit(f"pareto.py: error: --update adds to {path}, which does not exist")
    saved = json.loads(path.read_text())
    if saved["epochs"] != args.epochs or saved.get("hidden") != args.hidden:
        sys.exit(f"pareto.py: error: --update: {path} holds runs of --epochs {saved['epochs']} "
                 f"--hidden {saved.get('hidden')}; this call asks for {args.epochs} and {args.hidden}")
    redone = {(d, m) for d in args.datasets for m in args.models}
    return [{**r, "commit": r.get("commit", saved.get("commit", "unknown"))} for r in saved["runs"]
            if not (r["method"] in rerun and (r["dataset"], r["model"]) in redone)]


def dense_of_chosen_recipes(saved: dict, args: argparse.Namespace, kept: list[dict]) -> list[dict]:
    """The recipe stage's dense runs with each pair's chosen recipe (the very runs the grid would train again),
    for the pairs and seeds of this call that ``kept`` has no dense run of."""
    if (saved.get("epochs"), saved.get("hidden")) != (args.epochs, args.hidden):
        return []
    have = {(r["dataset"], r["model"], r["seed"]) for r in kept if r["method"] == "dense"}
    chosen = saved.get("recipes", {})
    return [r for r in saved.get("recipe_runs", [])
            if r["dataset"] in args.datasets and r["model"] in args.models and r["seed"] in args.seeds
            and r.get("recipe_name") == chosen.get(f"{r['dataset']}/{r['model']}")
            and (r["dataset"], r["model"], r["seed"]) not in have]


def add_run_arguments(parser: argparse.ArgumentParser, models: tuple[str, ...]) -> None:
    """The options every training benchmark shares: what to train, how long, on how many processes."""
    parser.add_argument("--datasets", nargs="+", default=["digits-events", "digits"])
    parser.add_argument("--models", nargs="+", default=list(models), choices=models)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)


def grid_jobs(args: argparse.Namespace, grid: dict, recipes: dict[str, str], have_dense: set) -> list[dict]:
    """Every training run of the grid, each with its dataset/model's recipe (``choose_recipes``)."""
    jobs = []
    for dataset in args.datasets:
        for model in args.models:
            recipe_name = recipes.get(f"{dataset}/{model}")
            if recipe_name is None:
                sys.exit(f"pareto.py: error: no recipe chosen for {dataset}/{model}; run --stage recipes first")
            for seed in args.seeds:
                base = {"dataset": dataset, "model": model, "seed": seed, "epochs": args.epochs,
                        "hidden": args.hidden, "recipe": RECIPES[recipe_name], "recipe_name": recipe_name}
                if (dataset, model, seed) not in have_dense:
                    jobs.append({**base, "method": "dense", "strength": "-", "pruner": "none", "options": {}})
                for method, by_model in grid.items():
                    for strength, (pruner, options) in by_model[model].items():
                        candidates = CANDIDATES[method][:1] if args.first_candidate else CANDIDATES[method]
                        jobs += [{**base, "method": method, "strength": strength, "pruner": pruner,
                                  "options": {**options, **candidate}} for candidate in candidates]
    return jobs


def recipe_jobs(args: argparse.Namespace) -> list[dict]:
    return [{"dataset": d, "model": m, "seed": s, "epochs": args.epochs, "hidden": args.hidden, "method": "dense",
             "strength": "-", "pruner": "none", "options": {}, "recipe": recipe, "recipe_name": name}
            for d in args.datasets for m in args.models for s in args.seeds for name, recipe in RECIPES.items()]


def save(out_dir: Path, saved: dict) -> None:
    from hw_export.files import atomic_write_text

    atomic_write_text(out_dir / "pareto.json", json.dumps(saved, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, ("mlp", "conv"))
    parser.add_argument("--stage", choices=("recipes", "grid"), default="grid",
                        help="recipes: train the dense models with every recipe and choose one per dataset/model on "
                             "validation; grid (default): every method with the chosen recipes")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full",
                        help="strengths per method: full, or quick (the first of each)")
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods (default: all)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layer sizes (default: dpap run's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for pareto.json and figures ({RESULTS})")
    parser.add_argument("--plot-only", action="store_true",
                        help="select again from the runs in OUT/pareto.json, redraw figures and table")
    parser.add_argument("--markdown", action="store_true", help="also print the selected points as a markdown table")
    parser.add_argument("--strengths", nargs="+", default=None,
                        help="only these strength labels (e.g. c=1.0 0.75; default: the grid's)")
    parser.add_argument("--also-recipe", choices=sorted(RECIPES), default=None,
                        help="add to OUT/pareto.json: train every method but dense again with this recipe, as one "
                             "more candidate that selection weighs on validation; keeps every saved run")
    parser.add_argument("--first-candidate", action="store_true",
                        help="only the first candidate setting of each method (CANDIDATES), for a cheaper pass")
    parser.add_argument("--update", action="store_true",
                        help="add to OUT/pareto.json: rerun only --methods (and dense where missing), keep its other runs")
    args = parser.parse_args(argv)
    from dpap_neuro.provenance import source_commit

    commit = source_commit()  # of the code that runs, read before the hours of training that may follow
    # Finished runs are kept per commit, so the same call on the same code continues after an interrupt; changed
    # code (another commit, or uncommitted changes: no cache) trains everything again.
    trials = None if commit == "unknown" or commit.endswith("+uncommitted") else args.out / "trials" / commit
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "pareto.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if args.stage == "recipes":
        redone = {(d, m) for d in args.datasets for m in args.models}  # other pairs' recipe runs are kept
        runs = [r for r in saved.get("recipe_runs", []) if (r["dataset"], r["model"]) not in redone]
        runs += [{**r, "commit": commit} for r in run_all(recipe_jobs(args), args.workers, trials)]
        saved.update(recipe_runs=runs, recipes=choose_recipes(runs), epochs=args.epochs, hidden=args.hidden)
        save(args.out, saved)
        print(json.dumps(saved["recipes"], indent=1))
        return 0
    if not args.plot_only:
        grid = {m: {model: {label: point for label, point in points.items()
                            if args.strengths is None or label in args.strengths}
                    for model, points in by_model.items()}
                for m, by_model in GRIDS[args.grid].items() if args.methods is None or m in args.methods}
        if args.also_recipe:  # every saved run stays; the dense models stay those of the chosen recipe
            kept = kept_runs(path, args, set())
            recipes = {f"{d}/{m}": args.also_recipe for d in args.datasets for m in args.models}
            have_dense = {(d, m, s) for d in args.datasets for m in args.models for s in args.seeds}
        else:
            kept = kept_runs(path, args, set(grid)) if args.update else []
            kept += dense_of_chosen_recipes(saved, args, kept)
            recipes = saved.get("recipes", {})
            have_dense = {(r["dataset"], r["model"], r["seed"]) for r in kept if r["method"] == "dense"}
        jobs = grid_jobs(args, grid, recipes, have_dense)
        print(f"{len(jobs)} training runs on {args.workers} workers" + (f", {len(kept)} kept" if kept else ""),
              flush=True)
        runs = kept + [{**r, "commit": commit} for r in run_all(jobs, args.workers, trials)]
        saved.update(commits=sorted({r["commit"] for r in runs}), epochs=args.epochs, hidden=args.hidden,
                     seeds=args.seeds, runs=runs)
    saved["selected"] = rows = select(saved["runs"])  # the selection again, from the runs
    save(args.out, saved)
    print(f"commits {', '.join(saved['commits'])}, {saved['epochs']} epochs, seeds {saved['seeds']}, "
          f"recipes {saved.get('recipes')}")
    print("\n".join(report(rows)))
    if args.markdown:
        print("\n".join(markdown(rows)))
    print("figures: " + ", ".join(str(p) for p in plot(rows, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
