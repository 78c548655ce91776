"""The one Lava builder: ``lava_network(net, precision)`` -> an engine builds it -> run and read.

An engine turns a ``LavaNetwork`` (``hw_export/lava_params.py``) into Lava
processes fed by one ``RingBuffer`` of input spikes, and reads their record
back; ``simulate_chunk`` runs it and aligns the results with Norse's steps.
Engines (``ENGINES``):

* ``processes``: Lava's own ``Sparse`` and ``LIF`` processes, one pair per
  layer: what maps to Loihi, and the reference. ``B`` samples run at once as
  ``B`` independent copies of the network (block-diagonal ``Sparse``
  weights, ``B * n`` neurons), so the runtime's per-step overhead is paid once
  per chunk. Every ``Sparse`` sends the previous step's sum (Lava's
  ``a_buff``), so layer ``k`` (1-based) shows Norse's step ``t`` at Lava step
  ``t + k``: ``layer_delay = 1``.
* ``fast`` (``hw_export/lava_procs``): one Lava process steps every layer of
  the network for a whole chunk of samples, each weight matrix held once.

Spikes and voltages are recorded by our own processes, which hand the whole
record back as one file (Lava 0.10's ``Var.get()`` ships arrays element by
element). Lava is imported here only, lazily: training never needs it.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from scipy import sparse

from hw_export.errors import UserError
from hw_export.lava_params import PRECISIONS, LavaNetwork, lava_network
from hw_export.sparsenet import SparseNet


@dataclass(frozen=True)
class SimOptions:
    """How a network is simulated in Lava: every command and API takes this one object."""

    engine: str = "processes"  # "processes" (Lava's Sparse + LIF per layer: the reference) or "fast" (one process)
    precision: str = "float"  # "float" (Lava's floating_pt models) or "fixed" (bit-accurate Loihi, fixed_pt)
    batch_size: int = 128  # samples simulated at once (lowered to fit an engine's memory bound)
    timeout_s: float | None = None  # wall-clock limit of one simulation (one chunk), seconds; None: none

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UserError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.timeout_s is not None and not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise UserError(f"timeout_s must be a positive number of seconds, got {self.timeout_s!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SimOptions":
        return cls(**data)


class LavaResult(NamedTuple):
    layer_spikes: list[np.ndarray]  # per LIF population: [T, B, n_l] bool, aligned with Norse's steps
    readout_v: np.ndarray  # [T, B, n_classes] float64, in Norse units (fixed point: divided by its scale)


# A reader returns the raw record: (spikes [n_steps, B, n_l] per LIF population, readout v [n_steps, B, n_out]).
Reader = Callable[[], tuple[list[np.ndarray], np.ndarray]]


class ProcessesEngine:
    """Lava's ``Sparse`` and ``LIF`` processes, one pair per layer, ``B`` block-diagonal copies."""

    name = "processes"
    layer_delay = 1  # steps each layer adds (a Sparse sends the previous step's sum)
    MAX_SYNAPSES = 50_000_000  # per chunk, all copies: about 0.6 GB of float64 weights and int32 indices

    def max_batch(self, network: LavaNetwork, requested: int) -> int:
        """The copies of one chunk form one network; a conv net on 34x34 events has ~7 M synapses per copy."""
        return max(1, min(requested, self.MAX_SYNAPSES // max(1, network.n_synapses)))

    def build(self, network: LavaNetwork, source_port, batch: int, n_steps: int, record_dir: str) -> Reader:
        from lava.proc.lif.process import LIF
        from lava.proc.sparse.process import Sparse

        from hw_export.lava_procs.process import SpikeRecorder, VarRecorder

        previous, spike_files = source_port, []
        for index, layer in enumerate(network.layers):
            weight = sparse.kron(sparse.identity(batch, format="csr"), layer.weight, format="csr")
            fixed = network.precision == "fixed"
            synapses = Sparse(weights=weight, **({"weight_exp": 0, "num_weight_bits": 8} if fixed else {}))
            neurons = LIF(shape=(batch * layer.n_out,), du=layer.du, dv=layer.dv, vth=layer.vth,
                          bias_mant=0, **({"bias_exp": 0} if fixed else {}))
            previous.connect(synapses.s_in)
            synapses.a_out.connect(neurons.a_in)
            path = f"{record_dir}/layer{index}.npy"
            if layer.spiking:
                recorder = SpikeRecorder(shape=(batch * layer.n_out,), num_steps=n_steps, path=path)
                neurons.s_out.connect(recorder.a_in)
                spike_files.append((path, layer.n_out))
            else:
                recorder = VarRecorder(shape=(batch * layer.n_out,), num_steps=n_steps, path=path)
                recorder.ref.connect_var(neurons.v)
                voltage_file = (path, layer.n_out)
            previous = neurons.s_out

        def read():
            # Neuron index inside a population is sample * n + neuron (sample-major).
            spikes = [np.load(path).reshape(n_steps, batch, n) for path, n in spike_files]
            return spikes, np.load(voltage_file[0]).reshape(n_steps, batch, voltage_file[1])

        return read


ENGINES: dict[str, object] = {ProcessesEngine.name: ProcessesEngine()}


def simulate_chunk(network: LavaNetwork, inputs: np.ndarray, engine: str = "processes",
                   work_dir: str | None = None) -> LavaResult:
    """Run one Lava simulation of the ``B`` samples of ``inputs`` ``[T, B, n_inputs]`` (0/1) at once.

    Runs ``T + depth * layer_delay`` steps and shifts every layer back by its
    delay, so results line up with Norse's steps. Always stops the runtime,
    also on failure. The record files go to a temporary folder inside
    ``work_dir`` (default: the system's), so a supervisor that owns
    ``work_dir`` can remove them even if this process is killed.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[2] != network.n_inputs:
        raise UserError(f"inputs must be [T, B, {network.n_inputs}], got {inputs.shape}")
    builder = ENGINES[engine]
    n_steps_in, batch, n_in = inputs.shape
    n_steps = n_steps_in + network.depth * builder.layer_delay
    source_data = np.zeros((batch * n_in, n_steps))  # [batch * n_in, n_steps], sample-major
    source_data[:, :n_steps_in] = inputs.transpose(1, 2, 0).reshape(batch * n_in, n_steps_in)
    with tempfile.TemporaryDirectory(prefix="dpap-lava-rec-", dir=work_dir) as tmp:
        source = RingBuffer(data=source_data)
        read = builder.build(network, source.s_out, batch, n_steps, tmp)
        try:
            tag = "floating_pt" if network.precision == "float" else "fixed_pt"
            source.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        finally:
            source.stop()
        raw_spikes, raw_v = read()
    delays = [builder.layer_delay * (k + 1) for k in range(network.depth)]
    spikes = [raw[d: d + n_steps_in].astype(bool) for raw, d in zip(raw_spikes, delays)]
    readout_v = raw_v[delays[-1]: delays[-1] + n_steps_in].astype(np.float64) / network.layers[-1].voltage_scale
    return LavaResult(spikes, readout_v)


def simulate(net: SparseNet | LavaNetwork, inputs: np.ndarray, options: SimOptions = SimOptions(),
             progress: bool = True, work_dir: str | None = None) -> LavaResult:
    """Simulate every sample of ``inputs`` ``[T, N, n_inputs]`` in batches of ``options.batch_size``.

    ``net``: a SparseNet (mapped to ``options.precision``) or a ready
    ``LavaNetwork``. The batch is lowered to what the engine can hold.
    """
    from tqdm.auto import tqdm

    network = net if isinstance(net, LavaNetwork) else lava_network(net, options.precision)
    batch = ENGINES[options.engine].max_batch(network, options.batch_size)
    starts = range(0, inputs.shape[1], batch)
    results = [simulate_chunk(network, inputs[:, start: start + batch], options.engine, work_dir)
               for start in tqdm(starts, desc=f"lava {options.engine} {options.precision}", disable=not progress,
                                 unit="batch", leave=False)]
    return LavaResult([np.concatenate([r.layer_spikes[k] for r in results], axis=1)
                       for k in range(len(results[0].layer_spikes))],
                      np.concatenate([r.readout_v for r in results], axis=1))
