"""The one Norse time loop, and the float64 reference a Lava run is compared with.

Training, evaluation, the pruners' statistics and the hardware side all step
a model through time with ``run_over_time``: inputs are time-first
``[T, B, ...]``, every layer sees one step ``[B, ...]`` at a time, Norse
cells carry their state from step to step, and the spikes of every LIF
population are recorded as they are emitted.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
from norse.torch import LIFCell
from norse.torch.module.snn import SNNCell
from torch import nn

from hw_export.norse.compaction import population_sources, spikes_to_built
from hw_export.norse.layers import named_layers


class SNNOutput(NamedTuple):
    """What a forward pass over time yields."""

    readout_v: torch.Tensor  # [T, B, n_classes] readout membrane voltage (the last layer's output)
    layer_spikes: list[torch.Tensor]  # per recorded population: [T, B, *population_shape]


def run_over_time(model: nn.Module | Sequence[nn.Module], inputs: torch.Tensor,
                  populations: tuple[type, ...] = (LIFCell,)) -> SNNOutput:
    """Step a layer sequence through time; record the output of every layer of a ``populations`` type.

    ``model``: an ``nn.Sequential``/``SequentialState`` (nesting allowed) or a
    list of layers; a Norse cell (``SNNCell``) is called as ``cell(x, state)``,
    any other layer as ``layer(x)``. ``inputs``: ``[T, B, ...]``. The last
    layer's output is the readout. ``populations``: what is recorded (LIF
    spikes; an ANN twin records its ``nn.ReLU`` activations).
    """
    layers = [layer for _, layer in named_layers(model)]
    states: list = [None] * len(layers)
    readout: list[torch.Tensor] = []
    recorded: list[list[torch.Tensor]] = [[] for layer in layers if isinstance(layer, populations)]
    for x_t in inputs:  # x_t: [B, ...]
        h, population = x_t, 0
        for k, layer in enumerate(layers):
            if isinstance(layer, SNNCell):
                h, states[k] = layer(h, states[k])
            else:
                h = layer(h)
            if isinstance(layer, populations):
                recorded[population].append(h)
                population += 1
        readout.append(h)
    return SNNOutput(torch.stack(readout), [torch.stack(steps) for steps in recorded])


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
             zip(output.layer_spikes, population_sources(named_layers(layers), (LIFCell,)))]
    return output.readout_v.numpy(), [s.flatten(2).bool().numpy() for s in built]
