"""Datasets and spike encoders. Tensors are time-first: ``[T, N, ...]``.

Built-in (in memory): ``digits``, ``digits-events``, ``digits-seq``. Read through tonic from
the user's files (streamed): ``nmnist``, ``dvs-gesture``, ``shd``,
``poker-dvs`` (``neuromorphic.SPECS``).
"""

from dpap_neuro.data.batches import SampleSubset, batches, sequential_batches, subset
from dpap_neuro.data.digits import DATASETS as BUILTIN_DATASETS
from dpap_neuro.data.digits import RUN_DEFAULTS as BUILTIN_DATASET_DEFAULTS
from dpap_neuro.data.digits import N_CLASSES, SpikeDataset, load_dataset, split_validation
from dpap_neuro.data.neuromorphic import SPECS as NEUROMORPHIC, DatasetFilesMissing, EventFrames, FrameSettings

DATASETS = BUILTIN_DATASETS + tuple(NEUROMORPHIC)


# Settings that depend on the dataset, for the built-in data: RunConfig fields left at None take these.
BUILTIN_RUN_DEFAULTS = {"timesteps": 30, "model": "mlp", "epochs": 20, "learning_rate": 5e-3}


def dataset_defaults(name: str) -> dict:
    """RunConfig values a dataset implies where the user gave none (built-in data, or a tonic dataset's spec)."""
    if name not in NEUROMORPHIC:
        return {**BUILTIN_RUN_DEFAULTS, **BUILTIN_DATASET_DEFAULTS.get(name, {})}
    spec = NEUROMORPHIC[name]
    return {**BUILTIN_RUN_DEFAULTS, "timesteps": spec.default_timesteps, "downsample": spec.default_downsample,
            "model": spec.default_model, **getattr(spec, "run_defaults", {})}


def n_classes(name: str) -> int:
    """Classes of a dataset (built-in or tonic)."""
    return NEUROMORPHIC[name].n_classes if name in NEUROMORPHIC else N_CLASSES


__all__ = ["BUILTIN_DATASETS", "BUILTIN_RUN_DEFAULTS", "dataset_defaults", "DATASETS", "DatasetFilesMissing", "EventFrames", "FrameSettings", "N_CLASSES",
           "NEUROMORPHIC", "SampleSubset", "SpikeDataset", "batches", "load_dataset", "n_classes",
           "sequential_batches", "split_validation", "subset"]
