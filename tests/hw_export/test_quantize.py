import numpy as np
import pytest
from scipy import sparse

from hw_export.quantize import ACT_SHIFT, MIN_VTH_MANT, quantize_decay, quantize_layer, weight_error


def test_decays_match_lava_bit_accurate_factors():
    # Lava: u *= (4096 - (du + 1)) / 4096 ; v *= (4096 - dv) / 4096
    du = quantize_decay(0.2, offset=1)
    dv = quantize_decay(0.1, offset=0)
    assert (du, dv) == (818, 410)
    assert (4096 - (du + 1)) / 4096 == pytest.approx(0.8, abs=1 / 4096)
    assert (4096 - dv) / 4096 == pytest.approx(0.9, abs=1 / 4096)


def test_weights_become_even_8bit_mantissas_with_a_shared_exponent():
    weight = sparse.csr_matrix(np.array([[1.0, -0.5, 0.0], [0.25, 2.0, -2.0]]))
    layer = quantize_layer(weight, du=0.2, dv=0.1, v_th=1.0, spiking=True, clip_fraction=1.0)
    mant = layer.weight.toarray()
    assert np.all(mant % 2 == 0) and mant.max() <= 254 and mant.min() >= -256
    assert np.abs(mant).max() == 254  # the largest weight uses the full range
    k = layer.voltage_scale / 2**ACT_SHIFT
    # Dequantised weights are within half a mantissa step (2 * 2^exp / K) of dv * W.
    restored = mant * 2.0**layer.weight_exp / k
    np.testing.assert_allclose(restored, weight.toarray() * 0.1, atol=2.0**layer.weight_exp / k)
    assert MIN_VTH_MANT <= layer.vth < 2 * MIN_VTH_MANT
    assert layer.vth == round(k * 1.0)


def test_clipping_search_never_increases_the_weight_error():
    rng = np.random.default_rng(0)
    dense = rng.normal(0, 0.1, (20, 30))
    dense[0, 0] = 3.0  # one outlier
    weight = sparse.csr_matrix(dense)
    chosen = quantize_layer(weight, 0.2, 0.1, 1.0, True)
    full = quantize_layer(weight, 0.2, 0.1, 1.0, True, clip_fraction=1.0)
    lava_weight = (weight * 0.1).tocsr()
    assert weight_error(chosen, lava_weight) <= weight_error(full, lava_weight)


def test_readout_threshold_is_out_of_reach():
    layer = quantize_layer(sparse.csr_matrix(np.eye(2)), 0.2, 0.1, float("inf"), spiking=False)
    assert layer.vth == 2**17 - 1
