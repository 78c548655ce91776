"""The one Norse time loop, and the float64 reference a Lava run is compared with.

Training, evaluation, the pruners' statistics and the hardware side all run
a model through time with ``run_over_time``: inputs are time-first
``[T, B, ...]`` and the network is feed-forward, so it runs layer by layer,
each layer taking the whole sequence at once. A synaptic, pooling or
reshaping layer sees the ``T`` steps folded into its batch (``[T * B, ...]``:
one matrix product instead of ``T`` small ones); a Norse cell carries its
state from step to step, a plain ``LIFCell`` or ``LICell`` in one autograd
node (``hw_export.norse.fused``, Norse's own step ``T`` times), any other
cell called step by step (a recurrent cell, ``LIFRecurrentCell``, always:
its input at a step needs its own spikes of the step before). Values are those of stepping every layer one step at a
time (the same expressions per element; only a matrix product's summation
order may differ). The spikes of every LIF population are recorded.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple, Sequence

import numpy as np
import torch
from norse.torch.module.snn import SNNCell, SNNRecurrentCell
from torch import nn

from hw_export.norse.compaction import population_sources, spikes_to_built
from hw_export.norse.fused import can_fuse, can_fuse_li, li_sequence, lif_sequence
from hw_export.norse.layers import SPIKING_CELLS, named_layers

_WHOLE_SEQUENCE: ContextVar[int | None] = ContextVar("whole_sequence_steps", default=None)


def whole_sequence_steps() -> int | None:
    """``T`` while ``run_over_time`` hands a layer the whole sequence; None while a layer takes one step.

    For forward hooks (the DPAP pruner records with them): with ``T`` set, a
    synaptic layer's input is ``[T * B, ...]`` and a population's output
    ``[T, B, ...]``; with None, one step ``[B, ...]`` (a cell stepped one step
    at a time, or a loop of your own).
    """
    return _WHOLE_SEQUENCE.get()


class SNNOutput(NamedTuple):
    """What a forward pass over time yields."""

    readout_v: torch.Tensor  # [T, B, n_classes] readout membrane voltage (the last layer's output)
    layer_spikes: list[torch.Tensor]  # per recorded population: [T, B, *population_shape]


def run_over_time(model: nn.Module | Sequence[nn.Module], inputs: torch.Tensor,
                  populations: tuple[type, ...] = SPIKING_CELLS) -> SNNOutput:
    """Run a layer sequence over time; record the output of every layer of a ``populations`` type.

    ``model``: an ``nn.Sequential``/``SequentialState`` (nesting allowed) or a
    list of layers. ``inputs``: ``[T, B, ...]``. A Norse cell (``SNNCell``, ``SNNRecurrentCell``)
    steps through the ``T`` steps from its initial state; any other layer
    takes the sequence folded into its batch, ``layer(x [T * B, ...])``, so it
    must treat every sample and step alike (Linear, Conv2d, pooling,
    reshaping; not a batch norm). The last layer's output is the readout.
    ``populations``: what is recorded (LIF spikes; an ANN twin records its
    ``nn.ReLU`` activations).
    """
    layers = [layer for _, layer in named_layers(model)]
    n_steps, h = inputs.shape[0], inputs
    recorded: list[torch.Tensor] = []
    token = _WHOLE_SEQUENCE.set(n_steps)
    try:
        for layer in layers:
            if isinstance(layer, (SNNCell, SNNRecurrentCell)):
                h = _cell_over_time(layer, h)  # [T, B, ...]
            else:
                h = layer(h.flatten(0, 1)).unflatten(0, (n_steps, -1))  # [T * B, ...] -> [T, B, ...]
            if isinstance(layer, populations):
                recorded.append(h)
    finally:
        _WHOLE_SEQUENCE.reset(token)
    return SNNOutput(h, recorded)


def _cell_over_time(cell: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """A Norse cell's outputs ``[T, B, ...]`` from its initial state; forward hooks see what it computed."""
    fused = lif_sequence if can_fuse(cell) else li_sequence if can_fuse_li(cell) else None
    if fused is not None:
        outputs = fused(cell, inputs)
        for hook in list(cell._forward_hooks.values()):  # the module was not called: its hooks see the sequence
            hook(cell, (inputs,), (outputs, None))
        return outputs
    outputs, state = [], None
    token = _WHOLE_SEQUENCE.set(None)  # hooks of a cell called step by step see one step
    try:
        for x_t in inputs:  # x_t: [B, ...]
            out, state = cell(x_t, state)
            outputs.append(out)
    finally:
        _WHOLE_SEQUENCE.reset(token)
    return torch.stack(outputs)


@torch.no_grad()
def norse_reference(model: nn.Module | Sequence[nn.Module], inputs) -> tuple[np.ndarray, list[np.ndarray]]:
    """The model run in float64 on ``inputs`` ``[T, N, *input_shape]``: what Lava's float run must equal.

    Lava's float models compute in float64, so the reference does too: in
    float32, rounding (not the network) would decide spikes that sit at
    threshold. Returns ``(readout_v [T, N, n_classes], [spikes bool [T, N, n]
    per LIF population, flattened per sample, every neuron of the trained
    layer])``. Every layer is returned to its dtype and training mode.
    """
    layers = [layer for _, layer in named_layers(model)]
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    # (layer, parameter dtype or None, training mode): .double() converts parameters in place.
    saved = [(layer, next((p.dtype for p in layer.parameters()), None), layer.training) for layer in layers]
    try:
        for layer in layers:
            layer.double().eval()
        output = run_over_time(layers, x.to(torch.float64))
    finally:
        for layer, dtype, training in saved:
            if dtype is not None:
                layer.to(dtype)
            layer.train(training)
    # A compacted model's populations at their built width: the export's ``kept`` indexes them (a removed unit
    # never fires, so its zeros are what the masked model records).
    built = [spikes_to_built(s, source) for s, source in
             zip(output.layer_spikes, population_sources(named_layers(layers), SPIKING_CELLS))]
    return output.readout_v.numpy(), [s.flatten(2).bool().numpy() for s in built]
