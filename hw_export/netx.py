"""netx HDF5: the layout lava-dl's ``netx.hdf5.Network`` loads (docs/netx_hdf5.md).

Writer: ``write_netx`` turns a SparseNet into Loihi fixed point and writes
``layer/0`` (input: its shape only, so spikes sent to netx's ``net.inp`` reach
the first synapses, as slayer's exports of spike-input networks do) ..
``layer/L`` (the SparseNet's layers as ``dense``; a recurrent layer as
``dense_rec``, its recurrent matrix in ``weight_rec``, which lava-dl 0.6
builds as a ``RecurrentDense`` block).

Reader: ``read_netx`` + ``simulate_netx`` rebuild Lava fixed-point parameters
from the file alone, following the layout as netx interprets it (8-bit integer
weights, ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``), and run them
with the one Lava builder (``hw_export/lava_sim.py``). It shares no code with
the writer's quantizer, so a round trip checks the file, not our own
assumptions twice. It is the fast check; lava-dl's own reader is the oracle
(``tools/netx_oracle.py``, run by ``tests/hw_export/test_netx_lavadl.py``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from scipy import sparse

from hw_export.files import MALFORMED_HDF5, ArtifactError, atomic_write, first_line
from hw_export.lava_params import LavaLayer, LavaNetwork, lava_network
from hw_export.sparsenet import SparseNet


def _string(group, name: str, value: str) -> None:
    group.create_dataset(name, (1,), f"S{max(1, len(value))}", [value.encode("ascii")])


def _neuron(group, params: dict) -> None:
    neuron = group.create_group("neuron")
    _string(neuron, "type", params["type"])
    for key in ("iDecay", "vDecay", "vThMant", "refDelay"):
        neuron.create_dataset(key, data=np.int64(params[key]))
    neuron.create_dataset("gradedSpike", data=np.bool_(params["gradedSpike"]))


def write_netx(net: SparseNet, path: str | os.PathLike) -> None:
    """Write ``net`` quantized for Loihi as a netx HDF5 file (atomically).

    Pruned synapses are zeros of the dense weight matrices; removed neurons
    are absent. Weights are written as the integers Loihi adds to the current
    (mantissa x 2^exponent, exponent >= 0).
    """
    import h5py

    fixed = lava_network(net, "fixed").layers

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            layers = f.create_group("layer")
            first = layers.create_group("0")
            _string(first, "type", "input")
            # No neuron group: netx then builds no Input block (whose only input is its
            # bias) and net.inp is the first dense layer's synapses.
            first.create_dataset("shape", data=np.array([net.n_inputs], dtype=np.int64))
            for index, (layer, q) in enumerate(zip(net.layers, fixed), start=1):
                g = layers.create_group(str(index))
                _string(g, "type", "dense" if q.recurrent_weight is None else "dense_rec")
                g.create_dataset("shape", data=np.array([layer.n_out], dtype=np.int64))
                g.create_dataset("weight", data=q.weight.toarray().astype(np.int64))
                if q.recurrent_weight is not None:  # the same K as ``weight``: lava-dl gives both one exponent
                    g.create_dataset("weight_rec", data=q.recurrent_weight.toarray().astype(np.int64))
                _neuron(g, {"type": "CUBA", "iDecay": q.du + 1, "vDecay": q.dv, "vThMant": q.vth,
                            "refDelay": 1, "gradedSpike": False})

    atomic_write(path, write, suffix=".h5")


# --------------------------------------------------------------------------- reader


class NetxLayer(NamedTuple):
    weight: np.ndarray  # int64 [n_out, n_in], as Loihi adds it to the current
    i_decay: int
    v_decay: int
    v_th_mant: int
    weight_rec: np.ndarray | None = None  # int64 [n_out, n_out] of a ``dense_rec`` layer, from its own spikes


class NetxNetwork(NamedTuple):
    n_inputs: int  # spikes sent to net.inp reach layers[0]'s synapses
    layers: list[NetxLayer]


def _scalar(path, group, key):
    if key not in group:
        raise ArtifactError(path, f"{group.name}/{key} is missing")
    value = group[key][()]
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ArtifactError(path, f"{group.name}/{key} must hold one value")
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else value


def read_netx(path: str | os.PathLike) -> NetxNetwork:
    """Read a netx file with a spike input layer followed by dense CUBA layers; validate it.

    Any file that is not such a network raises ``ArtifactError`` (one line), never another exception.
    """
    import h5py

    if not os.path.isfile(path):
        raise ArtifactError(path, "no such file")
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise ArtifactError(path, f"not a readable HDF5 file ({exc.__class__.__name__})") from None
    try:
        with f:
            n_inputs, layers = _read_netx_layers(path, f)
    except ArtifactError:
        raise
    except MALFORMED_HDF5 as exc:  # h5py's errors, and file values of another kind, while reading the file only
        raise ArtifactError(path, f"incomplete or malformed netx file ({first_line(exc)})") from None
    # Built outside that catch: anything raised from here on is a bug, with its traceback.
    return NetxNetwork(n_inputs, [NetxLayer(weight, *neuron, weight_rec) for weight, neuron, weight_rec in layers])


def _read_netx_layers(path, f) -> tuple[int, list[tuple[np.ndarray, tuple[int, int, int], np.ndarray | None]]]:
    """The input count and each layer's (weight, (iDecay, vDecay, vThMant), weight_rec or None) of an open netx
    file; raises ArtifactError, or h5py's errors (and a conversion's) for the caller to word."""
    if "layer" not in f or not len(f["layer"]):
        raise ArtifactError(path, "group /layer is missing or empty")
    groups = [f["layer"][str(i)] for i in range(len(f["layer"])) if str(i) in f["layer"]]
    if len(groups) != len(f["layer"]):
        raise ArtifactError(path, "/layer must hold groups 0..n-1")
    first = groups[0]
    if _scalar(path, first, "type") != "input":
        raise ArtifactError(path, "layer/0 must be the input layer")
    if "neuron" in first:
        raise ArtifactError(path, "layer/0 has neurons (inputs through their bias); this reader takes spike "
                                  "inputs, which go straight to layer/1")
    n_inputs = int(np.prod(first["shape"][()]))
    neuron_keys = ("iDecay", "vDecay", "vThMant")
    layers, n_pre = [], n_inputs
    for g in groups[1:]:
        kind = _scalar(path, g, "type")
        if kind not in ("dense", "dense_rec"):
            raise ArtifactError(path, f"{g.name}: layer type {kind!r} is not supported by this reader")
        if _scalar(path, g["neuron"], "type") not in ("CUBA", "LOIHI"):
            raise ArtifactError(path, f"{g.name}: only CUBA neurons are supported")
        n_out = int(np.prod(g["shape"][()]))
        weight = _integer_matrix(path, g, "weight", (n_out, n_pre))
        weight_rec = _integer_matrix(path, g, "weight_rec", (n_out, n_out)) if kind == "dense_rec" else None
        layers.append((weight, tuple(int(_scalar(path, g["neuron"], k)) for k in neuron_keys), weight_rec))
        n_pre = n_out
    return n_inputs, layers


def _integer_matrix(path, group, key: str, shape: tuple[int, int]) -> np.ndarray:
    if key not in group:
        raise ArtifactError(path, f"{group.name}/{key} is missing")
    matrix = group[key][()]
    if matrix.shape != shape or matrix.dtype.kind not in "iu":
        raise ArtifactError(path, f"{group.name}/{key} must be integer [{shape[0]}, {shape[1]}], got "
                                  f"{matrix.dtype} {matrix.shape}")
    return matrix.astype(np.int64)


def netx_lava_network(network: NetxNetwork, path: str | os.PathLike = "netx") -> LavaNetwork:
    """A netx network as Lava fixed-point parameters, read as netx reads its layout.

    ``du = iDecay - 1`` (Lava adds 1 back), ``dv = vDecay``, ``vth = vThMant``;
    integer weights must be 8-bit mantissas (even, -256..254, or any 8-bit
    value of one sign): lava-dl clips a file's weights to 8 bits, so wider
    integers would not run as written. A ``dense_rec`` layer's two matrices
    are judged together, as lava-dl gives them one sign mode and exponent.
    """
    layers = []
    for index, layer in enumerate(network.layers):
        w = layer.weight if layer.weight_rec is None else np.hstack([layer.weight, layer.weight_rec])
        mixed = w.min(initial=0) < 0 < w.max(initial=0)
        fits = (w.min(initial=0) >= -256 and w.max(initial=0) <= (254 if mixed else 255)
                and (not mixed or bool(np.all(w % 2 == 0))))
        if not fits:
            raise ArtifactError(path, f"layer/{index + 1}/weight holds values beyond 8-bit mantissas "
                                      f"({w.min()}..{w.max()}); this reader takes weight exponent 0")
        recurrent = None if layer.weight_rec is None else sparse.csr_matrix(layer.weight_rec.astype(np.int32))
        layers.append(LavaLayer(f"layer{index + 1}", sparse.csr_matrix(layer.weight.astype(np.int32)),
                                layer.i_decay - 1, layer.v_decay, layer.v_th_mant, index < len(network.layers) - 1,
                                1.0, recurrent))
    return LavaNetwork("fixed", network.n_inputs, tuple(layers))


def simulate_netx(network: NetxNetwork, inputs: np.ndarray, engine: str = "processes") -> np.ndarray:
    """Run a netx network in Lava's bit-accurate models (the one Lava builder); the last layer's voltage.

    ``inputs``: ``[T, B, n_inputs]`` spikes. Returns ``[T, B, n_out]`` integer
    voltages of the last layer, aligned with the input steps.
    """
    from hw_export.lava_sim import simulate_chunk

    return simulate_chunk(netx_lava_network(network), inputs, engine).readout_v
