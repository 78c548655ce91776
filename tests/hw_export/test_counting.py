import json

import numpy as np
import pytest
from scipy import sparse

from hw_export.counting import count_operations
from hw_export.energy import LOIHI, energy_breakdown_j, energy_j
from hw_export.errors import UserError
from hw_export.sparsenet import NeuronParams, SparseLayer, SparseNet

LIF = NeuronParams("lif", 200.0, 100.0, 1.0, 0.0, 0.0, 1e-3, 0.2, 0.1)
LI = NeuronParams("li", 200.0, 100.0, float("inf"), 0.0, 0.0, 1e-3, 0.2, 0.1)


def layer(name, rows, neuron):
    w = sparse.csr_matrix(np.array(rows, dtype=float))
    return SparseLayer(name, w, neuron, np.arange(w.shape[0]), w.shape[0])


def test_counts_by_hand():
    # 3 inputs -> 2 LIF -> 1 readout. Fan-out into fc1: input0 -> 2 synapses, input1 -> 0, input2 -> 1.
    net = SparseNet((3,), (layer("fc1", [[1, 0, 1], [1, 0, 0]], LIF), layer("readout", [[1, 1]], LI)))
    inputs = np.zeros((4, 2, 3))  # [T, N, n_in], two samples
    inputs[0, 0] = [1, 1, 1]  # sample 0: one spike on each input at t=0
    inputs[1, 0, 2] = 1  # and input2 again at t=1
    inputs[:, 1, 1] = 1  # sample 1: input1 (no synapses) spikes every step
    hidden = np.zeros((4, 2, 2), bool)
    hidden[2, 0, 0] = hidden[3, 0, 1] = True  # sample 0: two hidden spikes
    counts = count_operations(net, inputs, [hidden])
    fc1, readout = counts
    # Sample 0: input0 1 spike x 2 + input1 1 x 0 + input2 2 x 1 = 4. Sample 1: 4 x 0 = 0.
    assert fc1.synops.tolist() == [4, 0]
    assert fc1.spikes.tolist() == [2, 0]
    assert fc1.neuron_updates.tolist() == [8, 8]  # 2 neurons x 4 steps
    # Readout: each hidden spike reaches 1 synapse.
    assert readout.synops.tolist() == [2, 0]
    assert readout.spikes.tolist() == [0, 0]
    assert readout.neuron_updates.tolist() == [4, 4]

    parts = energy_breakdown_j(counts, LOIHI)
    pj = 1e-12
    assert parts["synops"][0] == pytest.approx(6 * 23.6 * pj)
    # Sample 0: 2 active neuron-steps, 12 - 2 = 10 inactive.
    assert parts["neuron_updates"][0] == pytest.approx((2 * 81 + 10 * 52) * pj)
    assert parts["spikes"][0] == pytest.approx(2 * 1.7 * pj)
    assert energy_j(counts, LOIHI)[1] == pytest.approx(12 * 52 * pj)


def test_recurrent_synops_count_own_spikes_delivered_within_the_run_by_hand():
    # 1 input -> 2 recurrent LIF (neuron 0 -> neuron 1 and 1 -> 0, one synapse each) -> readout.
    loop = sparse.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
    recurrent = SparseLayer("rec1", sparse.csr_matrix(np.array([[1.0], [1.0]])), LIF, np.arange(2), 2,
                            recurrent_weight=loop)
    net = SparseNet((1,), (recurrent, layer("readout", [[1, 1]], LI)))
    inputs = np.zeros((3, 1, 1))
    inputs[0, 0, 0] = 1
    hidden = np.zeros((3, 1, 2), bool)
    hidden[0, 0, 0] = hidden[1, 0, 1] = hidden[2, 0, 0] = True  # the last step's spike reaches no one in the run
    rec1, readout = count_operations(net, inputs, [hidden])
    assert rec1.recurrent_synops.tolist() == [2]  # steps 0 and 1, one recurrent synapse each
    assert rec1.synops.tolist() == [2 + 2]  # the input spike's two synapses, and those two
    assert rec1.synapses == 4 and rec1.recurrent_synapses == 2
    assert readout.synops.tolist() == [3] and readout.recurrent_synops is None
    from hw_export.metrics import measure

    report = measure(net, inputs, [hidden], {"loihi": LOIHI})["layers"]
    assert report[0]["recurrent_synops"] == 2 and report[0]["recurrent_synapses"] == 2
    assert report[0]["original_recurrent_synapses"] == 2 and report[0]["original_synapses"] == 2 + 2
    assert "recurrent_synops" not in report[1]


def test_cmos45_pays_every_synapse_every_step():
    from hw_export.energy import CMOS45

    net = SparseNet((3,), (layer("fc1", [[1, 0, 1], [1, 0, 0]], LIF), layer("readout", [[1, 1]], LI)))
    inputs = np.zeros((4, 1, 3))
    counts = count_operations(net, inputs, [np.zeros((4, 1, 2), bool)])
    # 3 + 2 synapses x 4 steps = 20 MACs at 4.6 pJ; 3 neurons x 4 steps = 12 updates at 10.1 pJ.
    assert energy_j(counts, CMOS45)[0] == pytest.approx((20 * 4.6 + 12 * 10.1) * 1e-12)


def test_profiles_from_files_are_validated(tmp_path):
    from hw_export.energy import load_profile

    fields = dict(name="mine", e_synop_pj=1.0, e_dense_mac_pj=0.0, e_neuron_update_active_pj=2.0,
                  e_neuron_update_inactive_pj=1.0, e_spike_pj=0.5)
    (tmp_path / "p.json").write_text(json.dumps(fields))
    assert load_profile(tmp_path / "p.json").e_synop_pj == 1.0
    toml = "\n".join(f'{k} = {v!r}' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items())
    (tmp_path / "p.toml").write_text(toml.replace("'", '"'))
    assert load_profile(tmp_path / "p.toml").name == "mine"
    (tmp_path / "bad.json").write_text(json.dumps({**fields, "e_spike_pj": -1}))
    with pytest.raises(UserError, match="e_spike_pj must be a non-negative number"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "typo.json").write_text(json.dumps({**fields, "e_synops_pj": 1}))
    with pytest.raises(UserError, match="unknown fields e_synops_pj"):
        load_profile(tmp_path / "typo.json")


def test_counts_of_the_wrong_populations_or_of_nothing_are_the_users_error():
    from hw_export.counting import concatenate_counts

    net = SparseNet((3,), (layer("fc1", [[1, 0, 1], [1, 0, 0]], LIF), layer("readout", [[1, 1]], LI)))
    inputs = np.zeros((4, 1, 3))
    with pytest.raises(UserError, match="expected spikes of 1 LIF populations, got 2: give one"):
        count_operations(net, inputs, [np.zeros((4, 1, 2), bool)] * 2)
    with pytest.raises(UserError, match="no counts to concatenate"):
        concatenate_counts([])
