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


def from_norse(modules: Sequence, input_shape: Sequence[int], metadata: dict | None = None) -> SparseNet:
    """Build a SparseNet from a trained Norse model's layers, in forward order.

    ``modules``: e.g. ``list(model)`` for an ``nn.Sequential``: ``nn.Linear``
    layers (optionally ``torch.nn.utils.prune``-masked), each followed by a
    Norse ``LIFCell``, the last by an ``LICell``; ``nn.Flatten`` is skipped.
    Synapses are the entries the mask keeps (all, if unmasked).
    """
    import torch
    from norse.torch import LICell, LIFCell
    from torch import nn

    chain = [m for m in modules if not isinstance(m, (nn.Flatten, nn.Identity))]
    if len(chain) % 2 or not chain:
        raise SparseNetError("expected pairs of (Linear, LIFCell/LICell)")
    weights, biases, neurons, names = [], [], [], []
    for k in range(0, len(chain), 2):
        conn, cell = chain[k], chain[k + 1]
        if not isinstance(conn, nn.Linear):
            raise SparseNetError(f"layer {k}: expected nn.Linear, got {type(conn).__name__}")
        if not isinstance(cell, (LIFCell, LICell)):
            raise SparseNetError(f"layer {k + 1}: expected a Norse LIFCell or LICell, got {type(cell).__name__}")
        with torch.no_grad():
            if hasattr(conn, "weight_mask"):
                dense_w = (conn.weight_orig * conn.weight_mask).double().cpu().numpy()
                mask = conn.weight_mask.cpu().numpy() != 0
            else:
                dense_w = conn.weight.double().cpu().numpy()
                mask = np.ones_like(dense_w, dtype=bool)
            bias = (conn.bias.double().cpu().numpy() if conn.bias is not None
                    else np.zeros(dense_w.shape[0]))
        rows, cols = np.nonzero(mask)
        weights.append(sparse.csr_matrix((dense_w[rows, cols], (rows, cols)), shape=dense_w.shape))
        biases.append(bias)
        p, dt = cell.p, cell.dt
        neurons.append(NeuronParams(
            kind="lif" if isinstance(cell, LIFCell) else "li",
            tau_syn_inv_per_s=float(p.tau_syn_inv),
            tau_mem_inv_per_s=float(p.tau_mem_inv),
            v_th=float(p.v_th) if isinstance(cell, LIFCell) else math.inf,
            v_leak=float(p.v_leak),
            v_reset=float(p.v_reset) if isinstance(cell, LIFCell) else 0.0,
            dt_s=float(dt),
            # Exactly the factors Norse multiplies by (a float32 tensor product).
            du=float(dt * torch.as_tensor(p.tau_syn_inv)),
            dv=float(dt * torch.as_tensor(p.tau_mem_inv)),
        ))
        names.append(f"fc{k // 2 + 1}" if isinstance(cell, LIFCell) else "readout")
    n_inputs = int(np.prod(input_shape))
    if weights[0].shape[1] != n_inputs:
        raise SparseNetError(f"input_shape {tuple(input_shape)} has {n_inputs} values, first layer expects {weights[0].shape[1]}")
    originals = [w.shape[0] for w in weights]
    kept = [np.arange(n, dtype=np.int64) for n in originals]
    pruned_w, kept = remove_dead_neurons(weights, kept)
    layers = tuple(
        SparseLayer(name=name, weight=w.tocsr(), bias=b[k_idx], neuron=n, kept=k_idx, n_original=orig)
        for name, w, b, n, k_idx, orig in zip(names, pruned_w, biases, neurons, kept, originals)
    )
    return SparseNet(tuple(int(d) for d in input_shape), layers, dict(metadata or {}))
