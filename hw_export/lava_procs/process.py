"""Recorder processes: declare ports and parameters (see models.py for behaviour)."""

from __future__ import annotations

import typing as ty

from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess


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
