"""Loihi-exact training: the network you train is the network the chip runs, spike for spike.

``loihi_exact(model)`` turns a Norse model (ours or a user's ``SequentialState``)
into one whose forward pass is Lava's bit-accurate arithmetic:

* every synaptic layer that feeds a neuron population computes its output
  with 8-bit weight mantissas, quantized by ``hw_export/quantize.py``'s own
  functions from the layer's effective (masked) weights, with a
  straight-through gradient (``QuantizedSynapse``, a forward hook, so
  ``torch.nn.utils.prune`` masks, DPAP's hooks and DDP see an ordinary layer);
  its output is the integer synaptic input Lava's ``Sparse`` sends;
* every ``LIFCell`` becomes a ``LoihiLIFCell`` and the ``LICell`` readout a
  ``LoihiLICell``: Norse cells with the same ``(input, state) -> (output,
  state)`` contract whose state evolves by ``hw_export/loihi_fixed.py``
  (12-bit decays with Lava's current-decay offset, integer ``u`` and ``v``,
  the 6-bit activation shift, threshold in mantissa units), with Norse's
  surrogate gradient for the spike and straight-through gradients for the
  integer state: ``value = float_path + (integer_path - float_path).detach()``.

The export of such a model is exact: ``export_model`` records each layer's
weight scale ``K`` (``SparseLayer.fixed_point_scale``), so ``quantize`` writes
the very mantissas, decays and thresholds the training used, and Lava's
fixed-point simulation and lava-dl's netx reader reproduce the trained
model's spikes. Integer values are exact in float32 too (``|u|, |v| <= 2**23``).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from norse.torch import LICell, LIFCell, LIFParameters, LIParameters
from norse.torch.functional.threshold import threshold
from torch import nn

from hw_export.errors import UserError
from hw_export.loihi_fixed import ACT_SHIFT, CURRENT_OFFSET, DECAY_UNITY, subthreshold_step
from hw_export.norse.layers import CELLS, RESHAPING, SYNAPTIC, named_layers
from hw_export.quantize import best_weight_scale, quantize_decay, threshold_mantissa, weight_mantissas


class LoihiState(NamedTuple):
    """Integer-valued current and voltage (Lava's units), as float tensors that carry gradients."""

    u: torch.Tensor
    v: torch.Tensor


def straight_through(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``exact``'s values with ``surrogate``'s gradient."""
    return surrogate + (exact.to(surrogate.dtype) - surrogate).detach()


class _LoihiDynamics:
    """What both Loihi cells share: Lava's decays from the Norse parameters, and one subthreshold step."""

    weight_scale: float  # K of the synapse feeding the cell (fixed-point units per Norse unit), set each forward

    def decays(self) -> tuple[int, int]:
        """Lava's 12-bit ``(du, dv)``, from the very float32 products Norse multiplies by."""
        du = float(self.dt * torch.as_tensor(self.p.tau_syn_inv))
        dv = float(self.dt * torch.as_tensor(self.p.tau_mem_inv))
        return quantize_decay(du, CURRENT_OFFSET), quantize_decay(dv, 0)

    def subthreshold(self, input_tensor: torch.Tensor, state: LoihiState | None) -> tuple[torch.Tensor, ...]:
        """``(u, v before a spike)``: Lava's integers, with the gradient of the same float dynamics."""
        du, dv = self.decays()
        if state is None:
            zeros = torch.zeros_like(input_tensor)
            state = LoihiState(zeros, zeros)
        exact = subthreshold_step(*(t.detach().round().to(torch.int64) for t in (state.u, state.v, input_tensor)),
                                  du, dv, xp=torch)
        u = straight_through(exact[0], state.u * (1 - (du + CURRENT_OFFSET) / DECAY_UNITY)
                             + input_tensor * 2**ACT_SHIFT)
        return u, straight_through(exact[1], state.v * (1 - dv / DECAY_UNITY) + u)


class LoihiLIFCell(_LoihiDynamics, LIFCell):
    """A Norse ``LIFCell`` that computes as Lava's bit-accurate LIF (``PyLifModelBitAcc``).

    Input ``[B, ...]``: the integer synaptic input of ``QuantizedSynapse``;
    output: spikes (0/1) and ``LoihiState``. The threshold mantissa is
    ``quantize.threshold_mantissa(K, v_th)``.
    """

    def __init__(self, p: LIFParameters = LIFParameters(), **kwargs) -> None:
        super().__init__(p, **kwargs)
        self.weight_scale = 1.0

    def forward(self, input_tensor: torch.Tensor, state: LoihiState | None = None):  # type: ignore[override]
        u, v = self.subthreshold(input_tensor, state)
        vth = threshold_mantissa(self.weight_scale, float(self.p.v_th), spiking=True)
        # Lava's rule v > vth << 6 exactly (v - (vth << 6) is an exact integer, its sign survives the division),
        # with Norse's surrogate gradient in Norse units.
        spikes = threshold((v - (vth << ACT_SHIFT)) / (2**ACT_SHIFT * self.weight_scale), self.p.method,
                           float(self.p.alpha))
        return spikes, LoihiState(u, v * (1 - spikes))


class LoihiLICell(_LoihiDynamics, LICell):
    """The readout as Lava's bit-accurate LIF that never fires; its output is the voltage in Norse units, ``v / 64K``."""

    def __init__(self, p: LIParameters = LIParameters(), **kwargs) -> None:
        super().__init__(p, **kwargs)
        self.weight_scale = 1.0

    def forward(self, input_tensor: torch.Tensor, state: LoihiState | None = None):  # type: ignore[override]
        u, v = self.subthreshold(input_tensor, state)
        # Lava's readout has the threshold mantissa READOUT_VTH_MANT, out of reach of any voltage: it never fires.
        return v / (2**ACT_SHIFT * self.weight_scale), LoihiState(u, v)


LOIHI_CELLS = (LoihiLIFCell, LoihiLICell)


class QuantizedSynapse:
    """Forward hook of a synaptic layer: its output becomes ``sum_j mantissa_ij * count_j``, Lava's integer input.

    ``inputs_per_value``: how many presynaptic neurons one input value stands
    for (``k * k`` after a ``k x k`` average pooling, which the export folds
    into this layer's weights: each neuron's weight is ``w / k^2``, and the
    pooled input times ``k^2`` is its count of spikes). The scale ``K`` is
    ``quantize.best_weight_scale`` of the folded Lava weights ``dv * w / k^2`` of
    the synapses the masks keep, recomputed whenever the weights change and
    handed to the cell after this layer.
    """

    def __init__(self, cell: nn.Module, inputs_per_value: int) -> None:
        self.cell, self.inputs_per_value = cell, inputs_per_value
        self._cache: tuple | None = None  # (key of the weights, K, mantissas)

    def dv(self) -> float:
        return float(self.cell.dt * torch.as_tensor(self.cell.p.tau_mem_inv))

    def scale_and_mantissas(self, layer: nn.Module) -> tuple[float, torch.Tensor]:
        """``(K, mantissas)`` of the layer's current weights, computed as ``quantize.quantize_layer`` does."""
        mask = getattr(layer, "weight_mask", None)
        source = getattr(layer, "weight_orig", layer.weight)
        key = (source.data_ptr(), source._version, None if mask is None else mask._version, layer.weight.dtype)
        if self._cache is None or self._cache[0] != key:
            values = layer.weight.detach().double() * (1.0 / self.inputs_per_value) * self.dv()
            kept = values if mask is None else values[mask != 0]
            scale = best_weight_scale(kept.cpu().numpy())
            self._cache = (key, scale, weight_mantissas(values, scale, xp=torch))
        return self._cache[1], self._cache[2]

    def __call__(self, layer: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        scale, mantissas = self.scale_and_mantissas(layer)
        self.cell.weight_scale = scale
        weight = straight_through(mantissas, layer.weight * (scale / self.inputs_per_value * self.dv()))
        counts = inputs[0]
        if self.inputs_per_value != 1:
            counts = straight_through((counts.detach() * self.inputs_per_value).round(), counts * self.inputs_per_value)
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(counts, weight)
        return nn.functional.conv2d(counts, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


def _inputs_per_value(between: Sequence[tuple[str, nn.Module]]) -> int:
    """How many presynaptic neurons one value stands for after the layers between a population and a synapse."""
    count = 1
    for name, layer in between:
        if isinstance(layer, nn.AvgPool2d):
            kernel = nn.modules.utils._pair(layer.kernel_size)
            if nn.modules.utils._pair(layer.stride or layer.kernel_size) != kernel or \
                    nn.modules.utils._pair(layer.padding) != (0, 0):
                raise UserError(f"layer {name!r}: Loihi-exact training folds only non-overlapping average pooling "
                                "(stride = kernel, no padding) into the next layer")
            count *= kernel[0] * kernel[1]
        elif not isinstance(layer, RESHAPING):
            raise UserError(f"layer {name!r} ({type(layer).__name__}): Loihi-exact training takes only average "
                            "pooling and reshaping between a population and the next synaptic layer")
    return count


def loihi_exact(model: nn.Module) -> nn.Module:
    """Make ``model`` (an ``nn.Sequential`` or ``SequentialState``) compute as Loihi; returns it, changed in place.

    Idempotent; parameters, masks and pruner hooks are kept, so a float model
    can be fine-tuned this way after its float training.
    """
    between: list[tuple[str, nn.Module]] = []
    synapse = None
    for name, layer in named_layers(model):
        if isinstance(layer, SYNAPTIC):
            synapse, per_value, between = layer, _inputs_per_value(between), []
        elif isinstance(layer, CELLS):
            if synapse is None:
                raise UserError(f"layer {name!r}: a {type(layer).__name__} without a synaptic layer before it")
            quantizer = QuantizedSynapse(_loihi_twin(model, name, layer), per_value)
            if hasattr(synapse, "_loihi_quantizer"):
                synapse._loihi_handle.remove()
            synapse._loihi_quantizer, synapse._loihi_handle = quantizer, synapse.register_forward_hook(quantizer)
            synapse = None
        else:
            between.append((name, layer))
    return model


def _loihi_twin(model: nn.Module, name: str, cell: nn.Module) -> nn.Module:
    """The Loihi twin of a Norse cell, put in its place in ``model`` (the cell itself if it is one already)."""
    if isinstance(cell, LOIHI_CELLS):
        return cell
    twin = (LoihiLIFCell if isinstance(cell, LIFCell) else LoihiLICell)(cell.p, dt=cell.dt)
    *path, last = name.split(".")
    parent = model
    for part in path:
        parent = parent[int(part)] if part.isdigit() else getattr(parent, part)
    if last.isdigit():
        parent[int(last)] = twin
    else:
        setattr(parent, last, twin)
    return twin


def is_loihi_exact(model: nn.Module) -> bool:
    """Whether ``model`` computes as Loihi (``loihi_exact`` was applied)."""
    return any(isinstance(layer, LOIHI_CELLS) for _, layer in named_layers(model))


def trained_scale(synapse: nn.Module) -> float | None:
    """The weight scale ``K`` a Loihi-exact synaptic layer quantizes with (None for a float layer)."""
    quantizer = getattr(synapse, "_loihi_quantizer", None)
    return None if quantizer is None else quantizer.scale_and_mantissas(synapse)[0]
