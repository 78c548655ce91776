"""Spike agreement between a reference (Norse) and a simulation (Lava), counted by hand."""

import numpy as np
import pytest
from scipy import sparse

from hw_export.errors import UserError
from hw_export.fidelity import spike_agreement
from hw_export.sparsenet import NeuronParams, SparseLayer, SparseNet

LIF = NeuronParams("lif", 200.0, 100.0, 1.0, 0.0, 0.0, 1e-3, 0.2, 0.1)
LI = NeuronParams("li", 200.0, 100.0, float("inf"), 0.0, 0.0, 1e-3, 0.2, 0.1)


def net_keeping(kept, n_original):
    """2 inputs -> a LIF layer keeping ``kept`` of ``n_original`` neurons -> 1 readout."""
    n = len(kept)
    fc1 = SparseLayer("fc1", sparse.csr_matrix(np.ones((n, 2))), LIF, np.array(kept), n_original)
    readout = SparseLayer("readout", sparse.csr_matrix(np.ones((1, n))), LI, np.array([0]), 1)
    return SparseNet((2,), (fc1, readout))


def test_removed_neurons_are_not_compared_and_one_wrong_spike_counts_once():
    net = net_keeping([0, 2], n_original=3)
    reference = np.zeros((4, 2, 3), bool)  # [T, N, n_original]
    reference[:, :, 1] = True  # neuron 1 was removed: whatever it did does not count
    reference[1, 0, 0] = reference[2, 1, 2] = True
    simulated = reference[:, :, [0, 2]].copy()  # [T, N, n_kept]
    exact = spike_agreement(net, [reference], [simulated])
    assert exact == (1.0, 1.0, [1.0])
    simulated[3, 1, 0] = True  # one extra spike in sample 1
    off = spike_agreement(net, [reference], [simulated])
    assert off.elementwise == pytest.approx(1 - 1 / (4 * 2 * 2))
    assert off.samples_identical == 0.5 and off.per_layer == [off.elementwise]


def test_shapes_that_do_not_fit_are_an_error():
    net = net_keeping([0, 2], n_original=3)
    with pytest.raises(UserError, match="fc1"):
        spike_agreement(net, [np.zeros((4, 2, 3), bool)], [np.zeros((4, 2, 3), bool)])
    with pytest.raises(UserError, match="number of populations"):
        spike_agreement(net, [], [np.zeros((4, 2, 2), bool)])
