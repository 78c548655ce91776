"""Test accuracy against synapse and hidden-neuron sparsity: DPAP and the baselines.

For each built-in dataset and seed: a dense model, DPAP with a few threshold
settings, and the baselines pruned to the sparsity DPAP (built-in defaults)
reached on the same seed — gmp and magnitude to its overall share of pruned
hidden synapses, random to its per-layer shares (applied at 15 % of the run,
when DPAP starts cutting). Same architecture, data and
epochs everywhere. Sparsities are measured on the exported SparseNet (what
hardware gets: dead neurons removed).

    python benchmarks/pareto.py [--epochs 20] [--seeds 0 1 2] [--workers 2] [--datasets ...] [--hidden N ...] [--out DIR]

Prints a table and the goal checks; writes benchmarks/results/pareto.json and
benchmarks/results/pareto_<dataset>.png.
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
BUILTIN = {"schedule_unit": "batches", "batches_per_unit": 5}
DPAP_SETTINGS = {
    "dpap": {**BUILTIN, "fc_neuron_c": 1.0},  # the defaults of `dpap run` on built-in data
    "dpap c=1.5": {**BUILTIN, "fc_neuron_c": 1.5},  # the authors' c for neurons
    "dpap mild": {**BUILTIN, "fc_neuron_c": 0.8, "fc_synapse_c": 1.2},
}


def one_run(job: dict) -> dict:
    """Train one model and measure it (runs in a worker process, one thread)."""
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import N_CLASSES, load_dataset
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import make_pruner
    from dpap_neuro.train import evaluate, train
    from hw_export.metrics import hidden_sparsity
    from hw_export.norse_reader import from_norse

    config = RunConfig(dataset=job["dataset"], epochs=job["epochs"], seed=job["seed"],
                       hidden_sizes=tuple(job.get("hidden", RunConfig().hidden_sizes)))
    train_data, test_data = load_dataset(config.dataset, config.timesteps, config.seed)
    torch.manual_seed(config.seed)
    model = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
    pruner = make_pruner(job["pruner"], **job["options"])
    history = train(model, train_data, pruner, config.epochs, config.batch_size, config.learning_rate,
                    config.seed, progress=False)
    accuracy = evaluate(model, test_data).accuracy
    net = from_norse(list(model), train_data.input_shape)
    synapse_sparsity, neuron_sparsity = hidden_sparsity(net)
    layer_mask_sparsity = [1.0 - float(layer.weight_mask.mean()) for layer in pruner.layers]
    return {
        **{k: job[k] for k in ("dataset", "seed", "method", "pruner", "options")},
        "accuracy": accuracy,
        "synapse_sparsity": synapse_sparsity,
        "neuron_sparsity": neuron_sparsity,
        "mask_sparsity": pruner.sparsity(),
        "layer_mask_sparsity": layer_mask_sparsity,
        "train_wall_time_s": history.wall_time_s,
    }


def run_all(jobs: list[dict], workers: int) -> list[dict]:
    context = mp.get_context("spawn")
    results = []
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(one_run, job) for job in jobs]
        for future in cf.as_completed(futures):
            r = future.result()
            results.append(r)
            print(f"  {r['dataset']:>13} seed {r['seed']} {r['method']:<12} acc {r['accuracy']:.4f} "
                  f"synapse sp. {r['synapse_sparsity']:.3f} neuron sp. {r['neuron_sparsity']:.3f}", flush=True)
    return results


def summarise(results: list[dict]) -> dict:
    table = {}
    for r in results:
        table.setdefault(r["dataset"], {}).setdefault(r["method"], []).append(r)
    summary = {}
    for dataset, methods in table.items():
        summary[dataset] = {}
        for method, runs in methods.items():
            summary[dataset][method] = {
                key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs])))
                for key in ("accuracy", "synapse_sparsity", "neuron_sparsity")
            }
            summary[dataset][method]["n_seeds"] = len(runs)
    return summary


def plot(results: list[dict], summary: dict, out_dir: Path = RESULTS) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for dataset, methods in summary.items():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        # Zoom on the working models; a model stuck at chance is drawn on the bottom edge.
        working = [100 * m["accuracy"][0] for m in methods.values() if m["accuracy"][0] > 0.5]
        working = working or [100 * m["accuracy"][0] for m in methods.values()]  # nothing learned yet: show all
        low, high = min(working) - 2.0, max(working) + 1.5
        for ax, key, label in ((axes[0], "synapse_sparsity", "hidden-synapse sparsity"),
                               (axes[1], "neuron_sparsity", "hidden-neuron sparsity")):
            for index, method in enumerate(sorted(methods)):
                color = f"C{index}"
                runs = [r for r in results if r["dataset"] == dataset and r["method"] == method]
                mean = methods[method]
                if 100 * mean["accuracy"][0] < low:
                    ax.scatter([mean[key][0]], [low + 0.15], marker="v", color=color, s=60,
                               label=f"{method} ({100 * mean['accuracy'][0]:.0f} %, off scale)")
                    continue
                ax.scatter([r[key] for r in runs], [100 * r["accuracy"] for r in runs], color=color, alpha=0.35, s=18)
                ax.errorbar(mean[key][0], 100 * mean["accuracy"][0], xerr=mean[key][1], yerr=100 * mean["accuracy"][1],
                            fmt="o", color=color, label=method, capsize=3)
            ax.set_ylim(low, high)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("test accuracy (%)")
        axes[1].legend(fontsize=8, loc="lower left")
        fig.suptitle(f"{dataset}: accuracy vs sparsity (mean ± std over seeds; faint: single seeds)")
        fig.tight_layout()
        path = out_dir / f"pareto_{dataset}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["digits-events", "digits"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hidden", type=int, nargs="+", default=None,
                        help="hidden layer sizes (default: dpap run's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for pareto.json and figures ({RESULTS})")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figures from OUT/pareto.json")
    args = parser.parse_args(argv)
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        saved = json.loads((out_dir / "pareto.json").read_text())
        print("figures: " + ", ".join(str(p) for p in plot(saved["runs"], saved["summary"], out_dir)))
        return 0

    def job(dataset, seed, method, pruner, options):
        return {"dataset": dataset, "seed": seed, "method": method, "pruner": pruner,
                "options": options, "epochs": args.epochs, **({"hidden": args.hidden} if args.hidden else {})}

    print("phase 1: dense and DPAP settings", flush=True)
    first = [job(d, s, "dense", "none", {}) for d in args.datasets for s in args.seeds]
    first += [job(d, s, name, "dpap", opts) for d in args.datasets for s in args.seeds
              for name, opts in DPAP_SETTINGS.items()]
    results = run_all(first, args.workers)

    print("phase 2: baselines at the sparsity DPAP reached", flush=True)
    second = []
    for r in results:
        if r["method"] != "dpap":
            continue
        overall, per_layer = r["mask_sparsity"], r["layer_mask_sparsity"]
        second += [
            job(r["dataset"], r["seed"], "gmp", "gmp", {"target_sparsity": overall}),
            job(r["dataset"], r["seed"], "magnitude", "magnitude", {"sparsity": overall, "at_epoch": 2}),
            # Random masks at 15 % of the run, when DPAP has made its first cuts: pruned
            # to 80 % at initialisation, the 8x8 event network never fires and stays at chance.
            job(r["dataset"], r["seed"], "random", "random",
                {"sparsity": per_layer, "seed": r["seed"], "at_fraction": 0.15}),
        ]
    results += run_all(second, args.workers)

    summary = summarise(results)
    (out_dir / "pareto.json").write_text(json.dumps({"epochs": args.epochs, "seeds": args.seeds,
                                                     "runs": results, "summary": summary}, indent=2) + "\n")
    figures = plot(results, summary, out_dir)

    print(f"\n{'dataset':<14} {'method':<12} {'accuracy %':>14} {'synapse sp.':>13} {'neuron sp.':>12}")
    for dataset, methods in summary.items():
        for method, m in sorted(methods.items()):
            print(f"{dataset:<14} {method:<12} {100 * m['accuracy'][0]:7.2f} ± {100 * m['accuracy'][1]:4.2f} "
                  f"{m['synapse_sparsity'][0]:13.3f} {m['neuron_sparsity'][0]:12.3f}")
    print()
    for dataset, methods in summary.items():
        dpap, dense = methods["dpap"], methods["dense"]
        loss = 100 * (dense["accuracy"][0] - dpap["accuracy"][0])
        print(f"{dataset}: dpap removes {100 * dpap['synapse_sparsity'][0]:.1f} % of hidden synapses and "
              f"{100 * dpap['neuron_sparsity'][0]:.1f} % of hidden neurons, losing {loss:.2f} points against dense")
        for baseline in ("gmp", "random", "magnitude"):
            if baseline in methods:
                diff = 100 * (dpap["accuracy"][0] - methods[baseline]["accuracy"][0])
                print(f"{dataset}: dpap minus {baseline} at the same sparsity: {diff:+.2f} points")
    print("figures: " + ", ".join(str(p) for p in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
