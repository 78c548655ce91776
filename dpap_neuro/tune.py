"""``dpap tune``: the cheapest (or most accurate) pruned network within a budget, every choice made on validation.

Each pruner has one knob that sets how much it removes (``STRENGTHS``: DPAP's
offset ``c`` of its neuron and channel rules, the baselines' target
sparsity), a grid of values from the weakest to the strongest. Stronger
pruning costs accuracy and saves energy, so the boundary of a budget lies
somewhere on the grid and a bisection finds it: with ``--max-drop D`` the
strongest value whose mean validation accuracy (over the seeds) is within
``D`` points of the dense model's; with ``--max-energy E`` the weakest whose
Loihi energy per validation sample is at most ``E`` times the dense model's
(each seed against its own dense model). Every pruner gets the same number
of trials (``bisection_steps``: 3 on a grid of 7), at each strength one trial
per seed and candidate setting (``CANDIDATES``: two per pruner, the better on
validation is the strength's point). Among all trials the pick is the lowest-energy point that meets an
accuracy budget, or the most accurate that meets an energy budget; test
accuracy is never read here (``dpap tune`` then runs the pick through the
whole pipeline, whose report gives it).

A trial is one training run of ``dpap run``'s recipe (``experiment.fit``)
on the training split less a validation split, measured on that validation
split (accuracy, and the counts and energy of its Norse spikes through the
export). Each finished trial is written to ``OUT/trials/<key>.json`` (the
key: a hash of everything that decides the run), so an interrupted tune
starts again where it stopped; trials run in ``workers`` processes, and under
``torchrun`` each rank trains its share of every round (``run_trials``).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
from pathlib import Path
from typing import Callable, Iterable

from hw_export.errors import UserError
from hw_export.files import atomic_write_text

# Per pruner: (knob, grid from the weakest to the strongest). Seven values: three bisection steps each.
STRENGTHS: dict[str, tuple[str, tuple[float, ...]]] = {
    "dpap": ("c", (0.5, 0.65, 0.8, 1.0, 1.25, 1.5, 2.0)),
    "dpap+": ("c", (0.5, 0.65, 0.8, 1.0, 1.25, 1.5, 2.0)),
    "gmp": ("target_sparsity", (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98)),
    "magnitude": ("sparsity", (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98)),
    "random": ("sparsity", (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    "structured": ("target_sparsity", (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.85)),
}
# Per pruner: its settings besides the strength, as many for every pruner, each trained at every strength the
# search tries; a strength's point is the candidate with the best mean validation accuracy. The first is the
# pruner's own defaults (its dataset's preset for DPAP); gmp's second is the global allocation that keeps it
# from collapsing on conv nets (docs/pruning.md "gmp on the conv nets").
CANDIDATES: dict[str, tuple[dict, ...]] = {
    "dpap": ({}, {"prune_after_fraction": 0.4}),
    "dpap+": ({}, {"prune_after_fraction": 0.4}),
    "gmp": ({}, {"allocation": "global"}),
    "magnitude": ({}, {"at_epoch": 2}),
    "random": ({}, {"at_fraction": 0.3}),
    "structured": ({}, {"start_fraction": 0.2, "end_fraction": 0.8}),
}
TUNE_FORMAT = "dpap-neuro.tune"


def knob_options(pruner: str, strength: float) -> dict:
    """The pruner options one strength sets (DPAP's ``c``: its FC-neuron and conv-channel rules alike)."""
    knob = STRENGTHS[pruner][0]
    return {"fc_neuron_c": strength, "conv_channel_c": strength} if knob == "c" else {knob: strength}


def usable_cores() -> int:
    """Cores this process may run on (``taskset``, a container's CPU set), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def bisection_steps(n_values: int) -> int:
    """Trials a bisection over ``n_values`` sorted values takes, whatever it finds: ``ceil(log2(n + 1))``."""
    return math.ceil(math.log2(n_values + 1))


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the pick must meet on validation: exactly one of the two."""

    max_drop_points: float | None = None  # validation accuracy it may lose against dense, percentage points
    max_energy_ratio: float | None = None  # energy per sample it may cost, share of the dense model's (0..1]

    def __post_init__(self) -> None:
        if (self.max_drop_points is None) == (self.max_energy_ratio is None):
            raise UserError("give one budget: --max-drop POINTS or --max-energy RATIO")
        if self.max_drop_points is not None and not 0.0 <= self.max_drop_points < 100.0:
            raise UserError(f"--max-drop is in accuracy points, 0 to 100; got {self.max_drop_points}")
        if self.max_energy_ratio is not None and not 0.0 < self.max_energy_ratio <= 1.0:
            raise UserError(f"--max-energy is a share of the dense model's energy, in (0, 1]; "
                            f"got {self.max_energy_ratio}")

    def describe(self) -> str:
        return (f"--max-drop {self.max_drop_points:g}" if self.max_drop_points is not None
                else f"--max-energy {self.max_energy_ratio:g}")

    def meets(self, point: dict, dense_accuracy: float) -> bool:
        if point.get("network_cut"):  # nothing left to deploy, whatever its numbers
            return False
        if self.max_drop_points is not None:
            return 100.0 * (dense_accuracy - point["validation_accuracy"]) <= self.max_drop_points + 1e-9
        return point["energy_ratio"] <= self.max_energy_ratio + 1e-12

    def best(self, points: list[dict]) -> dict:
        """The pick among points that meet the budget: least energy (accuracy budget) or most accurate."""
        if self.max_drop_points is not None:
            return min(points, key=lambda p: (p["energy_ratio"], -p["validation_accuracy"]))
        return max(points, key=lambda p: (p["validation_accuracy"], -p["energy_ratio"]))

    def closest(self, points: list[dict]) -> dict:
        """The point nearest the budget when none meets it: the most accurate, or the cheapest (a network that
        pruning cut only where every point is)."""
        points = [p for p in points if not p.get("network_cut")] or points
        if self.max_drop_points is not None:  # ties: the cheaper
            return max(points, key=lambda p: (p["validation_accuracy"], -p["energy_ratio"]))
        return min(points, key=lambda p: (p["energy_ratio"], -p["validation_accuracy"]))


def trial_key(spec: dict) -> str:
    """A trial's cache key: a hash of everything that decides its run (config, pruner, options, seed)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def run_trial(spec: dict) -> dict:
    """One trial (in a worker process or here): train, then measure on the validation split, and on the test
    split too where ``spec["test"]`` (the benchmarks; ``dpap tune`` never reads test accuracy)."""
    import warnings

    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)  # norse's
    import torch

    from dpap_neuro.config import RunConfig
    from dpap_neuro.distributed import resolve_device
    from dpap_neuro.experiment import fit, load_splits

    config = RunConfig.from_dict(spec["config"])
    if config.portable_kernels:  # as `dpap run --portable-kernels` (the environment pins came with the process)
        from dpap_neuro import kernels

        kernels.pin_torch()
    else:
        torch.set_num_threads(spec["threads"])
    options = {} if spec["pruner"] == "none" else config.resolved_pruner_options()  # the dataset's preset, the knob
    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is None:  # under torchrun: this rank's GPU
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    splits = load_splits(config)
    model, history, pruner = fit(config, spec["pruner"], options, splits.train, device=device, warn=False)
    # ATen's kernels (DEFAULT where pinned): the same trial on another CPU gives other numbers unless pinned
    return {**measured_trial(spec, model, pruner, splits), "training_time_s": history.wall_time_s,
            "device": str(device), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def measured_trial(spec: dict, model, pruner, splits) -> dict:
    """A trained trial's record: its masks' shares, and per split (validation; test where ``spec["test"]``)
    accuracy, energy and spikes through the export. An ANN twin (nothing spikes: no export) gets accuracies
    and the masks' shares, no energy."""
    from dpap_neuro.experiment import hidden_kept
    from dpap_neuro.models import is_spiking
    from hw_export.energy import resolve_profiles
    from hw_export.norse import export_model
    from hw_export.sparsenet import NetworkCutError

    result = {"pruner": spec["pruner"], "strength": spec["strength"], "seed": spec["config"]["seed"],
              "options": spec["options"], "mask_sparsity": pruner.sparsity()}
    if spec["config"]["model"] == "conv":
        result["channels_kept"] = 1.0 - pruner.neuron_sparsity(conv_only=True)
    measured = {"validation": splits.validation, **({"test": splits.test} if spec.get("test") else {})}
    if not is_spiking(model):
        from dpap_neuro.train import evaluate

        return {**result, "synapses_kept": 1.0 - pruner.sparsity(), "neurons_kept": 1.0 - pruner.neuron_sparsity(),
                **{f"{split}_accuracy": evaluate(model, data, keep_spikes=False).accuracy
                   for split, data in measured.items()}}
    try:
        net = export_model(model, splits.train.input_shape)
    except NetworkCutError:  # pruned past every path: a trial that meets no budget, not the end of the tune
        return {**result, **cut_trial(model, measured, resolve_profiles(spec["config"]["energy_profile"]))}
    synapses_kept, neurons_kept = hidden_kept(net)
    result.update(synapses=net.n_synapses, neurons=net.n_neurons, synapses_kept=synapses_kept,
                  neurons_kept=neurons_kept)
    if net.is_recurrent:
        from hw_export.metrics import recurrent_synapses_kept

        result["recurrent_synapses_kept"] = recurrent_synapses_kept(net)
    for split, data in measured.items():  # validation: "energy_j", "spikes_per_sample"; test: "test_..."
        accuracy, metrics = measured_on(model, net, data, resolve_profiles(spec["config"]["energy_profile"]))
        prefix = "" if split == "validation" else "test_"
        result.update({f"{split}_accuracy": accuracy, f"{prefix}energy_j": metrics["per_sample"]["energy_j"],
                       f"{prefix}spikes_per_sample": metrics["per_sample"]["spikes"]})
    return result


def cut_trial(model, measured: dict, profiles: dict) -> dict:
    """The record of a trial whose pruning cut every path from the input to the readout: nothing to put on a
    chip (no synapse, no neuron, no energy), the accuracy its PyTorch model still scores (from the readout's
    biases alone), and ``network_cut`` so that no budget takes it."""
    result = {"network_cut": True, "synapses": 0, "neurons": 0, "synapses_kept": 0.0, "neurons_kept": 0.0}
    for split, data in measured.items():
        prefix = "" if split == "validation" else "test_"
        result.update({f"{split}_accuracy": measured_on(model, None, data, profiles)[0],
                       f"{prefix}energy_j": {name: 0.0 for name in profiles}, f"{prefix}spikes_per_sample": 0.0})
    return result


# RunConfig fields that decide neither a dense model's training nor its measurement on the validation split
# (energy is measured again with the tune's profile): a `dpap run` that differs only in these can lend its dense
# model to a tune.
NOT_DECIDING = ("seed", "pruner", "pruner_preset", "pruner_options", "compact", "workers", "device", "data_dir",
                "cache", "cache_dir", "energy_profile", "lava_engine", "lava_batch_size", "lava_timeout_s",
                "lava_samples", "lava_chunk_size", "lava_workers", "lava_check_samples")


def reuse_dense(path: Path, base_config: dict, seeds: list[int], threads: int, cache: TrialCache) -> int:
    """Measure the dense model of a `dpap run` (its folder, or its ``dense.pt``) on this tune's validation split
    and keep it as the dense trial of its seed, so that the tune does not train it again; returns the seed.
    Refused in one line where the run trained differently (any field outside ``NOT_DECIDING``: its dense model
    would not be the tune's) or its seed is not one of ``seeds``."""
    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import load_splits
    from dpap_neuro.pruning import Pruner

    checkpoint = Path(path) / "dense.pt" if Path(path).is_dir() else Path(path)
    model, meta = load_checkpoint(checkpoint)
    if meta["pruner"] != "none":
        raise UserError(f"{checkpoint}: a {meta['pruner']} model, not a dense one")
    run_config = meta["config"]
    differ = [k for k in base_config if k not in NOT_DECIDING
              and json.dumps(run_config.get(k)) != json.dumps(base_config[k])]
    if differ:
        raise UserError(f"{checkpoint}: its dense model is not this tune's: "
                        + ", ".join(f"{k} {run_config.get(k)!r} (tune: {base_config[k]!r})" for k in differ))
    if run_config["seed"] not in seeds:
        raise UserError(f"{checkpoint}: seed {run_config['seed']}, not one of this tune's seeds "
                        f"{', '.join(map(str, seeds))}")
    spec = trial_spec(base_config, threads, "none", "-", run_config["seed"])
    if cache.get(trial_key(spec)) is None:
        splits = load_splits(RunConfig.from_dict(spec["config"]))
        result = {**measured_trial(spec, model, Pruner(), splits),
                  "training_time_s": meta["history"].get("wall_time_s"), "reused_from": str(checkpoint)}
        from dpap_neuro.provenance import source_commit

        cache.put(trial_key(spec), {**result, "commit": source_commit()})
    return run_config["seed"]


def trial_threads(workers: int) -> int:
    """Threads of one trial: this machine's cores shared by torchrun's local ranks and each rank's workers."""
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, usable_cores() // (local_ranks * max(1, workers)))


def measured_on(model, net, data, profiles: dict, chunk_size: int = 256) -> tuple[float, dict | None]:
    """Accuracy of ``model`` on ``data`` (in memory or streamed) and the counts and energy of its Norse spikes
    through the export ``net`` (``hw_export.metrics``; ``net`` None: accuracy only, metrics None), a chunk of
    samples at a time."""
    import numpy as np
    import torch

    from dpap_neuro.data.batches import batches, sequential_batches
    from dpap_neuro.data.digits import SpikeDataset
    from dpap_neuro.train import evaluate
    from hw_export.counting import concatenate_counts, count_operations
    from hw_export.metrics import measure_counts

    correct, counts, input_spikes = 0, [], []
    for spikes, labels in batches(data, sequential_batches(len(data), chunk_size)):
        evaluation = evaluate(model, SpikeDataset(spikes, labels))
        correct += int((evaluation.predictions == labels).sum())
        if net is None:
            continue
        flat = spikes.flatten(2).numpy()  # [T, n, inputs]
        kept = [s.flatten(2)[:, :, torch.from_numpy(layer.kept)].numpy()
                for s, layer in zip(evaluation.layer_spikes, net.layers)]
        counts.append(count_operations(net, flat, kept))
        input_spikes.append(flat.sum(axis=(0, 2)))
    if net is None:
        return correct / len(data), None
    return correct / len(data), measure_counts(net, concatenate_counts(counts), np.concatenate(input_spikes), profiles)


class TrialCache:
    """Finished trials, one JSON file each under ``folder`` (written atomically: a trial is there or not)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str) -> dict | None:
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:  # not ours (ours are written whole): run it again
            return None

    def put(self, key: str, result: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / f"{key}.json", json.dumps(result, indent=1) + "\n")


def run_trials(specs: list[dict], cache: TrialCache | None, workers: int, on_done: Callable[[dict], None],
               trial: Callable[[dict], dict] | None = None) -> list[dict]:
    """Every spec's result, in order: from ``cache`` (None: none), or ``trial(spec)`` (default ``run_trial``) in
    ``workers`` processes (0: in this process), each written to the cache as it finishes. Under ``torchrun``
    rank ``r`` of ``W`` trains the trials ``r, r + W, ...`` of those missing on any rank (``shared_missing``)
    and every rank then holds them all (each rank writes the cache too: a shared folder or not, it ends
    complete). ``on_done`` sees every result, cached ones included. The benchmarks (``benchmarks/pareto.py``) run their trials here too."""
    from dpap_neuro import distributed
    from dpap_neuro.provenance import source_commit

    trial = run_trial if trial is None else trial
    results: dict[str, dict] = {}
    missing: dict[str, dict] = {}
    for spec in specs:
        key = trial_key(spec)
        cached = None if cache is None or key in results else cache.get(key)
        if cached is not None:
            on_done(cached)
            results[key] = cached
        elif key not in results:
            missing[key] = spec
    commit = source_commit()

    def finish(key: str, result: dict) -> None:
        if cache is not None and cache.get(key) is None:
            cache.put(key, result)
        results[key] = result
        on_done(result)

    share = list(shared_missing(specs, missing).items())[distributed.rank()::distributed.world_size()]
    mine = {key: spec for key, spec in share if key not in results}  # not the ones this rank's cache holds
    if workers <= 0:
        for key, spec in mine.items():
            finish(key, {**trial(spec), "commit": commit})
    elif mine:
        # Not a `with` block: leaving one on an exception waits for the running trials (minutes).
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
        try:
            futures = {pool.submit(trial, spec): key for key, spec in mine.items()}
            for future in cf.as_completed(futures):
                finish(futures[future], {**future.result(), "commit": commit})
        except BaseException:  # Ctrl-C, SIGTERM, a failed trial, also while the workers start
            stop_workers(pool)
            raise
        pool.shutdown()
    if distributed.is_distributed():  # the other ranks' trials, the same shares on every rank
        for theirs in distributed.all_gather({key: results[key] for key, _ in share}):
            for key, result in theirs.items():
                if key not in results:
                    finish(key, result)
    return [results[trial_key(spec)] for spec in specs]


def shared_missing(specs: list[dict], missing: dict[str, dict]) -> dict[str, dict]:
    """The trials missing on any rank, in the order of ``specs``: the list every rank splits the same way.
    Each rank reads the cache at its own moment (another rank may just have written a trial), so splitting
    each rank's own ``missing`` could leave a trial to no rank."""
    from dpap_neuro import distributed

    if not distributed.is_distributed():
        return missing
    anywhere = set().union(*distributed.all_gather(set(missing)))
    return {trial_key(spec): spec for spec in specs if trial_key(spec) in anywhere}


def stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """End a pool's running trials now, not only its queued ones. Python 3.14's
    ``ProcessPoolExecutor.terminate_workers`` does this; before it, only the private process table can."""
    processes = set((getattr(pool, "_processes", None) or {}).values())  # pid -> Process; None once shut down
    processes |= set(mp.active_children())  # also one being started, not yet in the pool's table
    for process in processes:
        process.terminate()
    for process in processes:  # gone before dpap is: nothing outlives the command
        process.join(timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)


def points(trials: Iterable[dict], dense: dict[int, dict], profile: str) -> list[dict]:
    """Per pruner, strength and candidate settings: means over its seeds of validation accuracy and energy /
    dense (same seed)."""
    grouped: dict[tuple, list[dict]] = {}
    for trial in trials:
        grouped.setdefault((trial["pruner"], str(trial["strength"]), json.dumps(trial["options"], sort_keys=True)),
                           []).append(trial)
    summary = []
    for runs in grouped.values():
        ratios = [r["energy_j"][profile] / dense[r["seed"]]["energy_j"][profile] for r in runs]
        summary.append({"pruner": runs[0]["pruner"], "strength": runs[0]["strength"], "options": runs[0]["options"],
                        "seeds": len(runs),
                        "validation_accuracy": sum(r["validation_accuracy"] for r in runs) / len(runs),
                        "energy_ratio": sum(ratios) / len(ratios),
                        "synapses_kept": sum(r["synapses_kept"] for r in runs) / len(runs),
                        "neurons_kept": sum(r["neurons_kept"] for r in runs) / len(runs),
                        "training_time_s": sum(r["training_time_s"] for r in runs) / len(runs),
                        "network_cut": any(r.get("network_cut", False) for r in runs),  # on any seed: no pick
                        **({"recurrent_synapses_kept":
                            sum(r.get("recurrent_synapses_kept", 0.0) for r in runs) / len(runs)}
                           if any("recurrent_synapses_kept" in r for r in runs) else {})})
    return summary


def chosen(candidates: Iterable[dict], key: Callable[[dict], tuple] = lambda p: (p["pruner"], p["strength"])
           ) -> dict[tuple, dict]:
    """(pruner, strength) -> its candidate settings with the best mean validation accuracy (the first on a tie:
    the pruner's defaults). ``key``: what one point is (the benchmarks add dataset and model)."""
    best: dict[tuple, dict] = {}
    for point in candidates:
        at = key(point)
        if at not in best or point["validation_accuracy"] > best[at]["validation_accuracy"]:
            best[at] = point
    return best


@dataclasses.dataclass
class Search:
    """A bisection per pruner over its strengths (indices ``lo..hi`` still open), driven round by round."""

    pruner: str
    lo: int = 0
    hi: int = -1  # set from the grid in __post_init__
    tried: list[int] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.hi < 0:
            self.hi = len(STRENGTHS[self.pruner][1]) - 1

    def next_index(self) -> int | None:
        return (self.lo + self.hi) // 2 if self.lo <= self.hi else None

    def record(self, index: int, meets: bool, accuracy_budget: bool) -> None:
        """Stronger pruning: less accurate and cheaper. An accuracy budget looks for the strongest value that
        meets it (search above a pass), an energy budget for the weakest (search below a pass)."""
        self.tried.append(index)
        if meets == accuracy_budget:
            self.lo = index + 1
        else:
            self.hi = index - 1


def trial_spec(base_config: dict, threads: int, pruner: str, strength, seed: int, candidate: dict | None = None,
               test: bool = False, options: dict | None = None) -> dict:
    """What one trial trains (``run_trial``'s input and, hashed, its cache key); ``pruner`` "none": dense.
    ``candidate``: settings besides the strength (``CANDIDATES``); ``test``: measure the test split too;
    ``options``: every pruner option, given whole (the benchmarks' grids; ``strength`` is then a label)."""
    if options is None:
        options = {} if pruner == "none" else {**knob_options(pruner, strength), **(candidate or {})}
    trained = {**options, "seed": seed} if pruner == "random" else options  # each seed its own random masks
    config = {**base_config, "seed": seed, "pruner": "dpap" if pruner == "none" else pruner,
              "pruner_options": trained or None}
    return {"config": config, "pruner": pruner, "strength": strength, "options": options, "threads": threads,
            **({"test": True} if test else {})}


def bisect(pruners: list[str], seeds: list[int], budget: Budget, dense: dict[int, dict], profile: str,
           run: Callable[[list[dict]], list[dict]], spec: Callable, on_best: Callable[[dict], None]) -> list[dict]:
    """Every pruner's bisection, a round at a time (each round's trials, all pruners, candidates and seeds, at
    once); returns the trials. ``dense``: seed -> its dense trial; ``run`` trains a list of specs."""
    dense_accuracy = sum(r["validation_accuracy"] for r in dense.values()) / len(dense)
    searches, trials = [Search(p) for p in pruners], []
    while due := [(s, s.next_index()) for s in searches if s.next_index() is not None]:
        results = run([spec(s.pruner, STRENGTHS[s.pruner][1][i], seed, candidate)
                       for s, i in due for candidate in CANDIDATES[s.pruner] for seed in seeds])
        trials += results
        summary = chosen(points(results, dense, profile))
        for search, index in due:
            point = summary[(search.pruner, STRENGTHS[search.pruner][1][index])]
            search.record(index, budget.meets(point, dense_accuracy), budget.max_drop_points is not None)
        meeting = [p for p in chosen(points(trials, dense, profile)).values() if budget.meets(p, dense_accuracy)]
        if meeting:
            on_best(budget.best(meeting))
    return trials


def check_pruners(pruners: list[str]) -> None:
    """One line for a list naming no pruner, or one tune cannot search."""
    unknown = [p for p in pruners if p not in STRENGTHS]
    if unknown or not pruners:
        raise UserError(f"unknown pruner {', '.join(unknown) or '(none given)'} for tune; choose from "
                        f"{', '.join(STRENGTHS)}")


def per_pruner(summary: list[dict], budget: Budget, dense_accuracy: float) -> dict[str, dict]:
    """Each pruner's own answer: its pick within the budget (``meets`` True), or its point closest to it."""
    answers = {}
    for pruner in dict.fromkeys(p["pruner"] for p in summary):
        mine = [p for p in summary if p["pruner"] == pruner]
        meeting = [p for p in mine if budget.meets(p, dense_accuracy)]
        answers[pruner] = {**(budget.best(meeting) if meeting else budget.closest(mine)), "meets": bool(meeting)}
    return answers


def tune(base_config: dict, pruners: list[str], budget: Budget, seeds: list[int], out_dir: Path, workers: int,
         progress: bool = True) -> dict:
    """The dense models, then ``bisect``; returns and writes ``OUT/tune.json`` (every trial, each point, the
    pick or the closest point). Nothing but the trial cache is written before the search ends."""
    from tqdm import tqdm

    from hw_export.energy import chosen_profile, resolve_profiles

    check_pruners(pruners)
    named = base_config.get("energy_profile", "loihi")
    profile = chosen_profile(named, resolve_profiles(named))
    from dpap_neuro.distributed import rank

    spec = functools.partial(trial_spec, base_config, trial_threads(workers))
    cache = TrialCache(out_dir / "trials")
    steps = bisection_steps(len(next(iter(STRENGTHS.values()))[1]))
    trials_per_seed = 1 + steps * sum(len(CANDIDATES[p]) for p in pruners)
    bar = tqdm(total=len(seeds) * trials_per_seed, desc="tune", unit="trial",
               disable=not progress or rank() != 0)
    best = {"text": "-"}

    def done(result: dict) -> None:
        bar.update(1)
        bar.set_postfix_str(f"last {result['pruner']} {result['strength']}: val {result['validation_accuracy']:.4f}; "
                            f"best {best['text']}")

    def on_best(pick: dict) -> None:
        best["text"] = f"{pick['pruner']} {pick['strength']} ({pick['energy_ratio']:.3f}x energy)"

    try:
        dense_runs = run_trials([spec("none", "-", seed) for seed in seeds], cache, workers, done)
        dense = {r["seed"]: r for r in dense_runs}
        trials = bisect(pruners, seeds, budget, dense, profile, lambda specs: run_trials(specs, cache, workers, done),
                        spec, on_best)
    finally:
        bar.close()
    dense_accuracy = sum(r["validation_accuracy"] for r in dense_runs) / len(dense_runs)
    candidates = points(trials, dense, profile)
    summary = list(chosen(candidates).values())  # a point per pruner and strength: its best candidate
    meeting = [p for p in summary if budget.meets(p, dense_accuracy)]
    result = {"format": TUNE_FORMAT, "budget": dataclasses.asdict(budget), "energy_profile": profile,
              "seeds": seeds, "pruners": pruners, "config": base_config,
              "dense": {"validation_accuracy": dense_accuracy, "runs": dense_runs},
              "trials": trials, "candidates": candidates, "points": summary,
              "pick": budget.best(meeting) if meeting else None,
              "closest": None if meeting else budget.closest(summary),
              "per_pruner": per_pruner(summary, budget, dense_accuracy)}
    if rank() == 0:
        atomic_write_text(out_dir / "tune.json", json.dumps(result, indent=1) + "\n")
    return result


def frontier_points(result: dict) -> dict[str, list[dict]]:
    """Per pruner, its points in order of energy, as the figure draws them: without the points pruned past every
    path (``network_cut``: nothing to deploy, so no energy to place them at)."""
    return {pruner: sorted((p for p in result["points"] if p["pruner"] == pruner and not p.get("network_cut")),
                           key=lambda p: p["energy_ratio"]) for pruner in result["pruners"]}


def plot_frontier(result: dict, path: Path) -> None:
    """Validation accuracy against energy / dense, one colour per pruner, the budget line and the pick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hw_export.files import atomic_write

    budget, dense = result["budget"], result["dense"]["validation_accuracy"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for pruner, mine in frontier_points(result).items():
        ax.plot([p["energy_ratio"] for p in mine], [100 * p["validation_accuracy"] for p in mine], "o-", label=pruner)
    cut = sum(bool(p.get("network_cut")) for p in result["points"])
    if cut:
        ax.text(0.01, 0.01, f"not drawn: {cut} point(s) pruned past every path (network_cut in tune.json)",
                transform=ax.transAxes, fontsize=7, va="bottom")
    ax.axhline(100 * dense, color="grey", lw=0.8, label="dense")
    if budget["max_drop_points"] is not None:
        ax.axhline(100 * dense - budget["max_drop_points"], color="red", ls="--", lw=1, label="budget")
    else:
        ax.axvline(budget["max_energy_ratio"], color="red", ls="--", lw=1, label="budget")
    if result["pick"] is not None:
        pick = result["pick"]
        ax.plot(pick["energy_ratio"], 100 * pick["validation_accuracy"], "o", ms=14, mfc="none", mec="black",
                label=f"pick: {pick['pruner']} {pick['strength']:g}")
    ax.set_xlabel(f"energy per sample / dense ({result['energy_profile']})")
    ax.set_ylabel("validation accuracy %")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")
    plt.close(fig)


def no_pick_message(result: dict, budget: Budget) -> str:
    """One line for a budget that no point meets, naming the closest."""
    closest, dense = result["closest"], result["dense"]["validation_accuracy"]
    lost = 100.0 * (dense - closest["validation_accuracy"])
    return (f"no trial meets {budget.describe()} on validation; the closest is {closest['pruner']} at "
            f"{STRENGTHS[closest['pruner']][0]} = {closest['strength']:g} ({lost:.2f} points below dense, "
            f"{closest['energy_ratio']:.3f}x its energy); every trial is in tune.json")
