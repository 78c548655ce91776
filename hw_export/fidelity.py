"""How closely a Lava simulation reproduces the trained Norse model."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hw_export.sparsenet import SparseNet


class SpikeAgreement(NamedTuple):
    elementwise: float  # share of (layer, step, sample, neuron) spike entries that are equal, 0..1
    samples_identical: float  # share of samples whose every spike is equal, 0..1
    per_layer: list[float]  # elementwise share per LIF population


def spike_agreement(net: SparseNet, reference: list[np.ndarray], simulated: list[np.ndarray]) -> SpikeAgreement:
    """Compare spikes of every surviving neuron at every step.

    ``reference``: per LIF population ``[T, N, n_original]`` (e.g. Norse, all
    neurons of the trained layer); ``simulated``: ``[T, N, n_kept]`` (Lava, the
    SparseNet's neurons, delay already removed). Removed neurons are not
    compared: they are not in the network any more.
    """
    if len(reference) != len(simulated):
        raise ValueError("reference and simulated differ in the number of populations")
    equal_entries, total_entries, per_layer = 0, 0, []
    sample_ok = None
    for layer, ref, sim in zip(net.layers, reference, simulated):
        ref = np.asarray(ref)[:, :, layer.kept].astype(bool)
        sim = np.asarray(sim).astype(bool)
        if ref.shape != sim.shape:
            raise ValueError(f"layer {layer.name}: reference {ref.shape} vs simulated {sim.shape}")
        equal = ref == sim
        equal_entries += int(equal.sum())
        total_entries += equal.size
        per_layer.append(float(equal.mean()))
        layer_ok = equal.all(axis=(0, 2))
        sample_ok = layer_ok if sample_ok is None else sample_ok & layer_ok
    if total_entries == 0:
        return SpikeAgreement(1.0, 1.0, per_layer)
    return SpikeAgreement(equal_entries / total_entries, float(np.mean(sample_ok)), per_layer)
