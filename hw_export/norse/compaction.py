"""Compacted layers: a synaptic layer whose removed units are physically gone, and the map back to its build.

When a pruner has removed whole neurons or conv channels, computing them on
every later step costs time for nothing: their inputs are masked, so they
never spike. ``shrink_layer`` removes them from the PyTorch model (the
layer's output rows, the next synaptic layer's input columns), and each
shrunk layer remembers where its remaining rows and columns sat in the layer
as it was built, in three buffers (so they travel with ``state_dict``,
checkpoints and training states):

* ``built_shape``: ``[weight.dim()]`` int64, the weight's shape as built;
* ``kept_out``: ``[n_out]`` int64, the built index of each remaining output
  unit (row of a ``Linear``, output channel of a ``Conv2d``), ascending;
* ``kept_in``: ``[n_in]`` int64, the built index of each remaining input
  (feature of a ``Linear``, input channel of a ``Conv2d``), ascending.

Everything that reads a model's widths as built reads them through this
module: the export (``SparseLayer.kept`` and ``n_original`` are the built
model's, so a compacted model exports the same ``SparseNet`` as its masked
twin), the Norse reference (spikes scattered back to the built width: a
removed neuron never fires), and the pruners (their statistics and masks
keep the built shapes, docs/DESIGN.md, section 4.1). Nothing here knows
about pruners or optimisers: ``dpap_neuro.pruning.compaction`` decides what
to remove and keeps the optimiser in step.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from hw_export.errors import UserError
from hw_export.norse.layers import RECURRENT_CELLS, synaptic_weight_name

BUFFERS = ("built_shape", "kept_out", "kept_in")


def is_compacted(layer: nn.Module) -> bool:
    """Whether ``layer`` carries the map back to its build (``shrink_layer`` was applied)."""
    return hasattr(layer, "kept_out")


def built_shape(layer: nn.Module) -> tuple[int, ...]:
    """The weight's shape as the layer was built (its current shape if it was never shrunk)."""
    return tuple(int(d) for d in layer.built_shape) if is_compacted(layer) else tuple(_weight(layer).shape)


def kept_out(layer: nn.Module) -> torch.Tensor:
    """``[n_out]`` int64: built index of each current output unit (``arange`` if never shrunk)."""
    return layer.kept_out if is_compacted(layer) else torch.arange(_weight(layer).shape[0])


def kept_in(layer: nn.Module) -> torch.Tensor:
    """``[n_in]`` int64: built index of each current input feature / channel (``arange`` if never shrunk)."""
    return layer.kept_in if is_compacted(layer) else torch.arange(_weight(layer).shape[1])


def _weight(layer: nn.Module) -> torch.Tensor:
    name = synaptic_weight_name(layer)
    return getattr(layer, f"{name}_orig") if hasattr(layer, f"{name}_orig") else getattr(layer, name)


def to_built(values: torch.Tensor, layer: nn.Module, fill: float = 0.0) -> torch.Tensor:
    """A tensor of the layer's current weight shape, scattered into its built shape (``fill`` where removed).

    The identity (the same tensor) for a layer never shrunk, so readers pay
    nothing on an uncompacted model.
    """
    if not is_compacted(layer):
        return values
    full = values.new_full(built_shape(layer), fill)
    rows, cols = layer.kept_out.to(values.device), layer.kept_in.to(values.device)
    full[rows.view(-1, 1), cols.view(1, -1)] = values
    return full


def from_built(values: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The inverse of ``to_built``: the entries of a built-shape tensor that the current layer holds."""
    if not is_compacted(layer):
        return values
    rows, cols = layer.kept_out.to(values.device), layer.kept_in.to(values.device)
    return values[rows.view(-1, 1), cols.view(1, -1)]


def part_map(cell: nn.Module, part: str) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor]:
    """A shrunk recurrent cell's map back to its build for one view of its synapses: ``part`` "input"
    (``input_weights``), "recurrent" (``recurrent_weights``: rows and columns both the cell's units) or "joined"
    (the two side by side, ``[n, n_in + n]``) -> (built shape, kept_out, kept_in).

    The pruners' views of a cell (``SynapseView``, DPAP's ``RecurrentSynapses``) read their ``built_shape``,
    ``kept_out`` and ``kept_in`` here, so ``to_built`` and the rest serve them as a layer; a cell never shrunk
    has no map (AttributeError: ``is_compacted`` is False for its views).
    """
    n_units, n_inputs = (int(d) for d in cell.built_shape)
    rows = cell.kept_out
    if part == "input":
        return (n_units, n_inputs), rows, cell.kept_in
    if part == "recurrent":
        return (n_units, n_units), rows, rows
    return (n_units, n_inputs + n_units), rows, torch.cat([cell.kept_in, n_inputs + rows])


def units_to_built(values: torch.Tensor, index: torch.Tensor, n_built: int, dim: int) -> torch.Tensor:
    """Scatter ``values`` (``index.numel()`` entries along ``dim``) into ``n_built`` entries, zeros elsewhere."""
    if index.numel() == n_built:
        return values
    shape = list(values.shape)
    shape[dim] = n_built
    return values.new_zeros(shape).index_copy_(dim, index.to(values.device), values)


def _register(layer: nn.Module) -> None:
    if not is_compacted(layer):
        weight = _weight(layer)
        device = weight.device
        layer.register_buffer("built_shape", torch.tensor(weight.shape, dtype=torch.int64, device=device))
        layer.register_buffer("kept_out", torch.arange(weight.shape[0], device=device))
        layer.register_buffer("kept_in", torch.arange(weight.shape[1], device=device))


def _parameter_cuts(layer: nn.Module, dim: int) -> list[tuple[str, tuple[int, ...]]]:
    """(parameter, dimensions cut) when ``layer`` loses units along ``dim`` (0: outputs, 1: inputs): a recurrent
    cell's units are the rows of its input weights and both the rows and columns of its recurrent weights."""
    if isinstance(layer, RECURRENT_CELLS):
        return [("input_weights", (dim,))] + ([("recurrent_weights", (0, 1))] if dim == 0 else [])
    return [("weight", (dim,))]


def _no_autapse_gradient(gradient: torch.Tensor) -> torch.Tensor:
    return gradient.clone().fill_diagonal_(0.0)


def index_along(values: torch.Tensor, dims: tuple[int, ...], index: torch.Tensor) -> torch.Tensor:
    """``values`` with only the entries ``index`` along each of ``dims`` (a recurrent weight: rows and columns)."""
    for dim in dims:
        values = values.index_select(dim, index.to(values.device))
    return values


def shrink_layer(layer: nn.Module, keep: torch.Tensor, dim: int, per_unit: int = 1) -> list[tuple]:
    """Keep only units ``keep`` (current indices, ascending) of ``layer`` along ``dim`` (0: outputs, 1: inputs).

    ``per_unit``: inputs per unit along ``dim`` 1 (a ``Linear`` after a
    flattened conv: ``H * W`` features per channel, contiguous as
    ``nn.Flatten`` lays them out). Every weight-shaped tensor of the layer
    (the parameter, ``torch.nn.utils.prune``'s ``<name>_orig`` and
    ``<name>_mask``) is cut; a recurrent cell's outputs are its recurrent
    weights' rows and columns too (``_parameter_cuts``). A parameter is
    replaced by a new one (autograd records a parameter's shape, so it cannot
    shrink in place): returns ``(old, new, dims, index)`` for each, so that
    an optimiser can be told. The layer's size attributes and the prune
    reparametrisation's product follow.
    """
    if not isinstance(layer, (nn.Linear, nn.Conv2d) + RECURRENT_CELLS) or getattr(layer, "bias", None) is not None:
        raise UserError(f"{type(layer).__name__}: only Linear, Conv2d (without bias) and LIFRecurrentCell layers "
                        "can be compacted")
    _register(layer)
    keep = keep.to(layer.kept_out.device)
    index = keep if per_unit == 1 else (keep.view(-1, 1) * per_unit + torch.arange(per_unit, device=keep.device)).flatten()
    replaced = []
    with torch.no_grad():
        for name, dims in _parameter_cuts(layer, dim):
            for stored in (f"{name}_orig", name):
                old = layer._parameters.get(stored)
                if old is not None:  # a new Parameter: autograd remembers a parameter's shape
                    new = nn.Parameter(index_along(old.detach(), dims, index), old.requires_grad)
                    if name == "recurrent_weights" and not getattr(layer, "autapses", True):
                        new.register_hook(_no_autapse_gradient)  # Norse's hook stays with the old parameter
                    layer._parameters[stored] = new
                    replaced.append((old, new, dims, index))
            if f"{name}_mask" in layer._buffers:
                layer._buffers[f"{name}_mask"] = index_along(layer._buffers[f"{name}_mask"], dims, index)
            if hasattr(layer, f"{name}_orig"):  # the reparametrisation's product, as its next forward would make it
                setattr(layer, name, getattr(layer, f"{name}_orig") * getattr(layer, f"{name}_mask"))
        kept = "kept_out" if dim == 0 else "kept_in"
        setattr(layer, kept, getattr(layer, kept).index_select(0, index.to(layer.kept_out.device)))
    size = _weight(layer).shape
    if isinstance(layer, RECURRENT_CELLS):  # Norse keeps them as tensors; its initial state reads hidden_size
        layer.hidden_size, layer.input_size = torch.as_tensor(int(size[0])), torch.as_tensor(int(size[1]))
    elif isinstance(layer, nn.Linear):
        layer.out_features, layer.in_features = int(size[0]), int(size[1])
    else:
        layer.out_channels, layer.in_channels = int(size[0]), int(size[1])
    return replaced


def remove_units(model_layers: Sequence[tuple[str, nn.Module]], synapse: nn.Module, keep: torch.Tensor) -> list:
    """Remove every output unit of ``synapse`` but ``keep`` (current indices), and its inputs to the next layer.

    ``model_layers``: ``named_layers(model)``. The next synaptic layer loses
    the matching input columns (``H * W`` per channel after an
    ``nn.Flatten``). Refused: a population with per-neuron parameters, an
    ``nn.Unflatten`` between the two layers, no synaptic layer after (the
    readout's own layer is never shrunk). Returns ``shrink_layer``'s slices.
    """
    names = [layer for _, layer in model_layers]
    synaptic = (nn.Linear, nn.Conv2d) + RECURRENT_CELLS
    start = next(i for i, layer in enumerate(names) if layer is synapse)
    after = next((i for i in range(start + 1, len(names)) if isinstance(names[i], synaptic)), None)
    if after is None:
        raise UserError("the readout's synaptic layer has no units to remove")
    own = model_layers[start: start + 1] if isinstance(synapse, RECURRENT_CELLS) else []  # its population
    for name, layer in own + model_layers[start + 1: after]:
        if isinstance(layer, nn.Unflatten) or any(
                isinstance(v, torch.Tensor) and v.numel() > 1 for v in getattr(getattr(layer, "p", None), "_asdict",
                                                                             lambda: {})().values()):
            raise UserError(f"layer {name!r} ({type(layer).__name__}): cannot compact through an Unflatten or a "
                            "population with per-neuron parameters; train with compaction off")
    n_units, next_layer = _weight(synapse).shape[0], names[after]
    per_unit = _weight(next_layer).shape[1] // n_units if not isinstance(next_layer, nn.Conv2d) else 1
    return shrink_layer(synapse, keep, 0) + shrink_layer(next_layer, keep, 1, per_unit)


def restore_shapes(model_layers: Sequence[tuple[str, nn.Module]], state: dict) -> None:
    """Shrink a freshly built model's layers to the shapes a compacted ``state_dict`` holds (before loading it).

    A layer whose ``{name}.kept_out`` is in ``state`` is cut to those rows and
    ``kept_in``'s columns; a state without them (never compacted, or written
    before compaction existed) leaves the model as built.
    """
    for name, layer in model_layers:
        out_key, in_key = f"{name}.kept_out", f"{name}.kept_in"
        if out_key not in state or not isinstance(layer, (nn.Linear, nn.Conv2d) + RECURRENT_CELLS):
            continue
        rows, cols = state[out_key], state.get(in_key)
        if not isinstance(rows, torch.Tensor) or not isinstance(cols, torch.Tensor):
            raise UserError(f"layer {name!r}: compacted state without its kept_out / kept_in index")
        shape = _weight(layer).shape
        if (rows.numel() and int(rows.max()) >= shape[0]) or (cols.numel() and int(cols.max()) >= shape[1]):
            raise UserError(f"layer {name!r}: compacted state indexes past the built layer {tuple(shape)}")
        shrink_layer(layer, rows.long(), 0)
        shrink_layer(layer, cols.long(), 1)


def population_sources(model_layers: Sequence[tuple[str, nn.Module]], populations: tuple[type, ...]) -> list:
    """For each population (a layer of a ``populations`` type), in order: the synaptic layer that feeds it."""
    sources, synapse = [], None
    for _, layer in model_layers:
        if isinstance(layer, (nn.Linear, nn.Conv2d) + RECURRENT_CELLS):  # a recurrent cell feeds itself
            synapse = layer
        if isinstance(layer, populations):
            sources.append(synapse)
    return sources


def built_neurons(synapse: nn.Module, population_shape: Sequence[int]) -> tuple[np.ndarray, int]:
    """(built index of each neuron of the population ``synapse`` feeds, the population's built size).

    ``population_shape``: per sample, current (``(C, H, W)`` or ``(n,)``);
    neurons are numbered in C order, so channel ``c``'s ``H * W`` neurons sit
    at ``kept_out[c] * H * W + position``.
    """
    per_unit = int(np.prod(population_shape[1:]))
    units = kept_out(synapse).cpu().numpy().astype(np.int64)
    indices = (units[:, None] * per_unit + np.arange(per_unit, dtype=np.int64)).ravel()
    return indices, built_shape(synapse)[0] * per_unit


def spikes_to_built(spikes: torch.Tensor, synapse: nn.Module | None) -> torch.Tensor:
    """A population's activity ``[T, B, n_now, ...]`` at its built width ``[T, B, n_built, ...]`` (zeros added).

    A removed unit never fires (its every input was masked), so zeros are
    what the masked model would have recorded for it.
    """
    if synapse is None or not is_compacted(synapse):
        return spikes
    return units_to_built(spikes, synapse.kept_out, built_shape(synapse)[0], dim=2)
