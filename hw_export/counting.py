"""Operation counts of a simulated SparseNet, per layer and per sample.

Definitions (docs/DESIGN.md, section 5), all from the run that produced the spikes:

* spikes: spikes emitted by a population;
* synaptic operations (synops) of layer ``l``: every presynaptic spike times
  the number of synapses it still has *into layer l* (its remaining fan-out);
  layer 1's presynaptic spikes are the input spikes;
* neuron updates: alive neurons of a population times simulated steps;
* dense MACs: remaining synapses times steps, what a conventional chip
  computing every synapse at every step would do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_export.errors import UserError
from hw_export.sparsenet import SparseNet


@dataclass(frozen=True)
class LayerCounts:
    """Counts for one layer; arrays are per sample, shape ``[N]``."""

    name: str
    neurons: int  # alive neurons in the population
    synapses: int  # remaining synapses into it
    spikes: np.ndarray  # spikes emitted by the population (0 for the readout)
    active_updates: np.ndarray  # neuron-steps with a spike
    synops: np.ndarray  # synaptic operations into the population
    neuron_updates: np.ndarray  # neurons x steps
    dense_macs: np.ndarray  # synapses x steps: the work of computing every synapse every step


def count_operations(net: SparseNet, input_spikes: np.ndarray, layer_spikes: list[np.ndarray]) -> list[LayerCounts]:
    """Count per layer and sample.

    ``input_spikes``: ``[T, N, n_inputs]``; ``layer_spikes``: one ``[T, N, n_l]``
    per LIF population (the readout does not spike).
    """
    n_steps, n_samples = input_spikes.shape[:2]
    if len(layer_spikes) != net.depth - 1:
        raise UserError(f"expected spikes of {net.depth - 1} LIF populations, got {len(layer_spikes)}: give one "
                        "[T, N, n] array per spiking layer of the network, in order (not the readout)")
    counts = []
    presynaptic = np.asarray(input_spikes).reshape(n_steps, n_samples, -1)
    for index, layer in enumerate(net.layers):
        # Spikes per presynaptic neuron and sample, [N, n_in], times its fan-out into this layer.
        per_neuron = presynaptic.sum(axis=0, dtype=np.int64)
        synops = per_neuron @ layer.fan_out()
        if layer.neuron.kind == "lif":
            own = np.asarray(layer_spikes[index])
            spikes = own.sum(axis=(0, 2), dtype=np.int64)
            presynaptic = own
        else:
            spikes = np.zeros(n_samples, dtype=np.int64)
        counts.append(LayerCounts(
            name=layer.name,
            neurons=layer.n_out,
            synapses=layer.n_synapses,
            spikes=spikes,
            active_updates=spikes.copy(),
            synops=synops.astype(np.int64),
            neuron_updates=np.full(n_samples, layer.n_out * n_steps, dtype=np.int64),
            dense_macs=np.full(n_samples, layer.n_synapses * n_steps, dtype=np.int64),
        ))
    return counts


def concatenate_counts(parts: list[list[LayerCounts]]) -> list[LayerCounts]:
    """Counts of consecutive chunks of samples as the counts of all of them (per-sample arrays joined)."""
    if not parts:
        raise UserError("no counts to concatenate: give the counts of at least one chunk of samples")
    joined = []
    for layer_parts in zip(*parts):
        first = layer_parts[0]
        arrays = {name: np.concatenate([getattr(part, name) for part in layer_parts])
                  for name in ("spikes", "active_updates", "synops", "neuron_updates", "dense_macs")}
        joined.append(LayerCounts(name=first.name, neurons=first.neurons, synapses=first.synapses, **arrays))
    return joined
