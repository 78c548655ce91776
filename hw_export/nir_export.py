"""Spiking networks as NIR graphs (``nir.write``), in the form each NIR consumer reads correctly.

``to_nir(net, target)`` builds the graph from a SparseNet, so it holds
exactly the pruned topology: the SparseNet's neurons (dead ones removed) and
its synapses (the non-zero weights; convolutions unrolled into sparse
``Affine`` matrices, average pooling folded into the next layer, as the
SparseNet holds them). ``write_nir(net, path, target)`` writes it atomically.
Every graph is a chain ``input`` -> per layer: ``fc<k>`` (``Affine``) and its
neuron node(s) -> ... -> ``output``, on flat inputs of ``net.n_inputs``
(no ``Flatten``: norse and snntorch read NIR's ``Flatten(0, -1)`` as merging
the batch into the features).

Targets (docs/nir.md gives each rule with the consumer's code that forces it):

* ``nir`` -- NIR's own continuous-time form, time constants in seconds::

      tau_syn dI/dt = -I + w_in * input        tau_syn = 1 / tau_syn_inv,  w_in = tau_syn
      tau_mem dv/dt = (v_leak - v) + r * I     tau_mem = 1 / tau_mem_inv,  r = 1

  read with an input spike as a delta (``I += w_in / tau_syn * x``), which
  is Norse's current jump; ``CubaLIF`` layers and a ``CubaLI`` readout.
* ``norse`` -- for ``norse.torch.from_nir(graph, dt=dt_s)`` (1.1.0):
  ``w_in = 1/du``, ``tau = dt_s/du``, ``dt_s/dv``; the readout is a
  ``CubaLIF`` whose threshold is never reached (norse drops ``CubaLI``).
* ``snntorch`` -- for ``snntorch.import_nir.import_from_nir`` (1.0.0, which
  integrates at dt = 1e-4 s): ``tau_syn = 1e-4/du``, ``tau_mem = 1e-4/dv``,
  ``r = 1/dv``, ``w_in = 1/du``, threshold ``v_th/dv`` (its voltage is ours
  divided by ``dv``); readout as for norse.
* ``sinabs`` -- for ``sinabs.from_nir`` (3.1.3; taus in steps, exponential
  decay, raw input added): each population is an ``LI`` synapse then an
  ``LIF`` membrane, ``tau = -1/ln(1 - du)``, ``-1/ln(1 - dv)``, threshold
  ``v_th/dv``; the readout is ``LI`` then ``LI``. Exact once its LIF layers
  get ``MembraneReset`` and ``SingleSpike`` after import.
* ``rockpool``, ``spyx`` -- the closest graphs we found for rockpool 3.1.0 and
  spyx; neither can be exact (multi-spike subtractive reset, integer taus,
  one step of delay per layer), see docs/nir.md for the measured agreement.

Only numpy and nir here (``nir`` imported lazily): no torch.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np

from hw_export.errors import UserError
from hw_export.files import atomic_write
from hw_export.sparsenet import NeuronParams, SparseNet

NIR_TARGETS = ("nir", "norse", "snntorch", "sinabs")  # consumers that reproduce our spikes exactly
BEST_EFFORT_TARGETS = ("rockpool", "spyx")  # the closest graph we found; not exact (docs/nir.md)
NIR_1_0_4_TARGETS = ("sinabs", "rockpool")  # their consumers pin nir <= 1.0.4: files without v_reset
SNNTORCH_DT_S = 1e-4  # snntorch.import_nir integrates every neuron at this step, whatever the graph says
UNREACHABLE_V_TH = 1e30  # a readout threshold no voltage reaches: |v| <= max row sum |w| / du, far below


def neuron_node(params: NeuronParams, shape: tuple[int, ...]):
    """NIR's own form of a population: ``CubaLIF`` (kind "lif") or ``CubaLI`` (kind "li") of ``shape``."""
    import nir

    tau_syn = np.full(shape, 1.0 / params.tau_syn_inv_per_s)
    common = dict(tau_syn=tau_syn, tau_mem=np.full(shape, 1.0 / params.tau_mem_inv_per_s), r=np.ones(shape),
                  v_leak=np.full(shape, params.v_leak), w_in=tau_syn.copy())
    if params.kind == "lif":
        return nir.CubaLIF(v_threshold=np.full(shape, params.v_th), v_reset=np.full(shape, params.v_reset), **common)
    return nir.CubaLI(**common)


def _cuba_lif(n: int, tau_syn_s: float, tau_mem_s: float, r: float, w_in: float, v_th: float):
    """A ``CubaLIF`` of ``n`` neurons with one value per parameter, ``v_leak = v_reset = 0``."""
    import nir

    full = lambda value: np.full((n,), float(value))  # noqa: E731
    return nir.CubaLIF(tau_syn=full(tau_syn_s), tau_mem=full(tau_mem_s), r=full(r), v_leak=full(0.0),
                       v_threshold=full(v_th), v_reset=full(0.0), w_in=full(w_in))


def _norse_nodes(p: NeuronParams, n: int) -> list[tuple[str, object]]:
    """norse 1.1: a ``CubaLIF`` is ``LIBoxCell`` (synapse, fed ``w_in * x``) then ``LIFBoxCell``, Euler at dt."""
    v_th = p.v_th if p.kind == "lif" else UNREACHABLE_V_TH
    return [("", _cuba_lif(n, p.dt_s / p.du, p.dt_s / p.dv, 1.0, 1.0 / p.du, v_th))]


def _snntorch_nodes(p: NeuronParams, n: int) -> list[tuple[str, object]]:
    """snntorch 1.0: ``Synaptic(alpha = 1 - 1e-4/tau_syn, beta = 1 - 1e-4/tau_mem)``, needs r = tau_mem/1e-4."""
    v_th = p.v_th / p.dv if p.kind == "lif" else UNREACHABLE_V_TH
    return [("", _cuba_lif(n, SNNTORCH_DT_S / p.du, SNNTORCH_DT_S / p.dv, 1.0 / p.dv, 1.0 / p.du, v_th))]


def steps_tau(decay_per_step: float) -> float:
    """The time constant in steps whose exponential decay ``exp(-1/tau)`` is ``1 - decay_per_step``."""
    return -1.0 / math.log1p(-decay_per_step) if decay_per_step < 1.0 else 1e-30


def _sinabs_nodes(p: NeuronParams, n: int) -> list[tuple[str, object]]:
    """sinabs 3.1: ``LI`` -> ``ExpLeak`` (v = a v + x), ``LIF`` -> ``LIF`` (same, then threshold and reset)."""
    import nir

    ones, zeros = np.ones((n,)), np.zeros((n,))
    synapse = nir.LI(tau=np.full((n,), steps_tau(p.du)), r=ones.copy(), v_leak=zeros.copy())
    tau_mem = np.full((n,), steps_tau(p.dv))
    if p.kind == "lif":
        membrane = nir.LIF(tau=tau_mem, r=ones, v_leak=zeros, v_threshold=np.full((n,), p.v_th / p.dv))
    else:
        membrane = nir.LI(tau=tau_mem, r=ones, v_leak=zeros)
    return [("_syn", synapse), ("", membrane)]


def _rockpool_nodes(p: NeuronParams, n: int) -> list[tuple[str, object]]:
    """rockpool 3.1: ``CubaLIF`` -> ``LIFTorch(dt = tau_mem / (1 + r))``: per step ``I = (I + x) b``,
    ``v = a v + I``, with ``a, b = exp(-dt/tau)``. At dt = 1 step its ``v`` is ours times ``(1 - du)/dv``;
    it resets by subtracting the threshold (several spikes a step), which no rewrite changes."""
    tau_syn, tau_mem = steps_tau(p.du), steps_tau(p.dv)
    v_th = p.v_th * (1.0 - p.du) / p.dv if p.kind == "lif" else UNREACHABLE_V_TH
    return [("", _cuba_lif(n, tau_syn, tau_mem, tau_mem - 1.0, 1.0, v_th))]  # r = tau_mem - 1: dt = 1 step


def _spyx_nodes(p: NeuronParams, n: int) -> list[tuple[str, object]]:
    """spyx 0.1: ``CubaLIF`` -> ``CuBaLIF(alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem)``, weights times
    ``w_in dt/tau_syn``; at dt = 1 its ``V`` is ours divided by ``dv``. It fires from the previous step's
    ``V`` (one step of delay per layer) and subtracts the threshold, which no rewrite changes."""
    v_th = p.v_th / p.dv if p.kind == "lif" else UNREACHABLE_V_TH
    return [("", _cuba_lif(n, 1.0 / p.du, 1.0 / p.dv, 1.0, 1.0 / p.du, v_th))]


def _nir_nodes(p: NeuronParams, n: int) -> list[tuple[str, object]]:
    return [("", neuron_node(p, (n,)))]


def readout_v_scale(p: NeuronParams, target: str) -> float:
    """Our readout voltage is the consumer's times this: 1 where the graph keeps our units, else its ``dv`` etc."""
    return {"nir": 1.0, "norse": 1.0, "rockpool": p.dv / (1.0 - p.du)}.get(target, p.dv)


_NEURON_WRITERS: dict[str, Callable[[NeuronParams, int], list[tuple[str, object]]]] = {
    "nir": _nir_nodes, "norse": _norse_nodes, "snntorch": _snntorch_nodes, "sinabs": _sinabs_nodes,
    "rockpool": _rockpool_nodes, "spyx": _spyx_nodes,
}


def check_target(target: str) -> str:
    """``target`` itself if it names a writer, else a one-line ``UserError`` listing them."""
    if target not in _NEURON_WRITERS:
        raise UserError(f"unknown NIR target {target!r}; choose one of {', '.join(NIR_TARGETS + BEST_EFFORT_TARGETS)}")
    return target


def _check_consumer_can_read(net: SparseNet, target: str) -> None:
    """Consumers other than NIR itself read neither a leak voltage nor a reset voltage: both must be 0."""
    if target == "nir":
        return
    for layer in net.layers:
        p = layer.neuron
        if p.v_leak != 0.0 or (p.kind == "lif" and p.v_reset != 0.0):
            raise UserError(f"the {target} NIR target needs v_leak = 0 and v_reset = 0; layer {layer.name} has "
                            f"v_leak = {p.v_leak:g}, v_reset = {p.v_reset:g} (use --nir-target nir)")
    readout = net.layers[-1]
    bound = float(abs(readout.weight).sum(axis=1).max()) / readout.neuron.du
    if not bound < UNREACHABLE_V_TH / 1e6:
        raise UserError(f"readout weights too large for an unreachable threshold ({bound:g})")


def to_nir(net: SparseNet, target: str = "nir"):
    """The NIR graph of ``net`` in the form ``target`` reads (one of ``NIR_TARGETS + BEST_EFFORT_TARGETS``).

    Nodes: ``input`` (shape ``[n_inputs]``) -> for layer k: ``fc<k>`` ``Affine``
    ``[n_out, n_in]`` (zeros where the SparseNet has no synapse) -> ``lif<k>``
    (``lif<k>_syn`` first for sinabs) ... -> ``readout_fc`` -> ``readout`` ->
    ``output``. Metadata: ``dt_s``, ``nir_target``, ``source`` and
    ``readout_v_scale`` (our readout voltage is the consumer's times it).
    """
    import nir

    writer = _NEURON_WRITERS[check_target(target)]
    _check_consumer_can_read(net, target)
    nodes = {"input": nir.Input(input_type={"input": np.array([net.n_inputs])})}
    edges, previous = [], "input"
    for index, layer in enumerate(net.layers):
        readout = layer.neuron.kind == "li"
        synapse, neuron = ("readout_fc", "readout") if readout else (f"fc{index + 1}", f"lif{index + 1}")
        nodes[synapse] = nir.Affine(weight=layer.weight.toarray(), bias=np.zeros(layer.n_out))
        edges.append((previous, synapse))
        previous = synapse
        first = None
        for suffix, node in sorted(writer(layer.neuron, layer.n_out), key=lambda item: item[0] != "_syn"):
            nodes[neuron + suffix] = node
            edges.append((previous, neuron + suffix))
            previous, first = neuron + suffix, first or neuron + suffix
        if layer.recurrent_weight is not None:  # the cycle lif<k> -> rec<k> -> lif<k> (its first node)
            nodes[f"rec{index + 1}"] = nir.Affine(weight=layer.recurrent_weight.toarray(), bias=np.zeros(layer.n_out))
            edges += [(previous, f"rec{index + 1}"), (f"rec{index + 1}", first)]
    nodes["output"] = nir.Output(output_type={"output": np.array([net.layers[-1].n_out])})
    edges.append((previous, "output"))
    metadata = {"dt_s": net.layers[0].neuron.dt_s, "nir_target": target, "source": "dpap-neuro SparseNet",
                "readout_v_scale": readout_v_scale(net.layers[-1].neuron, target)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(net, path: str | os.PathLike, target: str = "nir") -> None:
    """Write ``net`` (a SparseNet, converted by ``to_nir(net, target)``, or a NIR graph) to ``path`` atomically.

    ``target``: ``"nir"`` (NIR's own form) or the consumer that will read the
    file: ``"norse"``, ``"snntorch"``, ``"sinabs"`` (exact), ``"rockpool"``,
    ``"spyx"`` (closest form). An unknown target or a network the target
    cannot express raises a one-line ``UserError``; a graph is written as it is.
    """
    import nir

    if not isinstance(net, SparseNet) and target != "nir":
        raise UserError(f"the {target} NIR target rewrites a SparseNet; a NIR graph is written as it is")
    graph = to_nir(net, target) if isinstance(net, SparseNet) else net

    def write(tmp: str) -> None:
        nir.write(tmp, graph)
        if graph.metadata.get("nir_target") in NIR_1_0_4_TARGETS:
            _drop_v_reset(tmp)

    atomic_write(path, write, suffix=".nir")


def _drop_v_reset(path: str) -> None:
    """Remove ``v_reset`` from the neuron nodes of a written file, so that nir 1.0.4 reads it.

    sinabs 3.1.3 and rockpool 3.1.0 pin nir <= 1.0.4, whose ``LIF`` and
    ``CubaLIF`` have no ``v_reset`` (nir 1.0.8 writes one, and 1.0.4's
    reader then fails); both consumers ignore it anyway (reset to 0, resp. subtract).
    """
    import h5py

    with h5py.File(path, "r+") as f:
        for node in f["node/nodes"].values():
            if "v_reset" in node:
                del node["v_reset"]
