"""Loihi-exact training: the network you train is the network the chip runs, spike for spike.

``loihi_exact(model)`` turns a Norse model (ours or a user's ``SequentialState``)
into one whose forward pass is Lava's bit-accurate arithmetic:

* every synaptic layer that feeds a neuron population computes its output
  with 8-bit weight mantissas, quantized by ``hw_export/quantize.py``'s own
  functions from the layer's effective (masked) weights, with a
  straight-through gradient (``QuantizedSynapse``; the layer becomes a
  ``QuantizedLinear`` / ``QuantizedConv2d``, still an ``nn.Linear`` /
  ``nn.Conv2d`` with the same parameters, so ``torch.nn.utils.prune`` masks,
  DPAP's hooks and DDP see an ordinary layer);
  its output is the integer synaptic input Lava's ``Sparse`` sends;
* every ``LIFRecurrentCell`` becomes a ``LoihiLIFRecurrentCell`` (in place:
  its weights, masks and hooks stay), whose input and recurrent synapses are
  8-bit mantissas of one scale, its recurrent input its own spikes of the
  step before;
* every ``LIFCell`` becomes a ``LoihiLIFCell`` and the ``LICell`` readout a
  ``LoihiLICell``: Norse cells with the same ``(input, state) -> (output,
  state)`` contract whose state evolves by ``hw_export/loihi_fixed.py``
  (12-bit decays with Lava's current-decay offset, integer ``u`` and ``v``,
  the 6-bit activation shift, threshold in mantissa units), and whose
  backward pass is the gradient of the same float dynamics with Norse's
  surrogate for the spike (``LoihiStep``).

The export of such a model is exact: ``export_model`` records each layer's
weight scale ``K`` (``SparseLayer.fixed_point_scale``), so ``quantize`` writes
the very mantissas, decays and thresholds the training used, and Lava's
fixed-point simulation and lava-dl's netx reader reproduce the trained
model's spikes. Integer values are exact in float32 too (``|u|, |v| <= 2**23``).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from norse.torch import LICell, LIFCell, LIFParameters, LIFRecurrentCell, LIParameters
from torch import nn

from hw_export.errors import UserError
from hw_export.loihi_fixed import ACT_SHIFT, CURRENT_OFFSET, DECAY_UNITY, fires, subthreshold_step
from hw_export.norse.layers import CELLS, RECURRENT_CELLS, RESHAPING, SYNAPTIC, named_layers
from hw_export.quantize import best_weight_scale, quantize_decay, threshold_mantissa, weight_mantissas


class LoihiState(NamedTuple):
    """Current and voltage in Lava's units: integer-valued float tensors that carry the gradient."""

    u: torch.Tensor
    v: torch.Tensor


def straight_through(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``exact``'s values with ``surrogate``'s gradient."""
    return surrogate + (exact.to(surrogate.dtype) - surrogate).detach()


class LoihiStep(torch.autograd.Function):
    """One step of Lava's bit-accurate LIF forward; backward, the gradient of the same float dynamics.

    Forward (exact, ``hw_export/loihi_fixed.py`` on int64): ``u``, ``v`` before
    the spike, the spike where ``v > vth << 6`` (``vth`` None: the readout,
    which never fires) and the reset. Backward: the float dynamics
    ``u' = u (1 - (du + 1)/4096) + 64 a``, ``v' = v (1 - dv/4096) + u'``,
    ``v'' = v' (1 - z)``, with Norse's SuperSpike surrogate for ``z`` in Norse
    units (``x = (v' - vth << 6) / 64K``, ``dz/dx = 1 / (|x| + 1)^2``, as Norse
    1.1's ``SuperSpike.backward`` computes it, its ``alpha`` unused):
    what straight-through estimates through these equations would give, in
    one pass instead of two.
    """

    @staticmethod
    def forward(ctx, a_in, u, v, du: int, dv: int, vth: int | None, scale: float):
        # Every value is an exact integer (QuantizedSynapse's input, the state's own values): the casts are exact.
        u_int, v_int = subthreshold_step(*(t.detach().to(torch.int64) for t in (u, v, a_in)), du, dv, xp=torch)
        fired = fires(v_int, vth) if vth is not None else torch.zeros_like(v_int, dtype=torch.bool)
        v_before = v_int.to(v.dtype)
        ctx.save_for_backward(v_before, fired)
        ctx.constants = (du, dv, vth, scale)
        return fired.to(v.dtype), u_int.to(u.dtype), v_before.masked_fill(fired, 0)

    @staticmethod
    def backward(ctx, grad_spikes, grad_u, grad_v):
        v_before, fired = ctx.saved_tensors
        du, dv, vth, scale = ctx.constants
        grad_v_before = grad_v * (~fired)
        if vth is not None:
            unit = 2**ACT_SHIFT * scale  # Lava's voltage per Norse voltage
            x = (v_before - (vth << ACT_SHIFT)) / unit
            surrogate = 1.0 / ((x.abs() + 1.0) ** 2 * unit)
            grad_v_before = grad_v_before + (grad_spikes - grad_v * v_before) * surrogate
        grad_u_new = grad_u + grad_v_before
        return (grad_u_new * 2**ACT_SHIFT, grad_u_new * (1 - (du + CURRENT_OFFSET) / DECAY_UNITY),
                grad_v_before * (1 - dv / DECAY_UNITY), None, None, None, None)


class _LoihiDynamics:
    """What both Loihi cells share: Lava's decays from the Norse parameters, and one step."""

    weight_scale: float  # K of the synapse feeding the cell (fixed-point units per Norse unit), set each forward

    def decays(self) -> tuple[int, int]:
        """Lava's 12-bit ``(du, dv)``, from the very float32 products Norse multiplies by."""
        du = float(self.dt * torch.as_tensor(self.p.tau_syn_inv))
        dv = float(self.dt * torch.as_tensor(self.p.tau_mem_inv))
        return quantize_decay(du, CURRENT_OFFSET), quantize_decay(dv, 0)

    def step(self, input_tensor: torch.Tensor, state: LoihiState | None, vth: int | None):
        """``(spikes, u, v)`` after one step from ``state`` (zeros when None)."""
        if state is None:
            zeros = torch.zeros_like(input_tensor)
            state = LoihiState(zeros, zeros)
        return LoihiStep.apply(input_tensor, state.u, state.v, *self.decays(), vth, self.weight_scale)


class LoihiLIFCell(_LoihiDynamics, LIFCell):
    """A Norse ``LIFCell`` that computes as Lava's bit-accurate LIF (``PyLifModelBitAcc``).

    Input ``[B, ...]``: the integer synaptic input of ``QuantizedSynapse``;
    output: spikes (0/1) and ``LoihiState``. The threshold mantissa is
    ``quantize.threshold_mantissa(K, v_th)``; the spike's surrogate gradient
    is Norse's SuperSpike.
    """

    def __init__(self, p: LIFParameters = LIFParameters(), **kwargs) -> None:
        if p.method != "super":
            raise UserError(f"Loihi-exact training uses Norse's SuperSpike surrogate (method 'super'), not "
                            f"{p.method!r}")
        super().__init__(p, **kwargs)
        self.weight_scale = 1.0

    def forward(self, input_tensor: torch.Tensor, state: LoihiState | None = None):  # type: ignore[override]
        vth = threshold_mantissa(self.weight_scale, float(self.p.v_th), spiking=True)
        spikes, u, v = self.step(input_tensor, state, vth)
        return spikes, LoihiState(u, v)


class LoihiLICell(_LoihiDynamics, LICell):
    """The readout as Lava's bit-accurate LIF that never fires; its output is the voltage in Norse units, ``v / 64K``."""

    def __init__(self, p: LIParameters = LIParameters(), **kwargs) -> None:
        super().__init__(p, **kwargs)
        self.weight_scale = 1.0

    def forward(self, input_tensor: torch.Tensor, state: LoihiState | None = None):  # type: ignore[override]
        # Lava's readout has the threshold mantissa READOUT_VTH_MANT, out of reach of any voltage: it never fires.
        _, u, v = self.step(input_tensor, state, None)
        return v / (2**ACT_SHIFT * self.weight_scale), LoihiState(u, v)


class LoihiRecurrentState(NamedTuple):
    """A Loihi-exact recurrent cell's state: ``u``, ``v`` as ``LoihiState``, and the spikes ``z`` of this step,
    the next step's recurrent input."""

    u: torch.Tensor
    v: torch.Tensor
    z: torch.Tensor


class LoihiLIFRecurrentCell(_LoihiDynamics, LIFRecurrentCell):
    """A Norse ``LIFRecurrentCell`` that computes as Lava's bit-accurate LIF fed by two ``Sparse`` processes:
    its input and its own spikes of the step before, both as 8-bit mantissas of one scale ``K``
    (``RecurrentQuantizer``; ``quantize.quantize_layer`` gives a recurrent layer's two matrices one ``K``).

    ``loihi_exact`` turns a cell into one in place (its class swapped: its parameters, prune masks and
    pruner hooks stay). Input ``[B, n_in]`` spikes; output spikes and ``LoihiRecurrentState``.
    """

    def forward(self, input_tensor: torch.Tensor, state: LoihiRecurrentState | None = None):  # type: ignore[override]
        scale, input_mantissas, recurrent_mantissas = self._loihi_quantizer.scale_and_mantissas(self)
        self.weight_scale = scale
        dv = float(self.dt * torch.as_tensor(self.p.tau_mem_inv))
        input_weights = straight_through(input_mantissas, self.input_weights * (scale * dv))
        recurrent_weights = straight_through(recurrent_mantissas, self.recurrent_weights * (scale * dv))
        previous = torch.zeros(*input_tensor.shape[:-1], recurrent_weights.shape[0], dtype=input_tensor.dtype,
                               device=input_tensor.device) if state is None else state.z
        a_in = nn.functional.linear(input_tensor, input_weights) + nn.functional.linear(previous, recurrent_weights)
        vth = threshold_mantissa(scale, float(self.p.v_th), spiking=True)
        spikes, u, v = self.step(a_in, None if state is None else LoihiState(state.u, state.v), vth)
        return spikes, LoihiRecurrentState(u, v, spikes)


class RecurrentQuantizer:
    """``(K, input mantissas, recurrent mantissas)`` of a recurrent cell, as ``quantize.quantize_layer`` computes
    them from its export: ``K`` is ``best_weight_scale`` of the Lava weights ``dv * w`` of every synapse the
    masks keep, both matrices together (without autapses the diagonal holds no synapse)."""

    def scale_and_mantissas(self, cell: nn.Module) -> tuple[float, torch.Tensor, torch.Tensor]:
        dv = float(cell.dt * torch.as_tensor(cell.p.tau_mem_inv))
        values, kept = [], []
        for name in ("input_weights", "recurrent_weights"):
            value = current_weight(cell, name).detach().double() * dv
            mask = getattr(cell, f"{name}_mask", torch.ones_like(value)) != 0
            if name == "recurrent_weights" and not cell.autapses:
                mask = mask & ~torch.eye(value.shape[0], dtype=torch.bool, device=value.device)
            values.append(value)
            kept.append(value[mask])
        scale = best_weight_scale(torch.cat(kept).cpu().numpy())
        return scale, *(weight_mantissas(value, scale, xp=torch) for value in values)


LOIHI_CELLS = (LoihiLIFCell, LoihiLICell, LoihiLIFRecurrentCell)


def current_weight(layer: nn.Module, name: str) -> torch.Tensor:
    """The weight ``name`` the layer's next forward computes with: ``torch.nn.utils.prune``'s ``<name>_orig *
    <name>_mask`` where masked (the attribute ``<name>`` holds the product of the last forward, stale after an
    optimizer step: the pipeline exports right after training), else the parameter itself."""
    if hasattr(layer, f"{name}_orig"):
        return getattr(layer, f"{name}_orig") * getattr(layer, f"{name}_mask")
    return getattr(layer, name)


class QuantizedSynapse:
    """A synaptic layer's forward in Loihi-exact mode: ``sum_j mantissa_ij * count_j``, Lava's integer input.

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
        key = (source.data_ptr(), source._version, None if mask is None else mask._version, source.dtype)
        if self._cache is None or self._cache[0] != key:
            values = current_weight(layer, "weight").detach().double() * (1.0 / self.inputs_per_value) * self.dv()
            kept = values if mask is None else values[mask != 0]
            scale = best_weight_scale(kept.cpu().numpy())
            self._cache = (key, scale, weight_mantissas(values, scale, xp=torch))
        return self._cache[1], self._cache[2]

    def __call__(self, layer: nn.Module, counts: torch.Tensor) -> torch.Tensor:
        scale, mantissas = self.scale_and_mantissas(layer)
        self.cell.weight_scale = scale
        weight = straight_through(mantissas, layer.weight * (scale / self.inputs_per_value * self.dv()))
        if self.inputs_per_value != 1:
            counts = straight_through((counts.detach() * self.inputs_per_value).round(), counts * self.inputs_per_value)
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(counts, weight)
        return nn.functional.conv2d(counts, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


class _QuantizedForward:
    """The forward of a synaptic layer in Loihi-exact mode: its ``QuantizedSynapse`` computes the output.

    ``loihi_exact`` swaps a layer's class for one of these subclasses, so the
    layer keeps its parameters, masks and hooks (``torch.nn.utils.prune``,
    DPAP) and is still an ``nn.Linear`` / ``nn.Conv2d`` to every reader, and
    computes its output once.
    """

    def forward(self, input_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._loihi_quantizer(self, input_tensor)


class QuantizedLinear(_QuantizedForward, nn.Linear):
    """An ``nn.Linear`` whose output is Lava's integer synaptic input (``QuantizedSynapse``)."""


class QuantizedConv2d(_QuantizedForward, nn.Conv2d):
    """An ``nn.Conv2d`` whose output is Lava's integer synaptic input (``QuantizedSynapse``)."""


QUANTIZED = {nn.Linear: QuantizedLinear, nn.Conv2d: QuantizedConv2d}


def _quantize_synapse(name: str, synapse: nn.Module, quantizer: QuantizedSynapse) -> None:
    """Make ``synapse`` compute through ``quantizer`` (its class swapped for the quantized twin)."""
    if type(synapse) in QUANTIZED:
        synapse.__class__ = QUANTIZED[type(synapse)]
    elif type(synapse) not in QUANTIZED.values():
        raise UserError(f"layer {name!r} ({type(synapse).__name__}): Loihi-exact training takes nn.Linear and "
                        "nn.Conv2d synaptic layers, not subclasses of them")
    synapse._loihi_quantizer = quantizer


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
        if isinstance(layer, RECURRENT_CELLS):  # its own synapses: quantized in its forward, the class swapped
            if synapse is not None:
                raise UserError(f"layer {name!r}: a synaptic layer straight before a recurrent cell")
            if type(layer) is LIFRecurrentCell:
                layer.__class__ = LoihiLIFRecurrentCell
            elif type(layer) is not LoihiLIFRecurrentCell:
                raise UserError(f"layer {name!r} ({type(layer).__name__}): Loihi-exact training takes Norse's "
                                "LIFRecurrentCell, not subclasses of it")
            if layer.p.method != "super":
                raise UserError(f"Loihi-exact training uses Norse's SuperSpike surrogate (method 'super'), not "
                                f"{layer.p.method!r}")
            layer._loihi_quantizer, layer.weight_scale, between = RecurrentQuantizer(), 1.0, []
            continue
        if isinstance(layer, SYNAPTIC):
            synapse, per_value, between = (name, layer), _inputs_per_value(between), []
        elif isinstance(layer, CELLS):
            if synapse is None:
                raise UserError(f"layer {name!r}: a {type(layer).__name__} without a synaptic layer before it")
            _quantize_synapse(*synapse, QuantizedSynapse(_loihi_twin(model, name, layer), per_value))
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
