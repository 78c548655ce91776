"""The baseline pruners: random (per layer, seeded, once), one-shot global magnitude, structured magnitude."""

import pytest
import torch

from conftest import tiny_data
from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import MagnitudePruner, RandomPruner, StructuredPruner, effective_weight, make_pruner
from dpap_neuro.train import Recipe, train
from hw_export.errors import UserError


def mlp(seed=0, n_inputs=10, hidden=(16, 12), n_classes=3):
    """Prunable layers [16, 10] (160 synapses) and [12, 16] (192); readout [3, 12]."""
    torch.manual_seed(seed)
    return SpikingMLP(n_inputs, list(hidden), n_classes)


def n_pruned(mask):
    return int((mask == 0).sum())


# --- random ---------------------------------------------------------------


def test_random_prunes_each_layer_to_its_own_share_once_at_the_given_fraction():
    model = mlp()
    pruner = RandomPruner(sparsity=[0.25, 0.5], at_fraction=0.5, seed=1)
    pruner.attach(model, total_steps=10)
    for step in range(1, 5):  # before 0.5 * 10 steps: nothing
        pruner.update(step)
        assert [n_pruned(m) for m in pruner.masks()] == [0, 0], step
    pruner.update(5)
    pruned_at_5 = pruner.masks()
    assert [n_pruned(m) for m in pruned_at_5] == [40, 96]  # round(0.25 * 160), round(0.5 * 192)
    for step in range(6, 11):  # once only: the masks do not change afterwards
        pruner.update(step)
        for before, after in zip(pruned_at_5, pruner.masks()):
            assert torch.equal(before, after), step


def test_random_single_share_applies_to_every_layer():
    pruner = RandomPruner(sparsity=0.3, at_fraction=0.0)
    pruner.attach(mlp(), total_steps=4)
    pruner.update(1)  # at_fraction 0: the first step
    assert [n_pruned(m) for m in pruner.masks()] == [48, 58]  # round(48.0), round(57.6)


def test_random_is_seeded():
    def masks(seed, model_seed):
        pruner = RandomPruner(sparsity=0.5, seed=seed)
        pruner.attach(mlp(model_seed), total_steps=3)
        pruner.update(1)
        return pruner.masks()

    # The masks depend on the seed only, not on the weights.
    for a, b in zip(masks(3, model_seed=0), masks(3, model_seed=1)):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(masks(3, 0), masks(4, 0)))


def test_random_never_touches_the_readout():
    model = mlp()
    readout = model[5]
    before = readout.weight.detach().clone()
    pruner = RandomPruner(sparsity=0.9)
    pruner.attach(model, total_steps=2)
    pruner.update(1)
    assert not hasattr(readout, "weight_mask")
    assert torch.equal(readout.weight, before)
    assert len(pruner.layers) == 2 and readout not in pruner.layers


@pytest.mark.parametrize("options", [
    {"sparsity": 1.0},
    {"sparsity": -0.1},
    {"sparsity": [0.2, 1.0]},
    {"sparsity": []},
    {"at_fraction": 1.0},
    {"at_fraction": -0.1},
])
def test_random_refuses_bad_values(options):
    with pytest.raises(UserError):
        RandomPruner(**options)
    with pytest.raises(UserError):
        make_pruner("random", **options)


def test_random_refuses_a_share_list_of_the_wrong_length_at_attach():
    pruner = RandomPruner(sparsity=[0.1, 0.2, 0.3])  # the model has 2 prunable layers
    with pytest.raises(UserError, match="3 sparsities for 2 prunable layers"):
        pruner.attach(mlp(), total_steps=5)


# --- magnitude --------------------------------------------------------------


def hand_built_model():
    """|w| of the two prunable layers are 0.01 .. 0.20, each once; the small ones sit in layer 2.

    Layer 1 holds 0.08 and 0.10 .. 0.20, layer 2 holds 0.01 .. 0.07 and 0.09. The readout's
    weights are smaller than all of them: a pruner that counted it would prune there instead.
    """
    model = SpikingMLP(3, [4, 2], 2)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.13, -0.08, 0.20],
                                            [-0.11, 0.16, -0.14],
                                            [0.19, -0.10, 0.12],
                                            [-0.17, 0.15, -0.18]]))
        model[3].weight.copy_(torch.tensor([[0.03, -0.09, 0.01, -0.06],
                                            [-0.05, 0.02, 0.07, -0.04]]))
        model[5].weight.copy_(torch.tensor([[0.001, -0.002], [0.003, 0.0005]]))
    return model


def test_magnitude_uses_one_global_threshold():
    model = hand_built_model()
    pruner = MagnitudePruner(sparsity=0.4, at_epoch=0)
    pruner.attach(model, total_steps=5)
    pruner.update(1)
    first, second = pruner.masks()
    # round(0.4 * 20) = 8 smallest |w| overall: 0.01 .. 0.08. Seven of them are in layer 2;
    # a per-layer 40 % would have taken 5 from layer 1 and 3 from layer 2 instead.
    assert first.tolist() == [[1, 0, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert second.tolist() == [[0, 1, 0, 0], [0, 0, 0, 0]]
    assert not hasattr(model[5], "weight_mask")
    # The pruning log: 11 synapses into 4 units, 1 synapse into 1 unit (the other lost every input).
    assert pruner.pruning_log == [{"step": 1, "units_alive": [4, 1], "synapses_alive": [11, 1]}]
    pruner.update(2)
    assert len(pruner.pruning_log) == 1, "a step that changes no mask is not logged"


def test_magnitude_keeps_every_larger_weight_and_prunes_the_exact_count():
    model = mlp(seed=2)
    pruner = MagnitudePruner(sparsity=0.37, at_epoch=0)
    pruner.attach(model, total_steps=5)
    pruner.update(1)
    magnitudes = torch.cat([layer.weight_orig.detach().abs().flatten() for layer in pruner.layers])
    mask = torch.cat([m.flatten() for m in pruner.masks()])
    assert n_pruned(mask) == round(0.37 * 352)  # 130
    assert magnitudes[mask == 1].min() >= magnitudes[mask == 0].max()


def test_magnitude_at_epoch_prunes_at_the_end_of_that_epoch_only():
    model = mlp()
    pruner = MagnitudePruner(sparsity=0.5, at_epoch=2)
    pruner.attach(model, total_steps=12, steps_per_epoch=3)
    for step in range(1, 6):  # epoch 1, and epoch 2 up to its last batch
        pruner.update(step, epoch_end=step % 3 == 0)
        assert pruner.sparsity() == 0.0, step
    pruner.update(6, epoch_end=False)  # step 6 that is not flagged as an epoch end: still nothing
    assert pruner.sparsity() == 0.0
    pruner.update(6, epoch_end=True)
    assert sum(n_pruned(m) for m in pruner.masks()) == 176  # round(0.5 * 352)
    pruned = pruner.masks()
    for step in range(7, 13):  # one shot: new magnitudes later change nothing
        with torch.no_grad():
            for layer in pruner.layers:
                layer.weight_orig.normal_()
        pruner.update(step, epoch_end=step % 3 == 0)
        for before, after in zip(pruned, pruner.masks()):
            assert torch.equal(before, after), step


def test_magnitude_at_epoch_zero_prunes_at_the_first_step():
    pruner = MagnitudePruner(sparsity=0.5, at_epoch=0)
    pruner.attach(mlp(), total_steps=6, steps_per_epoch=3)
    pruner.update(1, epoch_end=False)
    assert sum(n_pruned(m) for m in pruner.masks()) == 176


class MaskRecordingMagnitude(MagnitudePruner):
    """Keeps a copy of the masks at every epoch end."""

    def __init__(self, **options):
        super().__init__(**options)
        self.epoch_masks = []

    def update(self, step, epoch_end=False):
        super().update(step, epoch_end)
        if epoch_end:
            self.epoch_masks.append(self.masks())


def test_magnitude_masks_hold_through_training():
    model = mlp()
    pruner = MaskRecordingMagnitude(sparsity=0.5, at_epoch=2)
    history = train(model, tiny_data(n=16, steps=4), pruner, Recipe(epochs=4, batch_size=8, learning_rate=5e-3, seed=0), progress=False)  # 2 steps per epoch
    assert history.sparsity[0] == 0.0
    assert history.sparsity[1:] == pytest.approx([0.5, 0.5, 0.5])
    after_epoch_2 = pruner.epoch_masks[1]
    for masks in pruner.epoch_masks[2:]:
        for before, after in zip(after_epoch_2, masks):
            assert torch.equal(before, after)
    for layer, mask in zip(pruner.layers, after_epoch_2):
        # Adam moved the parameters under the mask (its momentum outlives the gradient) ...
        assert torch.any(layer.weight_orig[mask == 0] != 0)
        # ... but what the network uses is exactly zero there.
        assert torch.all(effective_weight(layer)[mask == 0] == 0)
        assert torch.all(layer.weight[mask == 0] == 0)


@pytest.mark.parametrize("options", [{"sparsity": 1.0}, {"sparsity": -0.1}, {"at_epoch": -1}])
def test_magnitude_refuses_bad_values(options):
    with pytest.raises(UserError):
        make_pruner("magnitude", **options)


def test_magnitude_prunes_the_requested_count_even_with_tied_magnitudes():
    model = mlp()
    with torch.no_grad():
        for layer in model:
            if hasattr(layer, "weight"):
                layer.weight.fill_(0.1)
    pruner = MagnitudePruner(sparsity=0.5, at_epoch=0)
    pruner.attach(model, total_steps=2)
    pruner.update(1)
    assert sum(n_pruned(m) for m in pruner.masks()) == 176


# --- structured magnitude -----------------------------------------------------


def test_structured_removes_the_units_with_the_smallest_l1_norm_and_their_outgoing_synapses():
    model = mlp()
    with torch.no_grad():
        # Row k of each prunable layer gets L1 norm proportional to (k + 1), in a shuffled order.
        for layer, order in ((model[1], torch.randperm(16, generator=torch.Generator().manual_seed(1))),
                             (model[3], torch.randperm(12, generator=torch.Generator().manual_seed(2)))):
            layer.weight.copy_(torch.sign(layer.weight) * (order[:, None].double() + 1).float() / 100)
    first_norm = model[1].weight.abs().sum(dim=1).clone()
    second_norm = model[3].weight.abs().sum(dim=1).clone()
    pruner = StructuredPruner(target_sparsity=0.25, start_fraction=0.0, end_fraction=0.5, update_every_steps=1)
    pruner.attach(model, total_steps=4)
    for step in range(1, 5):
        pruner.update(step)
    first, second = (layer.weight_mask for layer in pruner.layers)
    removed_first = torch.nonzero(first.sum(dim=1) == 0).flatten()
    assert set(removed_first.tolist()) == set(torch.argsort(first_norm)[:4].tolist())  # 25 % of 16
    assert torch.all(first[first.sum(dim=1) > 0] == 1)  # kept units keep every synapse
    # Their outgoing synapses (columns of the next layer) went with them.
    assert torch.all(second[:, removed_first] == 0)
    removed_second = torch.nonzero(second.sum(dim=1) == 0).flatten()
    assert set(removed_second.tolist()) == set(torch.argsort(second_norm)[:3].tolist())  # 25 % of 12


def test_structured_prunes_whole_conv_channels_gradually_and_never_regrows():
    from dpap_neuro.models import SpikingConvNet
    from hw_export.norse import export_model

    torch.manual_seed(0)
    model = SpikingConvNet((2, 8, 8), (8, 8), (10,), 3)
    pruner = StructuredPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.5, update_every_steps=2)
    pruner.attach(model, total_steps=20)
    previous = [m.clone() for m in pruner.masks()]
    shares = []
    for step in range(1, 21):
        pruner.update(step)
        for before, now in zip(previous, pruner.masks()):
            assert torch.all(now <= before)  # masks only lose entries
        previous = [m.clone() for m in pruner.masks()]
        shares.append(pruner.neuron_sparsity())
    assert shares[0] < shares[-1] and shares == sorted(shares)
    conv1, conv2, fc1 = pruner.layers
    for conv in (conv1, conv2):
        alive = conv.weight_mask.flatten(1).sum(dim=1) > 0
        assert int((~alive).sum()) == 4  # half of 8 channels
        assert torch.all(conv.weight_mask[alive].flatten(1).sum(dim=1) > 0)
    dead_conv1 = conv1.weight_mask.flatten(1).sum(dim=1) == 0
    assert torch.all(conv2.weight_mask[:, dead_conv1] == 0)
    dead_conv2 = conv2.weight_mask.flatten(1).sum(dim=1) == 0
    assert torch.all(fc1.weight_mask[:, dead_conv2.repeat_interleave(2 * 2)] == 0)  # a 2x2 map per channel
    net = export_model(model, (2, 8, 8))
    assert net.layers[0].weight.shape[0] == 4 * 64 and net.layers[1].weight.shape[0] == 4 * 16  # removed


def test_structured_refuses_bad_values():
    with pytest.raises(UserError, match="target_sparsity must be in"):
        make_pruner("structured", target_sparsity=1.0)


# --- through make_pruner: torch's reparametrisation ---------------------------


@pytest.mark.parametrize("name, options, cls", [
    ("random", {"sparsity": 0.5, "at_fraction": 0.0, "seed": 7}, RandomPruner),
    ("magnitude", {"sparsity": 0.5, "at_epoch": 0}, MagnitudePruner),
    ("structured", {"target_sparsity": 0.5, "start_fraction": 0.0, "end_fraction": 0.25,
                    "update_every_steps": 1}, StructuredPruner),
])
def test_baselines_keep_parameter_identity_and_block_gradients(name, options, cls):
    model = mlp()
    originals = [model[1].weight, model[3].weight]
    pruner = make_pruner(name, **options)
    assert isinstance(pruner, cls)
    pruner.attach(model, total_steps=4)
    pruner.update(1)
    parameters = list(model.parameters())
    for layer, original in zip(pruner.layers, originals):
        assert layer.weight_orig is original  # what the optimiser holds is still the trained parameter
        assert any(p is original for p in parameters)
        assert n_pruned(layer.weight_mask) > 0
    spikes = (torch.rand(6, 4, 10, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    model(spikes).readout_v.sum().backward()
    for layer in pruner.layers:
        masked = layer.weight_mask == 0
        assert torch.all(layer.weight_orig.grad[masked] == 0)
    first = pruner.layers[0]
    assert torch.any(first.weight_orig.grad[first.weight_mask == 1] != 0), "no gradient at all: check is empty"


def test_baseline_options_are_checked_by_name():
    with pytest.raises(UserError, match="has no option at_epoch"):
        make_pruner("random", at_epoch=1)
    with pytest.raises(UserError, match="has no option at_fraction"):
        make_pruner("magnitude", at_fraction=0.5)
