"""Loihi fixed point for a SparseNet, as Lava's bit-accurate models compute it.

What Lava 0.10's ``fixed_pt`` models do (``lava/proc/lif/models.py``,
``lava/proc/sparse/models.py``, ``lava/utils/weightutils.py``):

* ``Sparse``: integer weights, clipped to 8 bits (mixed sign: -256..255 with
  the least significant bit dropped, i.e. even values), synaptic sum shifted
  by a weight exponent (we use 0: below);
* ``LIF``: the synaptic input is shifted left by 6 before it is added to
  ``u``; ``u`` decays by ``(4096 - (du + 1)) / 4096`` and ``v`` by
  ``(4096 - dv) / 4096`` with sign-preserving right shifts; ``u`` wraps and
  ``v`` saturates at 24 bits (``|v| <= 2**23 - 1``); it spikes when
  ``v > vth << 6``.

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

The readout never fires: its threshold mantissa is ``2**17``, so its
effective threshold ``2**23`` lies above the largest voltage Lava's
bit-accurate LIF can hold (``2**23 - 1``). Loihi 1's threshold register has
17 bits (``2**17 - 1`` at most, an effective ``8,388,544``), so on that chip a
saturated readout would fire: read its voltage before it saturates.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from hw_export.lava_params import LavaLayer, LavaNetwork, lava_weight
from hw_export.sparsenet import SparseLayer, SparseNet

WEIGHT_MANT_MAX = 254  # largest even 8-bit mixed-sign mantissa Lava keeps (min -256)
WEIGHT_MANT_MIN = -256
DECAY_UNITY = 4096  # 12-bit decays
ACT_SHIFT = 6  # input and threshold are MSB-aligned by 6 bits
VTH_MANT_MAX = 2**17 - 1  # 17-bit threshold mantissa of a spiking layer
V_MAX = 2**23 - 1  # Lava's bit-accurate LIF clips v to +-(2**23 - 1)
READOUT_VTH_MANT = 2**17  # effective threshold 2**23 > V_MAX: the readout never fires
CLIP_FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6)  # candidate shares of the largest |weight| mapped to the top mantissa


def quantize_decay(decay: float, offset: int) -> int:
    """12-bit decay so that Lava's factor ``(4096 - (d + offset)) / 4096`` is closest to ``1 - decay``."""
    return int(min(DECAY_UNITY - offset, max(0, round(decay * DECAY_UNITY) - offset)))


def weight_mantissas(values, scale: float, xp=np):
    """Even 8-bit mantissas ``2 * round(w * K / 2)`` clipped to -256..254, for numpy (or torch: ``xp=torch``)."""
    return xp.clip(2 * xp.round(values * scale / 2), WEIGHT_MANT_MIN, WEIGHT_MANT_MAX)


def weight_scale(lava_weights: np.ndarray, clip_fraction: float) -> float:
    """``K``: ``clip_fraction`` of the largest |weight| maps to the top mantissa (unit weights without any)."""
    w_max = float(np.abs(lava_weights).max()) * clip_fraction if lava_weights.size else 1.0
    return WEIGHT_MANT_MAX / w_max if w_max > 0 else float(WEIGHT_MANT_MAX)


def best_weight_scale(lava_weights: np.ndarray) -> float:
    """Among ``CLIP_FRACTIONS``, the scale whose dequantized weights have the smallest mean squared error.

    Rare outliers otherwise cost every other weight resolution.
    """
    def error(scale: float) -> float:
        restored = weight_mantissas(lava_weights, scale) / scale
        return float(np.mean((restored - lava_weights) ** 2)) if lava_weights.size else 0.0

    scales = [weight_scale(lava_weights, fraction) for fraction in CLIP_FRACTIONS]
    return scales[int(np.argmin([error(s) for s in scales]))]


def threshold_mantissa(scale: float, v_th: float, spiking: bool) -> int:
    """The 17-bit threshold mantissa ``round(K * v_th)`` of a spiking layer; ``READOUT_VTH_MANT`` for the readout."""
    return int(min(VTH_MANT_MAX, round(scale * v_th))) if spiking else READOUT_VTH_MANT


def quantize_layer(layer: SparseLayer, scale: float | None = None) -> LavaLayer:
    """One layer in Loihi fixed point; ``scale`` (``K``): the one Loihi-exact training used if the layer records
    one (``SparseLayer.fixed_point_scale``), else ``best_weight_scale`` of all its weights. Recurrent weights
    take the same ``K``: both feed the same ``u``, in one unit (and netx's ``dense_rec`` has one exponent)."""
    float_weight, float_recurrent = lava_weight(layer), lava_weight(layer, recurrent=True)
    scale = scale if scale is not None else layer.fixed_point_scale
    if scale is None:
        values = [float_weight.data] + ([] if float_recurrent is None else [float_recurrent.data])
        scale = best_weight_scale(np.concatenate(values))
    spiking = layer.neuron.kind == "lif"
    return LavaLayer(layer.name, _mantissa_matrix(float_weight, scale), quantize_decay(layer.neuron.du, 1),
                     quantize_decay(layer.neuron.dv, 0), threshold_mantissa(scale, layer.neuron.v_th, spiking),
                     spiking, float(scale * 2**ACT_SHIFT),
                     None if float_recurrent is None else _mantissa_matrix(float_recurrent, scale))


def _mantissa_matrix(float_weight: sparse.csr_matrix, scale: float) -> sparse.csr_matrix:
    """The same synapses with int32 mantissas."""
    mantissa = weight_mantissas(float_weight.data, scale).astype(np.int32)
    return sparse.csr_matrix((mantissa, float_weight.indices.copy(), float_weight.indptr.copy()),
                             shape=float_weight.shape)


def quantize(net: SparseNet) -> LavaNetwork:
    """Fixed-point parameters for every layer of ``net`` (same order)."""
    return LavaNetwork("fixed", net.n_inputs, tuple(quantize_layer(layer) for layer in net.layers))
