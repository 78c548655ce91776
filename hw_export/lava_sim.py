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
* ``fast`` (the default; ``hw_export/lava_procs``): one Lava process
  (``NetworkProcess``) steps every layer of the network for a whole batch of
  samples, each weight matrix held once, the samples a second axis of the
  state, each synaptic input summed from the inputs that spiked only; every
  layer sees the layer below in the same step: ``layer_delay = 0``. Its
  fixed-point model computes Lava's bit-accurate ``Sparse`` + ``LIF``
  integers (``hw_export/loihi_fixed.py``), its float model the operations of
  ``PyLifModelFloat``; ``tests/hw_export/test_lava_sim.py`` holds it to the
  per-layer engine (equal spikes; readout voltages equal integers, or within
  1e-9 in float), and ``dpap run`` cross-checks the two on a seeded subset.
  Use ``processes`` to see Lava's own processes at work (what a Loihi
  mapping builds), ``fast`` for everything at scale.

Both are fed by the same ``RingBuffer`` of input spikes (the fast engine's
packed 16 spikes to a value: ``lava_procs/stepping.pack_spikes``). Spikes and
voltages are recorded by our own processes, which hand the whole record back
as one file (Lava 0.10's ``Var.get()`` ships arrays element by element). Lava
is imported here only, lazily: training never needs it.
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

DEFAULT_ENGINE = "fast"  # of SimOptions, simulate_chunk and every command


@dataclass(frozen=True)
class SimOptions:
    """How a network is simulated in Lava: every command and API takes this one object."""

    engine: str = DEFAULT_ENGINE  # "fast" (one process steps the network) or "processes" (Lava's Sparse + LIF per layer)
    precision: str = "float"  # "float" (Lava's floating_pt models) or "fixed" (bit-accurate Loihi, fixed_pt)
    batch_size: int | None = None  # samples per Lava run, lowered to fit the engine's memory; None: the engine's
    timeout_s: float | None = None  # wall-clock limit of one simulation (one chunk), seconds; None: none

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UserError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
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
    default_batch = 128  # samples per Lava run unless asked otherwise
    MAX_SYNAPSES = 50_000_000  # per chunk, all copies: about 0.6 GB of float64 weights and int32 indices

    def max_batch(self, network: LavaNetwork, requested: int, n_steps: int = 1) -> int:
        """The copies of one chunk form one network; a conv net on 34x34 events has ~7 M synapses per copy."""
        return max(1, min(requested, self.MAX_SYNAPSES // max(1, network.n_synapses)))

    @staticmethod
    def source_data(inputs: np.ndarray, n_steps: int) -> np.ndarray:
        """The ``RingBuffer``'s data ``[B * n_inputs, n_steps]``: one value per input, sample-major."""
        return ring_buffer_data(inputs, n_steps)

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
            if layer.recurrent_weight is not None:  # s_out -> Sparse -> a_in: it sends the step before's sum
                loop = Sparse(weights=sparse.kron(sparse.identity(batch, format="csr"), layer.recurrent_weight,
                                                  format="csr"),
                              **({"weight_exp": 0, "num_weight_bits": 8} if fixed else {}))
                neurons.s_out.connect(loop.s_in)
                loop.a_out.connect(neurons.a_in)
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


class FastEngine:
    """One Lava process for the whole network and batch (``hw_export/lava_procs``: ``NetworkProcess``).

    Every layer is stepped inside one ProcessModel in the same time step
    (``layer_delay = 0``), each weight matrix held once for all samples, the
    samples a second axis of the neuron state, and each synaptic input summed
    from the inputs that spiked only (``lava_procs/stepping.py``). The
    fixed-point model is Lava's bit-accurate ``Sparse`` + ``LIF`` arithmetic
    (``hw_export/loihi_fixed.py``), the float model ``PyLifModelFloat``'s.
    """

    name = "fast"
    layer_delay = 0  # every layer sees the spikes of the layer below in the same step
    default_batch = 2**20  # as many samples per Lava run as its memory bound allows (the runtime's start is paid once)
    MAX_BYTES = 2 * 2**30  # per Lava run (one batch): inputs, records and state, about (``sample_bytes`` each)
    CHANNEL_SLOTS = 2  # messages a channel buffers (Lava's default 64 would hold 64 steps of every input)

    def __init__(self, kernel: str = "auto") -> None:
        self.kernel = kernel

    @staticmethod
    def sample_bytes(network: LavaNetwork, n_steps: int) -> int:
        """Bytes one sample takes in a Lava run of this engine, about: its inputs (bytes, and packed 16 to a float64
        word as the RingBuffer holds them, twice, and in the channel's slots), its spikes recorded and read back
        (bool), readout voltages (float64, twice), and the neuron state (u and v, 8 bytes each)."""
        from hw_export.lava_procs.stepping import words_per_sample

        spiking = sum(layer.n_out for layer in network.layers if layer.spiking)
        readout = network.layers[-1].n_out
        words = words_per_sample(network.n_inputs) * 8 * (2 * n_steps + FastEngine.CHANNEL_SLOTS)
        return network.n_inputs * n_steps + words + n_steps * (2 * spiking + 16 * readout) + 16 * (spiking + readout)

    def max_batch(self, network: LavaNetwork, requested: int, n_steps: int = 1) -> int:
        """As many samples as fit in ``MAX_BYTES`` (a conv net on 34x34 events, 30 steps: about 600)."""
        return max(1, min(requested, self.MAX_BYTES // self.sample_bytes(network, n_steps)))

    def compile_config(self) -> dict:
        return {"pypy_channel_size": self.CHANNEL_SLOTS}

    @staticmethod
    def source_data(inputs: np.ndarray, n_steps: int) -> np.ndarray:
        """The ``RingBuffer``'s data ``[B * ceil(n_inputs / 16), n_steps]``: 16 input spikes per value."""
        from hw_export.lava_procs.stepping import pack_spikes

        return ring_buffer_data(pack_spikes(inputs), n_steps)

    def build(self, network: LavaNetwork, source_port, batch: int, n_steps: int, record_dir: str) -> Reader:
        from hw_export.lava_procs.process import NetworkProcess

        process = NetworkProcess(network=network, batch=batch, num_steps=n_steps, record_dir=record_dir,
                                 kernel=self.kernel)
        source_port.connect(process.s_in)
        n_spiking = [layer.n_out for layer in network.layers if layer.spiking]

        def read():
            spikes = [np.unpackbits(np.load(f"{record_dir}/layer{k}.npy"), axis=2, count=n).view(bool)
                      for k, n in enumerate(n_spiking)]
            return spikes, np.load(f"{record_dir}/layer{len(n_spiking)}.npy")

        return read


def ring_buffer_data(values: np.ndarray, n_steps: int) -> np.ndarray:
    """``values`` ``[T, B, n]`` as a ``RingBuffer``'s data ``[B * n, n_steps]`` (sample-major), zero after ``T``.

    Column-major, so the one column the RingBuffer sends per step is contiguous.
    """
    n_steps_in, batch, n = values.shape
    data = np.zeros((batch * n, n_steps), order="F")
    data[:, :n_steps_in] = values.transpose(1, 2, 0).reshape(batch * n, n_steps_in)
    return data


ENGINES: dict[str, object] = {ProcessesEngine.name: ProcessesEngine(), FastEngine.name: FastEngine()}


def simulate_chunk(network: LavaNetwork, inputs: np.ndarray, engine: str = DEFAULT_ENGINE,
                   work_dir: str | None = None) -> LavaResult:
    """Run one Lava simulation of the ``B`` samples of ``inputs`` ``[T, B, n_inputs]`` (0/1) at once.

    ``engine``: a key of ``ENGINES`` (default ``DEFAULT_ENGINE``, ``fast``, as
    ``SimOptions``; ``processes`` runs Lava's own processes).
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
    if engine not in ENGINES:
        raise UserError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    builder = ENGINES[engine]
    n_steps_in, batch, _ = inputs.shape
    n_steps = n_steps_in + network.depth * builder.layer_delay
    with tempfile.TemporaryDirectory(prefix="dpap-lava-rec-", dir=work_dir) as tmp:
        source = RingBuffer(data=builder.source_data(inputs, n_steps))
        read = builder.build(network, source.s_out, batch, n_steps, tmp)
        try:
            tag = "floating_pt" if network.precision == "float" else "fixed_pt"
            source.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag=tag),
                       compile_config=getattr(builder, "compile_config", dict)())
        finally:
            source.stop()
        raw_spikes, raw_v = read()
    delays = [builder.layer_delay * (k + 1) for k in range(network.depth)]
    spikes = [raw[d: d + n_steps_in].astype(bool, copy=False) for raw, d in zip(raw_spikes, delays)]
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
    builder = ENGINES[options.engine]
    batch = builder.max_batch(network, options.batch_size or builder.default_batch, inputs.shape[0])
    starts = range(0, inputs.shape[1], batch)
    results = [simulate_chunk(network, inputs[:, start: start + batch], options.engine, work_dir)
               for start in tqdm(starts, desc=f"lava {options.engine} {options.precision}", disable=not progress,
                                 unit="batch", leave=False)]
    if len(results) == 1:
        return results[0]
    return LavaResult([np.concatenate([r.layer_spikes[k] for r in results], axis=1)
                       for k in range(len(results[0].layer_spikes))],
                      np.concatenate([r.readout_v for r in results], axis=1))
