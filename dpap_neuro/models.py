"""Norse spiking networks.

A model is an ``nn.Sequential`` of plain PyTorch layers and Norse cells, run
step by step over time. Keeping the layers a flat, ordered sequence is what
lets ``hw_export`` read a trained model without importing this package.

Layers that feed LIF neurons carry no bias: a Norse ``Linear`` bias enters the
synaptic current and decays with it, which Lava's ``bias_mant`` (added to the
voltage) cannot reproduce (DESIGN.md section 3), and Loihi prefers none.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from norse.torch import LICell, LIFCell, LIFParameters, LIParameters
from norse.torch.module.snn import SNNCell
from torch import nn


class SNNOutput(NamedTuple):
    """What a forward pass over time yields."""

    readout_v: torch.Tensor  # [T, B, n_classes] readout membrane voltage
    layer_spikes: list[torch.Tensor]  # per LIF population: [T, B, *population_shape]


def predict(readout_v: torch.Tensor) -> torch.Tensor:
    """The prediction rule shared by Norse and Lava evaluation.

    The class whose readout voltage reaches the highest value at any step.
    ``readout_v``: ``[T, B, C]`` -> ``[B]`` class indices.
    """
    return readout_v.max(dim=0).values.argmax(dim=-1)


class SpikingMLP(nn.Sequential):
    """Linear -> LIFCell -> ... -> Linear -> LICell, without biases.

    Input ``[T, B, *input_shape]`` spikes are flattened per step to
    ``[T, B, n_in]``. Time constants are Norse's, in 1/s; ``dt_s`` in seconds.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_sizes: Sequence[int],
        n_classes: int,
        dt_s: float = 1e-3,
        tau_syn_inv_per_s: float = 200.0,
        tau_mem_inv_per_s: float = 100.0,
        v_th: float = 1.0,
        surrogate_alpha: float = 100.0,
        weight_init_gain: float = 4.0,
    ) -> None:
        if n_inputs < 1 or n_classes < 1 or not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError("layer sizes must be positive and there must be a hidden layer")
        lif_p = LIFParameters(
            tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
            tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s),
            v_th=torch.as_tensor(v_th),
            method="super",
            alpha=torch.as_tensor(surrogate_alpha),
        )
        li_p = LIParameters(
            tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
            tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s),
        )
        layers: list[nn.Module] = []
        sizes = [n_inputs, *hidden_sizes]
        for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_pre, n_post, bias=False), LIFCell(p=lif_p, dt=dt_s)]
        layers += [nn.Linear(sizes[-1], n_classes, bias=False), LICell(p=li_p, dt=dt_s)]
        super().__init__(*layers)
        self.n_inputs = n_inputs
        # PyTorch's default init (uniform, +-1/sqrt(fan_in)) leaves the deeper
        # layers silent at dv = 0.1, so no surrogate gradient reaches them and the
        # loss sits at chance for epochs; scaling it up makes neurons fire from
        # the first batch.
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    layer.weight.mul_(weight_init_gain)

    def forward(self, spikes: torch.Tensor) -> SNNOutput:  # type: ignore[override]
        return run_over_time(self, spikes.flatten(2))


def run_over_time(layers: Sequence[nn.Module], inputs: torch.Tensor) -> SNNOutput:
    """Step a layer sequence through time; record every LIF population's spikes.

    ``inputs``: ``[T, B, ...]``. The last layer must be the readout cell.
    """
    states: list = [None] * len(layers)
    readout, recorded = [], [[] for m in layers if isinstance(m, LIFCell)]
    for x_t in inputs:  # x_t: [B, ...]
        population = 0
        h = x_t
        for k, layer in enumerate(layers):
            if isinstance(layer, SNNCell):
                h, states[k] = layer(h, states[k])
                if isinstance(layer, LIFCell):
                    recorded[population].append(h)
                    population += 1
            else:
                h = layer(h)
        readout.append(h)
    return SNNOutput(torch.stack(readout), [torch.stack(s) for s in recorded])


def build_model(
    input_shape: Sequence[int], hidden_sizes: Sequence[int], n_classes: int, **neuron_kwargs
) -> SpikingMLP:
    n_inputs = 1
    for d in input_shape:
        n_inputs *= int(d)
    return SpikingMLP(n_inputs, hidden_sizes, n_classes, **neuron_kwargs)


def lif_populations(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, LIFCell)]


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Synaptic layers in forward order (the last one feeds the readout)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
