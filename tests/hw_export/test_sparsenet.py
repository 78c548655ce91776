import math

import numpy as np
import pytest
from scipy import sparse

from hw_export.sparsenet import (NeuronParams, SparseLayer, SparseNetError, avgpool2d_matrix, conv2d_matrix,
                                 remove_dead_neurons)


def csr(rows):
    return sparse.csr_matrix(np.array(rows, dtype=float))


def test_dead_neurons_are_removed_to_a_fixed_point():
    # Hidden layer 1 has 3 neurons: n0 has no input, n2 has no output.
    w1 = csr([[0, 0], [1, 2], [3, 0]])
    # Hidden layer 2 has 2 neurons: m0 is fed only by n0 (which dies), m1 by n1.
    w2 = csr([[7, 0, 0], [0, 6, 0]])
    w3 = csr([[1, 1]])
    weights, kept = remove_dead_neurons([w1, w2, w3], [np.arange(3), np.arange(2), np.arange(1)])
    # n0 (no input) and n2 (no output) go; then m0 loses its only input and goes too.
    assert kept[0].tolist() == [1]
    assert kept[1].tolist() == [1]
    assert kept[2].tolist() == [0]
    assert weights[0].toarray().tolist() == [[1, 2]]
    assert weights[1].toarray().tolist() == [[6]]
    assert weights[2].toarray().tolist() == [[1]]


def test_a_recurrent_layer_keeps_neurons_its_own_layer_reaches_and_drops_closed_loops():
    """Layer 0 (5 neurons): 0 has input, 1 only an autapse, 2 input from 0 recurrently, 3 and 4 feed each other
    without input; only 2 reaches the readout, 0 through 2."""
    w_in = sparse.csr_matrix(np.array([[1.0], [0.0], [0.0], [0.0], [0.0]]))
    w_in.eliminate_zeros()
    loop = sparse.csr_matrix(np.array([[0, 0, 0, 0, 0], [0, 5.0, 0, 0, 0], [2.0, 0, 0, 0, 0],
                                       [0, 0, 0, 0, 1.0], [0, 0, 0, 1.0, 0]]))
    w_out = sparse.csr_matrix(np.array([[0, 1.0, 1.0, 1.0, 1.0]]))
    weights, kept, loops = remove_dead_neurons([w_in, w_out], [np.arange(5), np.arange(1)], [loop, None])
    assert kept[0].tolist() == [0, 2]
    np.testing.assert_array_equal(loops[0].toarray(), [[0, 0], [2.0, 0]])
    np.testing.assert_array_equal(weights[1].toarray(), [[0, 1.0]])
    assert loops[1] is None


def test_a_recurrent_matrix_of_another_shape_or_on_the_readout_is_refused():
    lif = NeuronParams("lif", 200.0, 100.0, 1.0, 0.0, 0.0, 1e-3, 0.2, 0.1)
    li = NeuronParams("li", 200.0, 100.0, math.inf, 0.0, 0.0, 1e-3, 0.2, 0.1)
    weight = sparse.csr_matrix(np.ones((2, 3)))
    with pytest.raises(SparseNetError, match="recurrent_weight has shape"):
        SparseLayer("rec1", weight, lif, np.arange(2), 2, recurrent_weight=sparse.csr_matrix(np.ones((3, 3))))
    with pytest.raises(SparseNetError, match="only a spiking"):
        SparseLayer("readout", weight, li, np.arange(2), 2, recurrent_weight=sparse.csr_matrix(np.ones((2, 2))))
    layer = SparseLayer("rec1", weight, lif, np.arange(2), 2, recurrent_weight=sparse.csr_matrix(np.eye(2)))
    assert layer.n_synapses == 6 + 2 and layer.n_recurrent_synapses == 2


def test_neuron_params_are_validated():
    good = dict(kind="lif", tau_syn_inv_per_s=200.0, tau_mem_inv_per_s=100.0, v_th=1.0, v_leak=0.0,
                v_reset=0.0, dt_s=1e-3, du=0.2, dv=0.1)
    NeuronParams(**good)
    for key, value, message in [("kind", "izhikevich", "kind"), ("du", 1.5, "du and dv"),
                                ("v_leak", float("nan"), "v_leak"), ("dt_s", -1.0, "positive")]:
        with pytest.raises(SparseNetError, match=message):
            NeuronParams(**{**good, key: value})
    assert NeuronParams.from_dict(NeuronParams(**good).to_dict()) == NeuronParams(**good)


def test_avgpool_matrix_averages_each_window():
    # One channel, 4x4 input, 2x2 windows: output k is the mean of its four inputs.
    pool, shape = avgpool2d_matrix((1, 4, 4), (2, 2), (2, 2))
    image = np.arange(16, dtype=float)
    expected = image.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4).mean(axis=1)
    np.testing.assert_allclose(pool @ image, expected)
    assert shape == (1, 2, 2) and pool.nnz == 16


def test_conv_matrix_keeps_only_unmasked_taps_and_respects_padding():
    # A 1->1 channel 3x3 kernel on a 3x3 image with padding 1: the centre output sees all 9 pixels,
    # a corner output only 4. Masking one tap removes exactly the synapses of that tap.
    weight = np.arange(1, 10, dtype=float).reshape(1, 1, 3, 3)
    mask = np.ones_like(weight, dtype=bool)
    matrix, shape = conv2d_matrix(weight, mask, (1, 3, 3), (1, 1), (1, 1))
    assert shape == (1, 3, 3)
    fan_in = np.diff(matrix.indptr)
    assert fan_in[4] == 9 and fan_in[0] == 4 and matrix.nnz == 4 * 4 + 4 * 6 + 9
    mask[0, 0, 1, 1] = False  # the centre tap feeds every output from the pixel under it
    pruned, _ = conv2d_matrix(weight, mask, (1, 3, 3), (1, 1), (1, 1))
    assert pruned.nnz == matrix.nnz - 9
    assert np.all(pruned.diagonal() == 0) and np.all(matrix.diagonal() == 5)
