"""``dpap run``: train a dense and a pruned model, export both, simulate both in Lava, report.

The run directory holds ``config.json``, ``<model>.pt`` (checkpoint),
``<model>.h5`` (SparseNet), ``<model>-raster.npz`` (one sample's spikes),
``report.json`` (schema: ``hw_export/report.py``), ``report.md``,
``report.html`` and ``figures/``; model names are the keys of
``report.json``'s ``models``. Every file is written atomically, report.json last.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dpap_neuro.checkpoint import load_checkpoint, save_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.data import NEUROMORPHIC, batches, n_classes, sequential_batches, subset
from dpap_neuro.experiment import Splits, fit, load_splits, pruner_warnings
from dpap_neuro.provenance import environment
from dpap_neuro.pruning import make_pruner
from dpap_neuro.reporting import write_reports
from dpap_neuro.train import evaluate
from hw_export.assess import assess, engine_check
from hw_export.energy import chosen_profile, resolve_profiles
from hw_export.errors import UserError
from hw_export.files import atomic_write, atomic_write_text
from hw_export.h5io import write_sparsenet
from hw_export.norse import export_model, norse_reference
from hw_export.report import SCHEMA_VERSION, EngineCheck, ModelReport, RunReport, check, ratios, strict_json
from hw_export.sparsenet import NetworkCutError, SparseNet

DENSE = "dense"
REPORT_FILES = ("report.json", "report.md", "report.html")
RASTER_SAMPLE = 0  # the test sample whose spikes the report draws


def run(config: RunConfig, out_dir: str | Path, progress: bool = True, resume: bool = False) -> RunReport | None:
    """Run the whole pipeline; returns the report that is also written to ``out_dir``.

    Training runs on ``config.device`` (data parallel under ``torchrun``: every
    rank trains; the ranks share the Lava chunks of the test set and rank 0
    gathers their tallies; only rank 0 writes files and returns the report,
    the other ranks return None). Each model's training state is
    saved after every epoch (``<model>.train.pt``); ``resume`` continues the
    run in ``out_dir`` from there, and reuses models whose training had finished.
    """
    from dpap_neuro.distributed import init_from_env, rank, resolve_device

    profiles, options = check_startable(config)
    splits = load_splits(config)
    device = init_from_env(resolve_device(config.device))
    out_dir = Path(out_dir)
    if rank() == 0:
        start_run_directory(out_dir, config)
        if not (resume and (out_dir / f"{config.pruner}.pt").is_file()):
            # Said now, not after the dense model's whole training: the pruned half may prune nothing.
            for warning in pruner_warnings(config, config.pruner, options, splits.train):
                print(f"warning: {warning}", file=sys.stderr)
    plan = ((DENSE, "none", {}), (config.pruner, config.pruner, options))
    trained = {name: train_one(config, name, pruner, opts, splits.train, out_dir, progress, device, resume)
               for name, pruner, opts in plan}
    models = {name: assess_model(config, name, pruner, opts, *trained[name], splits, out_dir,
                                 progress and rank() == 0, profiles) for name, pruner, opts in plan}
    if rank() != 0:
        return None
    report = run_report(config, splits, models, profiles)
    check(report, source="report.json (as produced)")
    write_reports(report, out_dir, progress)
    atomic_write_text(out_dir / "report.json", strict_json(report))  # last: its presence means the run finished
    return report


def check_startable(config: RunConfig) -> tuple[dict, dict]:
    """Refuse, before any work, what cannot finish; returns (energy profiles, the pruner's resolved options)."""
    if config.pruner == "none":
        raise UserError("the dense model is always trained; choose a pruner other than 'none'")
    if config.model.startswith("ann-"):
        raise UserError(f"model {config.model} is an ANN (ReLU): the pruners train it, but it has no spiking export "
                        "to simulate in Lava; compare it with `python benchmarks/ann_dpap.py`")
    profiles = resolve_profiles(config.energy_profile)
    options = config.resolved_pruner_options()
    make_pruner(config.pruner, **options)  # bad options fail here, before any training
    return profiles, options


def start_run_directory(out_dir: Path, config: RunConfig) -> None:
    """Create ``out_dir``, remove a finished run's reports left in it, and write ``config.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in REPORT_FILES:  # report.json only ever describes a finished run
        (out_dir / stale).unlink(missing_ok=True)
    atomic_write_text(out_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")


def train_one(config: RunConfig, name: str, pruner_name: str, options: dict, train_data, out_dir: Path,
              progress: bool, device, resume: bool) -> tuple[torch.nn.Module, dict]:
    """Train one model (or, resuming, continue or reuse it) and save its checkpoint; ``(model, history)``."""
    from dataclasses import asdict

    from dpap_neuro.distributed import rank

    final, state_path = out_dir / f"{name}.pt", out_dir / f"{name}.train.pt"
    if resume and final.is_file():
        model, meta = load_checkpoint(final)  # its training had finished
        return model, meta["history"]
    model, history, _ = fit(config, pruner_name, options, train_data, device, progress, f"train {name}",
                            state_path, resume, warn=False)  # run() said the pruner's warnings before training
    history_dict = asdict(history)
    if rank() == 0:
        save_checkpoint(final, model, config, name, pruner_name, train_data.input_shape, n_classes(config.dataset),
                        history_dict)
        for stale in (state_path, state_path.with_suffix(".finetune.pt")):
            stale.unlink(missing_ok=True)  # the checkpoint now holds the finished model
    return model, history_dict


def lava_indices(n_test: int, lava_samples: int | None, seed: int) -> np.ndarray:
    """The test samples simulated in Lava: all, or a seeded subset of ``lava_samples``, in ascending order."""
    if lava_samples is None or lava_samples >= n_test:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=lava_samples, replace=False))


def subset_for_lava(test_data, lava_samples: int | None, seed: int):
    """The test samples Lava simulates (``lava_indices``)."""
    indices = lava_indices(len(test_data), lava_samples, seed)
    return test_data if len(indices) == len(test_data) else subset(test_data, torch.from_numpy(indices))


def export_for_lava(model, input_shape, metadata: dict, checkpoint: Path) -> SparseNet:
    """The SparseNet of a trained model; a network pruning has cut in two is one line naming its checkpoint."""
    try:
        return export_model(model, input_shape, metadata)
    except NetworkCutError as exc:
        raise NetworkCutError(f"{metadata['model']}: {exc} (pruning cut every path from the input to the readout; "
                              f"prune less with --pruner-option, or train on more data; its checkpoint is "
                              f"{checkpoint})") from None


def lava_assessment(config: RunConfig, net: SparseNet, net_path: Path, model, data, profiles: dict,
                    progress: bool, raster_path: Path | None = None,
                    precisions: tuple[str, ...] = ("float", "fixed")) -> ModelReport | None:
    """``hw_export.assess`` of ``net`` on ``data``, chunk by chunk, each chunk in its own Lava subprocess.

    ``model``: the Norse model compared with (None: no agreement figures).
    ``config.lava_workers`` subprocesses run at once. Under ``torchrun`` rank
    ``r`` of ``W`` simulates chunks ``r, r + W, ...`` and rank 0 gathers the
    tallies and returns the entry (the others None). ``engine_check``: the
    fast engine against the per-layer one on ``config.lava_check_samples``.
    """
    from dpap_neuro.distributed import gather_to_rank0, is_distributed, rank, world_size
    from hw_export.lava_subprocess import LavaPool

    chunks = sequential_batches(len(data), config.lava_chunk_size)
    mine = list(range(rank(), len(chunks), world_size()))
    bar = tqdm(total=sum(len(chunks[i]) for i in mine), desc=f"lava {net.metadata.get('model', '')}".strip(),
               unit="sample", disable=not progress or len(chunks) < 2, leave=False)
    with LavaPool(config.lava_workers) as pool:
        def launch(flat: np.ndarray, precision: str):
            child = pool.start(net_path, flat, config.sim_options(precision), progress and len(chunks) < 2)
            return child.result

        def read():
            for index, (spikes, labels) in zip(mine, batches(data, [chunks[i] for i in mine], config.workers)):
                yield index, spikes.numpy(), labels.numpy()
                bar.update(len(labels))

        def raster(flat, lava):
            if raster_path is not None:
                save_raster(raster_path, flat, lava, net)

        try:
            reference = None if model is None else (lambda inputs: norse_reference(model, inputs))
            in_flight = -(-config.lava_workers // len(precisions))
            entry = assess(net, read(), launch, reference, profiles, precisions, on_first_chunk=raster,
                           in_flight=in_flight, gather=gather_to_rank0 if is_distributed() else None)
        finally:
            bar.close()
        if entry is not None and config.lava_check_samples > 0:
            entry["engine_check"] = check_engines(config, net_path, data, pool, precisions)
    return entry


def check_engines(config: RunConfig, net_path: Path, data, pool, precisions: tuple[str, ...]) -> EngineCheck:
    """The fast engine against Lava's per-layer processes on ``config.lava_check_samples`` seeded samples."""
    from dataclasses import replace

    indices = lava_indices(len(data), config.lava_check_samples, config.seed + 1)
    spikes, _ = next(batches(subset(data, torch.from_numpy(indices)), [torch.arange(len(indices))], config.workers))
    flat = spikes.flatten(2).numpy().astype(np.uint8)
    launched = {(precision, engine): pool.start(net_path, flat, replace(config.sim_options(precision), engine=engine,
                                                                        batch_size=None))
                for precision in precisions for engine in ("fast", "processes")}
    return engine_check(flat, lambda _, precision, engine: launched[precision, engine].result(), precisions)


def assess_model(config: RunConfig, name: str, pruner_name: str, options: dict, model, history: dict,
                 splits: Splits, out_dir: Path, progress: bool, profiles: dict) -> ModelReport | None:
    """Export a trained model, simulate it in Lava (float and fixed point) and measure it: one ``models`` entry.

    Norse accuracy covers the whole test split; the Lava figures cover
    ``config.lava_samples`` of it (all by default); ``samples`` says how many.
    Under ``torchrun`` every rank simulates its share; rank 0 writes the
    network file and returns the entry, the others None.
    """
    from dpap_neuro.distributed import barrier, rank

    lava_data = subset_for_lava(splits.test, config.lava_samples, config.seed)
    net = export_for_lava(model, splits.train.input_shape, artifact_metadata(config, name, pruner_name),
                          out_dir / f"{name}.pt")
    if rank() == 0:
        write_sparsenet(net, out_dir / f"{name}.h5")
    barrier()  # the other ranks' Lava subprocesses read that file
    entry = lava_assessment(config, net, out_dir / f"{name}.h5", model, lava_data, profiles, progress,
                            out_dir / f"{name}-raster.npz")
    if entry is None:
        return None
    accuracy = entry["accuracy"]
    if len(lava_data) != len(splits.test):
        accuracy["norse_lava_samples"] = accuracy["norse"]
    accuracy["norse"] = evaluate(model, splits.test, keep_spikes=False, workers=config.workers).accuracy
    if splits.validation is not None:
        accuracy["validation"] = evaluate(model, splits.validation, keep_spikes=False, workers=config.workers).accuracy
    entry.update(pruner=pruner_name, pruner_options=options, training=history,
                 samples={"norse_test": len(splits.test), "lava": len(lava_data)},
                 files={"checkpoint": f"{name}.pt", "network": f"{name}.h5"})
    return entry


def save_raster(path: Path, inputs: np.ndarray, lava, net: SparseNet) -> None:
    """Spikes of one test sample (input and every LIF layer, delay removed) for the report's rasters."""
    arrays = {"input": inputs[:, RASTER_SAMPLE].astype(bool), "readout_v": lava.readout_v[:, RASTER_SAMPLE]}
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


def run_report(config: RunConfig, splits: Splits, models: dict[str, ModelReport], profiles: dict) -> RunReport:
    """report.json of a run (schema: ``hw_export.report.RunReport``)."""
    profile = chosen_profile(config.energy_profile, profiles)  # the run's (RunConfig's default: loihi)
    return RunReport(
        schema_version=SCHEMA_VERSION,
        dataset={"name": config.dataset, "n_train": len(splits.train),
                 "n_validation": len(splits.validation) if splits.validation is not None else 0,
                 "n_test": len(splits.test),
                 "n_lava": len(lava_indices(len(splits.test), config.lava_samples, config.seed)),
                 "timesteps": config.timesteps, "input_shape": list(splits.train.input_shape)},
        models=models,
        comparison={"baseline": DENSE, "pruned": config.pruner,
                    "ratios": ratios(models[DENSE], models[config.pruner], profile)},
        energy_profile=profile, energy_profiles={name: p.to_dict() for name, p in profiles.items()},
        environment=environment())
