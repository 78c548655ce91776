"""How closely a Lava simulation reproduces the trained Norse model."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hw_export.errors import UserError
from hw_export.sparsenet import SparseNet


def readout_prediction(readout_v):
    """The prediction rule, for Norse and Lava alike: the class whose readout voltage peaks highest over time.

    ``readout_v``: ``[T, N, C]`` (a numpy array or a torch tensor) -> ``[N]``
    class indices of the same kind (docs/DESIGN.md, section 3).
    """
    peak = readout_v.max(0)  # numpy: the maxima; torch: (values, indices)
    return getattr(peak, "values", peak).argmax(-1)


class SpikeAgreement(NamedTuple):
    elementwise: float  # share of (layer, step, sample, neuron) spike entries that are equal, 0..1
    samples_identical: float  # share of samples whose every spike is equal, 0..1
    per_layer: list[float]  # elementwise share per LIF population


class AgreementCounts(NamedTuple):
    """The tallies behind a ``SpikeAgreement``; chunks of samples add up with ``+``."""

    equal_per_layer: tuple[int, ...]  # equal spike entries per LIF population
    total_per_layer: tuple[int, ...]  # compared entries per LIF population
    samples_identical: int  # samples whose every spike is equal
    samples: int

    def __add__(self, other: "AgreementCounts") -> "AgreementCounts":  # type: ignore[override]
        return AgreementCounts(tuple(a + b for a, b in zip(self.equal_per_layer, other.equal_per_layer)),
                               tuple(a + b for a, b in zip(self.total_per_layer, other.total_per_layer)),
                               self.samples_identical + other.samples_identical, self.samples + other.samples)

    def result(self) -> SpikeAgreement:
        per_layer = [e / t if t else 1.0 for e, t in zip(self.equal_per_layer, self.total_per_layer)]
        total = sum(self.total_per_layer)
        if total == 0:
            return SpikeAgreement(1.0, 1.0, per_layer)
        return SpikeAgreement(sum(self.equal_per_layer) / total, self.samples_identical / max(1, self.samples),
                              per_layer)


def count_agreement(net: SparseNet, reference: list[np.ndarray], simulated: list[np.ndarray]) -> AgreementCounts:
    """Tally equal spikes of every surviving neuron at every step (see ``spike_agreement``)."""
    if len(reference) != len(simulated):
        raise UserError(f"reference and simulated differ in the number of populations ({len(reference)} vs "
                        f"{len(simulated)}): give one spike array per spiking layer, in order, for both")
    equal_per_layer, total_per_layer = [], []
    sample_ok = None
    for layer, ref, sim in zip(net.layers, reference, simulated):
        ref = np.asarray(ref)[:, :, layer.kept].astype(bool)
        sim = np.asarray(sim).astype(bool)
        if ref.shape != sim.shape:
            raise UserError(f"layer {layer.name}: reference {ref.shape} vs simulated {sim.shape} (surviving neurons); "
                            "give both runs on the same samples and steps, the reference with all the trained neurons")
        equal = ref == sim
        equal_per_layer.append(int(equal.sum()))
        total_per_layer.append(int(equal.size))
        layer_ok = equal.all(axis=(0, 2))
        sample_ok = layer_ok if sample_ok is None else sample_ok & layer_ok
    n_samples = int(np.asarray(simulated[0]).shape[1]) if simulated else 0
    identical = int(sample_ok.sum()) if sample_ok is not None else n_samples
    return AgreementCounts(tuple(equal_per_layer), tuple(total_per_layer), identical, n_samples)


def spike_agreement(net: SparseNet, reference: list[np.ndarray], simulated: list[np.ndarray]) -> SpikeAgreement:
    """Compare spikes of every surviving neuron at every step.

    ``reference``: per LIF population ``[T, N, n_original]`` (e.g. Norse, all
    neurons of the trained layer); ``simulated``: ``[T, N, n_kept]`` (Lava, the
    SparseNet's neurons, delay already removed). Removed neurons are not
    compared: they are not in the network any more.
    """
    return count_agreement(net, reference, simulated).result()
