import pytest
import torch

from dpap_neuro.models import SpikingMLP, build_model
from dpap_neuro.pruning import GMPPruner, Pruner, make_pruner, prunable_layers
from dpap_neuro.pruning.gmp import cubic_sparsity, global_magnitude_masks, magnitude_mask
from hw_export.errors import UserError


def small_model():
    torch.manual_seed(0)
    return SpikingMLP(6, [5, 4], 3)


def test_attach_reparametrises_hidden_layers_only_and_keeps_parameter_identity():
    model = small_model()
    first = model[1]
    original_param = first.weight
    Pruner().attach(model, total_steps=10)
    assert first.weight_orig is original_param  # same Parameter object, now named weight_orig
    assert hasattr(model[3], "weight_mask")
    assert not hasattr(model[5], "weight_mask"), "the readout layer must stay unpruned"
    assert len(prunable_layers(model)) == 2


def test_masked_weights_get_zero_gradient_and_stay_zero():
    model = small_model()
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(step=10)
    spikes = (torch.rand(8, 4, 6) < 0.5).float()
    out = model(spikes)
    out.readout_v.sum().backward()
    for layer in pruner.layers:
        masked = layer.weight_mask == 0
        assert masked.any()
        assert torch.all(layer.weight_orig.grad[masked] == 0)
        assert torch.all(layer.weight[masked] == 0)


def test_cubic_schedule_matches_zhu_and_gupta():
    assert cubic_sparsity(0, 10, 110, 0.8) == 0.0
    assert cubic_sparsity(10, 10, 110, 0.8) == 0.0
    # Halfway: s_f + (s_i - s_f)(1 - 1/2)^3 = 0.8 - 0.8/8 = 0.7
    assert cubic_sparsity(60, 10, 110, 0.8) == pytest.approx(0.7)
    assert cubic_sparsity(110, 10, 110, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(500, 10, 110, 0.8) == pytest.approx(0.8)


def test_magnitude_mask_keeps_largest_and_never_regrows():
    weight = torch.tensor([[0.1, -0.9, 0.5], [0.05, 0.7, -0.3]])
    mask = torch.ones_like(weight)
    half = magnitude_mask(weight, mask, 0.5)
    assert half.tolist() == [[0, 1, 1], [0, 1, 0]]
    # A pruned large weight cannot come back even if it is the largest.
    mask2 = half.clone()
    mask2[0, 1] = 0
    again = magnitude_mask(weight * 10, mask2, 0.5)
    assert again[0, 1] == 0


def test_gmp_reaches_target_and_pruning_is_permanent():
    model = small_model()
    pruner = GMPPruner(target_sparsity=0.6, start_fraction=0.1, end_fraction=0.5, update_every_steps=2)
    pruner.attach(model, total_steps=20)
    previous = [m.clone() for m in pruner.masks()]
    for step in range(1, 21):
        with torch.no_grad():  # scramble weights so magnitude order changes between updates
            for layer in pruner.layers:
                layer.weight_orig.normal_()
        pruner.update(step)
        current = pruner.masks()
        for before, after in zip(previous, current):
            assert torch.all(after <= before), "a pruned synapse came back"
        previous = [m.clone() for m in current]
    assert pruner.sparsity() == pytest.approx(0.6, abs=0.03)


def test_unknown_pruner_and_bad_options_are_clear_errors():
    with pytest.raises(UserError, match="unknown pruner"):
        make_pruner("lottery")
    with pytest.raises(UserError, match="target_sparsity"):
        make_pruner("gmp", target_sparsity=1.5)
    with pytest.raises(UserError, match="has no option sparsity_target"):
        make_pruner("gmp", sparsity_target=0.5)


def test_step_counts_optimiser_steps_and_marks_epoch_ends_unless_told():
    seen = []

    class Recorder(Pruner):
        def update(self, step, epoch_end=False):
            seen.append((step, epoch_end))

    pruner = Recorder()
    pruner.attach(small_model(), total_steps=6, steps_per_epoch=3)
    for _ in range(4):
        pruner.step()
    pruner.step(epoch_end=True)  # a loop whose epoch ended early says so
    assert seen == [(1, False), (2, False), (3, True), (4, False), (5, True)]
    assert pruner.steps_taken == 5


def test_state_dict_holds_the_step_count_and_the_pruning_log():
    model = small_model()
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.5, update_every_steps=1)
    pruner.attach(model, total_steps=4)
    for _ in range(4):
        pruner.step()
    state = pruner.state_dict()
    assert state["steps_taken"] == 4 and state["pruning_log"] == pruner.pruning_log
    assert [entry["step"] for entry in state["pruning_log"]] == [1, 2]  # the cubic schedule is done at step 2
    fresh = GMPPruner()
    fresh.attach(small_model(), total_steps=4)
    fresh.load_state_dict(state)
    assert fresh.steps_taken == 4 and fresh.pruning_log == pruner.pruning_log
    fresh.pruning_log[0]["step"] = 99
    assert pruner.pruning_log[0]["step"] == 1  # a copy, not shared


def test_a_state_without_a_step_count_is_a_user_error():
    from hw_export.errors import UserError

    pruner = Pruner()
    pruner.attach(small_model(), total_steps=4)
    with pytest.raises(UserError, match="no step count"):
        pruner.load_state_dict({})


def test_option_errors_are_user_errors():
    from hw_export.errors import UserError

    for name, options in (("lottery", {}), ("gmp", {"target_sparsity": 1.5}), ("gmp", {"sparsity_target": 0.5}),
                          ("gmp", {"target_sparsity": "high"}), ("random", {"sparsity": 1.0}),
                          ("magnitude", {"at_epoch": -1}), ("structured", {"update_every_steps": 0})):
        with pytest.raises(UserError):
            make_pruner(name, **options)


def test_make_pruner_lets_a_bug_in_a_pruner_keep_its_traceback_and_names_a_missing_option(monkeypatch):
    from dpap_neuro.pruning import PRUNERS

    class Buggy(GMPPruner):
        def __init__(self, target_sparsity=0.5):
            raise TypeError("a bug in the pruner")

    class Needs(GMPPruner):
        def __init__(self, level):
            super().__init__(target_sparsity=level)

    monkeypatch.setitem(PRUNERS, "buggy", Buggy)
    monkeypatch.setitem(PRUNERS, "needs", Needs)
    with pytest.raises(TypeError, match="a bug in the pruner"):
        make_pruner("buggy", target_sparsity=0.3)
    with pytest.raises(UserError, match="pruner 'needs' needs option level"):
        make_pruner("needs")
    assert make_pruner("needs", level=0.3).target_sparsity == 0.3


def test_global_magnitude_masks_rank_every_layer_together_and_only_shrink():
    first = torch.tensor([[0.9, 0.1], [0.4, 0.05]])
    second = torch.tensor([[0.3, 0.8, 0.2]])
    masks = [torch.ones(2, 2), torch.tensor([[1.0, 0.0, 1.0]])]  # 0.8 is pruned already: it cannot come back
    kept = global_magnitude_masks([first, second], masks, 3 / 7)  # 3 of 7 go: the masked one, 0.05 and 0.1
    assert kept[0].tolist() == [[1, 0], [1, 0]] and kept[1].tolist() == [[1, 0, 1]]


def conv_net():
    torch.manual_seed(0)
    return build_model((2, 8, 8), [16], 10, "conv", conv_channels=(4, 8))


def test_gmp_allocations_spread_the_target_as_named():
    pruners = {allocation: GMPPruner(target_sparsity=0.8, start_fraction=0.0, end_fraction=0.1,
                                     update_every_steps=1, allocation=allocation)
               for allocation in ("uniform", "first-dense", "global")}
    for pruner in pruners.values():
        pruner.attach(conv_net(), total_steps=10)
        pruner.update(step=10)
    layer_kept = {name: [float(m.mean()) for m in p.masks()] for name, p in pruners.items()}
    assert layer_kept["uniform"] == pytest.approx([0.2, 0.2, 0.2], abs=0.01)  # every layer alike (Zhu & Gupta)
    assert layer_kept["first-dense"][0] == 1.0 and layer_kept["first-dense"][1:] == pytest.approx([0.2, 0.2], abs=0.01)
    assert pruners["global"].sparsity() == pytest.approx(0.8, abs=0.001)  # the network's share, one threshold
    weights = [pruners["global"].built_weight(i).detach().abs() for i in range(3)]
    masks = pruners["global"].masks()
    smallest_kept = min(float(w[m != 0].min()) for w, m in zip(weights, masks))
    largest_pruned = max(float(w[m == 0].max()) for w, m in zip(weights, masks))
    assert largest_pruned <= smallest_kept
    assert len({round(v, 2) for v in layer_kept["global"]}) > 1  # each layer's share follows from its weights


def test_gmp_allocation_is_checked_and_structured_has_none():
    with pytest.raises(UserError, match="allocation must be one of uniform, first-dense, global"):
        make_pruner("gmp", allocation="per-layer")
    with pytest.raises(UserError, match="has no option allocation"):
        make_pruner("structured", allocation="global")


def recurrent_model():
    torch.manual_seed(0)
    return build_model((6,), [5, 4], 3, architecture="rmlp")


def test_a_recurrent_cell_is_two_masked_parameters_its_diagonal_masked_from_the_start():
    model = recurrent_model()
    cell = model[1]
    input_weights, recurrent_weights = cell.input_weights, cell.recurrent_weights
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    assert [getattr(layer, "name", "weight") for layer in pruner.layers] == [
        "input_weights", "recurrent_weights", "input_weights", "recurrent_weights"]  # the readout: unpruned
    assert cell.input_weights_orig is input_weights and cell.recurrent_weights_orig is recurrent_weights
    assert cell.recurrent_weights_mask.diagonal().sum() == 0  # no autapses: no synapse to keep there
    assert pruner.sparsity() == 0.0  # nor one pruned
    pruner.update(step=10)
    out = model((torch.rand(8, 4, 6) < 0.5).float())
    out.readout_v.sum().backward()
    for layer in pruner.layers:
        masked = layer.weight_mask == 0
        assert masked.any() and torch.all(layer.weight_orig.grad[masked] == 0)
        assert torch.all(layer.weight[masked] == 0)


def test_structured_removes_recurrent_neurons_with_both_rows_and_their_columns():
    model = recurrent_model()
    pruner = make_pruner("structured", target_sparsity=0.4, start_fraction=0.0, end_fraction=0.1,
                         update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(step=10)
    input_1, recurrent_1, input_2, recurrent_2 = pruner.masks()
    for inputs, recurrent, n in ((input_1, recurrent_1, 5), (input_2, recurrent_2, 4)):
        dead = (inputs.sum(dim=1) == 0) & (recurrent.sum(dim=1) == 0)
        assert int(dead.sum()) == round(0.4 * n)  # whole neurons, by the norm of both parts
        assert torch.all(inputs[dead] == 0) and torch.all(recurrent[:, dead] == 0)
    dead_1 = (input_1.sum(dim=1) == 0) & (recurrent_1.sum(dim=1) == 0)
    assert torch.all(input_2[:, dead_1] == 0)  # and their synapses into the next layer
