"""Simulate a SparseNet with Lava's processes (CPU, floating-point models).

Network, per layer: ``RingBuffer`` input -> ``Sparse`` -> ``LIF`` -> ... ->
``Sparse`` -> ``LIF`` readout (threshold above any reachable voltage; its
voltage is read every step). Spikes and voltages are recorded by our own
recorder processes (``hw_export.lava_procs``), which hand the whole record
back as one file instead of through Lava's element-by-element ``Var.get``.

Parameter mapping (docs/DESIGN.md, section 3; Norse and Lava agree spike for spike):
``du = dt * tau_syn_inv``, ``dv = dt * tau_mem_inv``, Lava weight
``= dv * W_norse``, ``vth = v_th``; Lava's ``u`` is ``dv`` times Norse's
current, ``v`` is Norse's voltage.

Batching: ``B`` samples run at once as ``B`` independent copies of the network
inside the same processes (block-diagonal ``Sparse`` weights, ``B * n``
neurons), so one Lava runtime serves a whole chunk of the test set and the
per-step runtime overhead is paid once per chunk, not once per sample.

Delays: every ``Sparse`` adds one step, so layer ``k`` (1-based) shows Norse's
step ``t`` at Lava step ``t + k``; we run ``T + depth`` steps and shift back.

Lava is imported here only, lazily: training never needs it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse

from hw_export.sparsenet import SparseNet, SparseNetError

# Lava's LIF fires when v > vth; the readout must never fire.
NEVER_FIRE_VTH = float(np.finfo(np.float64).max)


class LavaResult(NamedTuple):
    layer_spikes: list[np.ndarray]  # per LIF population: [T, B, n_l] bool, delay removed
    readout_v: np.ndarray  # [T, B, n_classes] float64, delay removed


class LayerMapping(NamedTuple):
    weight: sparse.csr_matrix  # Lava weights, dv * W_norse  [n_out, n_in]
    du: float
    dv: float
    vth: float


def lava_float_mapping(net: SparseNet) -> list[LayerMapping]:
    """Lava float-model parameters per layer; rejects what Lava's LIF cannot express."""
    mappings = []
    for layer in net.layers:
        n = layer.neuron
        if np.any(layer.bias != 0):
            raise SparseNetError(
                f"layer {layer.name}: a Norse bias enters the synaptic current, which Lava's "
                "bias_mant (added to v) cannot reproduce; train without bias (docs/DESIGN.md, section 3)"
            )
        if n.v_leak != 0 or n.v_reset != 0:
            raise SparseNetError(f"layer {layer.name}: Lava's LIF needs v_leak = v_reset = 0")
        vth = n.v_th if n.kind == "lif" else NEVER_FIRE_VTH
        mappings.append(LayerMapping((layer.weight * n.dv).tocsr(), n.du, n.dv, vth))
    return mappings


def block_diagonal(weight: sparse.csr_matrix, copies: int) -> sparse.csr_matrix:
    """``copies`` independent copies of a connection: ``[copies*n_out, copies*n_in]``."""
    return sparse.kron(sparse.identity(copies, format="csr"), weight, format="csr")


PRECISIONS = ("float", "fixed")


def simulate_chunk(net: SparseNet, inputs: np.ndarray, precision: str = "float",
                   work_dir: str | None = None) -> LavaResult:
    """Run one Lava simulation of ``B`` samples at once.

    ``inputs``: ``[T, B, n_inputs]`` (0/1). ``precision``: ``"float"`` (Lava's
    floating-point models) or ``"fixed"`` (bit-accurate Loihi models on
    ``hw_export.quantize``'s parameters; the readout voltage is returned
    divided by its fixed-point scale). Always stops the runtime, also on failure.
    The recorders' files go to a temporary folder inside ``work_dir`` (default:
    the system's), so a supervisor that owns ``work_dir`` can remove them even
    if this process is killed.
    """
    import tempfile

    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer as SpikeSource
    from lava.proc.lif.process import LIF
    from lava.proc.sparse.process import Sparse

    from hw_export.lava_procs.process import SpikeRecorder, VarRecorder
    from hw_export.quantize import quantize

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")

    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[2] != net.n_inputs:
        raise ValueError(f"inputs must be [T, B, {net.n_inputs}], got {inputs.shape}")
    n_steps_in, batch, n_in = inputs.shape
    n_steps = n_steps_in + net.depth  # room for the one-step-per-layer delay
    # Neuron index inside a population is sample * n + neuron (sample-major).
    source_data = np.zeros((batch * n_in, n_steps))
    source_data[:, :n_steps_in] = inputs.transpose(1, 2, 0).reshape(batch * n_in, n_steps_in)
    with tempfile.TemporaryDirectory(prefix="dpap-lava-rec-", dir=work_dir) as tmp:
        source = SpikeSource(data=source_data)
        previous = source.s_out
        spike_files = []
        mappings = lava_float_mapping(net)  # validates bias and leak even for fixed point
        fixed = quantize(net) if precision == "fixed" else None
        for index, layer in enumerate(net.layers):
            if fixed is None:
                m = mappings[index]
                synapses = Sparse(weights=block_diagonal(m.weight, batch))
                neurons = LIF(shape=(batch * layer.n_out,), du=m.du, dv=m.dv, vth=m.vth, bias_mant=0.0)
            else:
                q = fixed[index]
                synapses = Sparse(weights=block_diagonal(q.weight, batch), weight_exp=q.weight_exp,
                                  num_weight_bits=8)
                neurons = LIF(shape=(batch * layer.n_out,), du=q.du, dv=q.dv, vth=q.vth,
                              bias_mant=0, bias_exp=0)
            previous.connect(synapses.s_in)
            synapses.a_out.connect(neurons.a_in)
            path = f"{tmp}/layer{index}.npy"
            if layer.neuron.kind == "lif":
                recorder = SpikeRecorder(shape=(batch * layer.n_out,), num_steps=n_steps, path=path)
                neurons.s_out.connect(recorder.a_in)
                spike_files.append(path)
            else:
                recorder = VarRecorder(shape=(batch * layer.n_out,), num_steps=n_steps, path=path)
                recorder.ref.connect_var(neurons.v)
                voltage_file = path
            previous = neurons.s_out
        try:
            tag = "floating_pt" if fixed is None else "fixed_pt"
            source.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        finally:
            source.stop()
        raw_spikes = [np.load(f) for f in spike_files]  # [n_steps, batch * n]
        raw_v = np.load(voltage_file)  # [n_steps, batch * n_classes]

    def unshift(per_step: np.ndarray, n: int, delay: int) -> np.ndarray:
        # per_step: [n_steps, batch * n] -> Norse-aligned [T, batch, n]
        return per_step[delay : delay + n_steps_in].reshape(n_steps_in, batch, n)

    layer_spikes = [
        unshift(raw, layer.n_out, k + 1).astype(bool)
        for k, (raw, layer) in enumerate(zip(raw_spikes, net.layers))
    ]
    readout_v = unshift(raw_v, net.layers[-1].n_out, net.depth)
    if fixed is not None:
        readout_v = readout_v / fixed[-1].voltage_scale
    return LavaResult(layer_spikes, readout_v)


# About 0.6 GB of float64 weights and int32 indices in the chunk's sparse matrices.
MAX_SYNAPSES_PER_CHUNK = 50_000_000


def simulate(net: SparseNet, inputs: np.ndarray, batch_size: int = 128, progress: bool = True,
             precision: str = "float", work_dir: str | None = None) -> LavaResult:
    """Simulate every sample of ``inputs`` ``[T, N, n_inputs]`` in chunks of ``batch_size``.

    The copies of one chunk form one block-diagonal network, so a chunk
    holds at most ``MAX_SYNAPSES_PER_CHUNK`` synapses: a conv network on
    34x34 events has about 7 million, and 128 copies of it would not fit in
    memory. ``batch_size`` is lowered to fit (never below one copy).
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    batch_size = max(1, min(batch_size, MAX_SYNAPSES_PER_CHUNK // max(1, net.n_synapses)))
    n_samples = inputs.shape[1]
    results = []
    starts = range(0, n_samples, batch_size)
    for start in tqdm(starts, desc=f"lava {precision} {net.metadata.get('model', '')}".strip(), disable=not progress,
                      unit="chunk", leave=False):
        results.append(simulate_chunk(net, inputs[:, start : start + batch_size], precision, work_dir))
    return LavaResult(
        [np.concatenate([r.layer_spikes[k] for r in results], axis=1) for k in range(net.depth - 1)],
        np.concatenate([r.readout_v for r in results], axis=1),
    )
