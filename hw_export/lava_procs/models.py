"""Process models of our Lava processes (CPU; Loihi protocol): recorders and the fast engine's network."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hw_export.lava_params import LavaNetwork
from hw_export.lava_procs.process import NetworkProcess, SpikeRecorder, VarRecorder
from hw_export.lava_procs.stepping import NetworkStepper, unpack_spikes


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


def bit_accurate_weights(network: LavaNetwork) -> LavaNetwork:
    """The weights as Lava's ``PySparseModelBitAcc`` uses them: sign mode from the matrix, clipped to 8 bits and
    truncated to 8 weight bits, by Lava's own functions. The quantizer's even mantissas (-256..254) pass
    unchanged; other integers (a netx file's, say) change exactly as in Lava's ``Sparse``."""
    from dataclasses import replace

    from scipy import sparse
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    def as_lava(weight):  # each Sparse process on its own matrix, as Lava's would (a recurrent one too)
        if weight is None:
            return None
        sign_mode = determine_sign_mode(weight)
        return sparse.csr_matrix(truncate_weights(clip_weights(weight, sign_mode, num_bits=8), sign_mode,
                                                  num_weight_bits=8))

    layers = [replace(layer, weight=as_lava(layer.weight), recurrent_weight=as_lava(layer.recurrent_weight))
              for layer in network.layers]
    return replace(network, layers=tuple(layers))


def limit_blas_threads() -> None:
    """One BLAS thread: a Lava run of the fast engine takes one core (``--lava-workers`` runs several)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own default
        return
    threadpool_limits(limits=1, user_api="blas")


class AbstractPyNetworkModel(PyLoihiProcessModel):
    """Steps every layer of the network for the whole batch (``stepping.NetworkStepper``) and records it.

    The precision is the network's own (``LavaNetwork.precision``): the
    ``floating_pt`` and ``fixed_pt`` models below differ only in their tag,
    so a run configuration selects the model that matches its network.
    """

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    readout_v: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        network = proc_params["network"]
        self.batch, self.n_inputs = int(proc_params["batch"]), network.n_inputs
        self.num_steps, self.record_dir = int(proc_params["num_steps"]), str(proc_params["record_dir"])
        if network.precision != self.precision:
            raise ValueError(f"the {self.precision} model was given a {network.precision} network")
        limit_blas_threads()
        if network.precision == "fixed":
            network = bit_accurate_weights(network)
        self.stepper = NetworkStepper(network, self.batch, str(proc_params["kernel"]))
        spiking = [layer.n_out for layer in network.layers if layer.spiking]
        # Spikes packed 8 to a byte along the neurons: [T, B, ceil(n_k / 8)] (np.unpackbits(..., count=n_k)).
        self.spikes = [np.zeros((self.num_steps, self.batch, -(-n // 8)), np.uint8) for n in spiking]
        self.voltage = np.zeros((self.num_steps, self.batch, network.layers[-1].n_out))  # [T, B, n_out]

    def run_spk(self) -> None:
        inputs = unpack_spikes(self.s_in.recv(), self.batch, self.n_inputs)
        spikes, readout_v = self.stepper.step(inputs)
        self.readout_v[:] = readout_v.reshape(-1)
        if self.time_step <= self.num_steps:
            for record, layer_spikes in zip(self.spikes, spikes):
                record[self.time_step - 1] = np.packbits(layer_spikes, axis=1)
            self.voltage[self.time_step - 1] = readout_v
        if self.time_step == self.num_steps:
            for index, record in enumerate(self.spikes):
                np.save(f"{self.record_dir}/layer{index}.npy", record)
            np.save(f"{self.record_dir}/layer{len(self.spikes)}.npy", self.voltage)


@implements(proc=NetworkProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyNetworkModelFloat(AbstractPyNetworkModel):
    """Lava's ``PyLifModelFloat`` and float ``Sparse`` arithmetic (``loihi_fixed.float_lif_step``)."""

    precision = "float"


@implements(proc=NetworkProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyNetworkModelFixed(AbstractPyNetworkModel):
    """Lava's bit-accurate ``PyLifModelBitAcc`` and ``PySparseModelBitAcc`` arithmetic (``loihi_fixed.lif_step``)."""

    precision = "fixed"
