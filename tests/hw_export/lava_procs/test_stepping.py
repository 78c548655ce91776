"""The fast engine's arithmetic on its own (hw_export/lava_procs/stepping.py): no Lava needed.

Against a plain reference that steps one sample at a time with dense matrices
and the rules of hw_export/loihi_fixed.py; the kernels, tiles and packing
must not change a single integer (fixed point) or spike (float).
"""

import numpy as np
import pytest
from scipy import sparse

from hw_export import loihi_fixed
from hw_export.lava_params import LavaLayer, LavaNetwork
from hw_export.lava_procs import stepping
from hw_export.lava_procs.stepping import KERNELS, NetworkStepper, pack_spikes, prepare_layer, unpack_spikes


def random_network(precision: str, sizes=(40, 30, 20, 5), density=0.5, seed=0) -> LavaNetwork:
    """A chain of random sparse layers that spikes at a moderate rate in both precisions."""
    rng = np.random.default_rng(seed)
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        mask = rng.random((n_out, n_in)) < density
        spiking = index < len(sizes) - 2
        if precision == "fixed":
            weight = (2 * rng.integers(-60, 128, (n_out, n_in)) * mask).astype(np.int32)
            layers.append(LavaLayer(f"l{index}", sparse.csr_matrix(weight), 409, 819, 3000 if spiking else 2**17,
                                    spiking, 64.0))
        else:
            weight = rng.normal(0.03, 0.25, (n_out, n_in)) * mask
            vth = 1.0 if spiking else float(np.finfo(np.float64).max)
            layers.append(LavaLayer(f"l{index}", sparse.csr_matrix(weight), 0.2, 0.1, vth, spiking, 1.0))
    return LavaNetwork(precision, sizes[0], tuple(layers))


def reference_run(network: LavaNetwork, inputs: np.ndarray):
    """One sample at a time, dense weights: ``inputs`` [T, B, n] -> (spikes per spiking layer [T, B, n], v [T, B, n])."""
    fixed = network.precision == "fixed"
    rule = loihi_fixed.lif_step if fixed else loihi_fixed.float_lif_step
    n_steps, batch, _ = inputs.shape
    spikes = [np.zeros((n_steps, batch, layer.n_out), bool) for layer in network.layers if layer.spiking]
    readout = np.zeros((n_steps, batch, network.layers[-1].n_out))
    for b in range(batch):
        state = [(np.zeros(layer.n_out, np.int64 if fixed else np.float64),) * 2 for layer in network.layers]
        for t in range(n_steps):
            pre = inputs[t, b].astype(bool)
            for k, layer in enumerate(network.layers):
                weight = layer.weight.toarray().astype(np.int64 if fixed else np.float64)
                u, v, fired = rule(*state[k], weight[:, pre].sum(axis=1), layer.du, layer.dv, layer.vth)
                state[k] = (u, v)
                if layer.spiking:
                    spikes[k][t, b], pre = fired, fired
                else:
                    readout[t, b] = v
    return spikes, readout


def stepped_run(network: LavaNetwork, inputs: np.ndarray, kernel: str = "auto"):
    stepper = NetworkStepper(network, inputs.shape[1], kernel)
    steps = [stepper.step(inputs[t].astype(bool)) for t in range(inputs.shape[0])]
    spikes = [np.stack([s[0][k] for s in steps]) for k in range(len(steps[0][0]))]
    return spikes, np.stack([s[1] for s in steps])


@pytest.mark.parametrize("precision", ["float", "fixed"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_steps_the_same_network_as_one_sample_at_a_time(precision, kernel):
    network = random_network(precision)
    inputs = np.random.default_rng(1).random((12, 9, 40)) < 0.3
    spikes, readout = stepped_run(network, inputs, kernel)
    expected_spikes, expected_readout = reference_run(network, inputs)
    assert all(s.sum() > 20 for s in expected_spikes), "every layer must spike for the test to mean anything"
    for got, expected in zip(spikes, expected_spikes):
        np.testing.assert_array_equal(got, expected)
    if precision == "fixed":
        np.testing.assert_array_equal(readout, expected_readout)
    else:
        np.testing.assert_allclose(readout, expected_readout, rtol=1e-12, atol=1e-12)


def test_tiles_of_samples_do_not_change_a_result(monkeypatch):
    network = random_network("fixed", seed=3)
    inputs = np.random.default_rng(2).random((8, 11, 40)) < 0.3
    whole = stepped_run(network, inputs)
    monkeypatch.setattr(stepping, "TILE_BYTES", 8 * 30 * 2)  # two samples per tile: 6 tiles, the last one short
    assert NetworkStepper(network, 11).tile == 2
    tiled = stepped_run(network, inputs)
    for a, b in zip(whole[0] + [whole[1]], tiled[0] + [tiled[1]]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_inputs", [1, 15, 16, 17, 40, 2312])
def test_packed_input_spikes_come_back_unchanged(n_inputs):
    inputs = np.random.default_rng(n_inputs).random((3, 4, n_inputs)) < 0.5
    words = pack_spikes(inputs)
    assert words.shape == (3, 4, stepping.words_per_sample(n_inputs)) and words.max() < 2**16
    for t in range(3):
        # The RingBuffer holds float64 (float models) or int32 (fixed-point models): both carry a word exactly.
        for dtype in (np.float64, np.int32):
            np.testing.assert_array_equal(unpack_spikes(words[t].reshape(-1).astype(dtype), 4, n_inputs), inputs[t])


def test_fixed_point_uses_float32_blas_only_where_every_partial_sum_is_exact():
    small = sparse.csr_matrix(np.full((3, 100), 254, np.int32))  # row sums 25,400: exact in float32
    large = sparse.csr_matrix(np.full((3, 70_000), 254, np.int32))  # 17.8 M > 2**24: float64
    assert prepare_layer(small, 0, 0, 1, True, fixed=True).dense_t.dtype == np.float32
    assert prepare_layer(large, 0, 0, 1, True, fixed=True).dense_t.dtype == np.float64
    assert prepare_layer(small.astype(float), 0, 0, 1, True, fixed=False).dense_t.dtype == np.float64
    sparse_conv_like = sparse.random(500, 2000, density=0.01, format="csr", random_state=0)
    assert prepare_layer(sparse_conv_like, 0, 0, 1, True, fixed=False).dense_t is None  # events only


def test_a_layer_without_input_spikes_gets_zero_input_without_a_product():
    layer = prepare_layer(sparse.csr_matrix(np.ones((4, 6))), 0.1, 0.1, 1.0, True, fixed=False)
    result = stepping.synaptic_input(np.zeros((3, 6), bool), layer, "events")
    assert result.shape == (3, 4) and not result.any()


def test_an_unknown_kernel_is_the_users_error_naming_the_kernels():
    from hw_export.errors import UserError

    with pytest.raises(UserError, match="kernel must be one of auto, events, dense, got 'blas'"):
        NetworkStepper(random_network("float"), 2, "blas")
