"""Loihi fixed point (docs/DESIGN.md, section 3.2), checked against the rules, not the implementation."""

import numpy as np
import pytest
from scipy import sparse

from hw_export.quantize import ACT_SHIFT, VTH_MANT_MAX, quantize_decay, quantize_layer, weight_error

DECAY_UNITY = 4096  # Lava's 12-bit decays


@pytest.mark.parametrize("decay", [0.2, 0.1, 0.05, 0.013, 1.0])
def test_decays_are_the_12_bit_values_whose_lava_factor_is_closest(decay):
    # Lava's bit-accurate LIF: u *= (4096 - (du + 1)) / 4096 ; v *= (4096 - dv) / 4096.
    # Search every 12-bit value independently of the implementation.
    best_du = min(range(DECAY_UNITY), key=lambda d: abs((DECAY_UNITY - (d + 1)) / DECAY_UNITY - (1 - decay)))
    best_dv = min(range(DECAY_UNITY + 1), key=lambda d: abs((DECAY_UNITY - d) / DECAY_UNITY - (1 - decay)))
    assert quantize_decay(decay, offset=1) == best_du
    assert quantize_decay(decay, offset=0) == best_dv


def test_weights_become_even_8bit_mantissas_at_exponent_0():
    weight = sparse.csr_matrix(np.array([[1.0, -0.5, 0.0], [0.25, 2.0, -2.0]]))
    layer = quantize_layer(weight, du=0.2, dv=0.1, v_th=1.0, spiking=True, clip_fraction=1.0)
    mant = layer.weight.toarray()
    assert np.all(mant % 2 == 0) and mant.max() <= 254 and mant.min() >= -256
    assert np.abs(mant).max() == 254  # the largest weight uses the full range
    assert layer.weight.nnz == weight.nnz  # no synapse appears or vanishes
    k = layer.voltage_scale / 2**ACT_SHIFT
    assert layer.weight_exp == 0  # netx cannot carry another exponent
    # Dequantised weights are within half a mantissa step (2 / K) of dv * W.
    np.testing.assert_allclose(mant / k, weight.toarray() * 0.1, atol=1.0 / k)


@pytest.mark.parametrize("w_max", [2.0, 20.0])
def test_scale_maps_the_largest_weight_to_254_and_sets_the_threshold(w_max):
    weight = sparse.csr_matrix(np.array([[w_max, -w_max / 3], [w_max / 7, 0.0]]))
    layer = quantize_layer(weight, du=0.2, dv=0.1, v_th=1.0, spiking=True, clip_fraction=1.0)
    k_expected = 254 / (0.1 * w_max)  # fixed-point units per float unit: dv * w_max -> 254
    assert layer.weight_exp == 0
    assert layer.vth == round(k_expected * 1.0)
    assert layer.voltage_scale == pytest.approx(64 * k_expected)


def test_clipping_happens_exactly_when_it_lowers_the_weight_error():
    # 8-bit mantissas round each weight by at most max|w| / 254, so clipping pays only when the
    # rounding error it saves on every weight outweighs the error it puts on the clipped ones.
    rng = np.random.default_rng(0)
    bulk = rng.uniform(-0.6, 0.6, 100_000)
    # Many weights, one outlier at 1/0.6 of the bulk's range: clipping it costs at most
    # (0.4 dv)^2 / N and saves up to (1 - 0.36) of every weight's rounding error: it clips.
    many = sparse.csr_matrix(np.append(bulk, 1.0)[None, :])
    chosen = quantize_layer(many, 0.2, 0.1, 1.0, True)
    unclipped = quantize_layer(many, 0.2, 0.1, 1.0, True, clip_fraction=1.0)
    k = chosen.voltage_scale / 2**ACT_SHIFT
    outlier_restored = chosen.weight[0, -1] / k
    assert 0.1 * 0.6 <= outlier_restored < 0.1 * 1.0 * 0.95  # clipped, but not into the bulk
    lava_weight = (many * 0.1).tocsr()
    assert weight_error(chosen, lava_weight) < 0.8 * weight_error(unclipped, lava_weight)
    # Few weights, one outlier 30 standard deviations out: clipping it would cost more than
    # it saves, so the outlier keeps its value.
    few = rng.normal(0, 0.1, (20, 30))
    few[0, 0] = 3.0
    chosen = quantize_layer(sparse.csr_matrix(few), 0.2, 0.1, 1.0, True)
    k = chosen.voltage_scale / 2**ACT_SHIFT
    assert chosen.weight[0, 0] / k == pytest.approx(0.3, rel=0.01)


def test_without_outliers_nothing_is_clipped():
    weight = sparse.csr_matrix(np.linspace(-1.0, 1.0, 40).reshape(5, 8))
    chosen = quantize_layer(weight, 0.2, 0.1, 1.0, True)
    k = chosen.voltage_scale / 2**ACT_SHIFT
    restored = chosen.weight.toarray() / k
    np.testing.assert_allclose(restored, weight.toarray() * 0.1, atol=1.0 / k)


def test_readout_threshold_is_out_of_reach():
    layer = quantize_layer(sparse.csr_matrix(np.eye(2)), 0.2, 0.1, float("inf"), spiking=False)
    assert layer.vth == VTH_MANT_MAX == 2**17 - 1
