"""Training time of pruned models against the dense one: DPAP's speed boost from compaction.

Each run trains one model of `dpap run` (same dataset defaults, seed, data
order and epochs; compaction on, as `dpap run` does; ``--portable-kernels``
pins the CPU kernels as its option does) in its own process with one thread,
and the ratios are taken within a seed (a noisy machine moves
whole runs, not their ratio). ``--repeats N`` runs every configuration N
times in turn and keeps each one's fastest run (timeit's rule: noise only
ever adds time; the runs are deterministic, so only their times differ).
``dpap-masked`` is DPAP with ``--no-compact``: the reference run, to show
that compaction leaves accuracy and decisions as they were.

    python benchmarks/train_speed.py                               # mlp and conv, 3 seeds
    python benchmarks/train_speed.py --models mlp --repeats 2      # each configuration twice, the faster kept
    python benchmarks/train_speed.py --models conv --seeds 0 --dataset nmnist --data-dir data/nmnist-standin \
        --pruners dpap --no-masked                                 # N-MNIST stand-in: dense and DPAP only

Prints, per model kind (suffix ``_<model>``, ``_nmnist`` for N-MNIST):
``train_time_<pruner>_vs_dense_<model>:`` (total training time, pruned /
dense, mean over seeds), ``last_epoch_speedup_<pruner>_<model>:`` (dense's
last epoch time / the pruned one's), ``macs_<pruner>_vs_dense_<model>:``
(forward multiply-accumulates of the whole run, pruned / dense) and the
compacted-vs-masked check: test accuracy of both and in how many seeds the
pruning decisions were the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import warnings

PRUNERS = ("dpap", "structured", "gmp")


def one_run(job: dict) -> dict:
    """Train one model (one thread; ``portable_kernels``: the CPU kernels pinned as ``dpap run --portable-kernels``
    pins them); its times, forward MACs, test accuracy and pruning log."""
    warnings.filterwarnings("ignore")
    from dpap_neuro import kernels

    if job["portable_kernels"]:
        kernels.pin_environment()  # before torch loads, as `dpap run` does
    import torch

    torch.set_num_threads(1)
    if job["portable_kernels"]:
        kernels.pin_torch()
    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import fit, load_splits
    from dpap_neuro.train import evaluate

    options = dict(dataset=job["dataset"], model=job["model"], seed=job["seed"], compact=job["compact"])
    if job.get("data_dir"):
        options["data_dir"] = job["data_dir"]
    if job.get("epochs"):
        options["epochs"] = job["epochs"]
    config = RunConfig(pruner=job["pruner"] if job["pruner"] != "none" else "dpap", **options)
    pruner_options = config.resolved_pruner_options() if job["pruner"] != "none" else {}
    splits = load_splits(config)
    model, history, pruner = fit(config, job["pruner"], pruner_options, splits.train, warn=False)
    return {**job, "wall_time_s": history.wall_time_s, "epoch_time_s": history.epoch_time_s,
            "forward_macs": sum(history.epoch_forward_macs), "pruning_log": history.pruning_log,
            "neuron_sparsity": pruner.neuron_sparsity(), "test_accuracy": evaluate(model, splits.test).accuracy}


def run_in_process(job: dict) -> dict:
    """``one_run`` in a fresh Python process (no warm caches from the run before)."""
    result = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"run {job} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(results: list[dict], suffix: str) -> list[str]:
    """The benchmark's lines for one model kind."""
    by = {(r["pruner"], r["compact"], r["seed"]): r for r in results}
    seeds = sorted({r["seed"] for r in results})
    lines = []
    for pruner in PRUNERS:
        pairs = [(by[("none", True, s)], by[(pruner, True, s)]) for s in seeds if (pruner, True, s) in by]
        if not pairs:
            continue
        time_ratio = statistics.mean(p["wall_time_s"] / d["wall_time_s"] for d, p in pairs)
        last_epoch = statistics.mean(d["epoch_time_s"][-1] / p["epoch_time_s"][-1] for d, p in pairs)
        macs = statistics.mean(p["forward_macs"] / d["forward_macs"] for d, p in pairs)
        units = statistics.mean(p["neuron_sparsity"] for _, p in pairs)
        lines += [f"train_time_{pruner}_vs_dense_{suffix}: {time_ratio:.3f}",
                  f"last_epoch_speedup_{pruner}_{suffix}: {last_epoch:.2f}",
                  f"macs_{pruner}_vs_dense_{suffix}: {macs:.3f}  (hidden units pruned: {units:.3f})"]
    masked = [(by[("dpap", True, s)], by[("dpap", False, s)]) for s in seeds if ("dpap", False, s) in by]
    if masked:
        same = sum(a["pruning_log"] == b["pruning_log"] for a, b in masked)
        lines.append(f"accuracy_dpap_compacted_vs_masked_{suffix}: "
                     f"{statistics.mean(a['test_accuracy'] for a, _ in masked):.4f} vs "
                     f"{statistics.mean(b['test_accuracy'] for _, b in masked):.4f} "
                     f"(same pruning decisions in {same} of {len(masked)} seeds; masked run's time / compacted: "
                     f"{statistics.mean(b['wall_time_s'] / a['wall_time_s'] for a, b in masked):.3f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--dataset", default="digits-events")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="default: the dataset's")
    parser.add_argument("--pruners", nargs="+", choices=PRUNERS, default=list(PRUNERS),
                        help="the pruned models beside the dense one (default: all)")
    parser.add_argument("--no-masked", action="store_true", help="skip the --no-compact reference run")
    parser.add_argument("--portable-kernels", action="store_true", help="pin the CPU kernels, as dpap run --portable-kernels")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every configuration this many times, in turn, and keep each one's fastest run")
    parser.add_argument("--out", default=None, help="append every run's JSON line to this file")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(one_run(json.loads(args.job))))
        return
    for model in args.models:
        suffix = "nmnist" if args.dataset == "nmnist" else model
        jobs = [dict(dataset=args.dataset, data_dir=args.data_dir, model=model, seed=seed, pruner=pruner,
                     compact=compact, epochs=args.epochs,
                     portable_kernels=args.portable_kernels)
                for seed in args.seeds for pruner, compact in
                [("none", True), *((p, True) for p in args.pruners),
                 *([] if args.no_masked or "dpap" not in args.pruners else [("dpap", False)])]]
        fastest = {}  # per configuration: its fastest run (a busy machine only ever slows a run down)
        for repeat in range(args.repeats):  # in turn, so that a slow spell of the machine hits every configuration
            for job in jobs:
                r = run_in_process(job)
                print(f"# {model} seed {r['seed']} {r['pruner']}{'' if r['compact'] else ' (masked)'}: "
                      f"{r['wall_time_s']:.1f} s, last epoch {r['epoch_time_s'][-1]:.2f} s, "
                      f"test accuracy {r['test_accuracy']:.4f}", flush=True)
                if args.out:
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps({**r, "repeat": repeat}) + "\n")
                key = (r["pruner"], r["compact"], r["seed"])
                if key not in fastest or r["wall_time_s"] < fastest[key]["wall_time_s"]:
                    fastest[key] = r
        for line in summary(list(fastest.values()), suffix):
            print(line, flush=True)


if __name__ == "__main__":
    main()
