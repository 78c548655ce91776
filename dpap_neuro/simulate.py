"""``dpap simulate``: run an exported SparseNet in Lava on its dataset's test split and measure it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dpap_neuro.checkpoint import load_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.experiment import load_splits
from dpap_neuro.run import lava_assessment, subset_for_lava
from hw_export.energy import PROFILES
from hw_export.errors import UserError
from hw_export.h5io import read_sparsenet
from hw_export.report import SCHEMA_VERSION, SimulationReport

# RunConfig fields a SparseNet records of its run (``run.artifact_metadata``) and `dpap simulate` reuses.
RECORDED = ("timesteps", "seed", "test_fraction", "downsample", "denoise_us")


def artifact_config(net_metadata: dict, dataset: str, **overrides) -> RunConfig:
    """The run's data settings from an artifact's metadata, with the user's ``overrides`` (None: keep)."""
    recorded = {key: net_metadata[key] for key in RECORDED if net_metadata.get(key) is not None}
    given = {key: value for key, value in overrides.items() if value is not None}
    if dataset != net_metadata.get("dataset", dataset):
        recorded = {k: v for k, v in recorded.items() if k in ("timesteps", "seed")}  # another dataset's binning
    return RunConfig(dataset=dataset, **{**recorded, **given})


def simulate_artifact(artifact: str | Path, dataset: str, precision: str = "float", checkpoint: str | Path | None = None,
                      progress: bool = True, raster_dir: Path | None = None, **overrides) -> SimulationReport:
    """Simulate an exported SparseNet in Lava on ``dataset``'s test split (the split it was assessed on).

    ``overrides``: RunConfig fields (timesteps, seed, data_dir, workers,
    lava_samples, lava_chunk_size, lava_engine, lava_timeout_s, ...); unset
    ones default to the artifact's metadata. With a Norse checkpoint
    (``checkpoint``, or ``<artifact>.pt`` beside it) the result has Norse
    accuracy and spike / prediction agreement.
    """
    artifact = Path(artifact)
    net = read_sparsenet(artifact)
    config = artifact_config(net.metadata, dataset, **overrides)
    test = load_splits(config, train=False).test
    if tuple(test.input_shape) != tuple(net.input_shape):
        raise UserError(f"{artifact}: the network takes inputs of shape {net.input_shape}, "
                        f"dataset {dataset} gives {tuple(test.input_shape)}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise UserError(f"{checkpoint}: no such checkpoint")
    checkpoint = Path(checkpoint) if checkpoint else artifact.with_suffix(".pt")
    model = load_checkpoint(checkpoint)[0] if checkpoint.is_file() else None
    lava_data = subset_for_lava(test, config.lava_samples, config.seed)
    name = net.metadata.get("model") or artifact.stem
    raster = Path(raster_dir) / f"{name}-raster.npz" if raster_dir else None
    result = lava_assessment(config, net, artifact, model, lava_data, PROFILES, progress, raster, (precision,))
    result.update(pruner=net.metadata.get("pruner"), samples={"norse_test": len(test), "lava": len(lava_data)})
    return SimulationReport(
        schema_version=SCHEMA_VERSION, artifact=str(artifact),
        checkpoint=str(checkpoint) if model is not None else None, precision=precision, engine=config.lava_engine,
        dataset={"name": dataset, "n_test": len(test), "n_lava": len(lava_data), "timesteps": config.timesteps,
                 "seed": config.seed},
        model=name, result=result)
