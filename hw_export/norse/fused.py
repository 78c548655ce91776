"""A Norse ``LIFCell`` population over a whole sequence in one autograd node: Norse's step, T times, unrecorded.

Stepping a population through ``T`` steps with autograd records about ten
small operations per step and replays twice as many backwards: for the
small layers of a spiking network that bookkeeping, not arithmetic, is most
of a training step, so a pruned (smaller) layer is hardly faster. Here the
forward pass runs Norse's own step (``norse.torch.functional.lif``'s
``lif_feed_forward_step``: the same expressions in the same order, so the
same spikes and voltages to the bit) ``T`` times without recording, and the
backward pass is its hand-written adjoint (back-propagation through time of
the same equations, SuperSpike's surrogate ``1 / (|v - v_th| + 1)^2`` as
Norse's ``SuperSpike.backward``). Per step, with ``a = dt * tau_mem_inv``,
``b = dt * tau_syn_inv`` (docs/DESIGN.md, section 3.1):

    i_new = i + x ;  v_dec = v + a * ((v_leak - v) + i_new) ;  i' = i_new + (-b) * i_new
    z = H(v_dec - v_th) ;  v' = (1 - z) * v_dec + z * v_reset

adjoint (g_ denotes dLoss/d):

    g_z     = g_out[t] + g_v' * (v_reset - v_dec)
    g_v_dec = g_v' * (1 - z) + g_z / (|v_dec - v_th| + 1)^2
    g_i_new = g_i' * (1 - b) + g_v_dec * a ;  g_x[t] = g_i_new
    g_i = g_i_new ;  g_v = g_v_dec * (1 - a)

Gradients equal autograd's up to float rounding (tested against it).
Only a plain ``LIFCell`` with scalar parameters and the ``super`` surrogate
takes this path (``can_fuse``); any other cell is stepped as before.
"""

from __future__ import annotations

import torch
from norse.torch import LICell, LIFCell

from hw_export.norse import native


def can_fuse(cell: torch.nn.Module) -> bool:
    """Whether ``cell`` is a plain Norse ``LIFCell`` (not a subclass) with scalar parameters and SuperSpike."""
    p = getattr(cell, "p", None)
    return (type(cell) is LIFCell and p.method == "super"
            and all(torch.as_tensor(getattr(p, name)).numel() == 1
                    for name in ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")))


class LIFSequence(torch.autograd.Function):
    """``(x [T, B, ...], cell) -> spikes [T, B, ...]``: Norse's ``LIFCell`` from its initial state, T steps."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, cell: LIFCell) -> torch.Tensor:  # type: ignore[override]
        p, dt = cell.p, cell.dt
        # lif_feed_forward_step's expressions, in its order (its 0-d factors are the same every step).
        mem_factor, syn_factor = dt * p.tau_mem_inv, -dt * p.tau_syn_inv
        ctx.constants = (float(dt * p.tau_mem_inv), float(dt * p.tau_syn_inv), float(p.v_th), float(p.v_reset))
        ctx.native = native.applies_to(inputs) and mem_factor.dtype == torch.float32
        if ctx.native:  # the same loop compiled (native.py): one call, the same spikes and voltages
            spikes, decayed_t = native.lif_forward(inputs, float(mem_factor), float(syn_factor),
                                                   *(float(torch.as_tensor(value, dtype=torch.float32))
                                                     for value in (p.v_leak, p.v_th, p.v_reset)))
            ctx.save_for_backward(decayed_t)  # its adjoint finds the spikes again (v_decayed > v_th)
            return spikes
        spiked_t, decayed_t = _lif_steps(inputs, p, mem_factor, syn_factor)
        ctx.save_for_backward(spiked_t, decayed_t)
        return spiked_t.to(decayed_t.dtype)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        a, b, v_th, v_reset = ctx.constants
        if ctx.native:
            return native.lif_backward(grad_spikes, ctx.saved_tensors[0], a, b, v_th, v_reset), None
        spiked, decayed = ctx.saved_tensors
        # What does not depend on the adjoint, for all T steps at once: [T, B, ...]
        silent = (~spiked).to(decayed.dtype)  # 1 - z
        surrogate = ((decayed - v_th).abs_() + 1.0).pow_(2).reciprocal_()  # SuperSpike: 1 / (|v - v_th| + 1)^2
        reset_gap = v_reset - decayed  # dv'/dz
        grad_inputs = torch.empty_like(grad_spikes)
        grad_v = torch.zeros_like(grad_spikes[0])
        grad_i = torch.zeros_like(grad_spikes[0])
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            grad_z = torch.addcmul(grad_spikes[t], grad_v, reset_gap[t])
            grad_v_dec = torch.addcmul(grad_v * silent[t], grad_z, surrogate[t])
            grad_i = torch.add(grad_i * (1 - b), grad_v_dec, alpha=a, out=grad_inputs[t])  # g_x[t] = g_i_new
            grad_v = grad_v_dec * (1 - a)
        return grad_inputs, None


def _lif_steps(inputs: torch.Tensor, p, mem_factor: torch.Tensor, syn_factor: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spiked bool [T, B, ...], v_decayed [T, B, ...])``: Norse's step ``T`` times in PyTorch operations."""
    # Norse's initial state (LIFCell.initial_state): v = v_leak, i = 0 in float32 (promoted as Norse promotes).
    v = torch.as_tensor(p.v_leak).clone()
    i = torch.zeros(inputs.shape[1:], device=inputs.device, dtype=torch.float32)
    v_reset = torch.as_tensor(p.v_reset, dtype=inputs.dtype)
    spikes, decayed = [], []
    for x_t in inputs:
        i_new = i + x_t
        v_decayed = v + mem_factor * ((p.v_leak - v) + i_new)
        i = i_new + syn_factor * i_new
        # Norse's heaviside(v_decayed - v_th), i.e. v_decayed - v_th > 0: for floats exactly v_decayed > v_th.
        spiked = torch.gt(v_decayed, p.v_th)
        # (1 - z) * v_decayed + z * v_reset with z in {0, 1}: exactly one of the two terms is kept.
        v = torch.where(spiked, v_reset, v_decayed)
        spikes.append(spiked)
        decayed.append(v_decayed)
    return torch.stack(spikes), torch.stack(decayed)


class LISequence(torch.autograd.Function):
    """``(x [T, B, ...], cell) -> v [T, B, ...]``: Norse's ``LICell`` (the readout) from its initial state, T steps.

    Forward: ``li_feed_forward_step``'s expressions, ``i_jump = i + x``,
    ``v' = v + a * ((v_leak - v) + i_jump)``, ``i' = i_jump + (-b) * i_jump``,
    the output ``v'``. It is linear, so the adjoint needs nothing saved:
    ``g_v' = g_out[t] + g_v``, ``g_i_jump = g_i' * (1 - b) + g_v' * a = g_x[t] = g_i``,
    ``g_v = g_v' * (1 - a)``.
    """

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, cell: LICell) -> torch.Tensor:  # type: ignore[override]
        p, dt = cell.p, cell.dt
        mem_factor, syn_factor = dt * p.tau_mem_inv, -dt * p.tau_syn_inv
        ctx.constants = (float(dt * p.tau_mem_inv), float(dt * p.tau_syn_inv))
        ctx.native = native.applies_to(inputs) and mem_factor.dtype == torch.float32
        if ctx.native:
            return native.li_forward(inputs, float(mem_factor), float(syn_factor),
                                     float(torch.as_tensor(p.v_leak, dtype=torch.float32)))
        v, i = torch.as_tensor(p.v_leak), torch.zeros(inputs.shape[1:], device=inputs.device, dtype=inputs.dtype)
        voltages = []
        for x_t in inputs:
            i_jump = i + x_t
            v = v + mem_factor * ((p.v_leak - v) + i_jump)
            i = i_jump + syn_factor * i_jump
            voltages.append(v)
        return torch.stack(voltages)

    @staticmethod
    def backward(ctx, grad_voltages: torch.Tensor):  # type: ignore[override]
        a, b = ctx.constants
        if ctx.native:
            return native.li_backward(grad_voltages, a, b), None
        grad_inputs = torch.empty_like(grad_voltages)
        grad_v = torch.zeros_like(grad_voltages[0])
        grad_i = torch.zeros_like(grad_voltages[0])
        for t in range(grad_voltages.shape[0] - 1, -1, -1):
            grad_v_new = grad_voltages[t] + grad_v
            grad_i = torch.add(grad_i * (1 - b), grad_v_new, alpha=a, out=grad_inputs[t])
            grad_v = grad_v_new * (1 - a)
        return grad_inputs, None


def can_fuse_li(cell: torch.nn.Module) -> bool:
    """Whether ``cell`` is a plain Norse ``LICell`` (not a subclass) with scalar parameters."""
    p = getattr(cell, "p", None)
    return type(cell) is LICell and all(torch.as_tensor(getattr(p, name)).numel() == 1
                                        for name in ("tau_syn_inv", "tau_mem_inv", "v_leak"))


def li_sequence(cell: LICell, inputs: torch.Tensor) -> torch.Tensor:
    """Voltages ``[T, B, ...]`` of the readout ``cell`` driven by ``inputs`` ``[T, B, ...]`` (``LISequence``)."""
    return LISequence.apply(inputs, cell)


def lif_sequence(cell: LIFCell, inputs: torch.Tensor) -> torch.Tensor:
    """Spikes ``[T, B, ...]`` of ``cell`` driven by ``inputs`` ``[T, B, ...]`` from its initial state (``LIFSequence``)."""
    return LIFSequence.apply(inputs, cell)
