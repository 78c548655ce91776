"""Compaction (dpap_neuro/pruning/compaction.py): removed units leave the model, and nothing else changes.

At the moment of compaction the compacted model is the masked one: the same spikes, readout voltages equal up
to float32 summation order (float64 and Loihi's integer arithmetic: equal to the bit), the same export, the same
training step (Adam's moments cut with the weights), the same pruning decisions, through checkpoints and resumes.
"""

import copy

import numpy as np
import pytest
import torch

from conftest import tiny_data
from dpap_neuro.checkpoint import load_checkpoint, save_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.models import build_model
from dpap_neuro.pruning import DPAPPruner, Pruner, StructuredPruner, make_pruner
from dpap_neuro.pruning.base import ensure_mask, prunable_layers
from dpap_neuro.pruning.compaction import compact, removable
from dpap_neuro.train import Recipe, load_training_state, train
from hw_export.norse import export_model, norse_reference, run_over_time
from hw_export.norse.compaction import built_shape, is_compacted
from hw_export.norse.layers import RECURRENT_CELLS
from hw_export.norse.layers import forward_macs
from hw_export.norse.loihi import loihi_exact, trained_scale

# float32: the compacted layer sums fewer terms (the masked ones were exact zeros, but a matrix product's
# blocking changes with its width), so a readout voltage moves by a few float32 ulps of its size per step.
FLOAT32_READOUT_ATOL = 1e-4


def test_removable_needs_a_dead_row_and_dead_outgoing_synapses():
    mask = torch.ones(4, 3)
    mask[1] = 0
    mask[2] = 0  # rows 1 and 2 receive nothing
    next_mask = torch.ones(5, 4 * 2)  # a Linear after a flattened 2-position map: columns 2u, 2u+1 per unit
    next_mask[:, 2:4] = 0  # unit 1 reaches nothing either; unit 2 still has outgoing synapses
    assert removable(mask, next_mask, next_is_readout=False).tolist() == [False, True, False, False]
    assert removable(mask, None, next_is_readout=True).tolist() == [False, True, True, False]
    assert removable(mask, None, next_is_readout=False).tolist() == [False] * 4  # an unmasked, prunable next layer


def twin(model, inputs):
    """A deep copy (after a forward without autograd: the prune reparametrisation's weight must be a leaf)."""
    with torch.no_grad():
        run_over_time(model, inputs)
    return copy.deepcopy(model)


def masked_model(architecture, seed=0):
    """A model whose hidden layers lost units the way a structured decision removes them (masks only)."""
    torch.manual_seed(seed)
    shape = (2, 8, 8) if architecture == "conv" else (20,)
    model = build_model(shape, (24, 16), 3, architecture, conv_channels=(6, 8))
    pruner = StructuredPruner(target_sparsity=0.4, start_fraction=0.0, end_fraction=0.01, update_every_steps=1)
    pruner.attach(model, total_steps=100)
    pruner.update(100)
    inputs = (torch.rand(12, 5, *shape) < 0.3).float()  # [T, B, ...]
    return model, pruner, inputs


@pytest.mark.parametrize("architecture", ["mlp", "conv", "rmlp"])
@pytest.mark.parametrize("precision", ["float", "loihi"])
def test_at_compaction_the_network_is_unchanged(architecture, precision):
    model, _, inputs = masked_model(architecture)
    if precision == "loihi":
        loihi_exact(model)
    compacted = twin(model, inputs)
    removed = compact(compacted)
    assert removed > 0
    for kept, built in zip(prunable_layers(compacted), prunable_layers(model)):
        assert kept.weight.shape[0] < built.weight.shape[0] and built_shape(kept) == tuple(built.weight.shape)
        assert trained_scale(kept) == trained_scale(built)  # Loihi-exact layers keep their scales
    masked_out, compacted_out = run_over_time(model, inputs), run_over_time(compacted, inputs)
    if precision == "loihi":  # integers: equal to the bit
        assert torch.equal(masked_out.readout_v, compacted_out.readout_v)
    else:
        torch.testing.assert_close(compacted_out.readout_v, masked_out.readout_v, rtol=0, atol=FLOAT32_READOUT_ATOL)
    reference, reference_compacted = norse_reference(model, inputs), norse_reference(compacted, inputs)
    np.testing.assert_allclose(reference_compacted[0], reference[0], rtol=0, atol=1e-12)
    for built_spikes, compacted_spikes in zip(reference[1], reference_compacted[1]):
        np.testing.assert_array_equal(compacted_spikes, built_spikes)  # at the built width, removed units silent
    a, b = export_model(model, inputs.shape[2:]), export_model(compacted, inputs.shape[2:])
    for x, y in zip(a.layers, b.layers):
        assert (x.n_original, x.kept.tolist()) == (y.n_original, y.kept.tolist())
        assert (x.weight != y.weight).nnz == 0 and x.fixed_point_scale == y.fixed_point_scale
        assert (x.recurrent_weight is None) == (y.recurrent_weight is None)
        assert x.recurrent_weight is None or (x.recurrent_weight != y.recurrent_weight).nnz == 0
    for cell in (m for m in compacted.modules() if isinstance(m, RECURRENT_CELLS)):  # rows and columns both went
        n_units = cell.input_weights.shape[0]
        assert cell.recurrent_weights.shape == (n_units, n_units) == cell.recurrent_weights_mask.shape
        assert int(cell.hidden_size) == n_units < int(cell.built_shape[0])


def stepped_pair(architecture):
    """A masked model and its compacted twin, one Adam step before the compaction and one after (the twin's
    optimiser told); also the twin's parameters before compaction."""
    model, _, inputs = masked_model(architecture)
    labels = torch.tensor([0, 1, 2, 0, 1])

    def step(net, optimizer):
        out = run_over_time(net, inputs)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(out.readout_v.max(0).values, labels).backward()
        optimizer.step()

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    step(model, optimizer)  # Adam has moments for every entry now
    small = twin(model, inputs)
    small_optimizer = torch.optim.Adam(small.parameters(), lr=1e-2)
    small_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # Adam shares "step" tensors otherwise
    before = list(small.parameters())
    assert compact(small, small_optimizer) > 0
    replaced = [p for p in before if all(p is not q for q in small.parameters())]
    assert replaced and not any(p is q for p in replaced for q in small_optimizer.param_groups[0]["params"])
    for parameter in small.parameters():  # Adam's moments cut with the weights
        assert small_optimizer.state[parameter]["exp_avg"].shape == parameter.shape
    step(model, optimizer)
    step(small, small_optimizer)
    return model, small, small_optimizer


def test_a_training_step_after_compaction_is_the_masked_step():
    model, small, _ = stepped_pair("mlp")
    for built, kept in zip(prunable_layers(model), prunable_layers(small)):
        rows, cols = kept.kept_out.view(-1, 1), kept.kept_in.view(1, -1)
        torch.testing.assert_close(kept.weight_orig, built.weight_orig[rows, cols], rtol=0, atol=1e-6)
        assert torch.all(kept.weight_orig.grad[kept.weight_mask == 0] == 0)  # masked entries get no gradient
    assert small[5].weight.shape[1] == small[3].weight.shape[0]  # the readout lost the removed units' columns


def trained_pair(pruner_factory, epochs=4, seed=0, architecture="mlp", **train_options):
    runs = []
    for compacting in (True, False):
        torch.manual_seed(seed)
        model = build_model((10,), (16, 12), 3, architecture)
        pruner = pruner_factory()
        history = train(model, tiny_data(n=96, steps=20), pruner,
                        Recipe(epochs=epochs, batch_size=16, learning_rate=1e-2),
                        progress=False, compact=compacting, **train_options)
        runs.append((model, pruner, history))
    return runs


def assert_same_decisions_and_export(compacted_run, masked_run, input_shape=(10,)):
    """The compacted run decided as the masked one, exports the same network and computed less at its end."""
    (small, _, history), (masked, _, masked_history) = compacted_run, masked_run
    assert history.pruning_log == masked_history.pruning_log
    assert history.sparsity == masked_history.sparsity and history.neuron_sparsity == masked_history.neuron_sparsity
    for x, y in zip(export_model(small, input_shape).layers, export_model(masked, input_shape).layers):
        assert (x.n_original, x.kept.tolist()) == (y.n_original, y.kept.tolist())
        np.testing.assert_allclose(x.weight.toarray(), y.weight.toarray(), atol=1e-5)
        assert (x.recurrent_weight is None) == (y.recurrent_weight is None)
        if x.recurrent_weight is not None:
            np.testing.assert_allclose(x.recurrent_weight.toarray(), y.recurrent_weight.toarray(), atol=1e-5)
    # Time is a result: a smaller model does fewer multiply-accumulates once it has shrunk.
    assert history.epoch_forward_macs[-1] < masked_history.epoch_forward_macs[-1]


def test_a_compacted_run_makes_the_masked_runs_decisions_and_export():
    dpap = dict(schedule_unit="batches", batches_per_unit=2, warmup_units=2, fc_neuron_c=1.0, r_init=3.0)
    compacted_run, masked_run = trained_pair(lambda: DPAPPruner(**dpap))
    (_, pruner, history), (_, masked_pruner, masked_history) = compacted_run, masked_run
    assert any(is_compacted(layer) and layer.weight.shape[0] < built_shape(layer)[0] for layer in pruner.layers)
    assert history.train_accuracy[-1] > 0.5  # a network that learned, not one pruned to chance
    assert not any(is_compacted(layer) for layer in masked_pruner.layers)
    assert_same_decisions_and_export(compacted_run, masked_run)
    assert len(history.epoch_time_s) == 4 and len(set(masked_history.epoch_forward_macs)) == 1


@pytest.mark.parametrize("pruner_factory", [
    lambda: DPAPPruner(schedule_unit="batches", batches_per_unit=2, warmup_units=2, fc_neuron_c=1.0, r_init=3.0),
    lambda: StructuredPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.5, update_every_steps=1)],
    ids=["dpap", "structured"])
def test_a_compacted_recurrent_run_makes_the_masked_runs_decisions_and_export(pruner_factory):
    """Recurrent cells lose a removed unit's input row, recurrent row and column, and the next layer's column;
    the pruners, judging at the built shape, decide as on the masked twin."""
    compacted_run, masked_run = trained_pair(pruner_factory, architecture="rmlp")
    cells = [m for m in compacted_run[0].modules() if isinstance(m, RECURRENT_CELLS)]
    assert any(is_compacted(cell) and cell.recurrent_weights.shape[0] < built_shape(cell)[0] for cell in cells)
    assert_same_decisions_and_export(compacted_run, masked_run)


def test_a_recurrent_step_after_compaction_is_the_masked_step():
    """Adam's moments of a recurrent weight are cut in rows and columns, so the next step matches."""
    model, small, small_optimizer = stepped_pair("rmlp")
    for built, kept in zip((m for m in model.modules() if isinstance(m, RECURRENT_CELLS)),
                           (m for m in small.modules() if isinstance(m, RECURRENT_CELLS))):
        rows, cols = kept.kept_out.view(-1, 1), kept.kept_in.view(1, -1)
        torch.testing.assert_close(kept.input_weights_orig, built.input_weights_orig[rows, cols], rtol=0, atol=1e-6)
        torch.testing.assert_close(kept.recurrent_weights_orig, built.recurrent_weights_orig[rows, rows.view(1, -1)],
                                   rtol=0, atol=1e-6)
        assert small_optimizer.state[kept.recurrent_weights_orig]["exp_avg"].shape == kept.recurrent_weights_orig.shape


def dpap_statistics_across_a_removal(compacting: bool) -> DPAPPruner:
    """DPAP's statistics of 4 batches added up at once, units removed (and, if ``compacting``, compacted) after 2."""
    torch.manual_seed(0)
    model = build_model((10,), (16, 12), 3, "mlp")
    pruner = DPAPPruner(schedule_unit="batches", batches_per_unit=50, warmup_units=50)
    pruner.attach(model, total_steps=100, steps_per_epoch=50)  # no decision, no epoch's end: nothing added up yet
    generator = torch.Generator().manual_seed(1)
    for batch in range(4):
        if batch == 2:
            for record in pruner.records:
                alive = torch.arange(record.verdict.unit_alive.numel()) % 3 > 0
                record.verdict = record.verdict._replace(unit_alive=alive)
            pruner.apply_masks(2)
            assert not compacting or compact(model) > 0
        model((torch.rand(20, 4, 10, generator=generator) < 0.7).float())  # [T, B, n_in]
        pruner.step()
    assert len(pruner.records[0].pending) == 4
    pruner._flush()
    return pruner


def test_statistics_waiting_across_a_compaction_are_the_masked_ones():
    compacted, masked = dpap_statistics_across_a_removal(True), dpap_statistics_across_a_removal(False)
    for small, built in zip(compacted.records, masked.records):
        assert small.stats.n_samples == built.stats.n_samples == 16
        for name in ("activity", "plasticity", "theta", "pre_activity", "post_count", "pre_count"):
            torch.testing.assert_close(getattr(small.stats, name), getattr(built.stats, name), rtol=1e-12, atol=1e-12)
    assert all(float(record.stats.plasticity.abs().sum()) > 0 for record in masked.records)  # something to compare


def test_unstructured_pruning_leaves_the_model_as_built():
    (model, pruner, _), _ = trained_pair(lambda: make_pruner("gmp", target_sparsity=0.5, start_fraction=0.0,
                                                             end_fraction=0.5, update_every_steps=1))
    assert pruner.sparsity() > 0.4
    assert [tuple(layer.weight.shape) for layer in prunable_layers(model)] == [(16, 10), (12, 16)]


@pytest.mark.parametrize("architecture", ["conv", "rmlp"])
def test_a_compacted_checkpoint_loads_with_its_small_shapes(tmp_path, architecture):
    model, _, inputs = masked_model(architecture)
    assert compact(model) > 0
    config = RunConfig(model=architecture, hidden_sizes=(24, 16), conv_channels=(6, 8), epochs=1)
    shape = tuple(inputs.shape[2:])
    save_checkpoint(tmp_path / "m.pt", model, config, "dpap", "structured", shape, 3)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert [tuple(layer.weight.shape) for layer in prunable_layers(loaded)] == \
        [tuple(layer.weight.shape) for layer in prunable_layers(model)]
    for x, y in zip(export_model(loaded, shape).layers, export_model(model, shape).layers):
        assert x.kept.tolist() == y.kept.tolist() and (x.weight != y.weight).nnz == 0
        assert x.recurrent_weight is None or (x.recurrent_weight != y.recurrent_weight).nnz == 0


def test_a_run_resumed_after_compaction_ends_as_the_uninterrupted_one(tmp_path, monkeypatch):
    import shutil

    import dpap_neuro.train as training

    dpap = dict(schedule_unit="batches", batches_per_unit=1, warmup_units=1, fc_neuron_c=1.0, r_init=2.0)
    saved_after_epoch_2 = tmp_path / "epoch2.pt"
    save = training.save_training_state

    def save_and_keep(path, model, run, pruner, history, epoch):
        save(path, model, run, pruner, history, epoch)
        if epoch == 2:
            shutil.copy(path, saved_after_epoch_2)

    monkeypatch.setattr(training, "save_training_state", save_and_keep)

    def run(resume_from=None):
        torch.manual_seed(0)
        model = build_model((10,), (16, 12), 3, "mlp")
        train(model, tiny_data(n=96, steps=20), DPAPPruner(**dpap), Recipe(epochs=4, batch_size=16, learning_rate=1e-2),
              progress=False, state_path=tmp_path / "state.pt", resume_from=resume_from)
        return model

    whole = run()
    saved = load_training_state(saved_after_epoch_2)
    assert saved["model"]["1.weight_orig"].shape[0] < 16  # the state was written after compaction
    resumed = run(resume_from=saved)
    assert whole.state_dict().keys() == resumed.state_dict().keys()
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_your_own_loop_compacts_with_one_call():
    torch.manual_seed(0)
    model = build_model((10,), (16, 12), 3, "mlp")
    data = tiny_data(n=48)
    pruner = make_pruner("structured", target_sparsity=0.5, start_fraction=0.0, end_fraction=0.3,
                         update_every_steps=1)
    pruner.attach(model, total_steps=12, steps_per_epoch=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    before = forward_macs(model, (10,))
    for _ in range(4):
        for start in range(0, 48, 16):
            out = model(data.spikes[:, start:start + 16])
            loss = torch.nn.functional.cross_entropy(out.readout_v.max(0).values, data.labels[start:start + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            pruner.step()
            compact(model, optimizer)
    assert [layer.weight.shape[0] for layer in prunable_layers(model)] == [8, 6]
    assert forward_macs(model, (10,)) == 8 * 10 + 6 * 8 + 3 * 6 < before == 16 * 10 + 12 * 16 + 3 * 12
    assert pruner.neuron_sparsity() == 0.5  # counted against the built widths


def test_a_dense_run_is_not_touched():
    model = build_model((10,), (16, 12), 3, "mlp")
    for layer in prunable_layers(model):
        ensure_mask(layer)
    assert compact(model) == 0 and not any(is_compacted(layer) for layer in prunable_layers(model))
    train(model, tiny_data(n=32), Pruner(), Recipe(epochs=1, batch_size=16), progress=False)
    assert [tuple(layer.weight.shape) for layer in prunable_layers(model)] == [(16, 10), (12, 16)]


def test_a_shrunk_recurrent_cell_without_masks_still_has_no_autapses():
    """Norse zeroes the gradient of an autapse by a hook on its parameter; the shrunk cell's new one has it too."""
    from norse.torch import LIFRecurrentCell

    from hw_export.norse.compaction import shrink_layer

    torch.manual_seed(0)
    cell = LIFRecurrentCell(4, 6)
    shrink_layer(cell, torch.tensor([0, 2, 5]), 0)
    state = None
    for _ in range(4):  # strong input: every unit spikes, so the recurrent weights get gradients
        spikes, state = cell(torch.full((2, 4), 5.0), state)
    state.v.sum().backward()
    gradient = cell.recurrent_weights.grad
    assert gradient.shape == (3, 3) and torch.all(gradient.diagonal() == 0)
    assert bool((gradient - torch.diag(gradient.diagonal())).abs().sum() > 0)
