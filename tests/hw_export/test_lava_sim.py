import numpy as np
import torch

from conftest import assert_same_lava_result, needs_lava, pruned_mlp
from dpap_neuro.models import SpikingMLP, predict
from hw_export.fidelity import spike_agreement
from hw_export.h5io import write_sparsenet
from hw_export.norse import export_model

pytestmark = needs_lava


def reference_lif(inputs, weights, du, dv, v_th):
    """Independent re-implementation of Norse's LIF/LI equations for a chain of layers.

    inputs [T, n_in]; weights: list of dense [n_out, n_in]; last layer never spikes.
    Returns (spikes per LIF layer [T, n], readout voltage [T, n]).
    """
    n_steps = len(inputs)
    state = [(np.zeros(w.shape[0]), np.zeros(w.shape[0])) for w in weights]
    spikes = [np.zeros((n_steps, w.shape[0]), bool) for w in weights[:-1]]
    readout = np.zeros((n_steps, weights[-1].shape[0]))
    for t in range(n_steps):
        pre = inputs[t]
        for k, w in enumerate(weights):
            i, v = state[k]
            i_new = i + w @ pre
            v = v + dv * (0.0 - v + i_new)
            i = i_new * (1 - du)
            if k < len(weights) - 1:
                z = v > v_th
                v = np.where(z, 0.0, v)
                spikes[k][t] = z
                pre = z.astype(float)
            else:
                readout[t] = v
            state[k] = (i, v)
    return spikes, readout


def small_pruned_model(seed=0):
    return pruned_mlp(seed)


def test_lava_reproduces_hand_computed_dynamics():
    from hw_export.lava_sim import SimOptions, simulate

    torch.manual_seed(0)
    model = SpikingMLP(3, [2], 2)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[2.0, 0.0, 1.5], [0.0, 3.0, 0.0]]))
        model[3].weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 0.5]]))
    net = export_model(model, (3,))
    inputs = np.zeros((12, 1, 3))
    inputs[[0, 1, 2, 5], 0, 0] = 1
    inputs[[0, 1], 0, 1] = 1
    inputs[4:9, 0, 2] = 1
    du, dv = net.layers[0].neuron.du, net.layers[0].neuron.dv
    spikes, readout = reference_lif(inputs[:, 0], [layer.weight.toarray() for layer in net.layers], du, dv, 1.0)
    assert spikes[0].sum() > 0, "the case must make the hidden neurons fire"
    result = simulate(net, inputs, SimOptions(batch_size=1), progress=False)
    np.testing.assert_array_equal(result.layer_spikes[0][:, 0], spikes[0])
    np.testing.assert_allclose(result.readout_v[:, 0], readout, rtol=1e-12, atol=1e-12)


def test_lava_matches_norse_spike_for_spike_on_a_pruned_network():
    from hw_export.lava_sim import SimOptions, simulate

    model = small_pruned_model()
    net = export_model(model, (10,))
    assert net.n_synapses < 10 * 12 + 12 * 8 + 8 * 3
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.rand(15, 7, 10, generator=generator) < 0.4).double()
    with torch.no_grad():
        norse = model.double()(inputs)
    result = simulate(net, inputs.numpy(), SimOptions(batch_size=3), progress=False)  # 3 + 3 + 1 samples
    agreement = spike_agreement(net, [s.numpy() for s in norse.layer_spikes], result.layer_spikes)
    assert sum(s.sum() for s in result.layer_spikes) > 20
    assert agreement.elementwise == 1.0 and agreement.samples_identical == 1.0
    np.testing.assert_allclose(result.readout_v, norse.readout_v.numpy(), atol=1e-9)
    assert torch.equal(predict(torch.from_numpy(result.readout_v)), predict(norse.readout_v))


def test_batched_simulation_equals_one_sample_at_a_time():
    from hw_export.lava_sim import SimOptions, simulate

    net = export_model(list(small_pruned_model(seed=2)), (10,))
    inputs = (np.random.default_rng(0).random((10, 4, 10)) < 0.4).astype(float)
    batched = simulate(net, inputs, SimOptions(batch_size=4), progress=False)
    single = simulate(net, inputs, SimOptions(batch_size=1), progress=False)
    assert_same_lava_result(batched, single)


def test_a_chunk_never_holds_more_synapses_than_the_cap(monkeypatch):
    from hw_export import lava_sim

    net = export_model(list(small_pruned_model(seed=2)), (10,))
    inputs = (np.random.default_rng(1).random((10, 5, 10)) < 0.4).astype(float)
    whole = lava_sim.simulate(net, inputs, lava_sim.SimOptions(batch_size=8), progress=False)
    chunk_sizes = []
    run_chunk = lava_sim.simulate_chunk

    def recording(network, chunk, *args):
        chunk_sizes.append(chunk.shape[1])
        return run_chunk(network, chunk, *args)

    monkeypatch.setattr(lava_sim, "simulate_chunk", recording)
    monkeypatch.setattr(lava_sim.ProcessesEngine, "MAX_SYNAPSES", 2 * net.n_synapses + 1)
    capped = lava_sim.simulate(net, inputs, lava_sim.SimOptions(batch_size=8), progress=False)
    assert chunk_sizes == [2, 2, 1]  # two copies fit under the cap, not eight
    assert_same_lava_result(capped, whole)


def test_subprocess_runner_returns_the_same_result(tmp_path):
    from hw_export.lava_subprocess import simulate_in_subprocess
    from hw_export.lava_sim import SimOptions, simulate

    net = export_model(list(small_pruned_model(seed=3)), (10,))
    path = tmp_path / "net.h5"
    write_sparsenet(net, path)
    inputs = (np.random.default_rng(1).random((8, 5, 10)) < 0.4).astype(np.uint8)
    child = simulate_in_subprocess(path, inputs, SimOptions(batch_size=2), progress=False)
    here = simulate(net, inputs, SimOptions(batch_size=5), progress=False)
    assert_same_lava_result(child, here)


def test_fixed_point_stays_close_to_float():
    from hw_export.lava_sim import SimOptions, simulate

    net = export_model(list(small_pruned_model(seed=4)), (10,))
    inputs = (np.random.default_rng(2).random((15, 12, 10)) < 0.4).astype(float)
    exact = simulate(net, inputs, SimOptions(batch_size=12), progress=False)
    fixed = simulate(net, inputs, SimOptions(batch_size=12, precision="fixed"), progress=False)
    agreement = spike_agreement(net, [s for s in exact.layer_spikes], fixed.layer_spikes)
    assert sum(s.sum() for s in fixed.layer_spikes) > 20
    assert agreement.elementwise > 0.97
    # Readout voltages come back in float units (a differing spike moves them by one weight).
    span = np.abs(exact.readout_v).max()
    assert np.abs(fixed.readout_v - exact.readout_v).mean() < 0.05 * span


def test_conv_network_with_pruned_channels_matches_norse_spike_for_spike():
    from dpap_neuro.models import SpikingConvNet
    from dpap_neuro.pruning import Pruner
    from hw_export.lava_sim import SimOptions, simulate

    torch.manual_seed(5)
    model = SpikingConvNet((2, 8, 8), (4, 6), (10,), 3, weight_init_gain=5.0)
    Pruner().attach(model, total_steps=1)
    with torch.no_grad():
        model[0].weight_mask[1] = 0  # channel 1 of the first conv block pruned (its input is 3-D: no Unflatten)
        model[3].weight_mask[:, 1] = 0  # and its outgoing synapses
    net = export_model(model, (2, 8, 8))
    assert net.layers[0].name == "conv1" and net.layers[1].name == "conv2"
    assert net.layers[0].n_out == 3 * 64, "the pruned channel's 64 neurons must be gone"
    assert not set(range(64, 128)) & set(net.layers[0].kept.tolist())
    inputs = (torch.rand(12, 5, 2, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).double()
    with torch.no_grad():
        norse = model.double()(inputs)
    result = simulate(net, inputs.flatten(2).numpy(), SimOptions(batch_size=5), progress=False)
    agreement = spike_agreement(net, [s.flatten(2).numpy() for s in norse.layer_spikes], result.layer_spikes)
    assert sum(s.sum() for s in result.layer_spikes) > 50
    assert agreement.elementwise == 1.0
    np.testing.assert_allclose(result.readout_v, norse.readout_v.numpy(), atol=1e-9)


def test_a_saturated_fixed_point_readout_never_fires():
    """Its voltage clips at 2**23 - 1 and stays there: it must not cross a threshold and reset to 0."""
    from hw_export.lava_params import lava_network
    from hw_export.lava_sim import simulate_chunk
    from hw_export.quantize import V_MAX

    model = SpikingMLP(16, [16], 1)
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(16) * 20.0)  # every hidden neuron fires whenever its input does
        model[3].weight.fill_(5.0)  # the readout sums them all with the largest weight
    net = export_model(model, (16,))
    inputs = np.ones((40, 1, 16))
    readout = simulate_chunk(lava_network(net, "fixed"), inputs).readout_v[:, 0, 0]
    scale = lava_network(net, "fixed").layers[-1].voltage_scale
    saturated = np.flatnonzero(np.isclose(readout * scale, V_MAX))
    assert saturated.size > 5, "the case must drive the readout into saturation"
    np.testing.assert_allclose(readout[saturated[0]:] * scale, V_MAX)  # it stays there: no spike, no reset
