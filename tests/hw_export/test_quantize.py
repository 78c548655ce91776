"""Loihi fixed point (docs/DESIGN.md, section 3.2), checked against the rules, not the implementation."""

import numpy as np
import pytest
from scipy import sparse

from hw_export.quantize import (ACT_SHIFT, READOUT_VTH_MANT, V_MAX, quantize_decay, quantize_layer,
                                weight_mantissas, weight_scale)
from hw_export.sparsenet import NeuronParams, SparseLayer

DECAY_UNITY = 4096  # Lava's 12-bit decays


def layer_of(weight, du=0.2, dv=0.1, v_th=1.0, spiking=True) -> SparseLayer:
    """A SparseLayer with Norse weights ``weight`` and the given decays (dt = 1 ms)."""
    weight = sparse.csr_matrix(weight)
    neuron = NeuronParams("lif" if spiking else "li", du / 1e-3, dv / 1e-3, v_th if spiking else float("inf"),
                          0.0, 0.0, 1e-3, du, dv)
    return SparseLayer("fc1", weight, neuron, np.arange(weight.shape[0]), weight.shape[0])


def unclipped(layer: SparseLayer):
    """``quantize_layer`` with the largest weight mapped to the top mantissa (clip fraction 1)."""
    return quantize_layer(layer, weight_scale((layer.weight * layer.neuron.dv).data, 1.0))


def weight_error(quantized, layer: SparseLayer) -> float:
    """Mean squared error of the dequantized weights against the float Lava weights dv * W."""
    k = quantized.voltage_scale / 2**ACT_SHIFT
    return float(np.mean((quantized.weight.data / k - (layer.weight * layer.neuron.dv).data) ** 2))


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
    layer = unclipped(layer_of(weight))
    mant = layer.weight.toarray()
    assert np.all(mant % 2 == 0) and mant.max() <= 254 and mant.min() >= -256
    assert np.abs(mant).max() == 254  # the largest weight uses the full range
    assert layer.weight.nnz == weight.nnz  # no synapse appears or vanishes
    k = layer.voltage_scale / 2**ACT_SHIFT
    # Dequantised weights are within half a mantissa step (2 / K) of dv * W.
    np.testing.assert_allclose(mant / k, weight.toarray() * 0.1, atol=1.0 / k)


@pytest.mark.parametrize("w_max", [2.0, 20.0])
def test_scale_maps_the_largest_weight_to_254_and_sets_the_threshold(w_max):
    weight = sparse.csr_matrix(np.array([[w_max, -w_max / 3], [w_max / 7, 0.0]]))
    layer = unclipped(layer_of(weight))
    k_expected = 254 / (0.1 * w_max)  # fixed-point units per float unit: dv * w_max -> 254
    assert layer.vth == round(k_expected * 1.0)
    assert layer.voltage_scale == pytest.approx(64 * k_expected)


def test_clipping_happens_exactly_when_it_lowers_the_weight_error():
    # 8-bit mantissas round each weight by at most max|w| / 254, so clipping pays only when the
    # rounding error it saves on every weight outweighs the error it puts on the clipped ones.
    rng = np.random.default_rng(0)
    bulk = rng.uniform(-0.6, 0.6, 100_000)
    # Many weights, one outlier at 1/0.6 of the bulk's range: clipping it costs at most
    # (0.4 dv)^2 / N and saves up to (1 - 0.36) of every weight's rounding error: it clips.
    many = layer_of(np.append(bulk, 1.0)[None, :])
    chosen = quantize_layer(many)
    k = chosen.voltage_scale / 2**ACT_SHIFT
    outlier_restored = chosen.weight[0, -1] / k
    assert 0.1 * 0.6 <= outlier_restored < 0.1 * 1.0 * 0.95  # clipped, but not into the bulk
    assert weight_error(chosen, many) < 0.8 * weight_error(unclipped(many), many)
    # Few weights, one outlier 30 standard deviations out: clipping it would cost more than
    # it saves, so the outlier keeps its value.
    few = rng.normal(0, 0.1, (20, 30))
    few[0, 0] = 3.0
    chosen = quantize_layer(layer_of(few))
    k = chosen.voltage_scale / 2**ACT_SHIFT
    assert chosen.weight[0, 0] / k == pytest.approx(0.3, rel=0.01)


def test_without_outliers_nothing_is_clipped():
    weight = sparse.csr_matrix(np.linspace(-1.0, 1.0, 40).reshape(5, 8))
    chosen = quantize_layer(layer_of(weight))
    k = chosen.voltage_scale / 2**ACT_SHIFT
    restored = chosen.weight.toarray() / k
    np.testing.assert_allclose(restored, weight.toarray() * 0.1, atol=1.0 / k)


def test_readout_threshold_lies_above_the_largest_voltage_lava_holds():
    # Lava's bit-accurate LIF clips v to +-(2**23 - 1) and fires when v > vth << 6 (the run itself is
    # tested in test_lava_sim.py, test_a_saturated_fixed_point_readout_never_fires).
    layer = quantize_layer(layer_of(np.eye(2), spiking=False))
    assert not layer.spiking and layer.vth == READOUT_VTH_MANT and (layer.vth << ACT_SHIFT) > V_MAX == 2**23 - 1


def test_mantissas_are_the_same_for_numpy_and_torch():
    import torch

    values = np.linspace(-1.3, 1.3, 101)
    mantissas = weight_mantissas(values, 200.0)
    torch_mantissas = weight_mantissas(torch.from_numpy(values), 200.0, xp=torch)
    np.testing.assert_array_equal(mantissas, torch_mantissas.numpy())
    assert mantissas.min() == -256 and mantissas.max() == 254 and np.all(mantissas % 2 == 0)
