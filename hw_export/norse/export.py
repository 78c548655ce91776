"""A trained feed-forward Norse model as a ``SparseNet`` (docs/DESIGN.md, section 3).

Every linear map between two neuron populations (synaptic layers, pooling,
reshaping) is composed into one sparse matrix on C-order flattened activity:
convolutions are unrolled, average pooling is folded into the next layer's
weights (exact: pooling is linear), pruned synapses (``torch.nn.utils.prune``
masks) are absent, and dead neurons are removed (``remove_dead_neurons``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from norse.torch import LICell
from scipy import sparse
from torch import nn

from hw_export.norse.compaction import built_neurons
from hw_export.norse.layers import (CELLS, RECURRENT_CELLS, RESHAPING, SPIKING_CELLS, SUPPORTED_LAYERS, SYNAPTIC,
                                   named_layers, output_shape)
from hw_export.sparsenet import (NetworkCutError, NeuronParams, SparseLayer, SparseNet, SparseNetError,
                                 avgpool2d_matrix, conv2d_matrix, remove_dead_neurons)


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def masked_weight(module: nn.Module, name: str = "weight") -> tuple[np.ndarray, np.ndarray]:
    """(effective weight as float64, boolean synapse mask) of a layer's parameter ``name``; prune masks included."""
    with torch.no_grad():
        if hasattr(module, f"{name}_mask"):
            mask = getattr(module, f"{name}_mask").cpu().numpy() != 0
            weight = (getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")).double().cpu().numpy()
        else:
            weight = getattr(module, name).double().cpu().numpy()
            mask = np.ones_like(weight, dtype=bool)
    return weight, mask


def csr_of(module: nn.Module, name: str) -> sparse.csr_matrix:
    """A fully connected parameter (``[n_out, n_in]``) as CSR: its unmasked entries are its synapses."""
    weight, mask = masked_weight(module, name)
    rows, cols = np.nonzero(mask)
    return sparse.csr_matrix((weight[rows, cols], (rows, cols)), shape=weight.shape)


def linear_operator(module: nn.Module, in_shape: tuple[int, ...]) -> sparse.csr_matrix:
    """A synaptic, pooling or reshaping layer as a sparse matrix ``[n_out, n_in]`` on C-order flattened activity."""
    if isinstance(module, RESHAPING):
        return sparse.identity(int(np.prod(in_shape)), format="csr")
    if isinstance(module, nn.Linear):
        return csr_of(module, "weight")
    if isinstance(module, RECURRENT_CELLS):
        return csr_of(module, "input_weights")
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or _pair(module.dilation) != (1, 1) or not isinstance(module.padding, tuple):
            raise SparseNetError("only Conv2d with groups=1, dilation=1 and numeric padding can be exported")
        weight, mask = masked_weight(module)
        return conv2d_matrix(weight, mask, in_shape, _pair(module.stride), _pair(module.padding))[0]
    if _pair(module.padding) != (0, 0) or module.ceil_mode:
        raise SparseNetError("only AvgPool2d without padding or ceil_mode can be exported")
    kernel = _pair(module.kernel_size)
    return avgpool2d_matrix(in_shape, kernel, _pair(module.stride if module.stride else kernel))[0]


def neuron_params_of(cell: nn.Module) -> NeuronParams:
    """The parameters of a Norse ``LIFCell`` or ``LIFRecurrentCell`` (kind "lif") or ``LICell`` (kind "li")."""
    p, dt = cell.p, cell.dt
    spiking = isinstance(cell, SPIKING_CELLS)
    return NeuronParams(
        kind="lif" if spiking else "li",
        tau_syn_inv_per_s=float(p.tau_syn_inv), tau_mem_inv_per_s=float(p.tau_mem_inv),
        v_th=float(p.v_th) if spiking else math.inf, v_leak=float(p.v_leak),
        v_reset=float(p.v_reset) if spiking else 0.0, dt_s=float(dt),
        # Exactly the factors Norse multiplies by (a float32 tensor product).
        du=float(dt * torch.as_tensor(p.tau_syn_inv)), dv=float(dt * torch.as_tensor(p.tau_mem_inv)),
    )


def check_layers(layers: list[tuple[str, nn.Module]]) -> None:
    """Refuse, naming the layer, what cannot run on Lava/Loihi: unknown layers, biases, a misplaced LICell."""
    for name, layer in layers:
        if isinstance(layer, nn.ReLU):
            raise SparseNetError(f"layer {name!r} (ReLU): an ANN activation is not a spiking neuron, so an ANN has "
                                 "nothing to run in Lava or on Loihi (train a spiking model: LIFCell populations)")
        if not isinstance(layer, SYNAPTIC + RESHAPING + CELLS + (nn.AvgPool2d,)):
            raise SparseNetError(f"layer {name!r} ({type(layer).__name__}) cannot be exported; supported: "
                                 f"{SUPPORTED_LAYERS}")
        bias = getattr(layer, "bias", None)
        if isinstance(bias, torch.Tensor) and bool(torch.any(bias != 0)):
            raise SparseNetError(f"layer {name!r} ({type(layer).__name__}) has a bias: a Norse bias enters the "
                                 "synaptic current, which Lava's bias_mant (added to v) cannot reproduce; build it "
                                 "with bias=False (docs/DESIGN.md, section 3)")
    cells = [(name, layer) for name, layer in layers if isinstance(layer, CELLS)]
    if not cells or not isinstance(cells[-1][1], LICell):
        last = f"layer {cells[-1][0]!r} is a {type(cells[-1][1]).__name__}" if cells else "there is no Norse cell"
        raise SparseNetError(f"the network must end in an LICell readout (the voltage a class is read from); {last}")
    inner = [name for name, layer in cells[:-1] if isinstance(layer, LICell)]
    if inner:
        raise SparseNetError(f"layer {inner[0]!r} (LICell): an LICell does not spike, so it can only be the readout")


def export_model(model: nn.Module | Sequence[nn.Module], input_shape: Sequence[int],
                 metadata: dict | None = None) -> SparseNet:
    """A SparseNet from any Norse model built from the supported layers.

    ``model``: an ``nn.Sequential`` or Norse ``SequentialState`` (nesting
    allowed), or a list of layers: ``Linear``/``Conv2d`` (no bias; prune masks
    respected), ``AvgPool2d``, ``Flatten``/``Unflatten``, ``LIFCell``
    populations, ``LIFRecurrentCell`` layers (input and recurrent synapses and
    their population in one; masks on either parameter respected; no
    autapses unless the cell allows them) and an ``LICell`` readout.
    ``input_shape``: one sample per step, as the model's first layer receives
    it, e.g. ``(2, 34, 34)``. A layer that cannot be exported raises
    ``SparseNetError`` naming it.
    """
    layers = named_layers(model)
    check_layers(layers)
    from hw_export.norse.loihi import trained_scale

    weights, recurrent, neurons, names, scales, built = [], [], [], [], [], []
    shape = tuple(int(d) for d in input_shape)
    operator = sparse.identity(int(np.prod(shape)), format="csr")
    counts, kind = {"conv": 0, "fc": 0, "rec": 0}, None  # kind of the synaptic layer since the last population
    for name, layer in layers:
        if isinstance(layer, SYNAPTIC + RECURRENT_CELLS):
            if kind is not None:
                raise SparseNetError(f"layer {name!r}: two synaptic layers without a neuron population between them")
            kind = "conv" if isinstance(layer, nn.Conv2d) else "rec" if isinstance(layer, RECURRENT_CELLS) else "fc"
            synapse = layer
        if not isinstance(layer, CELLS) or isinstance(layer, RECURRENT_CELLS):  # a linear map of the activity
            out_shape = output_shape(layer, shape, name)
            operator = (linear_operator(layer, shape) @ operator).tocsr()
            shape = out_shape
        if not isinstance(layer, CELLS):
            continue
        if kind is None:
            raise SparseNetError(f"layer {name!r}: a {type(layer).__name__} without a synaptic layer before it")
        weights.append(operator)
        recurrent.append(recurrent_operator(layer) if isinstance(layer, RECURRENT_CELLS) else None)
        neurons.append(neuron_params_of(layer))
        scales.append(trained_scale(synapse))
        built.append(built_neurons(synapse, shape))  # a compacted layer's neurons at their built indices
        counts[kind] += isinstance(layer, SPIKING_CELLS)
        names.append(f"{kind}{counts[kind]}" if isinstance(layer, SPIKING_CELLS) else "readout")
        operator, kind = sparse.identity(int(np.prod(shape)), format="csr"), None
    return _sparse_net(weights, recurrent, neurons, names, scales, built, input_shape, metadata)


def recurrent_operator(cell: nn.Module) -> sparse.csr_matrix:
    """A recurrent cell's ``recurrent_weights`` ``[n, n]`` as CSR; without autapses (Norse's default) the diagonal
    holds no synapses (Norse keeps it at zero), so it is left out."""
    matrix = csr_of(cell, "recurrent_weights")
    if not getattr(cell, "autapses", False):
        matrix = (sparse.triu(matrix, 1) + sparse.tril(matrix, -1)).tocsr()
    return matrix


def _sparse_net(weights: list[sparse.csr_matrix], recurrent: list[sparse.csr_matrix | None],
                neurons: list[NeuronParams], names: list[str], scales: list[float | None],
                built: list[tuple[np.ndarray, int]], input_shape: Sequence[int], metadata: dict | None) -> SparseNet:
    """Remove dead neurons and assemble the SparseNet; name the layer that lost every neuron."""
    for name, weight, loop in zip(names, weights, recurrent):
        if not all(np.all(np.isfinite(w.data)) for w in (weight, loop) if w is not None):
            raise SparseNetError(f"layer {name}: weights hold NaN or Inf (did training diverge? lower the "
                                 "learning rate)")
    originals = [n_built for _, n_built in built]
    pruned, kept, loops = remove_dead_neurons(weights, [indices for indices, _ in built], recurrent)
    empty = [name for name, w in zip(names, pruned) if w.shape[0] == 0]
    if empty:
        raise NetworkCutError(f"layer {empty[0]} has no neurons left: no path from the input reaches the readout")
    layers = tuple(SparseLayer(name=name, weight=w.tocsr(), neuron=n, kept=k, n_original=orig, fixed_point_scale=scale,
                               recurrent_weight=loop)
                   for name, w, loop, n, k, orig, scale in zip(names, pruned, loops, neurons, kept, originals, scales))
    return SparseNet(tuple(int(d) for d in input_shape), layers, dict(metadata or {}))
