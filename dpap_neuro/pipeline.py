"""``dpap run``: train dense and pruned models, export, simulate in Lava, compare.

The run directory holds ``config.json``, ``<model>.pt`` (checkpoint),
``<model>.h5`` (SparseNet), ``report.json`` and ``report.md``; model names are
the keys of ``report.json``'s ``models``. Every file is written atomically.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from dpap_neuro.checkpoint import save_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.data import SpikeDataset
from dpap_neuro.data import (NEUROMORPHIC, FrameSettings, batches, load_dataset, n_classes, sequential_batches,
                             split_validation, subset)
from dpap_neuro.models import build_model, predict
from dpap_neuro.pruning import make_pruner
from dpap_neuro.reporting import write_reports
from dpap_neuro.train import Evaluation, evaluate, train
from hw_export.energy import PROFILES, load_profile
from hw_export.counting import concatenate_counts, count_operations
from hw_export.fidelity import count_agreement
from hw_export.files import atomic_write_text
from hw_export.h5io import write_sparsenet
from hw_export.lava_subprocess import simulate_in_subprocess
from hw_export.metrics import measure_counts
from hw_export.norse_reader import from_norse
from hw_export.sparsenet import SparseNet, SparseNetError

SCHEMA_VERSION = 1
DENSE = "dense"


def run(config: RunConfig, out_dir: str | Path, progress: bool = True, resume: bool = False) -> dict | None:
    """Run the whole pipeline; returns the report that is also written to ``out_dir``.

    Training runs on ``config.device`` (data parallel under ``torchrun``: every
    rank trains, only rank 0 writes files, assesses in Lava and returns the
    report; the other ranks return None). Each model's training state is saved
    after every epoch (``<model>.train.pt``); ``resume`` continues the run in
    ``out_dir`` from there, and reuses models whose training had finished.
    """
    from dpap_neuro.distributed import init_from_env, rank, resolve_device

    if config.pruner == "none":
        raise ValueError("the dense model is always trained; choose a pruner other than 'none'")
    if config.model.startswith("ann-"):
        raise ValueError(f"model {config.model} is an ANN (ReLU): the pruners train it, but it has no spiking "
                         "export to simulate in Lava; compare it with `python benchmarks/ann_dpap.py`")
    profiles = resolve_profiles(config.energy_profile)
    default_profile = config.energy_profile if config.energy_profile in PROFILES else list(profiles)[-1]
    make_pruner(config.pruner, **config.resolved_pruner_options())  # fail on bad options before any training
    train_data, test_data = load_splits(config)  # missing files: one line, before anything is written
    device = init_from_env(resolve_device(config.device))
    main = rank() == 0
    out_dir = Path(out_dir)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        # report.json only ever describes a finished run: one left by an earlier run in this folder goes first.
        for stale in REPORT_FILES:
            (out_dir / stale).unlink(missing_ok=True)
        atomic_write_text(out_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")

    train_data, val_data = split_validation(train_data, config.val_fraction, config.seed)
    trained = {}
    for model_name, pruner_name in ((DENSE, "none"), (config.pruner, config.pruner)):
        options = config.resolved_pruner_options() if pruner_name == config.pruner else {}
        trained[model_name] = (pruner_name, options,
                               train_model(config, model_name, pruner_name, options, train_data, out_dir,
                                           progress, device, resume))
    if not main:
        return None
    models = {name: assess_model(config, name, pruner_name, options, model, history, train_data, test_data,
                                 out_dir, progress, profiles, val_data)
              for name, (pruner_name, options, (model, history)) in trained.items()}
    report = {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": config.dataset, "n_train": len(train_data),
                    "n_validation": len(val_data) if val_data is not None else 0, "n_test": len(test_data),
                    "n_lava": len(lava_indices(len(test_data), config.lava_samples, config.seed)),
                    "timesteps": config.timesteps, "input_shape": list(train_data.input_shape)},
        "models": models,
        "comparison": compare(models, DENSE, config.pruner, default_profile),
        "energy_profile": default_profile,
        "energy_profiles": {name: profile.to_dict() for name, profile in profiles.items()},
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "commit": source_commit(), "command": " ".join(["dpap", *sys.argv[1:]])},
    }
    write_reports(report, out_dir, progress)
    write_report_json(out_dir, report)
    return report


REPORT_FILES = ("report.json", "report.md", "report.html")


def frame_settings(config: RunConfig) -> FrameSettings:
    return FrameSettings(config.timesteps, config.downsample, config.denoise_us)


def load_splits(config: RunConfig):
    """``(train, test)``: built-in data in memory, or a tonic dataset's official splits, streamed."""
    if config.dataset in NEUROMORPHIC:
        from dpap_neuro.data.neuromorphic import default_cache_dir, load_neuromorphic

        cache = (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.cache else None
        return load_neuromorphic(config.dataset, config.data_dir, frame_settings(config), cache)
    return load_dataset(config.dataset, config.timesteps, config.seed, config.test_fraction)


def lava_indices(n_test: int, lava_samples: int | None, seed: int) -> np.ndarray:
    """The test samples simulated in Lava: all, or a seeded subset of ``lava_samples``, in ascending order."""
    if lava_samples is None or lava_samples >= n_test:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=lava_samples, replace=False))


def source_commit() -> str:
    """The git commit of this source tree (``+uncommitted`` when tracked files differ), or ``unknown``."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=root, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=root, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def write_report_json(out_dir: Path, report: dict) -> None:
    """report.json, written last: its presence means the run finished."""
    atomic_write_text(out_dir / "report.json", strict_json(report))


def strict_json(value) -> str:
    """JSON that every parser reads: a NaN or infinite number (a diverged loss, say) becomes null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False) + "\n"


def resolve_profiles(name_or_file: str) -> dict:
    """The built-in energy profiles, plus one from a JSON/TOML file if one is named."""
    profiles = dict(PROFILES)
    if name_or_file not in PROFILES:
        if not Path(name_or_file).suffix:
            raise ValueError(f"unknown energy profile {name_or_file!r}; choose one of {', '.join(PROFILES)} "
                             "or give a .json/.toml file")
        custom = load_profile(name_or_file)
        if custom.name in PROFILES:
            raise ValueError(f"{name_or_file}: profile name {custom.name!r} is a built-in profile's; "
                             "give yours another name")
        profiles[custom.name] = custom
    return profiles


def train_model(config: RunConfig, model_name: str, pruner_name: str, pruner_options: dict,
                train_data: SpikeDataset, out_dir: Path, progress: bool, device, resume: bool):
    """Train one model (or, resuming, continue or reuse it); returns ``(model on the CPU, history dict)``."""
    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.distributed import rank
    from dpap_neuro.train import load_training_state

    final, state_path = out_dir / f"{model_name}.pt", out_dir / f"{model_name}.train.pt"
    if resume and final.is_file():
        model, meta = load_checkpoint(final)  # its training had finished
        return model, meta["history"]
    torch.manual_seed(config.seed)  # same initial weights for every model of the run
    model = build_model(train_data.input_shape, config.hidden_sizes, n_classes(config.dataset), **config.model_kwargs())
    pruner = make_pruner(pruner_name, **pruner_options)
    state = load_training_state(state_path) if resume and state_path.is_file() else None
    history = train(model, train_data, pruner, config.epochs, config.batch_size, config.learning_rate,
                    config.seed, progress=progress, description=f"train {model_name}", device=device,
                    state_path=state_path, resume_from=state, workers=config.workers)
    model.cpu()  # export, Lava and the Norse reference run on the CPU
    history_dict = {"loss": history.loss, "train_accuracy": history.train_accuracy,
                    "sparsity": history.sparsity, "neuron_sparsity": history.neuron_sparsity,
                    "layer_sparsity": history.layer_sparsity,
                    "wall_time_s": history.wall_time_s}
    if rank() == 0:
        save_checkpoint(final, model, config, model_name, pruner_name, train_data.input_shape, n_classes(config.dataset),
                        history_dict)
        state_path.unlink(missing_ok=True)  # the checkpoint now holds the finished model
    return model, history_dict


def assess_model(config: RunConfig, model_name: str, pruner_name: str, pruner_options: dict, model,
                 history_dict: dict, train_data, test_data, out_dir: Path, progress: bool,
                 profiles: dict | None = None, val_data=None) -> dict:
    """Export a trained model, simulate it in Lava and measure it: one ``models`` entry.

    Norse accuracy covers the whole test split; the Lava figures (accuracy,
    agreement, spikes, energy) cover ``config.lava_samples`` of it (all by
    default), streamed through Lava in chunks; ``samples`` says how many.
    With ``val_data``, ``accuracy.validation`` is the Norse model's accuracy on it.
    """
    norse_accuracy = evaluate(model, test_data, keep_spikes=False, workers=config.workers).accuracy
    lava_data = subset_for_lava(test_data, config.lava_samples, config.seed)
    try:
        net = from_norse(list(model), train_data.input_shape,
                         metadata=artifact_metadata(config, model_name, pruner_name))
    except SparseNetError as exc:
        raise SparseNetError(f"{model_name}: the trained network cannot be exported ({exc}): pruning cut every "
                             f"path from the input to the readout; prune less (--pruner-option) or train on more "
                             f"data (its checkpoint is {out_dir / (model_name + '.pt')})") from None
    net_path = out_dir / f"{model_name}.h5"
    write_sparsenet(net, net_path)
    entry = {"pruner": pruner_name, "pruner_options": pruner_options}
    common = dict(batch_size=config.lava_batch_size, chunk_size=config.lava_chunk_size, progress=progress,
                  profiles=profiles, timeout_s=config.lava_timeout_s, workers=config.workers)
    entry.update(assess_in_lava(net, net_path, lava_data, model, "float",
                                raster_path=out_dir / f"{model_name}-raster.npz", **common))
    fixed = assess_in_lava(net, net_path, lava_data, model, "fixed", **common)
    if len(lava_data) != len(test_data):
        entry["accuracy"]["norse_lava_samples"] = entry["accuracy"]["norse"]
    entry["accuracy"]["norse"] = norse_accuracy  # the whole test split, as `samples` says
    entry["samples"] = {"norse_test": len(test_data), "lava": len(lava_data)}
    if val_data is not None:
        entry["accuracy"]["validation"] = evaluate(model, val_data, keep_spikes=False, workers=config.workers).accuracy
    entry["fixed"] = {key: fixed[key] for key in ("accuracy", "agreement", "per_sample", "neurobench")}
    entry["fixed"]["accuracy"] = fixed["accuracy"]["lava"]
    entry["training"] = history_dict
    entry["files"] = {"checkpoint": f"{model_name}.pt", "network": f"{model_name}.h5"}
    return entry


def subset_for_lava(test_data, lava_samples: int | None, seed: int):
    """The test samples Lava simulates (``lava_indices``)."""
    indices = lava_indices(len(test_data), lava_samples, seed)
    return test_data if len(indices) == len(test_data) else subset(test_data, torch.from_numpy(indices))


def assess_in_lava(net: SparseNet, net_path: Path, data, model=None, precision: str = "float",
                   batch_size: int = 128, chunk_size: int = 512, progress: bool = True, profiles: dict | None = None,
                   raster_path: Path | None = None, timeout_s: float | None = None, workers: int = 0) -> dict:
    """Simulate ``net`` in Lava on ``data``, streamed in chunks; accuracy, agreement with Norse, counts.

    Each chunk of ``chunk_size`` samples is read, simulated in its own Lava
    subprocess (``timeout_s`` each), compared with the Norse ``model`` (if
    given) on the same samples, and counted; only per-sample counts are
    kept, so memory does not grow with the test set.
    """
    from tqdm.auto import tqdm

    chunks = sequential_batches(len(data), chunk_size)
    labels, lava_predictions, norse_predictions, counts, input_spikes = [], [], [], [], []
    agreement = None
    bar = tqdm(total=len(data), desc=f"lava {precision} {net.metadata.get('model', '')}".strip(),
               disable=not progress or len(chunks) < 2, unit="sample", leave=False)
    for index, (spikes, chunk_labels) in enumerate(batches(data, chunks, workers)):
        inputs = spikes.flatten(2).numpy().astype(np.uint8)  # [T, n, n_inputs]
        lava = simulate_in_subprocess(net_path, inputs, batch_size=batch_size, progress=progress and len(chunks) < 2,
                                      precision=precision, timeout_s=timeout_s)
        labels.append(chunk_labels.numpy())
        lava_predictions.append(predict(torch.from_numpy(lava.readout_v)).numpy())
        counts.append(count_operations(net, inputs, lava.layer_spikes))
        input_spikes.append(inputs.sum(axis=(0, 2), dtype=np.int64))
        if index == 0 and raster_path is not None:
            save_raster(raster_path, inputs, lava, net)
        if model is not None:
            norse = evaluate(model, SpikeDataset(spikes, chunk_labels))
            norse_predictions.append(norse.predictions.numpy())
            tally = count_agreement(net, [s.flatten(2).numpy() for s in norse.layer_spikes], lava.layer_spikes)
            agreement = tally if agreement is None else agreement + tally
        bar.update(len(chunk_labels))
    bar.close()
    labels, lava_predictions = np.concatenate(labels), np.concatenate(lava_predictions)
    report = {"precision": precision, "accuracy": {"lava": float((lava_predictions == labels).mean())}}
    report.update(measure_counts(net, concatenate_counts(counts), np.concatenate(input_spikes), profiles or PROFILES))
    if agreement is not None:
        norse_predictions = np.concatenate(norse_predictions)
        spikes_agree = agreement.result()
        report["accuracy"] = {"norse": float((norse_predictions == labels).mean()), "lava": report["accuracy"]["lava"]}
        report["agreement"] = {"spikes": spikes_agree.elementwise,
                               "predictions": float((lava_predictions == norse_predictions).mean()),
                               "samples_identical": spikes_agree.samples_identical}
    return report


RASTER_SAMPLE = 0  # the test sample whose spikes the report draws


def save_raster(path: Path, inputs: np.ndarray, lava, net: SparseNet) -> None:
    """Spikes of one test sample (input and every LIF layer, delay removed) for the report's rasters."""
    from hw_export.files import atomic_write

    arrays = {"input": inputs[:, RASTER_SAMPLE].astype(bool),
              "readout_v": lava.readout_v[:, RASTER_SAMPLE]}
    for layer, spikes in zip(net.layers, lava.layer_spikes):
        arrays[f"layer_{layer.name}"] = spikes[:, RASTER_SAMPLE]

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    atomic_write(path, write, suffix=".npz")


def artifact_metadata(config: RunConfig, model_name: str, pruner_name: str) -> dict:
    """What a SparseNet file records of its run (lets `dpap simulate` rebuild the same test split)."""
    meta = {"model": model_name, "pruner": pruner_name, "dataset": config.dataset,
            "timesteps": config.timesteps, "seed": config.seed, "test_fraction": config.test_fraction}
    if config.dataset in NEUROMORPHIC:
        meta.update(downsample=config.downsample, denoise_us=config.denoise_us)
    return meta


def compare(models: dict, baseline: str, pruned: str, profile: str) -> dict:
    base, other = models[baseline], models[pruned]

    def ratio(a: float, b: float) -> float | None:
        return float(b / a) if a else None  # undefined when dense is 0 (JSON null, not NaN)

    return {
        "baseline": baseline,
        "pruned": pruned,
        "ratios": {
            "synapses": ratio(base["synapses"], other["synapses"]),
            "neurons": ratio(base["neurons"], other["neurons"]),
            "spikes": ratio(base["per_sample"]["spikes"], other["per_sample"]["spikes"]),
            "synops": ratio(base["per_sample"]["synops"], other["per_sample"]["synops"]),
            "energy": ratio(base["per_sample"]["energy_j"][profile], other["per_sample"]["energy_j"][profile]),
        },
    }


def simulate_artifact(artifact: str | Path, dataset: str, precision: str = "float", timesteps: int | None = None,
                      seed: int | None = None, checkpoint: str | Path | None = None, batch_size: int = 128,
                      progress: bool = True, raster_dir: Path | None = None, timeout_s: float | None = None,
                      data_dir: str | Path | None = None, lava_samples: int | None = None, chunk_size: int = 512,
                      workers: int = 0) -> dict:
    """``dpap simulate``: run an exported SparseNet in Lava on a dataset's test split.

    Timesteps, seed, split and binning default to those stored in the
    artifact's metadata, so the test split is the one the model was assessed
    on; a tonic dataset is read from ``data_dir``. With a Norse checkpoint
    (``checkpoint``, or ``<artifact>.pt`` beside it), the report also has
    Norse accuracy and spike / prediction agreement. ``lava_samples``: a
    seeded subset (``samples`` in the report says how many).
    """
    from dpap_neuro.checkpoint import load_checkpoint
    from hw_export.h5io import read_sparsenet

    artifact = Path(artifact)
    net = read_sparsenet(artifact)
    meta = net.metadata
    timesteps = int(timesteps if timesteps is not None else meta.get("timesteps", 30))
    seed = int(seed if seed is not None else meta.get("seed", 0))
    tonic_options = {}
    if dataset in NEUROMORPHIC:
        tonic_options = dict(data_dir=str(data_dir) if data_dir is not None else None,
                             downsample=int(meta.get("downsample", NEUROMORPHIC[dataset].default_downsample)),
                             denoise_us=meta.get("denoise_us"))
    config = RunConfig(dataset=dataset, timesteps=timesteps, seed=seed,
                       test_fraction=float(meta.get("test_fraction", 0.2)), **tonic_options)
    _, test_data = load_splits(config)
    if tuple(test_data.input_shape) != tuple(net.input_shape):
        raise ValueError(f"{artifact}: the network takes inputs of shape {net.input_shape}, "
                         f"dataset {dataset} gives {tuple(test_data.input_shape)}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ValueError(f"{checkpoint}: no such checkpoint")
    checkpoint = Path(checkpoint) if checkpoint else artifact.with_suffix(".pt")
    model = load_checkpoint(checkpoint)[0] if checkpoint.is_file() else None
    lava_data = subset_for_lava(test_data, lava_samples, seed)
    report = {"artifact": str(artifact), "checkpoint": str(checkpoint) if model is not None else None,
              "dataset": {"name": dataset, "n_test": len(test_data), "n_lava": len(lava_data),
                          "timesteps": timesteps, "seed": seed},
              "model": meta.get("model"), "pruner": meta.get("pruner"),
              "samples": {"lava": len(lava_data), "test": len(test_data)}}
    raster = Path(raster_dir) / f"{meta.get('model') or artifact.stem}-raster.npz" if raster_dir else None
    report.update(assess_in_lava(net, artifact, lava_data, model, precision, batch_size, chunk_size, progress,
                                 raster_path=raster, timeout_s=timeout_s, workers=workers))
    return report


def compare_runs(sources: list[str | Path], out_dir: str | Path, progress: bool = True) -> dict:
    """``dpap compare``: one report over run directories and/or SparseNet artifacts.

    A run directory contributes its report.json's models (named
    ``<dir>/<model>`` when several directories are given); an artifact is
    simulated in Lava (float) on its own run's test split. The first model is
    the baseline of the comparison, the last the pruned one.
    """
    import shutil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models, dataset, profile, profiles = {}, None, "loihi", {n: p.to_dict() for n, p in PROFILES.items()}
    several = len(sources) > 1

    def add(key: str, model: dict, source: Path) -> None:
        if key in models:
            raise ValueError(f"{source}: a model named {key!r} came already from an earlier source; "
                             "give the run directories (or artifacts) distinct names")
        models[key] = model

    profiles_of_sources: dict = {}

    def add_profiles(new: dict, source: Path) -> None:
        for name, values in new.items():
            if profiles_of_sources.setdefault(name, values) != values:
                raise ValueError(f"{source}: energy profile {name!r} has other constants than in an earlier source")
            profiles[name] = values

    for source in map(Path, sources):
        if source.is_dir():
            report_file = source / "report.json"
            if not report_file.is_file():
                raise ValueError(f"{source}: no report.json (not a finished `dpap run` directory)")
            try:
                run_report = json.loads(report_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ValueError(f"{report_file}: not valid JSON") from None
            check_report(report_file, run_report)
            dataset = dataset or run_report["dataset"]
            profile = run_report.get("energy_profile", profile)
            add_profiles(run_report.get("energy_profiles", {}), source)
            for name, model in run_report["models"].items():
                key = f"{source.name}/{name}" if several else name
                add(key, model, source)
                raster = source / f"{name}-raster.npz"
                if raster.is_file():
                    (out_dir / f"{key}-raster.npz").parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(raster, out_dir / f"{key}-raster.npz")
        elif source.is_file():
            from hw_export.h5io import read_sparsenet

            meta = read_sparsenet(source).metadata
            if "dataset" not in meta:
                raise ValueError(f"{source}: the artifact does not name its dataset; use `dpap simulate --dataset`")
            result = simulate_artifact(source, meta["dataset"], progress=progress, raster_dir=out_dir)
            add(meta.get("model") or source.stem, result, source)
            dataset = dataset or {"name": meta["dataset"], "n_test": result["dataset"]["n_test"],
                                  "timesteps": result["dataset"]["timesteps"]}
        else:
            raise ValueError(f"{source}: no such run directory or artifact")
    if len(models) < 2:
        raise ValueError("compare needs at least two models (one run directory holds two)")
    names = list(models)
    # Only profiles every model was measured with can be compared.
    common = set.intersection(*(set(m["per_sample"]["energy_j"]) for m in models.values()))
    if not common:
        raise ValueError("the models share no energy profile, so their energies cannot be compared")
    profiles = {name: value for name, value in profiles.items() if name in common}
    profile = profile if profile in common else sorted(common)[0]
    dataset = {"n_train": None, **dataset}
    report = {"schema_version": SCHEMA_VERSION, "dataset": dataset, "models": models,
              "comparison": compare(models, names[0], names[-1], profile), "energy_profile": profile,
              "energy_profiles": profiles, "sources": [str(s) for s in sources]}
    write_reports(report, out_dir, progress)
    write_report_json(out_dir, report)
    return report


# What `dpap compare` reads of a run's report.json (None: any value; a dict: the keys it must hold).
MODEL_FIELDS = {"accuracy": {"lava": None}, "synapses": None, "neurons": None,
                "per_sample": {"spikes": None, "synops": None, "energy_j": None, "energy_breakdown_j": None},
                "layers": None}
REPORT_FIELDS = {"dataset": {"name": None, "n_test": None, "timesteps": None}, "models": None}


def check_report(path: Path, report) -> None:
    """Raise ValueError naming the first field a run report lacks (instead of a KeyError later)."""
    def walk(value, fields: dict, where: str) -> None:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: {where or 'the report'} must be a JSON object")
        for key, inner in fields.items():
            if key not in value:
                raise ValueError(f"{path}: incomplete report, {where + '.' if where else ''}{key} is missing")
            if inner is not None:
                walk(value[key], inner, f"{where + '.' if where else ''}{key}")

    walk(report, REPORT_FIELDS, "")
    if not isinstance(report["models"], dict) or not report["models"]:
        raise ValueError(f"{path}: models must be a non-empty JSON object")
    for name, model in report["models"].items():
        walk(model, MODEL_FIELDS, f"models.{name}")
        if not isinstance(model["per_sample"]["energy_j"], dict) or not isinstance(model["layers"], list):
            raise ValueError(f"{path}: models.{name} has malformed energy_j or layers")
