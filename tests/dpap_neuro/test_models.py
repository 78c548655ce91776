"""The Norse models: shapes, no biases, the prediction rule and the LIF equations by hand."""

import pytest
import torch
from norse.torch import LICell, LIFCell
from torch import nn

from dpap_neuro.models import SpikingConvNet, SpikingMLP, build_model, image_shape_of, predict, weight_layers
from hw_export.errors import UserError


def test_mlp_output_and_spike_shapes():
    torch.manual_seed(0)
    model = SpikingMLP(10, [16, 12], 3)
    out = model((torch.rand(5, 2, 2, 5) < 0.5).float())  # [T, B, *input_shape], flattened to 10 per step
    assert out.readout_v.shape == (5, 2, 3)
    assert [s.shape for s in out.layer_spikes] == [(5, 2, 16), (5, 2, 12)]
    for spikes in out.layer_spikes:
        assert torch.all((spikes == 0) | (spikes == 1))


def test_conv_model_from_build_model_shapes():
    torch.manual_seed(0)
    model = build_model((2, 8, 8), [6], 3, architecture="conv", conv_channels=(4, 5))
    assert isinstance(model, SpikingConvNet)
    out = model((torch.rand(3, 2, 2, 8, 8) < 0.3).float())
    assert out.readout_v.shape == (3, 2, 3)
    # 8x8 -> conv (padding 1) 8x8 -> pool 4x4 -> conv 4x4 -> pool 2x2 -> 5 * 2 * 2 = 20 inputs to the FC layer
    assert [s.shape for s in out.layer_spikes] == [(3, 2, 4, 8, 8), (3, 2, 5, 4, 4), (3, 2, 6)]
    assert weight_layers(model)[2].in_features == 20


def test_conv_model_takes_a_flat_square_image_as_one_channel():
    model = build_model((64,), [6], 3, architecture="conv", conv_channels=(4,))
    assert isinstance(model[0], nn.Unflatten) and model[1].in_channels == 1
    out = model(torch.zeros(2, 3, 64))
    assert out.readout_v.shape == (2, 3, 3)
    assert image_shape_of((2, 8, 8)) == (2, 8, 8)
    assert image_shape_of((8, 8)) == (1, 8, 8)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_no_biases_anywhere(architecture):
    model = build_model((64,), [6], 3, architecture=architecture, conv_channels=(4,))
    synaptic = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(synaptic) == (2 if architecture == "mlp" else 3)
    assert all(m.bias is None for m in synaptic)
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())


def test_weight_layers_are_in_forward_order():
    mlp = SpikingMLP(5, [4, 3], 2)
    assert [tuple(m.weight.shape) for m in weight_layers(mlp)] == [(4, 5), (3, 4), (2, 3)]
    conv = build_model((2, 8, 8), [6], 3, architecture="conv", conv_channels=(4,))
    # Conv2d, LIF, AvgPool, Flatten, Linear, LIF, Linear, LI
    assert weight_layers(conv) == [conv[0], conv[4], conv[6]]
    assert isinstance(conv[-1], LICell) and isinstance(conv[1], LIFCell)


def test_predict_takes_the_highest_voltage_at_any_step():
    # [T=3, B=2, C=3]. Sample 0: class 0 peaks first (5) and falls; the last step favours class 2,
    # the mean class 1. Sample 1: class 1 peaks at 0.5 at t=0; class 2 ends higher and sums higher.
    readout = torch.tensor([
        [[5.0, 1.0, 0.0], [-1.0, 0.5, 0.4]],
        [[0.0, 2.0, 0.0], [-1.0, 0.2, 0.3]],
        [[0.0, 3.0, 4.5], [-1.0, 0.1, 0.45]],
    ])
    assert predict(readout).tolist() == [0, 1]


def test_weight_init_gain_scales_the_default_init():
    torch.manual_seed(0)
    one = SpikingMLP(10, [8], 3, weight_init_gain=1.0)
    torch.manual_seed(0)
    four = SpikingMLP(10, [8], 3)  # default gain 4
    for a, b in zip(weight_layers(one), weight_layers(four)):
        torch.testing.assert_close(b.weight, 4.0 * a.weight)
        bound = 1.0 / a.in_features**0.5  # PyTorch's default: uniform in +-1/sqrt(fan_in)
        assert a.weight.abs().max() <= bound


def test_lif_steps_follow_the_equations_by_hand():
    """Two neurons, input weights 6 and 3, one input spike per step; dt * tau_mem_inv = 0.1, dt * tau_syn_inv = 0.2.

    i_new = i + x;  v' = v + 0.1 (0 - v + i_new);  i' = 0.8 i_new;  spike if v' > 1, then v = 0.

    step 1: i_new = [6, 3]      v' = [0.6, 0.3]                     no spike  i = [4.8, 2.4]
    step 2: i_new = [10.8, 5.4] v' = [0.6 + 1.02, 0.3 + 0.51]
                                   = [1.62, 0.81]  -> spike [1, 0], v = [0, 0.81]  i = [8.64, 4.32]
    Readout (weights 0.5, 2; same decay, no threshold): input 0 at step 1; 0.5 at step 2
    -> v = 0.1 * 0.5 = 0.05.
    """
    model = SpikingMLP(1, [2], 1, dt_s=1e-3, tau_syn_inv_per_s=200.0, tau_mem_inv_per_s=100.0, v_th=1.0)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[6.0], [3.0]]))
        model[3].weight.copy_(torch.tensor([[0.5, 2.0]]))
    model.double()
    out = model(torch.ones(2, 1, 1, dtype=torch.float64))  # [T=2, B=1, n_in=1]
    assert out.layer_spikes[0][:, 0].tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert out.readout_v[:, 0, 0].tolist() == pytest.approx([0.0, 0.05])

    cell = model[2]
    current = torch.tensor([[6.0, 3.0]], dtype=torch.float64)
    z1, state = cell(current, None)
    assert z1.tolist() == [[0.0, 0.0]]
    assert state.v.tolist()[0] == pytest.approx([0.6, 0.3])
    assert state.i.tolist()[0] == pytest.approx([4.8, 2.4])
    z2, state = cell(current, state)
    assert z2.tolist() == [[1.0, 0.0]]
    assert state.v.tolist()[0] == pytest.approx([0.0, 0.81])
    assert state.i.tolist()[0] == pytest.approx([8.64, 4.32])


@pytest.mark.parametrize("build", [
    lambda: SpikingMLP(0, [4], 2),
    lambda: SpikingMLP(4, [], 2),
    lambda: SpikingMLP(4, [3, 0], 2),
    lambda: SpikingMLP(4, [3], 0),
    lambda: build_model((2, 2, 2), [4], 3, architecture="conv", conv_channels=(2, 2)),  # 2x2 -> 1x1 -> no room
    lambda: build_model((10,), [4], 3, architecture="conv"),  # 10 pixels are no square image
    lambda: build_model((64,), [4], 3, architecture="rnn"),
])
def test_invalid_sizes_are_refused(build):
    with pytest.raises(UserError):
        build()


@pytest.mark.parametrize("architecture, n_synaptic", [("ann-mlp", 2), ("ann-conv", 3)])
def test_ann_twins_see_spike_rates_and_answer_in_one_step(architecture, n_synaptic):
    from dpap_neuro.models import ReLUNet, is_spiking

    torch.manual_seed(0)
    model = build_model((2, 8, 8), [6], 3, architecture=architecture, conv_channels=(4,))
    assert isinstance(model, ReLUNet) and not is_spiking(model) and is_spiking(SpikingMLP(4, [3], 2))
    synaptic = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(synaptic) == n_synaptic and all(m.bias is None for m in synaptic)
    spikes = (torch.rand(5, 4, 2, 8, 8) < 0.3).float()  # [T, B, C, H, W]
    out = model(spikes)
    assert out.readout_v.shape == (1, 4, 3)
    assert [tuple(a.shape) for a in out.layer_spikes][-1] == (1, 4, 6)
    assert all(torch.all(a >= 0) for a in out.layer_spikes)  # ReLU activations
    # Only the spike counts matter: the same counts in another order give the same output.
    torch.testing.assert_close(model(spikes.flip(0)).readout_v, out.readout_v)
    rates = spikes.mean(dim=0)
    if architecture == "ann-mlp":
        expected = model[3](torch.relu(model[1](rates.flatten(1))))
        torch.testing.assert_close(out.readout_v[0], expected)
