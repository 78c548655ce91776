"""Loihi fixed point for a SparseNet, as Lava's bit-accurate models compute it.

What Lava 0.10's ``fixed_pt`` models do (``lava/proc/lif/models.py``,
``lava/proc/sparse/models.py``, ``lava/utils/weightutils.py``):

* ``Sparse``: integer weights, clipped to 8 bits (mixed sign: -256..255 with
  the least significant bit dropped, i.e. even values), synaptic sum shifted
  by ``weight_exp`` (left if positive, arithmetic right if negative);
* ``LIF``: the synaptic input is shifted left by 6 before it is added to
  ``u``; ``u`` decays by ``(4096 - (du + 1)) / 4096`` and ``v`` by
  ``(4096 - dv) / 4096`` with sign-preserving right shifts; ``u`` wraps and
  ``v`` saturates at 24 bits; it spikes when ``v > vth << 6``.

So with a per-layer scale ``K`` (fixed-point units per float unit before the
6-bit shift), float weights ``w = dv * W`` become ``w * K ~= mant`` with
weight exponent 0, the threshold ``vth_mant = round(K * v_th)``, and a
fixed-point voltage is ``64 * K`` times the float one. ``K`` makes the
largest (possibly clipped) weight use the full mantissa range.

Why exponent 0: a netx file stores each weight as one integer and lava-dl
clips it to 8 bits (``lava.lib.dl.netx.utils.optimize_weight_bits``), so a
positive exponent cannot be carried; a negative one would right-shift (floor)
every synaptic sum. With exponent 0, ``dpap simulate --precision fixed``
computes exactly what lava-dl computes from our netx file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from hw_export.sparsenet import SparseNet

WEIGHT_MANT_MAX = 254  # largest even 8-bit mixed-sign mantissa Lava keeps (min -256)
DECAY_UNITY = 4096  # 12-bit decays
ACT_SHIFT = 6  # input and threshold are MSB-aligned by 6 bits
VTH_MANT_MAX = 2**17 - 1  # 17-bit threshold mantissa


@dataclass(frozen=True, eq=False)
class FixedLayer:
    """One layer in Loihi fixed point."""

    weight: sparse.csr_matrix  # int32 weight mantissas (even, -256..254), [n_out, n_in]
    weight_exp: int  # shift applied to the synaptic sum (always 0: see the module docstring)
    du: int  # 12-bit current decay (Lava adds 1)
    dv: int  # 12-bit voltage decay
    vth: int  # 17-bit threshold mantissa (compared with v >> 0 after << 6)
    voltage_scale: float  # fixed-point v per float (Norse) v: 64 * K


def quantize_decay(decay: float, offset: int) -> int:
    """12-bit decay so that Lava's factor ``(4096 - (d + offset)) / 4096`` is closest to ``1 - decay``."""
    return int(min(DECAY_UNITY - offset, max(0, round(decay * DECAY_UNITY) - offset)))


def quantize_layer(weight: sparse.csr_matrix, du: float, dv: float, v_th: float, spiking: bool,
                   clip_fraction: float | None = None) -> FixedLayer:
    """Quantize one layer; ``clip_fraction`` of the largest |weight| maps to the top mantissa.

    ``None`` picks, among a few clipping levels, the one with the smallest
    mean squared weight error (rare outliers otherwise cost every other
    weight resolution).
    """
    lava_weight = (weight * dv).tocsr()  # float Lava weights
    if clip_fraction is None:
        candidates = [quantize_layer(weight, du, dv, v_th, spiking, f) for f in CLIP_FRACTIONS]
        errors = [weight_error(c, lava_weight) for c in candidates]
        return candidates[int(np.argmin(errors))]
    w_max = float(np.abs(lava_weight.data).max()) * clip_fraction if lava_weight.nnz else 1.0
    scale = WEIGHT_MANT_MAX / w_max  # K
    mantissa = 2 * np.round(lava_weight.data * scale / 2)  # even values
    mantissa = np.clip(mantissa, -256, WEIGHT_MANT_MAX).astype(np.int32)
    fixed_weight = sparse.csr_matrix((mantissa, lava_weight.indices.copy(), lava_weight.indptr.copy()),
                                     shape=lava_weight.shape)
    vth = int(min(VTH_MANT_MAX, round(scale * v_th))) if spiking else VTH_MANT_MAX
    return FixedLayer(fixed_weight, 0, quantize_decay(du, 1), quantize_decay(dv, 0), vth,
                      float(scale * 2**ACT_SHIFT))


CLIP_FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6)


def weight_error(layer: FixedLayer, lava_weight: sparse.csr_matrix) -> float:
    """Mean squared error of the dequantized weights against the float Lava weights."""
    scale = layer.voltage_scale / 2**ACT_SHIFT
    restored = layer.weight.data.astype(np.float64) / scale
    return float(np.mean((restored - lava_weight.data) ** 2)) if lava_weight.nnz else 0.0


def quantize(net: SparseNet) -> list[FixedLayer]:
    """Fixed-point parameters for every layer of ``net`` (same order)."""
    return [quantize_layer(layer.weight, layer.neuron.du, layer.neuron.dv, layer.neuron.v_th,
                           layer.neuron.kind == "lif") for layer in net.layers]
