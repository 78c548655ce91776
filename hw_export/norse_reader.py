"""Reading trained Norse models: the one place in ``hw_export`` that imports torch or norse.

Everything else on the hardware side (SparseNet, HDF5, quantization, Lava,
netx, NIR writing, counting, energy) works on plain arrays, so it runs where
neither PyTorch nor Norse is installed; a test enforces it
(``tests/test_layering.py``). This module turns a trained model's layers
into:

* a ``SparseNet`` (``from_norse``): every linear map between two neuron
  populations composed into one sparse matrix (convolutions unrolled,
  average pooling folded into the next layer), pruned synapses absent, dead
  neurons removed;
* a NIR graph that keeps the model's structure (``modules_to_nir``):
  ``Conv2d``, ``AvgPool2d`` and ``Flatten`` stay NIR nodes.

Supported layers: ``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d``,
``nn.Flatten`` (masks of ``torch.nn.utils.prune`` respected), Norse
``LIFCell`` populations and one ``LICell`` readout at the end. It never
imports ``dpap_neuro``: any model built from these layers can be read.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from norse.torch import LICell, LIFCell
from scipy import sparse
from torch import nn

from hw_export.nir_export import neuron_node
from hw_export.sparsenet import (
    NeuronParams,
    SparseLayer,
    SparseNet,
    SparseNetError,
    avgpool2d_matrix,
    conv2d_matrix,
    remove_dead_neurons,
)


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def masked_weight(module: nn.Module, name: str = "weight") -> tuple[np.ndarray, np.ndarray]:
    """(effective weight as float64, boolean synapse mask) of a module; prune masks included."""
    with torch.no_grad():
        if hasattr(module, f"{name}_mask"):
            mask = getattr(module, f"{name}_mask").cpu().numpy() != 0
            weight = (getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")).double().cpu().numpy()
        else:
            weight = getattr(module, name).double().cpu().numpy()
            mask = np.ones_like(weight, dtype=bool)
    return weight, mask


def linear_operator(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[sparse.csr_matrix, tuple[int, ...]]:
    """A synaptic or reshaping module as a sparse matrix on C-order flattened activity.

    Returns ``(matrix [n_out, n_in], out_shape)``; raises ``SparseNetError``
    for a layer that cannot be exported, naming it and why.
    """
    n_in = int(np.prod(in_shape))
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor) and bool(torch.any(bias != 0)):
        raise SparseNetError(
            f"{type(module).__name__} has a bias: a Norse bias enters the synaptic current, which Lava's "
            "bias_mant (added to v) cannot reproduce; train without bias (docs/DESIGN.md, section 3)")
    if isinstance(module, (nn.Flatten, nn.Identity)):
        return sparse.identity(n_in, format="csr"), (n_in,)
    if isinstance(module, nn.Linear):
        if module.in_features != n_in:
            raise SparseNetError(f"Linear expects {module.in_features} inputs, receives {n_in}")
        weight, mask = masked_weight(module)
        rows, cols = np.nonzero(mask)
        return sparse.csr_matrix((weight[rows, cols], (rows, cols)), shape=weight.shape), (weight.shape[0],)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or _pair(module.dilation) != (1, 1) or not isinstance(module.padding, tuple):
            raise SparseNetError("only Conv2d with groups=1, dilation=1 and numeric padding can be exported")
        if len(in_shape) != 3 or in_shape[0] != module.in_channels:
            raise SparseNetError(f"Conv2d expects ({module.in_channels}, H, W) inputs, receives {in_shape}")
        weight, mask = masked_weight(module)
        return conv2d_matrix(weight, mask, in_shape, _pair(module.stride), _pair(module.padding))
    if isinstance(module, nn.AvgPool2d):
        if _pair(module.padding) != (0, 0) or module.ceil_mode:
            raise SparseNetError("only AvgPool2d without padding or ceil_mode can be exported")
        kernel = _pair(module.kernel_size)
        return avgpool2d_matrix(in_shape, kernel, _pair(module.stride if module.stride else kernel))
    if isinstance(module, nn.ReLU):
        raise SparseNetError("cannot export a ReLU layer: an ANN activation is not a spiking neuron, so an ANN "
                             "has nothing to run in Lava or on Loihi (train a spiking model: LIFCell populations)")
    raise SparseNetError(f"cannot export a {type(module).__name__} layer")


def neuron_params_of(cell: nn.Module) -> NeuronParams:
    """The parameters of a Norse ``LIFCell`` (kind "lif") or ``LICell`` (kind "li")."""
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


def _image_shape(modules: Sequence[nn.Module], input_shape: Sequence[int]) -> tuple[int, ...]:
    """A conv model's flat input viewed as a one-channel square image; other shapes unchanged."""
    shape = tuple(int(d) for d in input_shape)
    first = next((m for m in modules if not isinstance(m, (nn.Flatten, nn.Identity))), None)
    if isinstance(first, nn.Conv2d) and len(shape) != 3:
        side = int(round(np.prod(shape) ** 0.5))
        shape = (1, side, side)
    return shape


SUPPORTED_LAYERS = "Linear, Conv2d, AvgPool2d, Flatten, Norse LIFCell and one LICell readout at the end"


def named_layers(model: nn.Module | Sequence[nn.Module]) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` in forward order; nested ``nn.Sequential`` (Norse's ``SequentialState`` too) unfolded.

    Any other container has a ``forward`` of its own that export cannot read,
    so it is returned as one layer, and refused by name later.
    """
    if not isinstance(model, nn.Module):
        return [(str(i), m) for i, m in enumerate(model)]
    if not isinstance(model, nn.Sequential):
        return [(type(model).__name__, model)]
    layers = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            layers += [(f"{name}.{inner}", m) for inner, m in named_layers(child)]
        else:
            layers.append((name, child))
    return layers


def export_model(model: nn.Module | Sequence[nn.Module], input_shape: Sequence[int],
                 metadata: dict | None = None) -> SparseNet:
    """A SparseNet from any feed-forward Norse model built from the supported layers.

    ``model``: an ``nn.Sequential`` or Norse ``SequentialState`` (nesting
    allowed), or a list of layers, of ``Linear``/``Conv2d`` (no bias; prune
    masks respected), ``AvgPool2d``, ``Flatten``, ``LIFCell`` populations and
    an ``LICell`` readout. ``input_shape``: one sample per step, e.g.
    ``(2, 34, 34)``. A layer that cannot be exported raises ``SparseNetError``
    naming it (``layer '3' (Dropout): ...``).
    """
    layers = named_layers(model)
    for name, layer in layers:
        if isinstance(layer, (LIFCell, LICell)):
            continue
        if not isinstance(layer, (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten, nn.Identity)):
            raise SparseNetError(f"layer {name!r} ({type(layer).__name__}) cannot be exported; "
                                 f"supported: {SUPPORTED_LAYERS}")
        bias = getattr(layer, "bias", None)
        if isinstance(bias, torch.Tensor) and bool(torch.any(bias != 0)):
            raise SparseNetError(f"layer {name!r} ({type(layer).__name__}) has a bias: a Norse bias enters the "
                                 "synaptic current, which Lava's bias_mant (added to v) cannot reproduce; "
                                 "build it with bias=False")
    cells = [(name, layer) for name, layer in layers if isinstance(layer, (LIFCell, LICell))]
    if not cells or not isinstance(cells[-1][1], LICell):
        last = f"layer {cells[-1][0]!r} is a {type(cells[-1][1]).__name__}" if cells else "there is no Norse cell"
        raise SparseNetError(f"the network must end in an LICell readout (the voltage a class is read from); {last}")
    inner = [name for name, layer in cells[:-1] if isinstance(layer, LICell)]
    if inner:
        raise SparseNetError(f"layer {inner[0]!r} (LICell): an LICell does not spike, so it can only be the readout")
    try:
        return from_norse([layer for _, layer in layers], input_shape, metadata)
    except SparseNetError as exc:
        raise SparseNetError(f"{type(model).__name__ if isinstance(model, nn.Module) else 'model'}: {exc}") from None


@torch.no_grad()
def run_norse(model: nn.Module | Sequence[nn.Module], inputs) -> tuple[np.ndarray, list[np.ndarray]]:
    """Step a feed-forward Norse model through time in float64: the reference a Lava run is compared with.

    ``inputs``: ``[T, N, *input_shape]`` spikes (array or tensor). Returns
    ``(readout_v [T, N, n_classes], [spikes [T, N, n] per LIFCell population])``,
    each population flattened per sample, all neurons of the trained layer
    (what ``fidelity.spike_agreement`` takes as reference). The model is
    returned to its dtype and training mode afterwards.
    """
    layers = [layer for _, layer in named_layers(model)]
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float64)
    shape = _image_shape(layers, x.shape[2:])
    x = x.reshape(*x.shape[:2], *shape) if len(shape) != len(x.shape[2:]) else x
    first_synapse = next(m for m in layers if isinstance(m, (nn.Linear, nn.Conv2d)))
    if isinstance(first_synapse, nn.Linear) and not isinstance(layers[0], nn.Flatten):
        x = x.flatten(2)  # an MLP given image-shaped inputs reads them flattened
    owners = [m for m in layers if isinstance(m, nn.Module)]
    dtypes = [next(m.parameters()).dtype if any(True for _ in m.parameters()) else None for m in owners]
    modes = [m.training for m in owners]
    states: list = [None] * len(layers)
    readout, recorded = [], [[] for m in layers if isinstance(m, LIFCell)]
    try:
        for m in owners:
            m.double().eval()
        for x_t in x:  # [N, ...]
            h, population = x_t, 0
            for k, layer in enumerate(layers):
                if isinstance(layer, (LIFCell, LICell)):
                    h, states[k] = layer(h, states[k])
                    if isinstance(layer, LIFCell):
                        recorded[population].append(h.flatten(1).bool())
                        population += 1
                else:
                    h = layer(h)
            readout.append(h)
    finally:
        for m, dtype, mode in zip(owners, dtypes, modes):
            if dtype is not None:
                m.to(dtype)
            m.train(mode)
    return torch.stack(readout).numpy(), [torch.stack(s).numpy() for s in recorded]


def from_norse(modules: Sequence[nn.Module], input_shape: Sequence[int], metadata: dict | None = None) -> SparseNet:
    """Build a SparseNet from a trained Norse model's layers, in forward order.

    ``modules``: e.g. ``list(model)`` for an ``nn.Sequential``: synaptic and
    reshaping layers between Norse ``LIFCell`` populations, ending in an
    ``LICell`` readout. Everything between two populations is one linear
    map, so it is composed into one sparse matrix: convolutions are unrolled
    and average pooling is folded into the next layer's weights (exact, as
    pooling is linear). ``input_shape`` is one sample per step.
    """
    weights, neurons, names = [], [], []
    shape = _image_shape(modules, input_shape)
    operator = sparse.identity(int(np.prod(shape)), format="csr")
    counts = {"conv": 0, "fc": 0}
    kind_of_last = None
    for module in modules:
        if isinstance(module, (LIFCell, LICell)):
            if kind_of_last is None:
                raise SparseNetError(f"a {type(module).__name__} without a synaptic layer before it")
            weights.append(operator.tocsr())
            neurons.append(neuron_params_of(module))
            if isinstance(module, LIFCell):
                counts[kind_of_last] += 1
                names.append(f"{kind_of_last}{counts[kind_of_last]}")
            else:
                names.append("readout")
            operator = sparse.identity(int(np.prod(shape)), format="csr")
            kind_of_last = None
            continue
        matrix, shape = linear_operator(module, shape)
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if kind_of_last is not None:
                raise SparseNetError("two synaptic layers without a neuron population between them")
            kind_of_last = "conv" if isinstance(module, nn.Conv2d) else "fc"
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


def modules_to_nir(modules: Sequence[nn.Module], input_shape: Sequence[int]):
    """NIR graph of a trained Norse model's layers (``list(model)``), structure kept.

    Shapes exclude the batch: a conv population is ``(C, H, W)``; ``Flatten``
    flattens all of it (``start_dim=0``). An MLP given image-shaped inputs
    (it flattens them in ``forward``) starts with a ``Flatten`` node. Conv and Linear weights are the
    effective (masked) weights; pruned channels are zero kernels. Parameters
    follow ``hw_export.nir_export`` (time constants in seconds).
    """
    import nir

    shape = _image_shape(modules, input_shape)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges, previous, counts = [], "input", {}
    first = next((m for m in modules if isinstance(m, (nn.Linear, nn.Conv2d, nn.Flatten))), None)
    flatten_first = isinstance(first, nn.Linear) and len(shape) > 1  # an MLP flattens image inputs in forward()

    def add(kind: str, node) -> None:
        nonlocal previous
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}{counts[kind]}"
        nodes[name] = node
        edges.append((previous, name))
        previous = name

    if flatten_first:
        add("flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
        shape = (int(np.prod(shape)),)
    for module in modules:
        if isinstance(module, (LIFCell, LICell)):
            params = neuron_params_of(module)
            add("lif" if params.kind == "lif" else "readout", neuron_node(params, shape))
            continue
        _, out_shape = linear_operator(module, shape)  # validates and gives the output shape
        if isinstance(module, nn.Linear):
            weight, _ = masked_weight(module)
            add("fc", nir.Affine(weight=weight, bias=np.zeros(weight.shape[0])))
        elif isinstance(module, nn.Conv2d):
            weight, _ = masked_weight(module)
            add("conv", nir.Conv2d(input_shape=shape[1:], weight=weight, stride=_pair(module.stride),
                                   padding=_pair(module.padding), dilation=(1, 1), groups=1,
                                   bias=np.zeros(weight.shape[0])))
        elif isinstance(module, nn.AvgPool2d):
            kernel = _pair(module.kernel_size)
            add("pool", nir.AvgPool2d(kernel_size=np.array(kernel),
                                      stride=np.array(_pair(module.stride or kernel)), padding=np.array([0, 0])))
        elif isinstance(module, nn.Flatten):
            add("flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
        else:
            raise SparseNetError(f"cannot export a {type(module).__name__} layer to NIR")
        shape = out_shape
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((previous, "output"))
    dt = next(m.dt for m in modules if isinstance(m, (LIFCell, LICell)))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt_s": float(dt), "source": "dpap-neuro"})
