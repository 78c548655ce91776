"""Our Lava processes: recorders and the fast engine's network; ports, Vars and parameters (behaviour: models.py)."""

from __future__ import annotations

import typing as ty

from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from hw_export.lava_procs.stepping import words_per_sample


class SpikeRecorder(AbstractProcess):
    """Records the spikes arriving at ``a_in`` for ``num_steps`` steps.

    At step ``num_steps`` it writes a bool array ``[num_steps, *shape]`` to ``path``.
    """

    def __init__(self, *, shape: ty.Tuple[int, ...], num_steps: int, path: str) -> None:
        super().__init__(shape=shape, num_steps=num_steps, path=path)
        self.a_in = InPort(shape=shape)


class VarRecorder(AbstractProcess):
    """Reads a Var through ``ref`` after every step for ``num_steps`` steps.

    Connect with ``recorder.ref.connect_var(var)``; ``shape`` is the Var's
    shape. At step ``num_steps`` it writes a float64 array
    ``[num_steps, *shape]`` to ``path``.
    """

    def __init__(self, *, shape: ty.Tuple[int, ...], num_steps: int, path: str) -> None:
        super().__init__(shape=shape, num_steps=num_steps, path=path)
        self.ref = RefPort(shape=shape)


class NetworkProcess(AbstractProcess):
    """A whole network (every layer of a ``LavaNetwork``) for ``batch`` samples, as one Lava process.

    ``s_in`` takes the input spikes of all samples, sample-major, packed 16
    to a word (``batch * ceil(n_inputs / 16)`` values: ``stepping.pack_spikes``,
    as ``lava_sim`` fills the ``RingBuffer``);
    ``readout_v`` holds the readout's voltage ``[batch * n_out]`` after each
    step. Every layer is stepped in the same time step (no per-layer delay);
    each weight matrix is held once for all samples. At step ``num_steps`` it
    writes ``record_dir/layer<k>.npy``: the spikes of each spiking layer,
    packed 8 to a byte along the neurons, uint8 ``[num_steps, batch,
    ceil(n_k / 8)]``, and float64 ``[num_steps, batch, n_out]`` (the readout
    voltage) for the last layer, as the recorders do. ``kernel``: the
    synaptic-input kernel of ``hw_export/lava_procs/stepping.py``.
    """

    def __init__(self, *, network, batch: int, num_steps: int, record_dir: str, kernel: str = "auto") -> None:
        super().__init__(network=network, batch=batch, num_steps=num_steps, record_dir=record_dir, kernel=kernel)
        self.s_in = InPort(shape=(batch * words_per_sample(network.n_inputs),))
        self.readout_v = Var(shape=(batch * network.layers[-1].n_out,), init=0)
