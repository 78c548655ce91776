"""SparseNet -> NIR graph (``nir.write``), for chips with NIR importers.

Nodes: ``input`` -> (``fc<k>``: ``Affine``, ``lif<k>``: ``CubaLIF``)* ->
``readout_fc``: ``Affine`` -> ``readout``: ``CubaLI`` -> ``output``. Pruned
synapses are zeros of the Affine weights; removed neurons are absent.
Convolutions are exported as the SparseNet holds them, unrolled (with
average pooling folded in), so every node is an ``Affine``.

Parameters are NIR's continuous-time ones, time constants in seconds
(norse 1.1's own ``to_nir`` writes ``dt * tau`` instead; we do not use it):

    tau_syn dI/dt = -I + w_in * input        tau_syn = 1 / tau_syn_inv,  w_in = tau_syn
    tau_mem dv/dt = (v_leak - v) + r * I     tau_mem = 1 / tau_mem_inv,  r = 1

``w_in = tau_syn`` makes an input spike of weight ``x`` raise ``I`` by ``x``,
as Norse's current jump does.
"""

from __future__ import annotations

import os

import numpy as np

from hw_export.h5io import atomic_write
from hw_export.sparsenet import SparseNet


def to_nir(net: SparseNet):
    import nir

    nodes = {"input": nir.Input(input_type={"input": np.array([net.n_inputs])})}
    edges, previous = [], "input"
    for index, layer in enumerate(net.layers):
        n = layer.neuron
        size = layer.n_out
        tau_syn = np.full(size, 1.0 / n.tau_syn_inv_per_s)
        tau_mem = np.full(size, 1.0 / n.tau_mem_inv_per_s)
        common = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=np.ones(size), v_leak=np.full(size, n.v_leak),
                      w_in=tau_syn.copy())
        if n.kind == "lif":
            synapse_name, neuron_name = f"fc{index + 1}", f"lif{index + 1}"
            neuron = nir.CubaLIF(v_threshold=np.full(size, n.v_th), v_reset=np.full(size, n.v_reset), **common)
        else:
            synapse_name, neuron_name = "readout_fc", "readout"
            neuron = nir.CubaLI(**common)
        nodes[synapse_name] = nir.Affine(weight=layer.weight.toarray(), bias=layer.bias.copy())
        nodes[neuron_name] = neuron
        edges += [(previous, synapse_name), (synapse_name, neuron_name)]
        previous = neuron_name
    nodes["output"] = nir.Output(output_type={"output": np.array([net.layers[-1].n_out])})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"dt_s": net.layers[0].neuron.dt_s, "source": "dpap-neuro SparseNet"})


def write_nir(net: SparseNet, path: str | os.PathLike) -> None:
    """Write ``net`` as a NIR graph file (atomically)."""
    import nir

    graph = to_nir(net)
    atomic_write(path, lambda tmp: nir.write(tmp, graph), suffix=".nir")
