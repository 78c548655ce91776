"""Recorder process models (float; CPU; Loihi protocol)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hw_export.lava_procs.process import SpikeRecorder, VarRecorder


class _Recording:
    def _start(self, proc_params) -> None:
        self.num_steps = int(proc_params["num_steps"])
        self.path = str(proc_params["path"])
        self.buffer = None

    def _store(self, values: np.ndarray, dtype) -> None:
        if self.buffer is None:
            self.buffer = np.zeros((self.num_steps, *np.shape(values)), dtype=dtype)
        if self.time_step <= self.num_steps:
            self.buffer[self.time_step - 1] = values
        if self.time_step == self.num_steps:
            np.save(self.path, self.buffer)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "fixed_pt")
class PySpikeRecorderModel(PyLoihiProcessModel, _Recording):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._start(proc_params)

    def run_spk(self) -> None:
        self._store(self.a_in.recv() != 0, bool)


@implements(proc=VarRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "fixed_pt")
class PyVarRecorderModel(PyLoihiProcessModel, _Recording):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._start(proc_params)

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        # Runs after the spiking phase of this step, when the target Var is final.
        self._store(np.asarray(self.ref.read(), dtype=np.float64), np.float64)
