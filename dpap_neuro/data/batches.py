"""One way to draw batches from any split: an in-memory ``SpikeDataset`` or a streamed one.

A streamed split (``neuromorphic.EventFrames``, or a ``SampleSubset`` of
one) is a ``torch.utils.data.Dataset`` of ``(frames [T, ...], label)`` read
by a ``DataLoader`` with worker processes; an in-memory split is indexed
directly, as that is faster than collating sample by sample. Both yield
time-first batches ``(spikes float32 [T, B, ...], labels int64 [B])``.
"""

from __future__ import annotations

from typing import Iterator, Sequence, Union

import torch

from dpap_neuro.data.digits import SpikeDataset
from hw_export.errors import UserError


class SampleSubset(torch.utils.data.Dataset):
    """Some samples of a streamed split (validation split, a Lava subset), keeping ``labels`` and ``input_shape``."""

    def __init__(self, data: torch.utils.data.Dataset, indices: torch.Tensor) -> None:
        self.data, self.indices = data, torch.as_tensor(indices, dtype=torch.int64)
        self.labels = data.labels[self.indices]
        self.input_shape = data.input_shape

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int):
        return self.data[int(self.indices[index])]


Split = Union[SpikeDataset, torch.utils.data.Dataset]


def subset(data: Split, indices: torch.Tensor) -> Split:
    """The samples ``indices`` of ``data``, in that order, of the same kind."""
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if isinstance(data, SpikeDataset):
        return SpikeDataset(data.spikes[:, indices], data.labels[indices])
    return SampleSubset(data, indices)


def batches(data: Split, index_batches: Sequence[torch.Tensor], workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(spikes [T, B, ...], labels [B])`` for each index batch, in order.

    ``workers``: DataLoader worker processes reading a streamed split (0:
    in this process); ignored for in-memory splits.
    """
    if isinstance(data, SpikeDataset):
        for idx in index_batches:
            yield data.spikes[:, idx], data.labels[idx]
        return
    from dpap_neuro.data.neuromorphic import time_first_collate

    loader = torch.utils.data.DataLoader(data, batch_sampler=[[int(i) for i in idx] for idx in index_batches],
                                         num_workers=workers, collate_fn=time_first_collate)
    try:
        yield from loader
    except UserError as exc:
        # A worker's error arrives as "Caught ValueError in DataLoader worker process 0." plus its
        # traceback; the user needs only its last line, our own one-line message.
        lines = str(exc).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught "):
            raise UserError(lines[-1].split(": ", 1)[-1]) from None
        raise


def sequential_batches(n_samples: int, batch_size: int) -> list[torch.Tensor]:
    """``0..n-1`` in batches of ``batch_size`` (evaluation order)."""
    return [torch.arange(start, min(start + batch_size, n_samples)) for start in range(0, n_samples, batch_size)]
