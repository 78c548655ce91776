"""Datasets and spike encoders. Tensors are time-first: ``[T, N, ...]``."""

from dpap_neuro.data.digits import DATASETS, N_CLASSES, SpikeDataset, load_dataset, split_validation

__all__ = ["DATASETS", "N_CLASSES", "SpikeDataset", "load_dataset", "split_validation"]
