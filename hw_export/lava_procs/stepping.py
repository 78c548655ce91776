"""The fast engine's arithmetic: every layer of a network stepped for a whole batch of samples at once.

No Lava here: the ProcessModels (``models.py``) call ``NetworkStepper.step``
once per Lava time step, and the arithmetic is tested and timed on its own.
A step takes the input spikes of ``B`` samples ``[B, n_inputs]`` and, layer by
layer, sums each neuron's synaptic input from the spikes of the layer below
in the same step, then updates the neurons with Lava's own rules, written once
in ``hw_export/loihi_fixed.py``: ``lif_step`` (bit-accurate Loihi, integers)
or ``float_lif_step`` (``PyLifModelFloat``'s operations in its order).

Each weight matrix is held once, transposed ``[n_in, n_out]`` so the fan-out
of an input is one contiguous row; samples are the first axis of every state
array. Two kernels compute the synaptic input, both exact (integer sums in
fixed point; float64 sums in float, whose order may differ from Lava's by the
last bit, hence the 1e-9 tolerance of the tests):

* ``events``: only the synapses of inputs that spiked, per sample: the spikes
  as a sparse ``[B, n_in]`` matrix times the sparse transposed weights, so the
  cost follows synaptic events (Lava's ``Sparse`` does the same per sample);
* ``dense``: BLAS on the inputs that spiked in any sample of the batch
  (``spikes[:, active] @ W^T[active]``); fixed point in float32 where every
  partial sum is an integer below ``2**24`` (so exact), float64 otherwise.

``auto`` (the default) picks per layer and step by an estimate of their costs
(``EVENT_COST_PER_MAC``); a layer sparser than ``DENSE_MIN_DENSITY`` or larger
than ``DENSE_MAX_BYTES`` as a dense matrix never gets a dense copy. The batch
is stepped in tiles of samples (``TILE_BYTES``) so each tile's state stays in
the processor's cache through all its layers.
"""

# No ``from __future__ import annotations``: Lava's compiler executes every module of this folder on its own
# (outside ``sys.modules``) when it looks for ProcessModels, and dataclasses cannot resolve string annotations there.
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from hw_export.errors import UserError
from hw_export.lava_params import LavaNetwork
from hw_export.loihi_fixed import float_lif_step, lif_step

KERNELS = ("auto", "events", "dense")
# One synaptic event through the sparse kernel costs about this many float64 multiply-adds of dense BLAS
# (1.5-6 ns against 0.01-0.05 ns of CPU time, measured on the demo MLP and the N-MNIST-shaped conv net; float32: twice).
EVENT_COST_PER_MAC = 128.0
DENSE_MIN_DENSITY = 0.05  # weight matrices sparser than this never pay for dense arithmetic
DENSE_MAX_BYTES = 256 * 2**20  # nor do those whose dense copy would exceed this
TILE_BYTES = 2**20  # samples per tile: about this many bytes of the widest layer's state (0.25-1 MB measured best)
FLOAT32_EXACT = 2**24  # every integer of smaller magnitude is exact in float32
WORD_BITS = 16  # input spikes per word on the RingBuffer's channel: exact in its float64 and its int32 alike


def words_per_sample(n_inputs: int) -> int:
    return -(-n_inputs // WORD_BITS)


def pack_spikes(inputs: np.ndarray) -> np.ndarray:
    """Input spikes ``[T, B, n]`` (0/1) as words ``[T, B, ceil(n / 16)]`` (uint16): bit ``i % 16`` of word
    ``i // 16`` is input ``i``. What the fast engine's ``RingBuffer`` sends: 1/16 of the bytes of one value
    per input, which would otherwise dominate a step of a small network."""
    n_steps, batch, n = inputs.shape
    packed = np.packbits(np.asarray(inputs, dtype=bool), axis=2, bitorder="little")
    padded = np.zeros((n_steps, batch, 2 * words_per_sample(n)), np.uint8)
    padded[:, :, :packed.shape[2]] = packed
    return padded.view("<u2")


def unpack_spikes(words: np.ndarray, batch: int, n_inputs: int) -> np.ndarray:
    """The words of one step ``[batch * ceil(n / 16)]`` (any numeric dtype) back to spikes ``[batch, n]`` (bool)."""
    as_bytes = np.ascontiguousarray(words.reshape(batch, -1).astype("<u2")).view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, count=n_inputs, bitorder="little").view(bool)


@dataclass(frozen=True, eq=False)
class SteppedLayer:
    """One layer prepared for the kernels: its weights held once, its neurons' constants."""

    weight_t: sparse.csr_matrix  # [n_in, n_out]: row j = the fan-out of input j (float64, or int64 mantissas)
    fan_out: np.ndarray  # [n_in] synapses per input (float64, for the cost estimate)
    dense_t: np.ndarray | None  # [n_in, n_out] the same weights dense, or None where never worth it
    du: float | int
    dv: float | int
    vth: float | int
    spiking: bool

    @property
    def n_out(self) -> int:
        return self.weight_t.shape[1]


def prepare_layer(weight: sparse.csr_matrix, du, dv, vth, spiking: bool, fixed: bool) -> SteppedLayer:
    """``weight`` ``[n_out, n_in]`` (Lava's orientation) as the kernels hold it."""
    weight_t = sparse.csr_matrix(weight.T, dtype=np.int64 if fixed else np.float64)
    weight_t.sum_duplicates()
    weight_t.sort_indices()
    n_in, n_out = weight_t.shape
    density = weight_t.nnz / max(1, n_in * n_out)
    dense_t = None
    if density >= DENSE_MIN_DENSITY and n_in * n_out * 8 <= DENSE_MAX_BYTES:
        exact32 = fixed and np.asarray(abs(weight).sum(axis=1)).max(initial=0) < FLOAT32_EXACT
        dense_t = weight_t.toarray().astype(np.float32 if exact32 else np.float64)
    fan_out = np.diff(weight_t.indptr).astype(np.float64)
    if fixed:
        du, dv, vth = int(du), int(dv), int(vth)
    return SteppedLayer(weight_t, fan_out, dense_t, du, dv, vth, spiking)


def events_input(pre: np.ndarray, layer: SteppedLayer) -> np.ndarray:
    """Synaptic input ``[b, n_out]`` from the synapses of the spikes in ``pre`` ``[b, n_in]`` (bool) only."""
    rows, cols = np.nonzero(pre)
    if cols.size == 0:
        return np.zeros((pre.shape[0], layer.n_out), layer.weight_t.dtype)
    indptr = np.zeros(pre.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=pre.shape[0]), out=indptr[1:])
    spikes = sparse.csr_matrix((np.ones(cols.size, layer.weight_t.dtype), cols, indptr), shape=pre.shape)
    return (spikes @ layer.weight_t).toarray()


def dense_input(pre: np.ndarray, layer: SteppedLayer, active: np.ndarray) -> np.ndarray:
    """Synaptic input ``[b, n_out]`` by BLAS over the inputs ``active`` (indices) that spiked in any sample."""
    dense = layer.dense_t
    if active.size * 2 > pre.shape[1]:  # most inputs active: the whole matrix, no copy of its rows
        product = pre.astype(dense.dtype) @ dense
    else:
        product = pre[:, active].astype(dense.dtype) @ dense[active]
    return product if dense.dtype == layer.weight_t.dtype else product.astype(layer.weight_t.dtype)


def synaptic_input(pre: np.ndarray, layer: SteppedLayer, kernel: str) -> np.ndarray:
    """Each neuron's summed synaptic input ``[b, n_out]`` for presynaptic spikes ``pre`` ``[b, n_in]`` (bool)."""
    if kernel == "events" or layer.dense_t is None:
        return events_input(pre, layer)
    spiking_inputs = pre.any(axis=0)
    active = np.flatnonzero(spiking_inputs)
    if kernel == "auto":
        events = float(pre.sum(axis=0, dtype=np.float64) @ layer.fan_out)
        per_mac = EVENT_COST_PER_MAC * (2 if layer.dense_t.dtype == np.float32 else 1)
        if events * per_mac < pre.shape[0] * active.size * layer.n_out:
            return events_input(pre, layer)
    return dense_input(pre, layer, active)


class NetworkStepper:
    """The state of ``B`` samples in every layer of a ``LavaNetwork``, advanced one step at a time.

    ``step(inputs [B, n_inputs] bool)`` returns the spikes of every spiking
    layer ``[B, n_l]`` (bool) and the readout's voltage ``[B, n_out]`` (float64;
    fixed point: Lava's integer voltage), all of the same step: no layer
    delays its output (``layer_delay = 0`` in ``hw_export/lava_sim.py``).
    The state ``u``, ``v`` is held per tile of samples (``[tile, n_l]`` each),
    so a step replaces it without copying it back.
    """

    def __init__(self, network: LavaNetwork, batch: int, kernel: str = "auto") -> None:
        if kernel not in KERNELS:
            raise UserError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}; pick one of them "
                            "(auto chooses per layer and step)")
        self.fixed = network.precision == "fixed"
        self.kernel = kernel
        self.layers = [prepare_layer(layer.weight, layer.du, layer.dv, layer.vth, layer.spiking, self.fixed)
                       for layer in network.layers]
        self.loops = [None if layer.recurrent_weight is None else  # [layer] the recurrent synapses, or None
                      prepare_layer(layer.recurrent_weight, layer.du, layer.dv, layer.vth, True, self.fixed)
                      for layer in network.layers]
        widest = max(layer.n_out for layer in self.layers)
        self.tile = max(1, min(batch, TILE_BYTES // (8 * widest)))
        self.tiles = [slice(start, min(start + self.tile, batch)) for start in range(0, batch, self.tile)]
        dtype = np.int64 if self.fixed else np.float64
        # [tile][layer] -> [tile_size, n_l]
        self.u = [[np.zeros((rows.stop - rows.start, layer.n_out), dtype) for layer in self.layers]
                  for rows in self.tiles]
        self.v = [[np.zeros_like(u) for u in tile] for tile in self.u]
        self.fired = [[np.zeros(u.shape, bool) for u in tile] for tile in self.u]  # the previous step's spikes

    def step(self, inputs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        batch = inputs.shape[0]
        spikes = [np.empty((batch, layer.n_out), bool) for layer in self.layers if layer.spiking]
        readout_v = np.empty((batch, self.layers[-1].n_out))
        for tile, rows in enumerate(self.tiles):
            pre = inputs[rows]
            for index, layer in enumerate(self.layers):
                pre = self._layer_step(tile, index, layer, pre)
                if layer.spiking:
                    spikes[index][rows] = pre
            readout_v[rows] = self.v[tile][-1]
        return spikes, readout_v

    def _layer_step(self, tile: int, index: int, layer: SteppedLayer, pre: np.ndarray) -> np.ndarray:
        a_in = synaptic_input(pre, layer, self.kernel)
        if self.loops[index] is not None:  # its own spikes of the step before (Norse's LIFRecurrentCell)
            a_in = a_in + synaptic_input(self.fired[tile][index], self.loops[index], self.kernel)
        rule = lif_step if self.fixed else float_lif_step
        u, v, fired = rule(self.u[tile][index], self.v[tile][index], a_in, layer.du, layer.dv, layer.vth)
        self.u[tile][index], self.v[tile][index], self.fired[tile][index] = u, v, fired
        return fired
