"""Hardware metrics of report.json, on a network small enough to count by hand."""

import numpy as np
import pytest
from scipy import sparse

from hw_export.energy import LOIHI
from hw_export.metrics import hidden_sparsity, measure, memory_footprint_bytes, original_synapses
from hw_export.sparsenet import NeuronParams, SparseLayer, SparseNet

LIF = NeuronParams("lif", 200.0, 100.0, 1.0, 0.0, 0.0, 1e-3, 0.2, 0.1)
LI = NeuronParams("li", 200.0, 100.0, float("inf"), 0.0, 0.0, 1e-3, 0.2, 0.1)


def pruned_net():
    """3 inputs -> fc1 (trained with 4 neurons, 2 survive: originals 1 and 3) -> readout of 2.

    fc1 keeps 3 of its trained 4 x 3 = 12 synapses; the readout keeps 3 of 2 x 4 = 8.
    """
    fc1 = SparseLayer("fc1", sparse.csr_matrix(np.array([[1.0, 0, 1], [0, 1, 0]])), LIF,
                      np.array([1, 3]), 4)
    readout = SparseLayer("readout", sparse.csr_matrix(np.array([[1.0, 1], [0, 1]])), LI,
                          np.array([0, 1]), 2)
    return SparseNet((3,), (fc1, readout))


def test_structure_counts_against_the_trained_widths():
    net = pruned_net()
    assert original_synapses(net) == [12, 8]
    synapse_sparsity, neuron_sparsity = hidden_sparsity(net)
    assert synapse_sparsity == pytest.approx(1 - 3 / 12)
    assert neuron_sparsity == pytest.approx(1 - 2 / 4)
    # CSR: (3 + 3) synapses x (4 B value + 4 B index) + (2 + 1) + (2 + 1) row pointers x 4 B.
    assert memory_footprint_bytes(net) == 6 * 8 + 6 * 4


def test_measure_by_hand():
    net = pruned_net()
    inputs = np.zeros((2, 1, 3), dtype=np.uint8)  # [T, N, n_in]
    inputs[0, 0] = [1, 1, 0]  # input0 has fan-out 1, input1 fan-out 1
    hidden = np.zeros((2, 1, 2), dtype=bool)
    hidden[1, 0] = [True, True]  # both hidden neurons fire once; fan-outs into the readout: 1 and 2
    m = measure(net, inputs, [hidden], {"loihi": LOIHI})
    assert (m["synapses"], m["neurons"]) == (6, 4)
    per_sample = m["per_sample"]
    assert per_sample["input_spikes"] == 2 and per_sample["spikes"] == 2
    assert per_sample["synops"] == (1 + 1) + (1 + 2)
    assert per_sample["neuron_updates"] == 4 * 2  # 4 neurons x 2 steps
    loihi_pj = 5 * 23.6 + 2 * 81.0 + 6 * 52.0 + 2 * 1.7  # synops, active and inactive updates, spikes
    assert per_sample["energy_j"]["loihi"] == pytest.approx(loihi_pj * 1e-12)
    assert sum(per_sample["energy_breakdown_j"]["loihi"].values()) == pytest.approx(loihi_pj * 1e-12)
    nb = m["neurobench"]
    assert nb["connection_sparsity"] == pytest.approx(1 - 6 / 20)
    assert nb["activation_sparsity"] == pytest.approx(1 - 2 / 8)
    assert nb["synaptic_operations"]["effective_acs"] == 5
    assert nb["synaptic_operations"]["dense"] == 6 * 2  # every remaining synapse at every step
    assert [layer["original_synapses"] for layer in m["layers"]] == [12, 8]
    assert [layer["synops"] for layer in m["layers"]] == [2, 3]
