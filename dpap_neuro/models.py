"""Norse spiking networks, and their ReLU twins.

A model is an ``nn.Sequential`` of plain PyTorch layers and Norse cells,
stepped through time by the one time loop (``hw_export.norse.run_over_time``).
Its input reshaping is part of the sequence (``nn.Flatten`` before the fully
connected layers, ``nn.Unflatten`` where a conv net takes flat input), so
``hw_export`` reads a trained model from its layers alone, without importing
this package or re-encoding a ``forward()``.

Layers that feed LIF neurons carry no bias: a Norse ``Linear`` bias enters the
synaptic current and decays with it, which Lava's ``bias_mant`` (added to the
voltage) cannot reproduce (docs/DESIGN.md, section 3), and Loihi prefers none.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from norse.torch import LICell, LIFCell, LIFParameters, LIFRecurrentCell, LIParameters
from torch import nn

from hw_export.errors import UserError
from hw_export.fidelity import readout_prediction
from hw_export.norse.loop import SNNOutput, run_over_time

# Model kinds of a run; "ann-*" are ReLU twins of the spiking models (DPAP on ANNs; no spiking export).
ARCHITECTURES = ("mlp", "conv", "rmlp", "ann-mlp", "ann-conv")
RECURRENT_MODELS = ("rmlp",)  # architectures with recurrent layers (DPAP's presets for them: *-recurrent)


def predict(readout_v: torch.Tensor) -> torch.Tensor:
    """The prediction rule, shared by Norse and Lava: ``[T, B, C]`` -> ``[B]`` (``hw_export.fidelity``)."""
    return readout_prediction(readout_v)


def image_shape_of(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` for a conv model: as given, an ``(H, W)`` image or a flat square image as one channel.

    Anything else (a flat input that is no square, more dimensions) is refused.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) in (2, 3):
        return shape if len(shape) == 3 else (1, *shape)  # type: ignore[return-value]
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) != 1 or side * side != shape[0]:
        raise UserError(f"a conv model needs (C, H, W) or (H, W) inputs or a flat square image; got shape {shape}")
    return (1, side, side)


def layer_stack(input_shape: Sequence[int], conv_channels: Sequence[int], hidden_sizes: Sequence[int],
                n_classes: int, population: Callable[[], nn.Module],
                readout: Callable[[], nn.Module] | None) -> list[nn.Module]:
    """The layers of every model kind: [Unflatten] (Conv2d -> population -> AvgPool2d(2))* Flatten
    (Linear -> population)* Linear [-> readout].

    ``conv_channels`` empty: a fully connected network. 3x3 kernels, padding
    1, no bias; average pooling (not max) because it is linear, so the
    exporter folds it into the next layer's weights exactly.
    """
    if n_classes < 1 or not hidden_sizes or min(hidden_sizes) < 1 or math.prod(input_shape) < 1:
        raise UserError("layer sizes must be positive and there must be a hidden layer")
    layers: list[nn.Module] = []
    n_features = math.prod(int(d) for d in input_shape)
    if conv_channels:
        channels, height, width = image_shape_of(input_shape)
        if len(input_shape) != 3:  # [B, H*W] or [B, H, W] -> [B, 1, H, W]
            layers.append(nn.Unflatten(1, (channels, height, width) if len(input_shape) == 1 else (1, height)))
        for out_channels in conv_channels:
            if height < 2 or width < 2:
                raise UserError("too many conv blocks for this image size (each halves it)")
            layers += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), population(), nn.AvgPool2d(2)]
            channels, height, width = out_channels, height // 2, width // 2
        n_features = channels * height * width
    layers.append(nn.Flatten())
    for n_post in hidden_sizes:
        layers += [nn.Linear(n_features, n_post, bias=False), population()]
        n_features = n_post
    layers.append(nn.Linear(n_features, n_classes, bias=False))
    return layers + ([readout()] if readout is not None else [])


class SpikingNet(nn.Sequential):
    """A spiking model: ``layer_stack`` with Norse ``LIFCell`` populations and an ``LICell`` readout.

    Input ``[T, B, *input_shape]`` spikes; output ``SNNOutput`` (readout
    voltage ``[T, B, n_classes]``, spikes of every LIF population). Time
    constants are Norse's, in 1/s; ``dt_s`` in seconds. PyTorch's default
    init (uniform, +-1/sqrt(fan_in)) leaves the deeper layers silent at
    dv = 0.1, so no surrogate gradient reaches them and the loss sits at
    chance for epochs; ``weight_init_gain`` scales it up so that neurons fire
    from the first batch.
    """

    def __init__(self, input_shape: Sequence[int], hidden_sizes: Sequence[int], n_classes: int,
                 conv_channels: Sequence[int] = (), dt_s: float = 1e-3, tau_syn_inv_per_s: float = 200.0,
                 tau_mem_inv_per_s: float = 100.0, v_th: float = 1.0, surrogate_alpha: float = 100.0,
                 weight_init_gain: float | None = None) -> None:
        lif_p = LIFParameters(tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
                              tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s), v_th=torch.as_tensor(v_th),
                              method="super", alpha=torch.as_tensor(surrogate_alpha))
        li_p = LIParameters(tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
                            tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s))
        super().__init__(*layer_stack(input_shape, conv_channels, hidden_sizes, n_classes,
                                      lambda: LIFCell(p=lif_p, dt=dt_s), lambda: LICell(p=li_p, dt=dt_s)))
        self.input_shape = tuple(int(d) for d in input_shape)
        # A 3x3 kernel's fan-in is small and pooling averages spikes down: conv nets need a larger gain.
        gain = weight_init_gain if weight_init_gain is not None else (10.0 if conv_channels else 4.0)
        with torch.no_grad():
            for layer in weight_layers(self):
                layer.weight.mul_(gain)

    def forward(self, spikes: torch.Tensor) -> SNNOutput:  # type: ignore[override]
        return run_over_time(self, spikes)


class SpikingMLP(SpikingNet):
    """Flatten -> Linear -> LIFCell -> ... -> Linear -> LICell, without biases."""

    def __init__(self, n_inputs: int | Sequence[int], hidden_sizes: Sequence[int], n_classes: int,
                 **neuron_kwargs) -> None:
        shape = (n_inputs,) if isinstance(n_inputs, int) else tuple(n_inputs)
        super().__init__(shape, hidden_sizes, n_classes, conv_channels=(), **neuron_kwargs)


class SpikingConvNet(SpikingNet):
    """[Unflatten] Conv2d -> LIFCell -> AvgPool2d(2) per block, Flatten, Linear -> LIFCell ..., Linear -> LICell.

    For event frames ``[T, B, C, H, W]`` (``digits-events``: ON/OFF as 2
    channels); flat inputs of a square image (``digits``: 64 pixels) are
    unflattened to one channel by its first layer.
    """

    def __init__(self, input_shape: Sequence[int], conv_channels: Sequence[int], hidden_sizes: Sequence[int],
                 n_classes: int, **neuron_kwargs) -> None:
        if not conv_channels:
            raise UserError("a conv model needs at least one conv block")
        super().__init__(input_shape, hidden_sizes, n_classes, conv_channels=conv_channels, **neuron_kwargs)


class SpikingRecurrentMLP(nn.Sequential):
    """Flatten -> LIFRecurrentCell -> ... -> Linear -> LICell: hidden layers of Norse's recurrent cell.

    Each hidden layer has input weights ``[h, n_in]`` and recurrent weights
    ``[h, h]`` (no autapses: Norse keeps the diagonal at zero); its input at
    step ``t`` is ``W_in x[t] + W_rec z[t-1]``, its own spikes of the step
    before (docs/sparsenet_hdf5.md). Both matrices start as ``nn.Linear``'s
    would (uniform, ``+-1/sqrt(fan_in)``), the input weights scaled by
    ``weight_init_gain`` as ``SpikingNet``'s (so that, at ``recurrent_gain``
    0, this is ``SpikingMLP``'s starting point plus a silent loop) and the
    recurrent ones by ``recurrent_gain`` (0 by default, the recurrent weights
    learned from zero: the best of 0, 0.5, 1, 2 and 4 on digits-seq's
    validation split in one-seed pilots, docs/datasets.md). Same neurons and surrogate as
    ``SpikingNet``; input ``[T, B, *input_shape]``, output ``SNNOutput``.
    """

    def __init__(self, input_shape: Sequence[int], hidden_sizes: Sequence[int], n_classes: int, dt_s: float = 1e-3,
                 tau_syn_inv_per_s: float = 200.0, tau_mem_inv_per_s: float = 100.0, v_th: float = 1.0,
                 surrogate_alpha: float = 100.0, weight_init_gain: float | None = None,
                 recurrent_gain: float = 0.0) -> None:
        if n_classes < 1 or not hidden_sizes or min(hidden_sizes) < 1 or math.prod(input_shape) < 1:
            raise UserError("layer sizes must be positive and there must be a hidden layer")
        lif_p = LIFParameters(tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
                              tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s), v_th=torch.as_tensor(v_th),
                              method="super", alpha=torch.as_tensor(surrogate_alpha))
        li_p = LIParameters(tau_syn_inv=torch.as_tensor(tau_syn_inv_per_s),
                            tau_mem_inv=torch.as_tensor(tau_mem_inv_per_s))
        layers: list[nn.Module] = [nn.Flatten()]
        n_features = math.prod(int(d) for d in input_shape)
        gain = 4.0 if weight_init_gain is None else weight_init_gain
        for n_post in hidden_sizes:
            cell = LIFRecurrentCell(n_features, n_post, p=lif_p, dt=dt_s, autapses=False)
            with torch.no_grad():
                for weights, scale in ((cell.input_weights, gain), (cell.recurrent_weights, recurrent_gain)):
                    bound = scale / math.sqrt(weights.shape[1])
                    weights.uniform_(-bound, bound)
                cell.recurrent_weights.fill_diagonal_(0.0)  # no autapses (Norse keeps the diagonal at zero)
            layers.append(cell)
            n_features = n_post
        super().__init__(*layers, nn.Linear(n_features, n_classes, bias=False), LICell(p=li_p, dt=dt_s))
        self.input_shape = tuple(int(d) for d in input_shape)
        with torch.no_grad():
            self[-2].weight.mul_(gain)

    def forward(self, spikes: torch.Tensor) -> SNNOutput:  # type: ignore[override]
        return run_over_time(self, spikes)


class ReLUNet(nn.Sequential):
    """An ANN twin of the spiking models, for DPAP on ANNs: ReLU instead of LIF, one pass instead of T steps.

    It takes the same spike tensors ``[T, B, ...]`` and sees each input's
    spike count over the ``T`` steps divided by ``T`` (a rate in 0..1), as one
    step of the time loop: ``readout_v`` ``[1, B, C]`` holds the logits and
    ``layer_spikes`` the ReLU activations ``[1, B, ...]``, so training,
    evaluation and the pruners run unchanged; DPAP's trace of one step is the
    activation itself. Not spiking: no Lava export. PyTorch's default init.
    """

    def __init__(self, input_shape: Sequence[int], hidden_sizes: Sequence[int], n_classes: int,
                 conv_channels: Sequence[int] = ()) -> None:
        super().__init__(*layer_stack(input_shape, conv_channels, hidden_sizes, n_classes, nn.ReLU, None))
        self.input_shape = tuple(int(d) for d in input_shape)

    def forward(self, spikes: torch.Tensor) -> SNNOutput:  # type: ignore[override]
        return run_over_time(self, spikes.mean(dim=0, keepdim=True), populations=(nn.ReLU,))


def build_model(input_shape: Sequence[int], hidden_sizes: Sequence[int], n_classes: int, architecture: str = "mlp",
                conv_channels: Sequence[int] = (16, 32), **neuron_kwargs) -> nn.Sequential:
    """The model of a run: ``architecture`` one of ``ARCHITECTURES``.

    ``neuron_kwargs`` (time constants, threshold, init gain) apply to the
    spiking models only; the ANN twins use PyTorch's default initialisation.
    """
    if architecture not in ARCHITECTURES:
        raise UserError(f"unknown model {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    channels = tuple(conv_channels) if architecture.endswith("conv") else ()
    if architecture.startswith("ann-"):
        return ReLUNet(input_shape, hidden_sizes, n_classes, channels)
    if architecture == "rmlp":
        return SpikingRecurrentMLP(input_shape, hidden_sizes, n_classes, **neuron_kwargs)
    if channels:
        return SpikingConvNet(input_shape, channels, hidden_sizes, n_classes, **neuron_kwargs)
    return SpikingMLP(input_shape, hidden_sizes, n_classes, **neuron_kwargs)


def is_spiking(model: nn.Module) -> bool:
    """Whether ``model`` is a spiking network (exportable to Lava), not an ANN twin."""
    return not isinstance(model, ReLUNet)


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Synaptic layers in forward order (the last one feeds the readout)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
