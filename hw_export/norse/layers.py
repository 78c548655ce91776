"""A Norse model's layers in forward order, and the shape of the activity between them.

The model says everything itself: a layer sequence (``nn.Sequential`` or
Norse's ``SequentialState``, nesting allowed) whose reshaping is done by
real layers (``nn.Flatten``, ``nn.Unflatten``), so nothing here re-encodes a
model's ``forward()`` or guesses an image shape. Shapes are per sample (no
batch dimension) and come from torch itself, by running each layer on an
empty tensor on the ``meta`` device.
"""

from __future__ import annotations

from typing import Sequence

import torch
from norse.torch import LICell, LIFCell, LIFRecurrentCell
from torch import nn

from hw_export.errors import UserError

SUPPORTED_LAYERS = ("Linear, Conv2d, AvgPool2d, Flatten, Unflatten, Identity, Norse LIFCell and LIFRecurrentCell "
                    "populations and one LICell readout at the end")
SYNAPTIC = (nn.Linear, nn.Conv2d)
RESHAPING = (nn.Flatten, nn.Unflatten, nn.Identity)
RECURRENT_CELLS = (LIFRecurrentCell,)  # input and recurrent weights of their own: synapses and population in one
SPIKING_CELLS = (LIFCell,) + RECURRENT_CELLS
CELLS = SPIKING_CELLS + (LICell,)


def synaptic_weight_name(layer: nn.Module) -> str:
    """The name of the parameter that holds a layer's feed-forward synapses (``weight``; ``input_weights`` in a
    recurrent cell, whose ``recurrent_weights`` hold the others)."""
    return "input_weights" if isinstance(layer, RECURRENT_CELLS) else "weight"


def named_layers(model: nn.Module | Sequence[nn.Module]) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` in forward order; nested ``nn.Sequential`` (Norse's ``SequentialState`` too) unfolded.

    Any other container has a ``forward`` of its own that cannot be read, so
    it is returned as one layer (and refused by name where it matters).
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


def output_shape(layer: nn.Module, in_shape: Sequence[int], name: str = "") -> tuple[int, ...]:
    """Per-sample output shape of a synaptic or reshaping layer given its per-sample input shape.

    Torch computes it (a ``meta`` tensor costs no memory); a layer that cannot
    take the input (a ``Conv2d`` fed flat activity, a ``Linear`` of another
    width) raises ``UserError`` naming the layer and both shapes.
    """
    what = f"layer {name!r} ({type(layer).__name__})" if name else type(layer).__name__
    if isinstance(layer, nn.Conv2d) and len(in_shape) != 3:
        # (H, W) would pass as one unbatched image: refuse it before torch reads it so.
        raise UserError(f"{what} cannot take per-sample input of shape {tuple(in_shape)}: a conv layer needs "
                        "(C, H, W) activity (put an nn.Unflatten before it)")
    probe = torch.empty((1, *in_shape), device="meta")
    try:
        with torch.no_grad():
            out = _on_meta(layer, probe)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UserError(f"{what} cannot take per-sample input of shape {tuple(in_shape)}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    return tuple(int(d) for d in out.shape[1:])


def _on_meta(layer: nn.Module, probe: torch.Tensor) -> torch.Tensor:
    """``layer(probe)`` with the layer's parameters on the meta device, the layer itself untouched."""
    if isinstance(layer, nn.Linear):
        return torch.nn.functional.linear(probe, torch.empty(layer.weight.shape, device="meta"))
    if isinstance(layer, RECURRENT_CELLS):
        return torch.nn.functional.linear(probe, torch.empty(layer.input_weights.shape, device="meta"))
    if isinstance(layer, nn.Conv2d):
        return torch.nn.functional.conv2d(probe, torch.empty(layer.weight.shape, device="meta"), None,
                                          layer.stride, layer.padding, layer.dilation, layer.groups)
    return layer(probe)  # pooling and reshaping layers have no parameters


def forward_macs(model: nn.Module | Sequence[nn.Module], input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward step of one sample through the model's synaptic layers, as they are.

    Every weight entry counts, masked or not (what a dense PyTorch layer
    computes): a ``Linear`` its weight's size, a ``Conv2d`` its weight's size
    times its output positions, a recurrent cell its input and recurrent
    weights' sizes. A compacted model counts its smaller layers.
    """
    shape, total = tuple(int(d) for d in input_shape), 0
    for name, layer in named_layers(model):
        if isinstance(layer, SYNAPTIC + RESHAPING + RECURRENT_CELLS + (nn.AvgPool2d,)):
            out_shape = output_shape(layer, shape, name)
            if isinstance(layer, SYNAPTIC):
                total += layer.weight.numel() * (out_shape[1] * out_shape[2] if isinstance(layer, nn.Conv2d) else 1)
            elif isinstance(layer, RECURRENT_CELLS):
                total += layer.input_weights.numel() + layer.recurrent_weights.numel()
            shape = out_shape
    return total
