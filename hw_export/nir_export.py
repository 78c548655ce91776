"""Spiking networks as NIR graphs (``nir.write``), for chips with NIR importers.

Two sources:

* ``to_nir(net)`` from a SparseNet: ``input`` -> (``fc<k>``: ``Affine``,
  ``lif<k>``: ``CubaLIF``)* -> ``readout_fc``: ``Affine`` -> ``readout``:
  ``CubaLI`` -> ``output``. Removed neurons are absent, pruned synapses are
  zeros; convolutions appear unrolled, as the SparseNet holds them.
* ``hw_export.norse_reader.modules_to_nir(modules, input_shape)`` from a
  trained model's layers: keeps ``Conv2d``, ``AvgPool2d`` and ``Flatten`` as
  NIR nodes (pruned channels are zero kernels there). ``dpap export --format
  nir`` uses that one; it builds its neuron nodes with ``neuron_node`` here.

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

from hw_export.files import atomic_write
from hw_export.sparsenet import SparseNet


def neuron_node(params, shape: tuple[int, ...]):
    """A NIR ``CubaLIF`` (kind "lif") or ``CubaLI`` (kind "li") node of ``shape`` from ``NeuronParams``."""
    import nir

    tau_syn = np.full(shape, 1.0 / params.tau_syn_inv_per_s)
    common = dict(tau_syn=tau_syn, tau_mem=np.full(shape, 1.0 / params.tau_mem_inv_per_s), r=np.ones(shape),
                  v_leak=np.full(shape, params.v_leak), w_in=tau_syn.copy())
    if params.kind == "lif":
        return nir.CubaLIF(v_threshold=np.full(shape, params.v_th), v_reset=np.full(shape, params.v_reset), **common)
    return nir.CubaLI(**common)


def to_nir(net: SparseNet):
    import nir

    nodes = {"input": nir.Input(input_type={"input": np.array([net.n_inputs])})}
    edges, previous = [], "input"
    for index, layer in enumerate(net.layers):
        spiking = layer.neuron.kind == "lif"
        synapse_name, neuron_name = (f"fc{index + 1}", f"lif{index + 1}") if spiking else ("readout_fc", "readout")
        nodes[synapse_name] = nir.Affine(weight=layer.weight.toarray(), bias=np.zeros(layer.n_out))
        nodes[neuron_name] = neuron_node(layer.neuron, (layer.n_out,))
        edges += [(previous, synapse_name), (synapse_name, neuron_name)]
        previous = neuron_name
    nodes["output"] = nir.Output(output_type={"output": np.array([net.layers[-1].n_out])})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"dt_s": net.layers[0].neuron.dt_s, "source": "dpap-neuro SparseNet"})


def write_nir(graph, path: str | os.PathLike) -> None:
    """Write a NIR graph, or a SparseNet converted by ``to_nir``, to a file (atomically)."""
    import nir

    if isinstance(graph, SparseNet):
        graph = to_nir(graph)
    atomic_write(path, lambda tmp: nir.write(tmp, graph), suffix=".nir")
