"""Norse spiking networks.

A model is an ``nn.Sequential`` of plain PyTorch layers and Norse cells, run
step by step over time. Keeping the layers a flat, ordered sequence is what
lets ``hw_export`` read a trained model without importing this package.

Layers that feed LIF neurons carry no bias: a Norse ``Linear`` bias enters the
synaptic current and decays with it, which Lava's ``bias_mant`` (added to the
voltage) cannot reproduce (docs/DESIGN.md, section 3), and Loihi prefers none.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from norse.torch import LICell, LIFCell, LIFParameters, LIParameters
from norse.torch.module.snn import SNNCell
from torch import nn

from dpap_neuro.config import ARCHITECTURES


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


class SpikingConvNet(nn.Sequential):
    """Conv2d -> LIFCell -> AvgPool2d(2) per block, then Linear -> LIFCell ..., Linear -> LICell.

    For event frames ``[T, B, C, H, W]`` (``digits-events``: ON/OFF as 2
    channels); flat inputs of a square image (``digits``: 64 pixels) are
    viewed as one channel. Average pooling (not max) because it is linear:
    the exporter folds it into the next layer's weights, so Lava reproduces
    it exactly. 3x3 kernels, padding 1, no bias.
    """

    def __init__(self, image_shape: Sequence[int], conv_channels: Sequence[int], hidden_sizes: Sequence[int],
                 n_classes: int, dt_s: float = 1e-3, tau_syn_inv_per_s: float = 200.0,
                 tau_mem_inv_per_s: float = 100.0, v_th: float = 1.0, surrogate_alpha: float = 100.0,
                 weight_init_gain: float = 10.0) -> None:
        channels, height, width = (int(d) for d in image_shape)
        lif_p = LIFParameters(tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
                              tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s), v_th=torch.as_tensor(v_th),
                              method="super", alpha=torch.as_tensor(surrogate_alpha))
        li_p = LIParameters(tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
                            tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s))
        layers: list[nn.Module] = []
        for out_channels in conv_channels:
            if height < 2 or width < 2:
                raise ValueError("too many conv blocks for this image size (each halves it)")
            layers += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), LIFCell(p=lif_p, dt=dt_s),
                       nn.AvgPool2d(2)]
            channels, height, width = out_channels, height // 2, width // 2
        layers.append(nn.Flatten())
        sizes = [channels * height * width, *hidden_sizes]
        for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_pre, n_post, bias=False), LIFCell(p=lif_p, dt=dt_s)]
        layers += [nn.Linear(sizes[-1], n_classes, bias=False), LICell(p=li_p, dt=dt_s)]
        super().__init__(*layers)
        self.image_shape = tuple(int(d) for d in image_shape)
        # Same reason as SpikingMLP; larger, as a 3x3 kernel's fan-in is small and
        # pooling averages spikes down: at gain 4 the layers after the first stay silent.
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    layer.weight.mul_(weight_init_gain)

    def forward(self, spikes: torch.Tensor) -> SNNOutput:  # type: ignore[override]
        return run_over_time(self, spikes.reshape(*spikes.shape[:2], *self.image_shape))


class ReLUNet(nn.Sequential):
    """An ANN twin of the spiking models, for DPAP on ANNs: ReLU instead of LIF, one pass instead of T steps.

    It takes the same spike tensors ``[T, B, ...]`` and sees each input's
    spike count over the ``T`` steps divided by ``T`` (a rate in 0..1: event
    frames become frame counts, rate-coded digits their intensities). Its
    output has the spiking models' form with one step: ``readout_v`` ``[1, B,
    C]`` holds the logits and ``layer_spikes`` the ReLU activations ``[1, B,
    ...]``, so training, evaluation and the pruners run unchanged; DPAP's
    trace of one step is the activation itself. Not spiking: no Lava export.
    """

    def __init__(self, layers: Sequence[nn.Module], input_shape: Sequence[int]) -> None:
        super().__init__(*layers)
        self.input_shape = tuple(int(d) for d in input_shape)

    def forward(self, spikes: torch.Tensor) -> SNNOutput:  # type: ignore[override]
        h = spikes.mean(dim=0).reshape(spikes.shape[1], *self.input_shape)  # [B, *input_shape], rates
        activations = []
        for layer in self:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                activations.append(h[None])  # [1, B, ...]
        return SNNOutput(h[None], activations)


def relu_mlp(n_inputs: int, hidden_sizes: Sequence[int], n_classes: int) -> ReLUNet:
    """Linear -> ReLU -> ... -> Linear, no biases (as SpikingMLP)."""
    layers: list[nn.Module] = []
    sizes = [n_inputs, *hidden_sizes]
    for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_pre, n_post, bias=False), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_classes, bias=False))
    return ReLUNet(layers, (n_inputs,))


def relu_conv(image_shape: Sequence[int], conv_channels: Sequence[int], hidden_sizes: Sequence[int],
              n_classes: int) -> ReLUNet:
    """Conv2d -> ReLU -> AvgPool2d(2) per block, then Linear -> ReLU ..., Linear (as SpikingConvNet)."""
    channels, height, width = (int(d) for d in image_shape)
    layers: list[nn.Module] = []
    for out_channels in conv_channels:
        if height < 2 or width < 2:
            raise ValueError("too many conv blocks for this image size (each halves it)")
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)]
        channels, height, width = out_channels, height // 2, width // 2
    layers.append(nn.Flatten())
    sizes = [channels * height * width, *hidden_sizes]
    for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_pre, n_post, bias=False), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_classes, bias=False))
    return ReLUNet(layers, image_shape)


def image_shape_of(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` for conv models: as given, or a flat square image as one channel."""
    if len(input_shape) == 3:
        return tuple(int(d) for d in input_shape)  # type: ignore[return-value]
    n = 1
    for d in input_shape:
        n *= int(d)
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(f"a conv model needs image inputs; got shape {tuple(input_shape)}")
    return (1, side, side)


def build_model(
    input_shape: Sequence[int], hidden_sizes: Sequence[int], n_classes: int, architecture: str = "mlp",
    conv_channels: Sequence[int] = (16, 32), **neuron_kwargs
) -> nn.Sequential:
    """The model of a run: ``architecture`` one of ``ARCHITECTURES``.

    ``neuron_kwargs`` (time constants, threshold, init gain) apply to the
    spiking models only; the ANN twins use PyTorch's default initialisation.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown model {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    n_inputs = 1
    for d in input_shape:
        n_inputs *= int(d)
    if architecture == "conv":
        return SpikingConvNet(image_shape_of(input_shape), conv_channels, hidden_sizes, n_classes, **neuron_kwargs)
    if architecture == "ann-conv":
        return relu_conv(image_shape_of(input_shape), conv_channels, hidden_sizes, n_classes)
    if architecture == "ann-mlp":
        return relu_mlp(n_inputs, hidden_sizes, n_classes)
    return SpikingMLP(n_inputs, hidden_sizes, n_classes, **neuron_kwargs)


def is_spiking(model: nn.Module) -> bool:
    """Whether ``model`` is a spiking network (exportable to Lava), not an ANN twin."""
    return not isinstance(model, ReLUNet)


def lif_populations(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, LIFCell)]


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Synaptic layers in forward order (the last one feeds the readout)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
