"""Datasets and spike encoders. Tensors are time-first: ``[T, N, ...]``.

Built-in (in memory): ``digits``, ``digits-events``. Read through tonic from
the user's files (streamed): ``nmnist``, ``dvs-gesture``, ``shd``,
``poker-dvs`` (``neuromorphic.SPECS``).
"""

from dpap_neuro.data.batches import SampleSubset, batches, sequential_batches, subset
from dpap_neuro.data.digits import DATASETS as BUILTIN_DATASETS
from dpap_neuro.data.digits import N_CLASSES, SpikeDataset, load_dataset, split_validation
from dpap_neuro.data.neuromorphic import SPECS as NEUROMORPHIC, DatasetFilesMissing, EventFrames, FrameSettings

DATASETS = BUILTIN_DATASETS + tuple(NEUROMORPHIC)


def n_classes(name: str) -> int:
    """Classes of a dataset (built-in or tonic)."""
    return NEUROMORPHIC[name].n_classes if name in NEUROMORPHIC else N_CLASSES


__all__ = ["BUILTIN_DATASETS", "DATASETS", "DatasetFilesMissing", "EventFrames", "FrameSettings", "N_CLASSES",
           "NEUROMORPHIC", "SampleSubset", "SpikeDataset", "batches", "load_dataset", "n_classes",
           "sequential_batches", "split_validation", "subset"]
