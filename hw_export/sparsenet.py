"""``SparseNet``: a pruned spiking network as plain arrays, free of any framework.

This is the hand-over point between training (PyTorch/Norse) and hardware
(Lava, Loihi, NIR). Each layer is a synaptic connection plus the population it
feeds; weights are CSR in Norse units, and ``kept`` says which neurons of the
trained model survive. Dead hidden neurons (no remaining incoming or no
remaining outgoing synapse) are physically gone: their row and column are
removed.

This module imports torch/norse only inside ``from_norse``, and never
imports ``dpap_neuro``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
from scipy import sparse


class SparseNetError(ValueError):
    """A SparseNet (or what it was built from) is malformed; the message says how."""


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
    presynaptic spike); only stored entries are synapses. ``bias``: ``[n_out]``.
    ``kept``: ``[n_out]`` indices of these neurons in the trained model's layer
    of ``n_original`` neurons (sorted, unique).
    """

    name: str
    weight: sparse.csr_matrix
    bias: np.ndarray
    neuron: NeuronParams
    kept: np.ndarray
    n_original: int

    def __post_init__(self) -> None:
        if not sparse.isspmatrix_csr(self.weight):
            raise SparseNetError(f"layer {self.name}: weight must be a scipy CSR matrix")
        n_out, _ = self.weight.shape
        if n_out < 1:
            raise SparseNetError(f"layer {self.name}: no neurons left")
        if not np.all(np.isfinite(self.weight.data)):
            raise SparseNetError(f"layer {self.name}: weight has NaN or Inf")
        if self.bias.shape != (n_out,) or not np.all(np.isfinite(self.bias)):
            raise SparseNetError(f"layer {self.name}: bias must be finite with shape ({n_out},)")
        if self.kept.shape != (n_out,):
            raise SparseNetError(f"layer {self.name}: kept has shape {self.kept.shape}, expected ({n_out},)")
        if n_out and (self.kept.min() < 0 or self.kept.max() >= self.n_original
                      or np.any(np.diff(self.kept) <= 0)):
            raise SparseNetError(f"layer {self.name}: kept must be sorted unique indices below {self.n_original}")

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_synapses(self) -> int:
        return int(self.weight.nnz)

    def fan_out(self) -> np.ndarray:
        """Synapses leaving each presynaptic neuron into this layer: ``[n_in]``."""
        return np.bincount(self.weight.indices, minlength=self.n_in)


@dataclass(frozen=True, eq=False)
class SparseNet:
    """A feed-forward spiking network: input spikes -> layers[0] -> ... -> readout.

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


def remove_dead_neurons(weights: list[sparse.csr_matrix], kept: list[np.ndarray]):
    """Drop hidden neurons with no incoming or no outgoing synapse, to a fixed point.

    ``weights[l]``: CSR ``[n_l, n_{l-1}]``; ``kept[l]``: original indices of the
    ``n_l`` neurons. The last layer (readout) is never reduced. Removing a
    neuron can orphan others, hence the loop.
    """
    weights, kept = list(weights), list(kept)
    changed = True
    while changed:
        changed = False
        for l in range(len(weights) - 1):
            has_in = np.diff(weights[l].indptr) > 0
            has_out = np.bincount(weights[l + 1].indices, minlength=weights[l].shape[0]) > 0
            alive = has_in & has_out
            if not alive.all():
                changed = True
                weights[l] = weights[l][alive]
                weights[l + 1] = weights[l + 1][:, alive].tocsr()
                kept[l] = kept[l][alive]
    return weights, kept


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


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _masked(module, name: str = "weight"):
    """(effective weight, mask) of a module, masks of torch.nn.utils.prune included."""
    import torch

    with torch.no_grad():
        if hasattr(module, f"{name}_mask"):
            mask = getattr(module, f"{name}_mask").cpu().numpy() != 0
            weight = (getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")).double().cpu().numpy()
        else:
            weight = getattr(module, name).double().cpu().numpy()
            mask = np.ones_like(weight, dtype=bool)
    return weight, mask


def linear_operator(module, in_shape: tuple[int, ...]) -> tuple[sparse.csr_matrix, tuple[int, ...]]:
    """A synaptic or reshaping module as a sparse matrix on C-order flattened activity."""
    import torch
    from torch import nn

    n_in = int(np.prod(in_shape))
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor) and bool(torch.any(bias != 0)):
        raise SparseNetError(
            f"{type(module).__name__} has a bias: a Norse bias enters the synaptic current, which Lava's "
            "bias_mant (added to v) cannot reproduce; train without bias (DESIGN.md section 3)")
    if isinstance(module, (nn.Flatten, nn.Identity)):
        return sparse.identity(n_in, format="csr"), (n_in,)
    if isinstance(module, nn.Linear):
        if module.in_features != n_in:
            raise SparseNetError(f"Linear expects {module.in_features} inputs, receives {n_in}")
        weight, mask = _masked(module)
        rows, cols = np.nonzero(mask)
        return sparse.csr_matrix((weight[rows, cols], (rows, cols)), shape=weight.shape), (weight.shape[0],)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or _pair(module.dilation) != (1, 1) or not isinstance(module.padding, tuple):
            raise SparseNetError("only Conv2d with groups=1, dilation=1 and numeric padding can be exported")
        if len(in_shape) != 3 or in_shape[0] != module.in_channels:
            raise SparseNetError(f"Conv2d expects ({module.in_channels}, H, W) inputs, receives {in_shape}")
        weight, mask = _masked(module)
        return conv2d_matrix(weight, mask, in_shape, _pair(module.stride), _pair(module.padding))
    if isinstance(module, nn.AvgPool2d):
        if _pair(module.padding) != (0, 0) or module.ceil_mode:
            raise SparseNetError("only AvgPool2d without padding or ceil_mode can be exported")
        kernel = _pair(module.kernel_size)
        return avgpool2d_matrix(in_shape, kernel, _pair(module.stride if module.stride else kernel))
    raise SparseNetError(f"cannot export a {type(module).__name__} layer")


def neuron_params_of(cell) -> NeuronParams:
    """The parameters of a Norse ``LIFCell`` (kind "lif") or ``LICell`` (kind "li")."""
    import torch
    from norse.torch import LIFCell

    p, dt = cell.p, cell.dt
    spiking = isinstance(cell, LIFCell)
    return NeuronParams(
        kind="lif" if spiking else "li",
        tau_syn_inv_per_s=float(p.tau_syn_inv), tau_mem_inv_per_s=float(p.tau_mem_inv),
        v_th=float(p.v_th) if spiking else math.inf, v_leak=float(p.v_leak),
        v_reset=float(p.v_reset) if spiking else 0.0, dt_s=float(dt),
        # Exactly the factors Norse multiplies by (a float32 tensor product).
        du=float(dt * torch.as_tensor(p.tau_syn_inv)), dv=float(dt * torch.as_tensor(p.tau_mem_inv)),
    )


def from_norse(modules: Sequence, input_shape: Sequence[int], metadata: dict | None = None) -> SparseNet:
    """Build a SparseNet from a trained Norse model's layers, in forward order.

    ``modules``: e.g. ``list(model)`` for an ``nn.Sequential``: synaptic and
    reshaping layers (``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d``,
    ``nn.Flatten``; ``torch.nn.utils.prune`` masks respected) between Norse
    ``LIFCell`` populations, ending in an ``LICell`` readout. Everything
    between two populations is one linear map, so it is composed into one
    sparse matrix: convolutions are unrolled and average pooling is folded
    into the next layer's weights (exact, as pooling is linear).
    ``input_shape`` is one sample per step; a conv model's flat input is
    viewed as its image shape (``model.image_shape``) when it has one.
    """
    import torch
    from norse.torch import LICell, LIFCell

    weights, neurons, names, shapes = [], [], [], []
    shape: tuple[int, ...] = tuple(int(d) for d in input_shape)
    first = next((m for m in modules if not isinstance(m, (torch.nn.Flatten, torch.nn.Identity))), None)
    if isinstance(first, torch.nn.Conv2d) and len(shape) != 3:
        side = int(round(np.prod(shape) ** 0.5))
        shape = (1, side, side)
    operator = sparse.identity(int(np.prod(shape)), format="csr")
    counts = {"conv": 0, "fc": 0}
    kind_of_last = None
    for module in modules:
        if isinstance(module, (LIFCell, LICell)):
            if kind_of_last is None:
                raise SparseNetError(f"a {type(module).__name__} without a synaptic layer before it")
            weights.append(operator.tocsr())
            neurons.append(neuron_params_of(module))
            spiking = isinstance(module, LIFCell)
            if spiking:
                counts[kind_of_last] += 1
                names.append(f"{kind_of_last}{counts[kind_of_last]}")
            else:
                names.append("readout")
            shapes.append(shape)
            operator = sparse.identity(int(np.prod(shape)), format="csr")
            kind_of_last = None
            continue
        matrix, shape = linear_operator(module, shape)
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            if kind_of_last is not None:
                raise SparseNetError("two synaptic layers without a neuron population between them")
            kind_of_last = "conv" if isinstance(module, torch.nn.Conv2d) else "fc"
        operator = (matrix @ operator).tocsr()
    if not weights or kind_of_last is not None:
        raise SparseNetError("expected synaptic layers each followed by a Norse cell, ending in an LICell")
    originals = [w.shape[0] for w in weights]
    kept = [np.arange(n, dtype=np.int64) for n in originals]
    pruned_w, kept = remove_dead_neurons(weights, kept)
    layers = tuple(
        SparseLayer(name=name, weight=w.tocsr(), bias=np.zeros(w.shape[0]), neuron=n, kept=k_idx, n_original=orig)
        for name, w, n, k_idx, orig in zip(names, pruned_w, neurons, kept, originals)
    )
    return SparseNet(tuple(int(d) for d in input_shape), layers, dict(metadata or {}))
