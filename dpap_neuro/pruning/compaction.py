"""Compaction: units that pruning removed leave the PyTorch model, so every later step is smaller.

A mask makes a removed neuron or conv channel silent but still computed: its
row is multiplied, integrated and back-propagated at every time step.
``compact(model, optimizer)`` takes such units out for real (the layer's
rows, the next layer's columns, the optimiser's moments for them), at a
point where no forward or backward pass is in flight: ``train`` calls it
after every pruning change; a loop of your own calls it after
``pruner.step()``::

    optimizer.step()
    pruner.step()
    compact(model, optimizer)   # a no-op unless a unit became removable

Exact by construction: a unit goes only when its every input synapse is
masked (so it never spikes: no bias, no input) *and* nothing the pruner can
still decide depends on its outgoing synapses: they are masked in the next
layer, or the next layer is the readout's, which is never pruned. What stays
is the same network; only float summation order changes (docs/DESIGN.md,
section 4.1). The pruners keep their statistics and masks at the built shapes
(``hw_export.norse.compaction.to_built``), so their decisions are unchanged,
and the export and Norse reference map every unit back to its built index.
"""

from __future__ import annotations

import torch
from torch import nn

from hw_export.norse.compaction import index_along, remove_units
from hw_export.norse.layers import RECURRENT_CELLS, named_layers, synaptic_weight_name


def removable(mask: torch.Tensor, next_mask: torch.Tensor | None, next_is_readout: bool) -> torch.Tensor:
    """``[n_out]`` bool: the units of a layer (``mask``'s rows) that compaction may remove.

    A unit qualifies when its row of ``mask`` is all zero and its columns of
    the next layer's ``next_mask`` are too (a ``Linear`` after a flattened
    conv: the channel's ``H * W`` columns), or the next layer is the
    readout's (``next_is_readout``; never pruned, its weights from a silent
    unit move nothing).
    """
    dead = mask.flatten(1).sum(dim=1) == 0
    if next_is_readout:
        return dead
    if next_mask is None:
        return torch.zeros_like(dead)
    columns = next_mask.transpose(0, 1).reshape(dead.numel(), -1)  # [n_out, everything else]
    return dead & (columns.sum(dim=1) == 0)


@torch.no_grad()
def compact(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Remove every removable unit (``removable``) from ``model``; returns how many went (0: nothing changed).

    ``optimizer``: the shrunk layers get new parameters (autograd fixes a
    parameter's shape), which take the old ones' places in its parameter
    groups, with their state (Adam's moments, SGD's momentum) cut the same
    way, so training continues as the masked run would. Pass the optimiser
    you train with: one that is not told keeps updating the old parameters.
    A data-parallel wrapper must be rebuilt after a change (``train`` does).
    """
    layers = named_layers(model)
    synaptic = [layer for _, layer in layers if isinstance(layer, (nn.Linear, nn.Conv2d) + RECURRENT_CELLS)]
    removed = 0
    for index, layer in enumerate(synaptic[:-1]):
        mask = _unit_rows(layer)
        if mask is None:
            continue
        following = synaptic[index + 1]
        next_mask = getattr(following, f"{synaptic_weight_name(following)}_mask", None)
        gone = removable(mask, next_mask, following is synaptic[-1])
        if isinstance(layer, RECURRENT_CELLS):  # and nothing the pruner decides leaves it through its own loop
            gone &= layer.recurrent_weights_mask.sum(dim=0) == 0
        n_gone = int(gone.sum())
        if n_gone == 0 or n_gone == gone.numel():  # an empty layer is left to the export to refuse by name
            continue
        slices = remove_units(layers, layer, torch.nonzero(~gone).flatten())
        if optimizer is not None:
            _cut_optimizer_state(optimizer, slices)
        removed += n_gone
    return removed


def _unit_rows(layer: nn.Module) -> torch.Tensor | None:
    """Each unit's input synapses as mask rows (a recurrent cell's input and recurrent ones side by side), or
    None where the layer is not masked."""
    if isinstance(layer, RECURRENT_CELLS):
        if not hasattr(layer, "input_weights_mask") or not hasattr(layer, "recurrent_weights_mask"):
            return None
        return torch.cat([layer.input_weights_mask, layer.recurrent_weights_mask], dim=1)
    return getattr(layer, "weight_mask", None)


def _cut_optimizer_state(optimizer: torch.optim.Optimizer, replaced: list) -> None:
    """Put each new parameter in its old one's place in ``optimizer``, its state (tensors shaped like it) cut alike."""
    new_of = {id(old): new for old, new, _, _ in replaced}
    for group in optimizer.param_groups:
        group["params"] = [new_of.get(id(p), p) for p in group["params"]]
    for old, new, dims, index in replaced:
        state = optimizer.state.pop(old, None)
        if state is None:
            continue
        optimizer.state[new] = {key: index_along(value, dims, index)
                                if isinstance(value, torch.Tensor) and value.dim() == old.dim() else value
                                for key, value in state.items()}
