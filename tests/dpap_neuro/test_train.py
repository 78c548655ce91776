"""train() and evaluate() as the pipeline uses them, on the learnable toy task."""

import math

import pytest
import torch

from conftest import tiny_data
from dpap_neuro.models import SNNOutput, SpikingMLP, predict
from dpap_neuro.pruning import GMPPruner, Pruner
from dpap_neuro.train import Recipe, evaluate, train


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return SpikingMLP(10, [16, 12], 3)


def run(model, data, pruner=None, epochs=2, batch_size=8, seed=0, learning_rate=5e-3):
    return train(model, data, pruner or Pruner(), Recipe(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed), progress=False)


def test_history_has_one_entry_per_epoch():
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.5, update_every_steps=1)
    history = run(fresh_model(), tiny_data(n=16, steps=4), pruner, epochs=3)
    for name in ("loss", "train_accuracy", "sparsity", "neuron_sparsity", "layer_sparsity"):
        assert len(getattr(history, name)) == 3, name
    assert all(len(per_layer) == 2 for per_layer in history.layer_sparsity)  # two prunable layers
    assert all(0.0 <= a <= 1.0 for a in history.train_accuracy)
    # GMP reaches its target at half the run (step 3 of 6): the history follows the masks.
    assert history.sparsity[0] < history.sparsity[-1] == pytest.approx(0.5, abs=0.01)
    assert history.layer_sparsity[-1] == pytest.approx([0.5, 0.5], abs=0.01)
    assert history.wall_time_s > 0


def test_loss_decreases_on_the_toy_task():
    # The readout starts near zero, so the loss starts at chance level, log(3); a large step
    # size makes the descent visible within a few epochs.
    history = run(fresh_model(seed=1), tiny_data(), epochs=4, learning_rate=0.05)
    assert history.loss[0] == pytest.approx(math.log(3), abs=0.02)
    assert history.loss[-1] < 0.8 * history.loss[0]
    assert history.train_accuracy[-1] > history.train_accuracy[0]


def test_same_seed_same_weights_other_seed_other_weights():
    data = tiny_data(n=16, steps=4)
    a, b, c = fresh_model(), fresh_model(), fresh_model()
    run(a, data, seed=0)
    run(b, data, seed=0)
    run(c, data, seed=1)  # same initial weights, other batch order
    for (name, x), y, z in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(x, y), name
    assert any(not torch.equal(x, z) for x, z in zip(a.state_dict().values(), c.state_dict().values()))


class RecordingPruner(Pruner):
    """Records the calls ``train`` makes: attach once, then one ``step`` per optimiser step."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def attach(self, model, total_steps, steps_per_epoch=1):
        self.model = model
        self.calls.append(("attach", total_steps, steps_per_epoch))
        super().attach(model, total_steps, steps_per_epoch)

    def step(self, epoch_end=None):
        # A copy of the first layer's parameter, to tell whether the optimiser has stepped already.
        self.calls.append(("step", epoch_end, self.model[1].weight_orig.detach().clone()))


def test_train_calls_the_one_pruner_protocol_a_user_loop_calls():
    data = tiny_data(n=20, steps=4)  # batches of 8, 8 and 4: ceil(20 / 8) = 3 per epoch
    model = fresh_model()
    initial = model[1].weight.detach().clone()
    pruner = RecordingPruner()
    run(model, data, pruner, epochs=2, batch_size=8)
    calls = pruner.calls
    assert calls[0] == ("attach", 6, 3)
    assert [(c[0], c[1]) for c in calls[1:]] == [("step", False), ("step", False), ("step", True)] * 2
    # step comes after the optimiser step: the weights already moved from their initial values.
    assert not torch.equal(calls[1][2], initial)
    assert all(not torch.equal(a[2], b[2]) for a, b in zip(calls[1:], calls[2:]))


def test_the_learning_rate_follows_warm_up_then_cosine_to_zero():
    from dpap_neuro.train import lr_factor

    factors = [lr_factor(step, 10, 2, "cosine") for step in range(10)]
    assert factors[:2] == [0.5, 1.0]  # linear warm-up over 2 steps
    assert factors[2] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a > b for a, b in zip(factors[2:], factors[3:]))  # decreasing after the warm-up
    assert lr_factor(9, 10, 0, "constant") == 1.0 and lr_factor(0, 10, 0, "cosine") == 1.0


def test_adamw_with_a_cosine_schedule_learns_and_ends_at_a_zero_learning_rate():
    from dpap_neuro.train import make_optimizer

    model = fresh_model()
    recipe = Recipe(epochs=3, batch_size=8, learning_rate=1e-2, optimizer="adamw", weight_decay=1e-3,
                    lr_schedule="cosine", warmup_epochs=1)
    optimizer, schedule = make_optimizer(model, recipe, steps_per_epoch=4)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 1e-3
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1e-2 / 4) and max(rates) == pytest.approx(1e-2)
    assert rates[-1] < 1e-3 and optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    history = train(fresh_model(), tiny_data(n=64, steps=8), Pruner(), recipe, progress=False)
    assert history.loss[-1] < history.loss[0]


def test_evaluate_returns_float64_readout_bool_spikes_and_consistent_predictions():
    data = tiny_data(n=12, steps=5)
    model = fresh_model()
    result = evaluate(model, data, batch_size=5)  # 3 batches: 5, 5, 2
    assert result.readout_v.dtype == torch.float64
    assert result.readout_v.shape == (5, 12, 3)
    assert [s.shape for s in result.layer_spikes] == [(5, 12, 16), (5, 12, 12)]
    assert all(s.dtype == torch.bool for s in result.layer_spikes)
    assert torch.equal(result.predictions, predict(result.readout_v))
    correct = sum(int(p) == int(y) for p, y in zip(result.predictions, data.labels))
    assert result.accuracy == pytest.approx(correct / 12)
    assert next(model.parameters()).dtype == torch.float32
    # Batching does not change anything: one batch gives the same readout and spikes.
    whole = evaluate(model, data, batch_size=256)
    assert torch.equal(whole.readout_v, result.readout_v)
    for a, b in zip(whole.layer_spikes, result.layer_spikes):
        assert torch.equal(a, b)


def test_evaluate_matches_a_float64_forward_pass_and_restores_float32_on_a_pruned_model():
    data = tiny_data(n=6, steps=4)
    model = fresh_model()
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(10)
    result = evaluate(model, data)
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())
    reference = fresh_model()
    with torch.no_grad():
        for layer, pruned in zip(reference, model):
            if hasattr(pruned, "weight_mask"):
                layer.weight.copy_(pruned.weight_orig * pruned.weight_mask)
        reference.double()
        expected = reference(data.spikes.double())
    torch.testing.assert_close(result.readout_v, expected.readout_v, rtol=0, atol=0)
