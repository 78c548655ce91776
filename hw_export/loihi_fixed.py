"""Lava's bit-accurate Loihi arithmetic, written once, for numpy and for torch (``xp``).

The rules of Lava 0.10's ``PyLifModelBitAcc`` (``lava/proc/lif/models.py``,
``AbstractPyLifModelFixed.subthr_dynamics``) and ``PySparseModelBitAcc``
(``lava/proc/sparse/models.py``), step by step, on integer arrays:

* synaptic input: the sum of the 8-bit weight mantissas of the synapses whose
  presynaptic neuron spiked (weight exponent 0: ``hw_export/quantize.py``);
* current: ``u <- decay(u, du + 1) + (a_in << 6)``, wrapped into 24 bits
  (a value above ``2**23`` loses ``2**24``, one at or below ``-2**23`` gains it);
* voltage: ``v <- clip(decay(v, dv) + u, -(2**23 - 1), 2**23 - 1)``;
* spike where ``v > vth << 6``, and ``v <- 0`` there;

with ``decay(x, d) = sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)``, a
right shift of the magnitude (so it rounds towards zero for either sign).
Every function takes ``xp`` (``numpy`` or ``torch``) and uses only what both
offer, so the fast Lava engine (numpy) and Loihi-exact training (torch) run
the very same integers; ``tests/hw_export/test_loihi_fixed.py`` checks them
against Lava's own processes bit for bit. Arrays hold int64: every value fits,
so Lava's int32 intermediates never change a result (for ``|a_in| < 2**25``).
"""

from __future__ import annotations

import numpy as np

DECAY_SHIFT = 12  # decays are 12-bit fractions of 4096
DECAY_UNITY = 2**DECAY_SHIFT
ACT_SHIFT = 6  # synaptic input and threshold are MSB-aligned by 6 bits
CURRENT_OFFSET = 1  # Lava adds 1 to du (ds_offset), so a decay of exactly 4096 is possible
MAX_UV = 2**23  # u and v are 24-bit
V_LIMIT = MAX_UV - 1  # v saturates at +-(2**23 - 1)


def decay(x, d: int, xp=np):
    """``x * (4096 - d) / 4096``, the magnitude shifted right by 12 bits (towards zero), as Lava does."""
    scaled = x * (DECAY_UNITY - d)
    return xp.sign(scaled) * (xp.abs(scaled) >> DECAY_SHIFT)


def wrap_current(u, xp=np):
    """Lava's 24-bit wrap of the current: above ``2**23`` loses ``2**24``; at or below ``-2**23`` gains it."""
    wrapped = xp.where(u > MAX_UV, u - 2 * MAX_UV, u)
    return xp.where(wrapped <= -MAX_UV, u + 2 * MAX_UV, wrapped)


def subthreshold_step(u, v, a_in, du: int, dv: int, xp=np):
    """Lava's bit-accurate current and voltage update, before the spike: ``(u, v)``.

    ``u``, ``v``, ``a_in``: integer arrays of one shape (int64); ``du``, ``dv``:
    the 12-bit decays as Lava takes them.
    """
    u = wrap_current(decay(u, du + CURRENT_OFFSET, xp) + (a_in << ACT_SHIFT), xp)
    return u, xp.clip(decay(v, dv, xp) + u, -V_LIMIT, V_LIMIT)


def fires(v, vth: int):
    """Lava's spike rule: ``v > vth << 6`` (``vth`` the threshold mantissa)."""
    return v > (vth << ACT_SHIFT)


def lif_step(u, v, a_in, du: int, dv: int, vth: int, xp=np):
    """One step of Lava's bit-accurate LIF: ``(u, v, spikes)`` from ``(u, v)`` and the synaptic input.

    Returns the new current and voltage (voltage reset to 0 where it spiked)
    and the boolean spikes; ``vth``: the threshold mantissa.
    """
    u, v = subthreshold_step(u, v, a_in, du, dv, xp)
    spikes = fires(v, vth)
    return u, xp.where(spikes, xp.zeros_like(v), v), spikes


def float_lif_step(u, v, a_in, du: float, dv: float, vth: float, xp=np):
    """One step of Lava's floating-point LIF (``PyLifModelFloat``), the same operations in the same order.

    ``u <- u (1 - du) + a_in``; ``v <- v (1 - dv) + u``; spike where ``v > vth``,
    ``v <- 0`` there. Returns ``(u, v, spikes)``.
    """
    u = u * (1 - du) + a_in
    v = v * (1 - dv) + u
    spikes = v > vth
    return u, xp.where(spikes, xp.zeros_like(v), v), spikes
