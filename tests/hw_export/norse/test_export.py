"""A trained Norse model as a SparseNet: masks, decays, dead neurons, conv unrolling, refusals."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import Pruner
from hw_export.norse import export_model
from hw_export.norse.export import linear_operator
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
