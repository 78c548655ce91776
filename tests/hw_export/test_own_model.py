"""Your own Norse model: pruners in a hand-written loop, export, Norse reference, Lava, energy."""

import numpy as np
import pytest
import torch
from norse.torch import LICell, LIFCell, SequentialState
from torch import nn

from conftest import needs_lava
from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import DPAPPruner, GMPPruner
from dpap_neuro.train import evaluate
from dpap_neuro.data import SpikeDataset
from hw_export.norse import export_model, named_layers, norse_reference
from hw_export.errors import UserError
from hw_export.sparsenet import SparseNetError


def own_conv(seed=0):
    """A user's network, written with Norse's SequentialState (nested), not with dpap_neuro's classes."""
    torch.manual_seed(seed)
    features = SequentialState(nn.Conv2d(2, 4, 3, padding=1, bias=False), LIFCell(), nn.AvgPool2d(2))
    model = SequentialState(features, nn.Flatten(), nn.Linear(4 * 4 * 4, 24, bias=False), LIFCell(),
                            nn.Linear(24, 3, bias=False), LICell())
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(8.0)  # spikes from the first step
    return model


def own_loop(model, pruner, inputs, labels, steps):
    """The training loop a user writes: Norse's step-by-step state passing, then pruner.step()."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        state, readout = None, []
        for x_t in inputs:  # [B, ...]
            out, state = model(x_t, state)
            readout.append(out)
        loss = nn.functional.cross_entropy(torch.stack(readout).max(dim=0).values, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        pruner.step()


def batch(seed=1, steps=10, n=8):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, n, 2, 8, 8, generator=generator) < 0.2).float(), torch.arange(n) % 3


def test_dpap_prunes_a_sequential_state_model_in_a_hand_written_loop():
    model = own_conv()
    conv, fc = model[0][0], model[2]
    parameters = (conv.weight, fc.weight)
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    pruner.attach(model, total_steps=12, steps_per_epoch=4)
    assert conv.weight_orig is parameters[0] and fc.weight_orig is parameters[1]  # identity kept
    assert not hasattr(model[4], "weight_mask"), "the readout stays dense"
    inputs, labels = batch()
    own_loop(model, pruner, inputs, labels, steps=12)
    assert pruner.steps_taken == 12 and pruner.decisions > 0
    assert pruner.sparsity() > 0.2 and pruner.neuron_sparsity() > 0
    # Masked synapses get no gradient.
    model.zero_grad()
    state, readout = None, []
    for x_t in inputs:
        out, state = model(x_t, state)
        readout.append(out)
    torch.stack(readout).sum().backward()
    assert torch.all(fc.weight_orig.grad[fc.weight_mask == 0] == 0)


@needs_lava
def test_a_users_recurrent_sequential_state_model_pruned_in_a_hand_written_loop_runs_in_lava():
    """LIFRecurrentCell layers in a SequentialState, stepped by the user's loop: DPAP prunes both weight matrices,
    and the export runs in Lava spike for spike with the model."""
    from norse.torch import LIFRecurrentCell

    from hw_export.assess import assess_arrays

    torch.manual_seed(0)
    cell = LIFRecurrentCell(128, 24, autapses=False)
    with torch.no_grad():
        cell.input_weights.mul_(2.0)
    model = SequentialState(nn.Flatten(), cell, nn.Linear(24, 3, bias=False), LICell())
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, fc_neuron_c=1.0,
                        fc_synapse_c=1.5)
    pruner.attach(model, total_steps=12, steps_per_epoch=4)
    inputs, labels = batch()
    own_loop(model, pruner, inputs, labels, steps=12)
    assert pruner.decisions > 0 and cell.recurrent_weights_mask.sum() < 24 * 23  # recurrent synapses pruned too
    net = export_model(model, (2, 8, 8))
    assert net.layers[0].n_recurrent_synapses == int(cell.recurrent_weights_mask[
        np.ix_(net.layers[0].kept, net.layers[0].kept)].sum())
    report = assess_arrays(net, inputs.numpy(), labels.numpy(), lambda x: norse_reference(model, x))
    assert report["agreement"] == {"spikes": 1.0, "samples_identical": 1.0, "predictions": 1.0}
    assert report["layers"][0]["recurrent_synops"] > 0


def test_a_user_model_on_flat_input_reshapes_with_its_own_unflatten_layer():
    """Shapes come from the model's layers: an nn.Unflatten before a conv is read, never guessed."""
    torch.manual_seed(3)
    model = SequentialState(nn.Unflatten(1, (2, 8, 8)), *own_conv(3))
    net = export_model(model, (128,))
    assert [layer.name for layer in net.layers] == ["conv1", "fc1", "readout"] and net.input_shape == (128,)
    inputs = (torch.rand(6, 4, 128, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    flat_readout, _ = norse_reference(model, inputs)
    image_readout, _ = norse_reference(own_conv(3), inputs.reshape(6, 4, 2, 8, 8))
    np.testing.assert_array_equal(flat_readout, image_readout)
    with pytest.raises(UserError, match=r"layer '0.0' \(Conv2d\) cannot take per-sample input of shape "
                                             r"\(128,\).*nn.Unflatten"):
        export_model(own_conv(3), (128,))


def test_norse_reference_gives_the_spikes_of_dpaps_own_evaluation():
    torch.manual_seed(0)
    model = SpikingMLP(12, [10, 6], 3, weight_init_gain=6.0)
    inputs = (torch.rand(9, 5, 12) < 0.4).float()
    readout_v, spikes = norse_reference(model, inputs.numpy())
    assert model[1].weight.dtype == torch.float32 and model.training  # dtype and mode restored
    reference = evaluate(model, SpikeDataset(inputs, torch.zeros(5, dtype=torch.int64)))
    np.testing.assert_array_equal(readout_v, reference.readout_v.numpy())
    for ours, theirs in zip(spikes, reference.layer_spikes):
        np.testing.assert_array_equal(ours, theirs.numpy())


def test_export_unfolds_nested_sequentials_and_drops_pruned_neurons():
    model = own_conv()
    assert [name for name, _ in named_layers(model)] == ["0.0", "0.1", "0.2", "1", "2", "3", "4", "5"]
    pruner = GMPPruner(target_sparsity=0.6, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(10)
    with torch.no_grad():
        model[2].weight_mask[:5] = 0  # five hidden neurons lose every input
    net = export_model(model, (2, 8, 8))
    assert [layer.name for layer in net.layers] == ["conv1", "fc1", "readout"]
    assert net.layers[1].n_out == 24 - 5 and net.layers[1].n_original == 24


@pytest.mark.parametrize("layers, message", [
    ([nn.Linear(4, 3, bias=False), nn.Dropout(), LIFCell(), nn.Linear(3, 2, bias=False), LICell()],
     r"layer '1' \(Dropout\) cannot be exported; supported: Linear, Conv2d"),
    ([nn.Linear(4, 3), LIFCell(), nn.Linear(3, 2, bias=False), LICell()], r"layer '0' \(Linear\) has a bias"),
    ([nn.Linear(4, 3, bias=False), LIFCell(), nn.Linear(3, 2, bias=False), LIFCell()],
     r"must end in an LICell readout .*; layer '3' is a LIFCell"),
    ([nn.Linear(4, 3, bias=False), LICell(), nn.Linear(3, 2, bias=False), LICell()],
     r"layer '1' \(LICell\): an LICell does not spike"),
])
def test_a_layer_that_cannot_be_exported_is_named(layers, message):
    with torch.no_grad():
        for layer in layers:
            if getattr(layer, "bias", None) is not None:
                layer.bias.fill_(0.5)
    with pytest.raises(SparseNetError, match=message):
        export_model(SequentialState(*layers), (4,))


@needs_lava
def test_own_model_in_lava_matches_norse_and_is_measured():
    from hw_export.assess import assess_arrays, simulate
    from hw_export.report import ModelReport, check

    model = own_conv()
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0)
    pruner.attach(model, total_steps=6, steps_per_epoch=6)
    inputs, labels = batch()
    own_loop(model, pruner, inputs, labels, steps=6)
    net = export_model(model, (2, 8, 8))
    report = assess_arrays(net, inputs.numpy(), labels.numpy(), lambda x: norse_reference(model, x))
    check(report, ModelReport)  # the same schema as dpap run's models
    assert report["agreement"] == {"spikes": 1.0, "samples_identical": 1.0, "predictions": 1.0}
    assert report["per_sample"]["energy_j"]["loihi"] > 0 and report["synapses"] == net.n_synapses
    assert report["fixed"]["per_sample"]["synops"] > 0 and 0 <= report["fixed"]["agreement"]["spikes"] <= 1
    with pytest.raises(UserError, match="inputs have 64 values per step, the network takes 128"):
        simulate(net, inputs[:, :, :1].numpy())


def test_an_own_model_assessed_without_labels_gives_a_report_that_passes_the_schema(monkeypatch):
    """No labels: no accuracy, but agreement, counts and energy, and the report passes the project's own check."""
    import hw_export.assess as assess
    from conftest import pruned_mlp
    from hw_export.lava_sim import LavaResult
    from hw_export.report import ModelReport, check

    model = pruned_mlp(0)
    net = export_model(model, (10,))

    def lava_as_norse(net_, flat, options):  # Lava stands in as the reference itself: no Lava needed here
        readout_v, spikes = norse_reference(model, flat)
        return LavaResult([s[:, :, layer.kept].astype(bool) for s, layer in zip(spikes, net.layers)], readout_v)

    monkeypatch.setattr(assess, "simulate", lava_as_norse)
    inputs = (np.random.default_rng(0).random((6, 5, 10)) < 0.4).astype(np.float32)
    report = assess.assess_arrays(net, inputs, None, lambda x: norse_reference(model, x))
    check(report, ModelReport, source="assess_arrays(labels=None)")
    assert "accuracy" not in report and report["fixed"]["accuracy"] is None
    assert report["agreement"]["spikes"] == 1.0 and report["samples"]["lava"] == 5
    with_labels = assess.assess_arrays(net, inputs, np.zeros(5, int), lambda x: norse_reference(model, x))
    check(with_labels, ModelReport)
    assert set(with_labels["accuracy"]) == {"lava", "norse"}
