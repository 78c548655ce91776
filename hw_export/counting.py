"""Operation counts of a simulated SparseNet, per layer and per sample.

Definitions (docs/DESIGN.md, section 5), all from the run that produced the spikes:

* spikes: spikes emitted by a population;
* synaptic operations (synops) of layer ``l``: every presynaptic spike times
  the number of synapses it still has *into layer l* (its remaining fan-out);
  layer 1's presynaptic spikes are the input spikes; a recurrent layer's own
  spikes count too, times their recurrent fan-out, those of steps
  ``0..T-2`` (a spike reaches its own layer one step later: the last step's
  arrive after the run), and also apart as ``recurrent_synops``;
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
    synops: np.ndarray  # synaptic operations into the population, recurrent ones included
    neuron_updates: np.ndarray  # neurons x steps
    dense_macs: np.ndarray  # synapses x steps: the work of computing every synapse every step
    recurrent_synapses: int = 0  # of ``synapses``: from the population's own neurons
    recurrent_synops: np.ndarray | None = None  # of ``synops``: through them (None: not a recurrent layer)


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
        recurrent_synops = None
        if layer.neuron.kind == "lif":
            own = np.asarray(layer_spikes[index])
            spikes = own.sum(axis=(0, 2), dtype=np.int64)
            presynaptic = own
            if layer.recurrent_weight is not None:  # spikes of steps 0..T-2 into its own layer, one step later
                fan_out = np.bincount(layer.recurrent_weight.indices, minlength=layer.n_out)
                recurrent_synops = (own[:-1].sum(axis=0, dtype=np.int64) @ fan_out).astype(np.int64)
                synops = synops + recurrent_synops
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
            recurrent_synapses=layer.n_recurrent_synapses,
            recurrent_synops=recurrent_synops,
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
                  for name in ("spikes", "active_updates", "synops", "neuron_updates", "dense_macs")
                  + (("recurrent_synops",) if first.recurrent_synops is not None else ())}
        joined.append(LayerCounts(name=first.name, neurons=first.neurons, synapses=first.synapses,
                                  recurrent_synapses=first.recurrent_synapses, **arrays))
    return joined
