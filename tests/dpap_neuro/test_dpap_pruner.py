"""The stateful DPAP pruner: invisible while observing, real when pruning."""

import pytest
import torch
from norse.torch import LICell, LIFCell
from torch import nn

from conftest import tiny_data
from dpap_neuro.models import SpikingMLP, run_over_time
from dpap_neuro.pruning import DPAPPruner, Pruner, effective_weight, make_pruner
from dpap_neuro.train import Recipe, train
from hw_export.errors import UserError
from hw_export.norse import export_model


def trained(pruner, seed=0, epochs=3):
    torch.manual_seed(seed)
    model = SpikingMLP(10, [16, 12], 3)
    train(model, tiny_data(), pruner, Recipe(epochs=epochs, batch_size=8, learning_rate=5e-3, seed=seed), progress=False)
    return model


def test_statistics_collection_does_not_change_training_bit_for_bit():
    plain = trained(Pruner())
    observing = DPAPPruner(enabled=False, schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    watched = trained(observing)
    for (name, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), name
    assert observing.records[0].stats.n_samples == 3 * 48  # it did gather statistics
    assert observing.decisions == 0 and observing.pruning_log == []
    assert observing.sparsity() == 0.0


def test_statistics_wait_for_a_decision_an_epochs_end_or_a_full_queue():
    """Batches are added up at a schedule unit's or an epoch's end, or when MAX_PENDING_BATCHES are waiting."""
    from dpap_neuro.pruning.dpap import MAX_PENDING_BATCHES

    torch.manual_seed(0)
    model = SpikingMLP(10, [16, 12], 3)
    pruner = DPAPPruner()  # the authors' schedule: one decision per epoch
    pruner.attach(model, total_steps=200, steps_per_epoch=100)
    for step in range(1, MAX_PENDING_BATCHES + 2):
        model((torch.rand(6, 4, 10) < 0.4).float())  # [T, B, n_in]
        pruner.step()
        waiting = step if step < MAX_PENDING_BATCHES else step - MAX_PENDING_BATCHES
        assert len(pruner.records[0].pending) == waiting
        assert pruner.records[0].stats.n_samples == 4 * (step - waiting)
    state = pruner.state_dict()  # a saved state holds every batch so far
    assert pruner.records[0].pending == [] and state["records"][0]["stats.n_samples"] == 4 * (MAX_PENDING_BATCHES + 1)


def test_a_rule_that_would_empty_a_layer_keeps_its_most_important_unit():
    # An offset this high makes every unit's reward fall: without the floor every layer would empty.
    pruner = make_pruner("dpap", schedule_unit="batches", batches_per_unit=1, warmup_units=0, r_init=0.5,
                         fc_neuron_c=20.0, prune_synapses=False)
    model = trained(pruner, epochs=3)
    assert pruner.decisions > 5
    assert [int(record.verdict.unit_alive.sum()) for record in pruner.records] == [1, 1]
    net = export_model(model, (10,))  # still a network from input to readout
    assert [layer.n_out for layer in net.layers] == [1, 1, 3]


def test_synapse_rules_that_would_cut_the_network_keep_one_path_to_the_readout():
    pruner = make_pruner("dpap", schedule_unit="batches", batches_per_unit=1, warmup_units=0, r_init=0.5,
                         fc_neuron_c=20.0, fc_synapse_c=20.0)
    model = trained(pruner, epochs=3)
    net = export_model(model, (10,))  # without the path every hidden neuron would lose its inputs
    assert [layer.n_out for layer in net.layers] == [1, 1, 3]
    assert [layer.n_synapses for layer in net.layers[:2]] == [1, 1]


def test_dpap_removes_synapses_and_neurons_and_they_leave_the_export():
    pruner = make_pruner("dpap", schedule_unit="batches", batches_per_unit=1, warmup_units=0,
                         fc_neuron_c=1.0, fc_synapse_c=1.5)
    model = trained(pruner, epochs=4)
    assert pruner.decisions > 0
    assert pruner.sparsity() > 0.3
    survival = pruner.unit_survival()
    assert min(survival) < 1.0
    net = export_model(model, (10,))
    for record, layer in zip(pruner.records, net.layers):
        dead = (~record.verdict.unit_alive).nonzero().flatten().tolist()
        assert not set(dead) & set(layer.kept.tolist()), "a pruned neuron is still in the SparseNet"
        assert layer.n_out <= int(record.verdict.unit_alive.sum())
    # Masked weights are exactly zero (at the built shapes), rows of dead neurons included, and the dead
    # neurons have left the model (compaction is on in train()).
    first_mask, second_mask = pruner.masks()
    dead_rows = ~pruner.records[0].verdict.unit_alive
    assert torch.all(first_mask[dead_rows] == 0)
    assert torch.all(second_mask[:, dead_rows] == 0), "outgoing synapses of dead neurons remain"
    assert model[1].weight.shape[0] == int((~dead_rows).sum()) < 16
    assert model[3].weight.shape[1] == model[1].weight.shape[0]


def test_dpap_prunes_a_recurrent_layers_input_and_recurrent_synapses_and_neurons():
    """A dead neuron loses its row of both matrices, its column of its own recurrent matrix and of the next
    layer; the export holds exactly the survivors."""
    from dpap_neuro.models import build_model

    pruner = make_pruner("dpap", schedule_unit="batches", batches_per_unit=1, warmup_units=0,
                         fc_neuron_c=1.0, fc_synapse_c=1.5)
    torch.manual_seed(0)
    model = build_model((10,), [16, 12], 3, architecture="rmlp", recurrent_gain=2.0)  # a loop that fires at once
    train(model, tiny_data(), pruner, Recipe(epochs=4, batch_size=8, learning_rate=5e-3, seed=0), progress=False)
    assert pruner.decisions > 0 and min(pruner.unit_survival()) < 1.0
    masks = pruner.masks()  # rec1 input, rec1 recurrent, rec2 input, rec2 recurrent
    net = export_model(model, (10,))
    for index, (record, layer) in enumerate(zip(pruner.records, net.layers)):
        dead = ~record.verdict.unit_alive
        input_mask, recurrent_mask = masks[2 * index], masks[2 * index + 1]
        assert torch.all(input_mask[dead] == 0) and torch.all(recurrent_mask[dead] == 0)
        assert torch.all(recurrent_mask[:, dead] == 0), "synapses from a dead neuron to its own layer remain"
        assert recurrent_mask.diagonal().sum() == 0
        assert set(layer.kept.tolist()) <= set(record.verdict.unit_alive.nonzero().flatten().tolist())
        assert layer.n_recurrent_synapses <= int(recurrent_mask.sum())
    assert torch.all(masks[2][:, ~pruner.records[0].verdict.unit_alive] == 0)
    assert net.layers[0].n_recurrent_synapses > 0


def test_the_recurrent_synapses_presynaptic_activity_is_the_layers_own_spikes_one_step_earlier():
    from dpap_neuro.models import build_model

    torch.manual_seed(0)
    model = build_model((10,), [16], 3, architecture="rmlp")
    pruner = DPAPPruner(enabled=False, schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    pruner.attach(model, total_steps=1)
    spikes = (torch.rand(12, 8, 10) < 0.4).float()
    model.train()
    hidden = model(spikes).layer_spikes[0]  # [T, B, 16]
    pruner.step(epoch_end=True)
    pre_count = pruner.records[0].stats.pre_count  # [10 + 16]
    assert hidden.sum() > 0
    assert torch.equal(pre_count[:10], spikes.sum(dim=(0, 1)).double())
    assert torch.equal(pre_count[10:], hidden[:-1].sum(dim=(0, 1)).double())  # the last step's reach no one


def test_pruning_is_permanent_across_decisions():
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    torch.manual_seed(0)
    model = SpikingMLP(10, [16, 12], 3)
    data = tiny_data()
    pruner.attach(model, total_steps=30, steps_per_epoch=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    previous = [m.clone() for m in pruner.masks()]
    removed_at = []  # steps at which some mask entry went 1 -> 0
    for step in range(1, 31):
        idx = slice((step % 6) * 8, (step % 6) * 8 + 8)
        out = model(data.spikes[:, idx])
        for layer, mask in zip(pruner.layers, previous):  # the weights this forward pass used
            assert torch.all(layer.weight[mask == 0] == 0)
        loss = nn.functional.cross_entropy(out.readout_v.max(dim=0).values, data.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()  # Adam's momentum keeps moving weight_orig, masked entries included
        pruner.step()
        current = pruner.masks()
        for before, after in zip(previous, current):
            assert not torch.any((before == 0) & (after == 1)), f"a pruned synapse came back at step {step}"
        if any(torch.any((before == 1) & (after == 0)) for before, after in zip(previous, current)):
            removed_at.append(step)
        for layer, mask in zip(pruner.layers, current):
            assert torch.all(effective_weight(layer)[mask == 0] == 0)
        previous = [m.clone() for m in current]
    assert removed_at, "DPAP never pruned anything in 30 decisions"
    assert pruner.decisions == 30
    assert pruner.sparsity() > 0
    # The zeros come from the mask: the parameters under it are not zero (the checks above mean something).
    first = pruner.layers[0]
    assert torch.any(first.weight_orig[first.weight_mask == 0] != 0)


class TinyConvSNN(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(2, 4, 3, bias=False), LIFCell(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5, bias=False), LIFCell(), nn.Linear(5, 3, bias=False), LICell())
        with torch.no_grad():
            for m in self:
                if hasattr(m, "weight"):
                    m.weight.mul_(4.0)

    def forward(self, x):
        return run_over_time(self, x)


def test_conv_layers_lose_whole_output_channels():
    torch.manual_seed(0)
    model = TinyConvSNN()
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    pruner.attach(model, total_steps=10)
    x = (torch.rand(6, 4, 2, 8, 8) < 0.4).float()  # [T, B, C, H, W]
    model(x)
    # Force channel 1 to be pruned at the next decision and check the masks.
    record = pruner.records[0]
    record.verdict = record.verdict._replace(unit_reward=torch.tensor([10.0, -100.0, 10.0, 10.0]).double(),
                                             unit_alive=torch.tensor([True, False, True, True]))
    pruner.step()
    assert pruner.records[0].is_conv and pruner.records[0].stats.plasticity.shape == (4, 2)
    assert pruner.records[1].stats.plasticity.shape == (5, 4 * 6 * 6)
    assert pruner.records[0].neurons_per_unit == 36 and pruner.records[0].steps_per_sample == 6
    conv_mask, fc_mask = pruner.masks()
    assert torch.all(conv_mask[1] == 0)
    # One decision cannot take the others from R = 10 below zero: they keep every weight.
    assert torch.all(conv_mask[[0, 2, 3]] == 1)
    assert torch.all(fc_mask[:, 36:72] == 0), "inputs from the pruned channel remain in the next layer"
    # The shares a benchmark reports: 1 of 4 channels; of all units (4 channels, 5 neurons), 1 of 9.
    assert pruner.neuron_sparsity(conv_only=True) == 0.25 and pruner.neuron_sparsity() == pytest.approx(1 / 9)


def test_conv_rule_prunes_a_silent_channel_by_itself():
    """No hand-set rewards: a channel that never spikes loses its reward and goes, with its columns downstream."""
    torch.manual_seed(0)
    model = TinyConvSNN()
    with torch.no_grad():
        model[0].weight.uniform_(0.3, 0.7)  # channels 0, 2, 3 excitatory: they fire at similar rates
        model[0].weight[1] = -1.0  # channel 1 is inhibited by every input: it never spikes
    # r_init 2 (instead of 10) so that a few decisions suffice. FC neurons and synapses are kept
    # (c = -1 makes every FC neuron's delta = 2u + 1 + beta > 0; synapse pruning off), so the FC
    # mask shows only what the channel rule removed.
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, r_init=2.0,
                        prune_synapses=False, fc_neuron_c=-1.0)
    pruner.attach(model, total_steps=6)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, 7):
        x = (torch.rand(6, 4, 2, 8, 8, generator=generator) < 0.3).float()  # [T, B, C, H, W]
        out = model(x)
        channel_spikes = out.layer_spikes[0].sum(dim=(0, 1, 3, 4))
        assert channel_spikes[1] == 0 and torch.all(channel_spikes[[0, 2, 3]] > 0)
        pruner.step()
    assert pruner.decisions == 6
    assert pruner.records[0].verdict.unit_alive.tolist() == [True, False, True, True]
    conv_mask, fc_mask = pruner.masks()
    assert torch.all(conv_mask[1] == 0)
    assert torch.all(conv_mask[[0, 2, 3]] == 1)
    # Flatten of [4, 6, 6]: channel c feeds columns 36c .. 36c+35 of the next layer.
    assert torch.all(fc_mask[:, 36:72] == 0), "inputs from the pruned channel remain in the next layer"
    assert pruner.records[1].verdict.unit_alive.all()
    assert torch.all(fc_mask[:, :36] == 1) and torch.all(fc_mask[:, 72:] == 1)


def test_dpap_prunes_an_ann_with_activations_as_its_trace():
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import DPAPPruner

    torch.manual_seed(0)
    model = build_model((10,), [16, 12], 3, architecture="ann-mlp")
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    pruner.attach(model, total_steps=40)
    inputs = (torch.rand(4, 8, 10, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    model.train()
    output = model(inputs)
    pruner.step()
    # One step: the post trace is the activation itself, so A sums the ReLU outputs over the batch.
    torch.testing.assert_close(pruner.records[0].stats.activity, output.layer_spikes[0][0].sum(0).double())
    torch.testing.assert_close(pruner.records[1].stats.activity, output.layer_spikes[1][0].sum(0).double())
    for step in range(2, 41):
        model(inputs)
        pruner.step()
    assert pruner.sparsity() > 0.0 and pruner.neuron_sparsity() > 0.0  # the same rule prunes the ANN


def test_spike_count_aware_synapse_score_spares_synapses_of_quiet_inputs():
    """dpap+'s score per presynaptic spike: with equal M_ij and weights, the busier input's synapse goes first."""
    from dpap_neuro.pruning.dpap_functional import PlasticityState

    torch.manual_seed(0)
    model = SpikingMLP(3, [2], 2)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]))  # input 2: no weight
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, prune_neurons=False,
                        synapse_score="bcm*magnitude/pre_rate", fc_synapse_c=2.0, r_init=0.5)
    pruner.attach(model, total_steps=3)
    record = pruner.records[0]
    # The same correlation M for every synapse, but input 1 spiked ten times as often as inputs 0 and 2.
    record.stats = PlasticityState(torch.ones(2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64),
                                   torch.zeros(2, dtype=torch.float64), 10,
                                   torch.tensor([1.0, 10.0, 1.0], dtype=torch.float64),
                                   torch.ones(2, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    # Score N(M / pre) * N(|w|) = [1, 0, 1] * [1, 1, 0] per row: u = [1, 0, 0], delta = 2u - 2 = [0, -2, -2],
    # R = 0.999 * 0.5 + delta: only input 0's synapses stay.
    pruner.decide(0)
    assert record.verdict.synapse_alive.tolist() == [[True, False, False], [True, False, False]]


def test_magnitude_weighted_neuron_score_removes_the_neuron_with_weak_inputs():
    """neuron_score="spine*magnitude": equal spine importance, the unit with the smaller L1 input norm goes."""
    from dpap_neuro.pruning.dpap_functional import PlasticityState

    torch.manual_seed(0)
    model = SpikingMLP(2, [3], 2)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[2.0, -2.0], [0.5, 0.5], [1.0, -2.0]]))  # L1 norms 4, 1, 3
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, prune_synapses=False,
                        neuron_score="spine*magnitude", fc_neuron_c=1.0, r_init=0.5)
    pruner.attach(model, total_steps=3)
    record = pruner.records[0]
    # Spine importance S = N(sum_j M_ij) * N(A) = N([2, 2, 0]) * N([2, 2, 1]) = [1, 1, 0]: units 0 and 1 tie.
    record.stats = PlasticityState(torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64),
                                   torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64),
                                   torch.zeros(3, dtype=torch.float64), 10, torch.ones(2, dtype=torch.float64),
                                   torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    # S * N(L1) = [1, 1, 0] * N([4, 1, 3]) = [1, 0, 0]; P75 = 0.5 (linear), u = [1, 0, 0],
    # delta = 2u - 1 (+2 where positive) = [3, -1, -1]: units 1 and 2 go; by S alone only unit 2 would.
    pruner.decide(0)
    assert record.verdict.unit_alive.tolist() == [True, False, False]
    faithful = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, prune_synapses=False,
                          fc_neuron_c=1.0, r_init=0.5)
    faithful.attach(model, total_steps=3)
    faithful.records[0].stats = record.stats
    faithful.decide(0)
    assert faithful.records[0].verdict.unit_alive.tolist() == [True, True, False]


def test_dpap_plus_is_dpap_with_the_magnitude_weighted_synapse_score_over_any_preset():
    from dpap_neuro.pruning import DPAPPlusPruner

    plus = make_pruner("dpap+")
    assert isinstance(plus, DPAPPlusPruner) and plus.name == "dpap+"
    faithful = make_pruner("dpap").options()
    assert plus.options() == {**faithful, "synapse_score": "bcm*magnitude"}
    assert faithful["usage_over"] == "all" and faithful["synapse_score"] == "bcm"  # the authors'
    builtin = make_pruner("dpap+", preset="builtin").options()
    assert builtin == {**make_pruner("dpap", preset="builtin").options(), "synapse_score": "bcm*magnitude"}
    assert make_pruner("dpap+", synapse_score="bcm").config.synapse_score == "bcm"


@pytest.mark.parametrize("options, message", [
    ({"usage_over": "some"}, "usage_over must be 'all' or 'alive', got 'some'"),
    ({"synapse_score": "weights"}, "synapse_score must be 'bcm', 'abs-bcm', 'bcm-silent-unused', "),
    ({"neuron_score": "weights"}, "neuron_score must be 'spine', 'spine\\*magnitude' or 'spine/energy'"),
    ({"trace": "last"}, "trace must be 'final' or 'mean'"),
    ({"reward_rule": "fast"}, "reward_rule must be 'authors' or 'calibrated'"),
    ({"schedule_unit": "weekly"}, "schedule_unit must be 'epoch', 'batches' or 'run'"),
    ({"prune_after_fraction": 0.0}, "prune_after_fraction must be in"),
    ({"tau_fraction": -1.0}, "tau_fraction must be positive"),
    ({"fc_neuron_c": "high"}, "option fc_neuron_c must be a finite number"),
    ({"preset": "fast"}, "unknown DPAP preset 'fast'; choose one of authors, builtin, tonic"),
])
def test_dpap_refuses_unknown_rule_variants_with_one_line_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        make_pruner("dpap", **options)


def test_energy_aware_neuron_score_removes_the_expensive_unit_of_two_equally_important_ones():
    """neuron_score="spine/energy": units 0 and 1 are equally important, unit 0's spikes reach 4 synapses, unit 1's 1."""
    from dpap_neuro.pruning.dpap_functional import PlasticityState

    d = torch.float64

    def decided(neuron_score):
        torch.manual_seed(0)
        model = SpikingMLP(2, [3, 4], 2)
        pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, prune_synapses=False,
                            neuron_score=neuron_score, fc_neuron_c=1.5, r_init=0.1)
        pruner.attach(model, total_steps=3)
        with torch.no_grad():
            model[3].weight_mask[1:, 1] = 0  # unit 1 of the first hidden layer feeds one neuron of the next
        # S = N([2, 2, 1]) * N([2, 2, 1.5]) = [1, 1, 0]; 10 spikes per sample each (100 over 10 samples).
        pruner.records[0].stats = PlasticityState(
            torch.tensor([2.0, 2.0, 1.5], dtype=d), torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.5, 0.5]], dtype=d),
            torch.zeros(3, dtype=d), 10, torch.ones(2, dtype=d), torch.full((3,), 100.0, dtype=d),
            torch.ones(2, dtype=d))
        pruner.decide(0)
        return pruner.records[0].verdict.unit_alive.tolist()

    # Energy (1 neuron, 1 step): unit 0: 10 * (4 * 23.6 + 30.7) + 52 = 1303 pJ, unit 1: 10 * 54.3 + 52 = 595 pJ.
    # S / E = [1/1303, 1/595, 0]; P75 = (1/1303 + 1/595) / 2: u0 = 2 * 595 / (595 + 1303) = 0.63,
    # delta0 = 2 u0 - 1.5 < 0 -> R = 0.0999 - 0.25 < 0: the expensive unit goes; u1 = 1 keeps unit 1.
    assert decided("spine/energy") == [False, True, False]
    assert decided("spine") == [True, True, False]  # by importance alone both stay


def own_loop(pruner, model, steps, data, optimizer, start=0):
    """A user's loop: forward, backward, optimiser step, pruner.step(); batches of 8 in a fixed order."""
    for step in range(start, steps):
        idx = slice((step % 6) * 8, (step % 6) * 8 + 8)
        out = model(data.spikes[:, idx])
        loss = nn.functional.cross_entropy(out.readout_v.max(dim=0).values, data.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        pruner.step()


def test_a_resumed_pruner_continues_exactly_steps_log_and_decisions_included():
    import copy

    options = dict(preset="builtin", batches_per_unit=1, warmup_units=2)
    data = tiny_data()

    def start():
        torch.manual_seed(0)
        model = SpikingMLP(10, [16, 12], 3)
        pruner = DPAPPruner(**options)
        pruner.attach(model, total_steps=24, steps_per_epoch=6)
        return model, pruner, torch.optim.Adam(model.parameters(), lr=5e-3)

    model, pruner, optimizer = start()
    own_loop(pruner, model, 10, data, optimizer)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), pruner.state_dict()))
    own_loop(pruner, model, 24, data, optimizer, start=10)
    assert saved[2]["steps_taken"] == 10 and pruner.steps_taken == 24 and pruner.pruning_log

    resumed_model, resumed, resumed_optimizer = start()
    resumed_model.load_state_dict(saved[0])
    resumed_optimizer.load_state_dict(saved[1])
    resumed.load_state_dict(saved[2])
    own_loop(resumed, resumed_model, 24, data, resumed_optimizer, start=10)
    assert resumed.steps_taken == 24 and resumed.decisions == pruner.decisions == 22
    assert resumed.pruning_log == pruner.pruning_log
    for a, b in zip(resumed.masks(), pruner.masks()):
        assert torch.equal(a, b)


def test_the_pruning_log_records_every_decision_that_changed_a_mask():
    pruner = make_pruner("dpap", schedule_unit="batches", batches_per_unit=1, warmup_units=0,
                         fc_neuron_c=1.0, fc_synapse_c=1.5, r_init=2.0)
    model = trained(pruner, epochs=2)
    log = pruner.pruning_log
    assert log and [entry["step"] for entry in log] == sorted({entry["step"] for entry in log})
    assert set(log[0]) == {"step", "units_alive", "synapses_alive"}
    last = log[-1]  # the masks now: every change was logged
    assert last["synapses_alive"] == [int(m.count_nonzero()) for m in pruner.masks()]
    assert last["units_alive"] == [int((m.sum(dim=1) > 0).sum()) for m in pruner.masks()]
    assert all(a["synapses_alive"] != b["synapses_alive"] or a["units_alive"] != b["units_alive"]
               for a, b in zip(log, log[1:]))
    assert len(log) <= pruner.decisions


def test_train_prints_the_diagnosis_once_as_one_line_warnings(capsys):
    trained(DPAPPruner(warmup_units=1), epochs=3)  # the authors' rules, 2 decisions: none can prune
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: dpap: ") for line in lines)
    assert "FC neurons cannot be pruned in this run" in lines[0] and "FC synapses" in lines[1]
    trained(DPAPPruner(preset="builtin", batches_per_unit=1), epochs=3)  # calibrated: no warning
    assert capsys.readouterr().err == ""
    trained(DPAPPruner(preset="builtin"), epochs=3)  # 18 batches: 3 units of 5, all warm-up
    assert capsys.readouterr().err.strip().splitlines() == [
        "warning: dpap: no pruning decision in this run: 3 schedule units (batches), the first 5 of them warm-up"]


def test_the_builtin_preset_prunes_whole_conv_channels_on_the_builtin_data():
    """Issue #20: with the builtin preset the channel rule fires (the authors' could not in a short run)."""
    from dpap_neuro.data import load_dataset
    from dpap_neuro.data.digits import SpikeDataset
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning.base import units_alive

    events, _ = load_dataset("digits-events", timesteps=6, seed=0)
    small = SpikeDataset(events.spikes[:, :48], events.labels[:48])  # 6 batches of 8: 42 steps in 7 epochs
    torch.manual_seed(0)
    model = build_model(small.input_shape, (32,), 10, architecture="conv", conv_channels=(8, 8))
    pruner = make_pruner("dpap", preset="builtin")
    train(model, small, pruner, Recipe(epochs=7, batch_size=8, learning_rate=5e-3, seed=0), progress=False)
    assert pruner.diagnose() == [] and pruner.decisions == 3  # 8 units of 5 batches, 5 of them warm-up
    conv1, conv2, fc = pruner.masks()  # at the built shapes (the model itself is compacted)
    channels = [units_alive(conv) for conv in (conv1, conv2)]
    assert sum(int((~alive).sum()) for alive in channels) >= 2, "no conv channel was pruned"
    for conv, alive in zip((conv1, conv2), channels):
        assert torch.all(conv[~alive] == 0)  # whole channels
    assert torch.all(conv1[channels[0]] == 1)  # the others keep every synapse ...
    assert torch.all(conv2[channels[1]][:, channels[0]] == 1)  # ... from an alive channel
    assert torch.all(conv2[:, ~channels[0]] == 0)  # the pruned channels' outputs are gone downstream
    assert torch.all(fc[:, (~channels[1]).repeat_interleave(2 * 2)] == 0)  # 2x2 map per channel
    assert [layer.weight.shape[0] for layer in pruner.layers[:2]] == [int(alive.sum()) for alive in channels]
    authors = make_pruner("dpap", preset="authors")
    authors.attach(build_model(small.input_shape, (32,), 10, architecture="conv", conv_channels=(8, 8)),
                   total_steps=20 * 23, steps_per_epoch=23)
    assert "conv channels cannot be pruned" in authors.diagnose()[0]
