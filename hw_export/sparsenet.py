"""``SparseNet``: a pruned spiking network as plain arrays, free of any framework.

This is the hand-over point between training (PyTorch/Norse) and hardware
(Lava, Loihi, NIR). Each layer is a synaptic connection plus the population it
feeds; weights are CSR in Norse units, and ``kept`` says which neurons of the
trained model survive. Dead hidden neurons (no remaining incoming or no
remaining outgoing synapse) are physically gone: their row and column are
removed.

This module needs only numpy and scipy: reading a trained Norse model into a
SparseNet is ``hw_export.norse.export_model``'s job (docs/DESIGN.md, section 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import sparse

from hw_export.errors import UserError


class SparseNetError(UserError):
    """A SparseNet (or the model it was built from) is malformed; the message says how."""


class NetworkCutError(SparseNetError):
    """Pruning left a layer with no neuron on a path from the input to the readout."""


NEURON_KINDS = ("lif", "li")


@dataclass(frozen=True)
class NeuronParams:
    """Current-based leaky integrate-and-fire population, one parameter set per layer.

    Per step (Norse's ``lif_feed_forward_step``; ``x`` is the synaptic input)::

        i_new = i + x
        v'    = v + dv * (v_leak - v + i_new)          dv = dt_s * tau_mem_inv_per_s
        i'    = i_new * (1 - du)                       du = dt_s * tau_syn_inv_per_s
        z     = v' > v_th ;  v' <- v_reset where z     (kind "lif" only)

    Kind ``"li"`` is the non-spiking leaky-integrator readout (Norse
    ``LICell``): the same equations without threshold. ``du`` and ``dv`` are
    stored as Norse computes them (a float32 product), because an exact
    spike-for-spike match with Lava depends on the very same decay factors.
    """

    kind: str
    tau_syn_inv_per_s: float  # 1/s
    tau_mem_inv_per_s: float  # 1/s
    v_th: float  # voltage units; +inf for "li"
    v_leak: float
    v_reset: float
    dt_s: float  # seconds per step
    du: float  # dimensionless current decay per step
    dv: float  # dimensionless voltage decay per step

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise SparseNetError(f"neuron kind must be one of {NEURON_KINDS}, got {self.kind!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "kind":
                continue
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise SparseNetError(f"neuron parameter {f.name} must be a number, got {value!r}")
            if f.name != "v_th" and not math.isfinite(value):
                raise SparseNetError(f"neuron parameter {f.name} must be finite, got {value!r}")
        if self.kind == "lif" and not math.isfinite(self.v_th):
            raise SparseNetError("a LIF population needs a finite v_th")
        if not (0.0 < self.du <= 1.0 and 0.0 < self.dv <= 1.0):
            raise SparseNetError(f"du and dv must be in (0, 1], got du={self.du}, dv={self.dv}")
        if self.dt_s <= 0 or self.tau_syn_inv_per_s <= 0 or self.tau_mem_inv_per_s <= 0:
            raise SparseNetError("dt_s and the inverse time constants must be positive")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "NeuronParams":
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise SparseNetError(f"neuron parameters missing: {', '.join(missing)}")
        return cls(**{n: (str(data[n]) if n == "kind" else float(data[n])) for n in names})


@dataclass(frozen=True, eq=False)
class SparseLayer:
    """One synaptic connection and the population it feeds.

    ``weight``: CSR ``[n_out, n_in]`` in Norse units (current added per
    presynaptic spike); only stored entries are synapses. There is no bias:
    a Norse bias enters the synaptic current, which Lava's ``bias_mant`` (added
    to the voltage) cannot reproduce, so the exporter refuses one
    (docs/DESIGN.md, section 3).
    ``kept``: ``[n_out]`` indices of these neurons in the trained model's layer
    of ``n_original`` neurons (sorted, unique).
    ``recurrent_weight``: CSR ``[n_out, n_out]`` from this population's own
    spikes back into it (Norse ``LIFRecurrentCell``), or None. Row ``i``,
    column ``j``: current added to neuron ``i`` per spike of neuron ``j`` one
    step earlier, so a layer's input at step ``t`` is
    ``weight · s_pre[t] + recurrent_weight · s_own[t - 1]`` (``s_own[-1] = 0``).
    """

    name: str
    weight: sparse.csr_matrix
    neuron: NeuronParams
    kept: np.ndarray
    n_original: int
    fixed_point_scale: float | None = None  # K of Loihi-exact training (hw_export/norse/loihi.py); None: quantize chooses
    recurrent_weight: sparse.csr_matrix | None = None  # [n_out, n_out] from the previous step's own spikes

    def __post_init__(self) -> None:
        if not sparse.isspmatrix_csr(self.weight):
            raise SparseNetError(f"layer {self.name}: weight must be a scipy CSR matrix")
        n_out, _ = self.weight.shape
        if n_out < 1:
            raise SparseNetError(f"layer {self.name}: no neurons left")
        if not np.all(np.isfinite(self.weight.data)):
            raise SparseNetError(f"layer {self.name}: weight has NaN or Inf")
        if self.kept.shape != (n_out,):
            raise SparseNetError(f"layer {self.name}: kept has shape {self.kept.shape}, expected ({n_out},)")
        if self.recurrent_weight is not None:
            self._check_recurrent(n_out)
        if self.fixed_point_scale is not None and not (self.fixed_point_scale > 0 and math.isfinite(self.fixed_point_scale)):
            raise SparseNetError(f"layer {self.name}: fixed_point_scale must be a positive number")
        if n_out and (self.kept.min() < 0 or self.kept.max() >= self.n_original
                      or np.any(np.diff(self.kept) <= 0)):
            raise SparseNetError(f"layer {self.name}: kept must be sorted unique indices below {self.n_original}")

    def _check_recurrent(self, n_out: int) -> None:
        if not sparse.isspmatrix_csr(self.recurrent_weight):
            raise SparseNetError(f"layer {self.name}: recurrent_weight must be a scipy CSR matrix")
        if self.recurrent_weight.shape != (n_out, n_out):
            raise SparseNetError(f"layer {self.name}: recurrent_weight has shape {self.recurrent_weight.shape}, "
                                 f"expected ({n_out}, {n_out})")
        if not np.all(np.isfinite(self.recurrent_weight.data)):
            raise SparseNetError(f"layer {self.name}: recurrent_weight has NaN or Inf")
        if self.neuron.kind != "lif":
            raise SparseNetError(f"layer {self.name}: only a spiking (lif) population can feed itself back")

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_synapses(self) -> int:
        """Synapses into this population: feed-forward and recurrent."""
        return int(self.weight.nnz) + self.n_recurrent_synapses

    @property
    def n_recurrent_synapses(self) -> int:
        return 0 if self.recurrent_weight is None else int(self.recurrent_weight.nnz)

    def fan_out(self) -> np.ndarray:
        """Synapses leaving each presynaptic neuron into this layer: ``[n_in]``."""
        return np.bincount(self.weight.indices, minlength=self.n_in)


@dataclass(frozen=True, eq=False)
class SparseNet:
    """A spiking network: input spikes -> layers[0] -> ... -> readout, a hidden layer possibly feeding itself
    back (``SparseLayer.recurrent_weight``, one step later).

    ``input_shape``: shape of one input sample per step (flattened to
    ``n_inputs`` in C order). Every layer but the last is a LIF population;
    the last is the ``li`` readout.
    """

    input_shape: tuple[int, ...]
    layers: tuple[SparseLayer, ...]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers:
            raise SparseNetError("a SparseNet needs at least one layer")
        n_pre = self.n_inputs
        for layer in self.layers:
            if layer.n_in != n_pre:
                raise SparseNetError(f"layer {layer.name}: expects {layer.n_in} inputs but receives {n_pre}")
            n_pre = layer.n_out
        kinds = [layer.neuron.kind for layer in self.layers]
        if kinds[-1] != "li" or any(k != "lif" for k in kinds[:-1]):
            raise SparseNetError(f"expected LIF layers then one LI readout, got {kinds}")

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_synapses(self) -> int:
        return sum(layer.n_synapses for layer in self.layers)

    @property
    def n_neurons(self) -> int:
        """Neurons in all populations (hidden and readout), inputs excluded."""
        return sum(layer.n_out for layer in self.layers)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def is_recurrent(self) -> bool:
        return any(layer.recurrent_weight is not None for layer in self.layers)


def remove_dead_neurons(weights: list[sparse.csr_matrix], kept: list[np.ndarray],
                        recurrent: list[sparse.csr_matrix | None] | None = None):
    """Drop hidden neurons that no input can reach or that reach no readout, to a fixed point.

    ``weights[l]``: CSR ``[n_l, n_{l-1}]``; ``kept[l]``: original indices of the
    ``n_l`` neurons; ``recurrent[l]``: CSR ``[n_l, n_l]`` or None (feed-forward).
    A neuron is reached if it has an incoming synapse from the previous layer
    or from a reached neuron of its own layer (an autapse alone cannot start
    it), and reaches the readout if it has a synapse into the next layer or to
    a neuron of its own layer that does. A removed neuron takes its row, its
    column of the next layer and its row and column of the recurrent matrix.
    The last layer (readout) is never reduced. Removing a neuron can orphan
    others, hence the loop. Returns ``(weights, kept)``, or with
    ``recurrent`` given, ``(weights, kept, recurrent)``.
    """
    weights, kept = list(weights), list(kept)
    loops = list(recurrent) if recurrent is not None else [None] * len(weights)
    changed = True
    while changed:
        changed = False
        for l in range(len(weights) - 1):
            # Synapses between two different neurons: an autapse neither starts a neuron nor passes spikes on.
            others = None if loops[l] is None else ((sparse.triu(loops[l], 1) + sparse.tril(loops[l], -1)) != 0)
            alive = (_closure(np.diff(weights[l].indptr) > 0, others)
                     & _closure(np.bincount(weights[l + 1].indices, minlength=weights[l].shape[0]) > 0,
                                None if others is None else others.T.tocsr()))
            if not alive.all():
                changed = True
                weights[l] = weights[l][alive]
                weights[l + 1] = weights[l + 1][:, alive].tocsr()
                kept[l] = kept[l][alive]
                if loops[l] is not None:
                    loops[l] = loops[l][alive][:, alive].tocsr()
    return (weights, kept) if recurrent is None else (weights, kept, loops)


def _closure(start: np.ndarray, edges: sparse.csr_matrix | None) -> np.ndarray:
    """``start`` (bool ``[n]``) and every neuron that ``edges`` (``[n, n]``, row ``i`` receives from column
    ``j``) leads to from it, in any number of hops."""
    reached = start.copy()
    if edges is None:
        return reached
    while True:
        grown = reached | (edges.astype(np.int64) @ reached.astype(np.int64) > 0)
        if (grown == reached).all():
            return reached
        reached = grown


def conv2d_matrix(weight: np.ndarray, mask: np.ndarray, in_shape: tuple[int, int, int], stride: tuple[int, int],
                  padding: tuple[int, int]) -> tuple[sparse.csr_matrix, tuple[int, int, int]]:
    """Unroll a 2-D convolution (no bias, no groups, no dilation) into a sparse matrix.

    ``weight``/``mask``: ``[C_out, C_in, kh, kw]``; ``in_shape``: ``(C_in, H, W)``.
    Rows and columns are C-order flattened ``(C, H, W)`` positions, as
    ``nn.Flatten`` orders them. Only kept taps (mask != 0) become synapses.
    """
    c_out, c_in, kh, kw = weight.shape
    _, height, width = in_shape
    h_out = (height + 2 * padding[0] - kh) // stride[0] + 1
    w_out = (width + 2 * padding[1] - kw) // stride[1] + 1
    tap_co, tap_ci, tap_i, tap_j = np.nonzero(mask)  # [n_taps]
    out_h, out_w = np.meshgrid(np.arange(h_out), np.arange(w_out), indexing="ij")
    out_h, out_w = out_h.ravel(), out_w.ravel()  # [P]
    in_h = out_h[None, :] * stride[0] - padding[0] + tap_i[:, None]  # [n_taps, P]
    in_w = out_w[None, :] * stride[1] - padding[1] + tap_j[:, None]
    inside = (in_h >= 0) & (in_h < height) & (in_w >= 0) & (in_w < width)
    rows = (tap_co[:, None] * h_out * w_out + out_h[None, :] * w_out + out_w[None, :])[inside]
    cols = (tap_ci[:, None] * height * width + in_h * width + in_w)[inside]
    values = np.broadcast_to(weight[tap_co, tap_ci, tap_i, tap_j][:, None], inside.shape)[inside]
    matrix = sparse.csr_matrix((values, (rows, cols)), shape=(c_out * h_out * w_out, c_in * height * width))
    return matrix, (c_out, h_out, w_out)


def avgpool2d_matrix(in_shape: tuple[int, int, int], kernel: tuple[int, int],
                     stride: tuple[int, int]) -> tuple[sparse.csr_matrix, tuple[int, int, int]]:
    """Average pooling (no padding) as a sparse matrix: each output is the mean of its window."""
    channels, height, width = in_shape
    ones = np.ones((channels, 1, *kernel)) / (kernel[0] * kernel[1])
    # Pooling is a depthwise convolution with constant weights: unroll it channel by channel.
    blocks = [conv2d_matrix(ones[c:c + 1], ones[c:c + 1] != 0, (1, height, width), stride, (0, 0))[0]
              for c in range(channels)]
    h_out = (height - kernel[0]) // stride[0] + 1
    w_out = (width - kernel[1]) // stride[1] + 1
    return sparse.block_diag(blocks, format="csr"), (channels, h_out, w_out)
