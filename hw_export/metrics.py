"""Hardware metrics of a SparseNet and of one simulation of it: what ``report.json`` holds per model.

Structure (no simulation needed): synapses and neurons kept, against the
trained (dense) layer widths; hidden-layer sparsity, the axis of the Pareto
benchmark; memory footprint. Activity (from a simulation's spikes): per-layer
and per-sample spikes, synaptic operations, neuron updates and energy, plus
the same quantities under NeuroBench's names (Yik et al., "NeuroBench",
Nature Communications 2025). The dense model and the pruned one are measured
by this same code on the same inputs (docs/DESIGN.md, section 5).
"""

from __future__ import annotations

import numpy as np

from hw_export.counting import LayerCounts, count_operations
from hw_export.energy import EnergyProfile, energy_breakdown_j
from hw_export.sparsenet import SparseLayer, SparseNet

# CSR storage of one layer as a chip or a sparse kernel would hold it:
# float32 values and int32 column indices per synapse, int32 row pointers.
CSR_BYTES_PER_SYNAPSE = 4 + 4
CSR_BYTES_PER_ROW_POINTER = 4


def original_fan_ins(net: SparseNet) -> list[int]:
    """Inputs per neuron of each layer before pruning (the trained layer widths)."""
    return [net.n_inputs] + [layer.n_original for layer in net.layers[:-1]]


def original_synapses(net: SparseNet) -> list[int]:
    """Synapses of each layer in the trained, fully connected form (conv layers: their unrolled form; a
    recurrent layer's recurrent matrix included, ``original_recurrent_synapses``)."""
    return [layer.n_original * fan_in + original_recurrent_synapses(layer)
            for layer, fan_in in zip(net.layers, original_fan_ins(net))]


def original_recurrent_synapses(layer: SparseLayer) -> int:
    """A recurrent layer's recurrent synapses when fully connected: ``n (n - 1)`` if no neuron feeds itself
    (Norse's default, no autapses), ``n * n`` if one does; 0 for a feed-forward layer."""
    if layer.recurrent_weight is None:
        return 0
    autapses = bool(np.any(layer.recurrent_weight.diagonal() != 0))
    return layer.n_original * (layer.n_original - (0 if autapses else 1))


def hidden_sparsity(net: SparseNet) -> tuple[float, float]:
    """(pruned share of hidden-layer synapses, pruned share of hidden neurons), each 0..1.

    Hidden layers are those a pruner may touch: every layer but the readout.
    Synapses count against the trained layer widths, so removing a neuron
    also removes its synapses.
    """
    hidden = net.layers[:-1]
    if not hidden:
        return 0.0, 0.0
    before = sum(original_synapses(net)[:-1])
    synapse_sparsity = 1.0 - sum(layer.n_synapses for layer in hidden) / before
    neuron_sparsity = 1.0 - sum(layer.n_out for layer in hidden) / sum(layer.n_original for layer in hidden)
    return synapse_sparsity, neuron_sparsity


def recurrent_synapses_kept(net: SparseNet) -> float | None:
    """Share of the recurrent layers' recurrent synapses kept, against their fully connected form
    (``original_recurrent_synapses``); None for a feed-forward network."""
    recurrent = [layer for layer in net.layers if layer.recurrent_weight is not None]
    if not recurrent:
        return None
    return sum(layer.n_recurrent_synapses for layer in recurrent) / sum(map(original_recurrent_synapses, recurrent))


def memory_footprint_bytes(net: SparseNet) -> int:
    """Bytes to store the network's parameters as CSR (float32 values, int32 indices and row pointers)."""
    return sum(layer.n_synapses * CSR_BYTES_PER_SYNAPSE + (layer.n_out + 1) * CSR_BYTES_PER_ROW_POINTER
               for layer in net.layers)


def measure(net: SparseNet, input_spikes: np.ndarray, layer_spikes: list[np.ndarray],
            profiles: dict[str, EnergyProfile]) -> dict:
    """Structure and activity metrics of one simulation of ``net``: one model's part of ``report.json``.

    ``input_spikes``: ``[T, N, n_inputs]``; ``layer_spikes``: one ``[T, N, n_l]``
    per LIF population. Per-sample values are means over the ``N`` samples;
    energies are in joules.
    """
    counts = count_operations(net, input_spikes, layer_spikes)
    return measure_counts(net, counts, np.asarray(input_spikes).sum(axis=(0, 2)), profiles)


def measure_counts(net: SparseNet, counts: list[LayerCounts], input_spikes_per_sample: np.ndarray,
                   profiles: dict[str, EnergyProfile]) -> dict:
    """``measure`` from counts already made (``count_operations``, joined over chunks of samples).

    ``input_spikes_per_sample``: ``[N]`` input spikes of each sample.
    """
    breakdown = {name: {kind: float(value.mean()) for kind, value in energy_breakdown_j(counts, profile).items()}
                 for name, profile in profiles.items()}
    spikes = sum(c.spikes for c in counts)  # [N]
    synops = sum(c.synops for c in counts)
    neuron_updates = sum(c.neuron_updates for c in counts)
    return {
        "synapses": net.n_synapses,
        "neurons": net.n_neurons,
        "per_sample": {
            "spikes": float(spikes.mean()),
            "input_spikes": float(np.asarray(input_spikes_per_sample).mean()),
            "synops": float(synops.mean()),
            "neuron_updates": float(neuron_updates.mean()),
            "energy_j": {name: sum(parts.values()) for name, parts in breakdown.items()},
            "energy_breakdown_j": breakdown,
        },
        "neurobench": {
            "connection_sparsity": 1.0 - net.n_synapses / sum(original_synapses(net)),
            "activation_sparsity": float(1.0 - spikes.sum() / max(1, neuron_updates.sum())),
            "synaptic_operations": {"effective_acs": float(synops.mean()), "effective_macs": 0.0,
                                    "dense": float(sum(c.dense_macs for c in counts).mean())},
            "memory_footprint_bytes": memory_footprint_bytes(net),
            "neuron_updates": float(neuron_updates.mean()),
        },
        "layers": [
            {"name": c.name, "neurons": c.neurons, "original_neurons": layer.n_original,
             "synapses": c.synapses, "original_synapses": before,
             "spikes": float(c.spikes.mean()), "synops": float(c.synops.mean()),
             "neuron_updates": float(c.neuron_updates.mean()),
             **({} if c.recurrent_synops is None else {
                 "recurrent_synapses": c.recurrent_synapses,
                 "original_recurrent_synapses": original_recurrent_synapses(layer),
                 "recurrent_synops": float(c.recurrent_synops.mean())})}
            for c, layer, before in zip(counts, net.layers, original_synapses(net))
        ],
    }
