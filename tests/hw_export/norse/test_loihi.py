"""Loihi-exact training (hw_export/norse/loihi.py): the trained model is the network Lava's fixed point runs."""

import numpy as np
import pytest
import torch
from norse.torch import LICell, LIFCell, LIFParameters, SequentialState
from torch import nn

from conftest import needs_lava, pruned_mlp, recurrent_mlp, tiny_data
from hw_export.loihi_fixed import lif_step
from hw_export.norse import export_model, norse_reference
from hw_export.norse.loihi import LoihiLICell, LoihiLIFCell, is_loihi_exact, loihi_exact, trained_scale
from hw_export.quantize import quantize


def test_the_cell_follows_lavas_integer_rules_step_by_step():
    cell = LoihiLIFCell(LIFParameters(v_th=torch.tensor(1.0)))
    cell.weight_scale = 400.0  # threshold mantissa 400: fires above 400 << 6 = 25600
    du, dv = cell.decays()
    assert (du, dv) == (818, 410)  # dt 1 ms: 4096 * 0.2 - 1 (Lava adds the 1 back) and 4096 * 0.1, rounded
    inputs = [300, 0, 150, -200, 420, 0, 0]
    state, u, v, fired = None, np.zeros(1, np.int64), np.zeros(1, np.int64), 0
    for a in inputs:
        spikes, state = cell(torch.tensor([float(a)]), state)
        u, v, expected = lif_step(u, v, np.array([a]), du, dv, 400)
        assert spikes.tolist() == expected.astype(float).tolist()
        assert state.u.tolist() == u.tolist() and state.v.tolist() == v.tolist()
        fired += int(expected[0])
    assert fired >= 1  # the case reaches the threshold and resets, not only the subthreshold dynamics


def small_models():
    from dpap_neuro.models import build_model

    torch.manual_seed(0)
    conv = build_model((2, 8, 8), (12,), 3, "conv", (4, 6), weight_init_gain=20.0)
    from dpap_neuro.pruning import GMPPruner

    pruner = GMPPruner(target_sparsity=0.4, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(conv, total_steps=10)
    pruner.update(10)
    generator = torch.Generator().manual_seed(0)
    return {"dense mlp": (loihi_exact(pruned_mlp(1, sparsity=0.0)), (10,), (torch.rand(15, 6, 10, generator=generator) < 0.4).float()),
            "pruned mlp": (loihi_exact(pruned_mlp(2)), (10,), (torch.rand(15, 6, 10, generator=generator) < 0.4).float()),
            "pruned conv": (loihi_exact(conv), (2, 8, 8), (torch.rand(12, 5, 2, 8, 8, generator=generator) < 0.3).float()),
            "pruned rmlp": (loihi_exact(recurrent_mlp(5)), (10,), (torch.rand(15, 6, 10, generator=generator) < 0.4).float())}


@needs_lava
@pytest.mark.parametrize("kind", ["dense mlp", "pruned mlp", "pruned conv", "pruned rmlp"])
def test_lava_fixed_point_reproduces_the_trained_model_spike_for_spike(kind):
    from hw_export.lava_sim import SimOptions, simulate

    model, shape, inputs = small_models()[kind]
    readout_v, spikes = norse_reference(model, inputs)
    net = export_model(model, shape)
    assert all(layer.fixed_point_scale for layer in net.layers)  # the scales the training used
    lava = simulate(net, inputs.flatten(2).numpy(), SimOptions(precision="fixed"), progress=False)
    for layer, ours, theirs in zip(net.layers, spikes, lava.layer_spikes):
        np.testing.assert_array_equal(ours[:, :, layer.kept], theirs)
    assert sum(int(s.sum()) for s in lava.layer_spikes) > 20  # not a vacuous match
    np.testing.assert_array_equal(readout_v, lava.readout_v)


@needs_lava
@pytest.mark.parametrize("kind", ["dense mlp", "pruned mlp", "pruned conv", "pruned rmlp"])
def test_the_export_right_after_an_optimizer_step_is_the_network_the_next_forward_runs(kind):
    """`dpap run` exports a model straight after its last optimizer step, before any forward: the scale and
    mantissas must come from the weights that step left, not from the product prune's hook cached at the last
    forward (a recurrent net trained Loihi-exact then agreed with Lava's fixed point on 99.2 % of spikes)."""
    from hw_export.lava_sim import SimOptions, simulate

    model, shape, inputs = small_models()[kind]
    norse_reference(model, inputs)  # a forward: prune's hooks cache the product of the weights
    with torch.no_grad():  # an optimizer step: every weight moves (zeros stay: Norse's autapses), no cached product
        for parameter in model.parameters():
            noise = 0.02 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1))
            parameter.copy_(1.3 * parameter + noise * (parameter != 0))
    net = export_model(model, shape)  # before any forward, as `dpap run` exports
    readout_v, spikes = norse_reference(model, inputs)
    lava = simulate(net, inputs.flatten(2).numpy(), SimOptions(precision="fixed"), progress=False)
    for layer, ours, theirs in zip(net.layers, spikes, lava.layer_spikes):
        np.testing.assert_array_equal(ours[:, :, layer.kept], theirs)
    assert sum(int(s.sum()) for s in lava.layer_spikes) > 20  # not a vacuous match
    np.testing.assert_array_equal(readout_v, lava.readout_v)


def test_the_export_writes_the_mantissas_the_training_computed():
    model, shape, inputs = small_models()["pruned mlp"]
    net = export_model(model, shape)
    columns = np.arange(10)
    for layer, quantized, synapse in zip(net.layers, quantize(net).layers, [model[1], model[3], model[5]]):
        assert layer.fixed_point_scale == trained_scale(synapse)
        trained = synapse._loihi_quantizer.scale_and_mantissas(synapse)[1].numpy()
        mask = synapse.weight_mask.numpy() != 0 if hasattr(synapse, "weight_mask") else np.ones(trained.shape, bool)
        expected = np.where(mask, trained, 0)[np.ix_(layer.kept, columns)]  # survivors only, pruned synapses 0
        np.testing.assert_array_equal(quantized.weight.toarray(), expected)
        columns = layer.kept


def test_gradients_flow_and_the_loss_falls_with_every_pruner_protocol():
    from dpap_neuro.models import SpikingMLP
    from dpap_neuro.pruning import GMPPruner
    from dpap_neuro.train import Recipe, train

    def run(loihi: bool):
        torch.manual_seed(0)
        model = SpikingMLP(10, [16, 12], 3, weight_init_gain=6.0)
        model = loihi_exact(model) if loihi else model
        pruner = GMPPruner(target_sparsity=0.3, start_fraction=0.1, end_fraction=0.5, update_every_steps=1)
        history = train(model, tiny_data(n=64, steps=8), pruner, Recipe(epochs=10, batch_size=16, learning_rate=1e-2),
                        progress=False)
        return model, pruner, history

    model, pruner, history = run(loihi=True)
    _, _, float_history = run(loihi=False)
    # It learns as the float network does: the loss falls by a tenth, ending within 3 % of float training's.
    assert history.loss[-1] < 0.9 * history.loss[0] and history.loss[-1] < 1.03 * float_history.loss[-1]
    assert pruner.sparsity() > 0.2 and is_loihi_exact(model)
    model.zero_grad()
    model(tiny_data(n=8, steps=8).spikes).readout_v.sum().backward()
    first = model[1]
    assert first.weight_orig.grad.abs().sum() > 0
    assert torch.all(first.weight_orig.grad[first.weight_mask == 0] == 0)  # masked synapses stay out


def test_a_recurrent_cell_becomes_loihi_exact_in_place_with_one_scale_for_both_matrices():
    from hw_export.norse.loihi import LoihiLIFRecurrentCell
    from hw_export.norse.loop import run_over_time

    model = recurrent_mlp(5)
    cell = model[0]
    parameters, hooks = (cell.input_weights_orig, cell.recurrent_weights_orig), dict(cell._forward_pre_hooks)
    loihi_exact(model)
    assert type(cell) is LoihiLIFRecurrentCell and is_loihi_exact(model)
    assert (cell.input_weights_orig, cell.recurrent_weights_orig) == parameters and cell._forward_pre_hooks == hooks
    net = export_model(model, (10,))
    scale, input_mantissas, recurrent_mantissas = cell._loihi_quantizer.scale_and_mantissas(cell)
    assert net.layers[0].fixed_point_scale == scale == trained_scale(cell)
    fixed = quantize(net).layers[0]  # the very mantissas the training computed, survivors only
    kept = net.layers[0].kept
    np.testing.assert_array_equal(fixed.recurrent_weight.toarray(),
                                  np.where(net.layers[0].recurrent_weight.toarray() != 0,
                                           recurrent_mantissas.numpy()[np.ix_(kept, kept)], 0))
    run_over_time(model, (torch.rand(10, 4, 10) < 0.4).float()).readout_v.sum().backward()
    for name in ("input_weights", "recurrent_weights"):
        grad, mask = getattr(cell, f"{name}_orig").grad, getattr(cell, f"{name}_mask")
        assert grad.abs().sum() > 0 and torch.all(grad[mask == 0] == 0)


def test_a_users_sequential_state_model_becomes_loihi_exact_and_refuses_what_cannot_fold():
    from hw_export.errors import UserError

    torch.manual_seed(0)
    model = SequentialState(nn.Conv2d(2, 4, 3, padding=1, bias=False), LIFCell(), nn.AvgPool2d(2), nn.Flatten(),
                            nn.Linear(64, 3, bias=False), nn.Identity(), LICell())
    loihi_exact(loihi_exact(model))  # idempotent
    assert isinstance(model[1], LoihiLIFCell) and isinstance(model[-1], LoihiLICell)
    assert model[4]._loihi_quantizer.inputs_per_value == 4  # the 2x2 pooling is folded into the next layer
    overlapping = SequentialState(nn.Conv2d(2, 4, 3, bias=False), LIFCell(), nn.AvgPool2d(3, stride=1),
                                  nn.Flatten(), nn.Linear(16, 3, bias=False), LIFCell())
    with pytest.raises(UserError, match="non-overlapping average pooling"):
        loihi_exact(overlapping)
