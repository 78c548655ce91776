"""A trained Norse model as a SparseNet: masks, decays, dead neurons, conv unrolling, refusals."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TWO_NEURON_SPIKES, recurrent_mlp, two_neuron_recurrent_model
from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import Pruner
from hw_export.norse import export_model
from hw_export.norse.export import linear_operator
from hw_export.norse.loop import norse_reference, run_over_time
from hw_export.sparsenet import NetworkCutError, SparseNetError, avgpool2d_matrix


def test_from_norse_keeps_exactly_the_masked_synapses_and_norse_decays():
    torch.manual_seed(0)
    model = SpikingMLP(4, [3], 2)
    Pruner().attach(model, total_steps=1)
    with torch.no_grad():
        model[1].weight_mask.copy_(torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float32))
    net = export_model(model, (4,))
    assert [layer.n_out for layer in net.layers] == [2, 2]  # neuron 1 had no input: removed
    assert net.layers[0].kept.tolist() == [0, 2]
    assert net.layers[0].n_synapses == 6
    dense = (model[1].weight_orig * model[1].weight_mask).detach().double().numpy()
    np.testing.assert_array_equal(net.layers[0].weight.toarray(), dense[[0, 2]])
    # Readout columns of the removed neuron are gone as well.
    np.testing.assert_array_equal(net.layers[1].weight.toarray(),
                                  model[3].weight.detach().double().numpy()[:, [0, 2]])
    lif = net.layers[0].neuron
    assert lif.kind == "lif" and lif.v_th == 1.0
    assert lif.dv == float(torch.tensor(100.0) * 1e-3)  # the float32 product Norse uses
    assert net.layers[1].neuron.kind == "li" and math.isinf(net.layers[1].neuron.v_th)


def test_a_layer_pruned_away_entirely_is_a_clear_error():
    model = SpikingMLP(4, [3], 2)
    Pruner().attach(model, total_steps=1)
    with torch.no_grad():
        model[1].weight_mask.zero_()
    with pytest.raises(NetworkCutError, match="fc1 has no neurons left"):
        export_model(model, (4,))


def test_nan_weights_are_named_as_a_diverged_run_not_as_pruning():
    model = SpikingMLP(4, [3], 2)
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with pytest.raises(SparseNetError, match="fc1: weights hold NaN") as caught:
        export_model(model, (4,))
    assert not isinstance(caught.value, NetworkCutError)


def test_conv_and_pooling_unroll_to_the_same_linear_map():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    x = torch.rand(2, 2, 5, 6, dtype=torch.float64)
    matrix = linear_operator(conv.double(), (2, 5, 6))
    expected = conv(x).detach().flatten(1).numpy()
    np.testing.assert_allclose((matrix @ x.flatten(1).numpy().T).T, expected, atol=1e-12)
    assert matrix.shape == (3 * 5 * 6, 2 * 5 * 6)
    pool, pooled_shape = avgpool2d_matrix((3, 4, 4), (2, 2), (2, 2))
    y = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    np.testing.assert_allclose(pool @ y.flatten().numpy(), nn.AvgPool2d(2)(y).flatten().numpy(), atol=1e-15)
    assert pooled_shape == (3, 2, 2)


def test_a_bias_is_refused_rather_than_silently_dropped():
    model = [nn.Linear(3, 2, bias=True), SpikingMLP(3, [2], 2)[2], nn.Linear(2, 2, bias=False), SpikingMLP(3, [2], 2)[4]]
    with torch.no_grad():
        model[0].bias.fill_(0.5)
    with pytest.raises(SparseNetError, match="bias"):
        export_model(model, (3,))


def test_a_recurrent_cell_steps_as_norse_computes_it_by_hand():
    """The recurrent input is the previous step's spikes (conftest: the hand computation)."""
    model, inputs = two_neuron_recurrent_model()
    spikes = run_over_time(model, inputs).layer_spikes[0][:, 0]  # [T, 2]
    assert spikes.T.tolist() == TWO_NEURON_SPIKES
    assert norse_reference(model, inputs)[1][0][:, 0].T.astype(int).tolist() == TWO_NEURON_SPIKES


def test_a_users_recurrent_model_exports_its_masked_input_and_recurrent_synapses():
    model = recurrent_mlp()
    net = export_model(model, (10,))
    assert [layer.name for layer in net.layers] == ["rec1", "rec2", "readout"]
    previous = np.arange(10)  # the neurons of the layer below that survive (all inputs)
    for layer, cell in zip(net.layers[:2], model):
        masked = {name: (getattr(cell, f"{name}_orig") * getattr(cell, f"{name}_mask")).detach().double().numpy()
                  for name in ("input_weights", "recurrent_weights")}
        np.testing.assert_array_equal(layer.weight.toarray(), masked["input_weights"][np.ix_(layer.kept, previous)])
        recurrent = masked["recurrent_weights"][np.ix_(layer.kept, layer.kept)]
        np.fill_diagonal(recurrent, 0.0)  # no autapses: Norse keeps the diagonal at zero, it holds no synapse
        np.testing.assert_array_equal(layer.recurrent_weight.toarray(), recurrent)
        unmasked = cell.recurrent_weights_mask.detach().numpy()[np.ix_(layer.kept, layer.kept)] != 0
        np.fill_diagonal(unmasked, False)
        assert layer.n_recurrent_synapses == unmasked.sum() > 0  # exactly the unmasked entries between two neurons
        assert layer.n_synapses == layer.weight.nnz + layer.n_recurrent_synapses
        previous = layer.kept
    assert net.layers[2].recurrent_weight is None


def test_a_linear_layer_straight_before_a_recurrent_cell_is_refused():
    from norse.torch import LICell, LIFRecurrentCell

    model = nn.Sequential(nn.Linear(4, 4, bias=False), LIFRecurrentCell(4, 3), nn.Linear(3, 2, bias=False), LICell())
    with pytest.raises(SparseNetError, match="two synaptic layers"):
        export_model(model, (4,))
