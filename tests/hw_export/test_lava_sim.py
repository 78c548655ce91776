"""Lava's two engines (hw_export/lava_sim.py): each against Norse and by hand, and the fast one against the
per-layer one: the same spikes, and readout voltages within 1e-9 (float) or equal integers (fixed point)."""

import numpy as np
import pytest
import torch

from conftest import (TWO_NEURON_SPIKES, assert_same_lava_result, needs_lava, pruned_mlp, recurrent_mlp,
                      two_neuron_recurrent_model)
from dpap_neuro.models import SpikingMLP, predict
from hw_export.fidelity import spike_agreement
from hw_export.h5io import write_sparsenet
from hw_export.norse import export_model
from hw_export.norse.loop import norse_reference

pytestmark = needs_lava
ENGINES = ["processes", "fast"]


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


@pytest.mark.parametrize("engine", ENGINES)
def test_lava_reproduces_hand_computed_dynamics(engine):
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
    result = simulate(net, inputs, SimOptions(engine, batch_size=1), progress=False)
    np.testing.assert_array_equal(result.layer_spikes[0][:, 0], spikes[0])
    np.testing.assert_allclose(result.readout_v[:, 0], readout, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_lava_matches_norse_spike_for_spike_on_a_pruned_network(engine):
    from hw_export.lava_sim import SimOptions, simulate

    model = small_pruned_model()
    net = export_model(model, (10,))
    assert net.n_synapses < 10 * 12 + 12 * 8 + 8 * 3
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.rand(15, 7, 10, generator=generator) < 0.4).double()
    with torch.no_grad():
        norse = model.double()(inputs)
    result = simulate(net, inputs.numpy(), SimOptions(engine, batch_size=3), progress=False)  # 3 + 3 + 1 samples
    agreement = spike_agreement(net, [s.numpy() for s in norse.layer_spikes], result.layer_spikes)
    assert sum(s.sum() for s in result.layer_spikes) > 20
    assert agreement.elementwise == 1.0 and agreement.samples_identical == 1.0
    np.testing.assert_allclose(result.readout_v, norse.readout_v.numpy(), atol=1e-9)
    assert torch.equal(predict(torch.from_numpy(result.readout_v)), predict(norse.readout_v))


@pytest.mark.parametrize("precision", ["float", "fixed"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_recurrent_layer_runs_the_hand_computed_trajectory(engine, precision):
    """Lava's processes (a ``Sparse`` from the LIF's ``s_out`` back to its ``a_in``) and the fast engine (the
    recurrent matrix in the same step) both give Norse's timing: the recurrent input one step late."""
    from hw_export.lava_sim import SimOptions, simulate

    model, inputs = two_neuron_recurrent_model()
    net = export_model(model, (1,))
    result = simulate(net, inputs.double().numpy(), SimOptions(engine, precision), progress=False)
    assert result.layer_spikes[0][:, 0].T.astype(int).tolist() == TWO_NEURON_SPIKES
    if precision == "float":
        np.testing.assert_allclose(result.readout_v, norse_reference(model, inputs)[0], atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_lava_matches_norse_spike_for_spike_on_a_pruned_recurrent_network(engine):
    from hw_export.lava_sim import SimOptions, simulate

    model = recurrent_mlp()
    net = export_model(model, (10,))
    inputs = (torch.rand(15, 7, 10, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    readout_v, spikes = norse_reference(model, inputs)
    result = simulate(net, inputs.numpy(), SimOptions(engine, batch_size=3), progress=False)
    agreement = spike_agreement(net, spikes, result.layer_spikes)
    assert all(s.sum() > 20 for s in result.layer_spikes)
    assert agreement.elementwise == 1.0 and agreement.samples_identical == 1.0
    np.testing.assert_allclose(result.readout_v, readout_v, atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_batched_simulation_equals_one_sample_at_a_time(engine):
    from hw_export.lava_sim import SimOptions, simulate

    net = export_model(list(small_pruned_model(seed=2)), (10,))
    inputs = (np.random.default_rng(0).random((10, 4, 10)) < 0.4).astype(float)
    batched = simulate(net, inputs, SimOptions(engine, batch_size=4), progress=False)
    single = simulate(net, inputs, SimOptions(engine, batch_size=1), progress=False)
    assert_same_lava_result(batched, single)


def test_a_chunk_never_holds_more_synapses_than_the_cap(monkeypatch):
    from hw_export import lava_sim

    net = export_model(list(small_pruned_model(seed=2)), (10,))
    inputs = (np.random.default_rng(1).random((10, 5, 10)) < 0.4).astype(float)
    whole = lava_sim.simulate(net, inputs, lava_sim.SimOptions("processes", batch_size=8), progress=False)
    chunk_sizes = []
    run_chunk = lava_sim.simulate_chunk

    def recording(network, chunk, *args):
        chunk_sizes.append(chunk.shape[1])
        return run_chunk(network, chunk, *args)

    monkeypatch.setattr(lava_sim, "simulate_chunk", recording)
    monkeypatch.setattr(lava_sim.ProcessesEngine, "MAX_SYNAPSES", 2 * net.n_synapses + 1)
    capped = lava_sim.simulate(net, inputs, lava_sim.SimOptions("processes", batch_size=8), progress=False)
    assert chunk_sizes == [2, 2, 1]  # two copies fit under the cap, not eight
    assert_same_lava_result(capped, whole)


def test_subprocess_runner_returns_the_same_result(tmp_path):
    from hw_export.lava_subprocess import simulate_in_subprocess
    from hw_export.lava_sim import SimOptions, simulate

    net = export_model(list(small_pruned_model(seed=3)), (10,))
    path = tmp_path / "net.h5"
    write_sparsenet(net, path)
    inputs = (np.random.default_rng(1).random((8, 5, 10)) < 0.4).astype(np.uint8)
    child = simulate_in_subprocess(path, inputs, SimOptions("fast", batch_size=2), progress=False)
    here = simulate(net, inputs, SimOptions("fast", batch_size=5), progress=False)
    assert_same_lava_result(child, here)


@pytest.mark.parametrize("engine", ENGINES)
def test_fixed_point_stays_close_to_float(engine):
    from hw_export.lava_sim import SimOptions, simulate

    net = export_model(list(small_pruned_model(seed=4)), (10,))
    inputs = (np.random.default_rng(2).random((15, 12, 10)) < 0.4).astype(float)
    exact = simulate(net, inputs, SimOptions(engine, batch_size=12), progress=False)
    fixed = simulate(net, inputs, SimOptions(engine, batch_size=12, precision="fixed"), progress=False)
    agreement = spike_agreement(net, [s for s in exact.layer_spikes], fixed.layer_spikes)
    assert sum(s.sum() for s in fixed.layer_spikes) > 20
    assert agreement.elementwise > 0.97
    # Readout voltages come back in float units (a differing spike moves them by one weight).
    span = np.abs(exact.readout_v).max()
    assert np.abs(fixed.readout_v - exact.readout_v).mean() < 0.05 * span


@pytest.mark.parametrize("engine", ENGINES)
def test_conv_network_with_pruned_channels_matches_norse_spike_for_spike(engine):
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
    result = simulate(net, inputs.flatten(2).numpy(), SimOptions(engine, batch_size=5), progress=False)
    agreement = spike_agreement(net, [s.flatten(2).numpy() for s in norse.layer_spikes], result.layer_spikes)
    assert sum(s.sum() for s in result.layer_spikes) > 50
    assert agreement.elementwise == 1.0
    np.testing.assert_allclose(result.readout_v, norse.readout_v.numpy(), atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_saturated_fixed_point_readout_never_fires(engine):
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
    readout = simulate_chunk(lava_network(net, "fixed"), inputs, engine).readout_v[:, 0, 0]
    scale = lava_network(net, "fixed").layers[-1].voltage_scale
    saturated = np.flatnonzero(np.isclose(readout * scale, V_MAX))
    assert saturated.size > 5, "the case must drive the readout into saturation"
    np.testing.assert_allclose(readout[saturated[0]:] * scale, V_MAX)  # it stays there: no spike, no reset


def pruned_conv(seed=5, input_shape=(2, 8, 8), channels=(4, 6), gain=15.0):
    """A SpikingConvNet with channel 1 of its first block pruned (and its outgoing synapses)."""
    from dpap_neuro.models import SpikingConvNet
    from dpap_neuro.pruning import Pruner

    torch.manual_seed(seed)
    model = SpikingConvNet(input_shape, channels, (10,), 3, weight_init_gain=gain)
    Pruner().attach(model, total_steps=1)
    with torch.no_grad():
        model[0].weight_mask[1] = 0
        model[3].weight_mask[:, 1] = 0
    return model


def dense_conv(seed=6, input_shape=(2, 8, 8)):
    from dpap_neuro.models import SpikingConvNet

    torch.manual_seed(seed)
    return SpikingConvNet(input_shape, (4, 6), (10,), 3, weight_init_gain=15.0)


def nmnist_fixture_case(tmp_path):
    """A conv network on the test split of an N-MNIST fixture (real file format, read through tonic)."""
    from dpap_neuro.data import FrameSettings, batches
    from dpap_neuro.data.fixtures import write_nmnist
    from dpap_neuro.data.neuromorphic import load_neuromorphic

    write_nmnist(tmp_path, n_per_class=1, classes=range(4))
    _, test = load_neuromorphic("nmnist", tmp_path, FrameSettings(8, downsample=2))
    spikes, _ = next(batches(test, [torch.arange(len(test))]))
    model = pruned_conv(seed=7, input_shape=tuple(spikes.shape[2:]), gain=30.0)
    return export_model(model, tuple(spikes.shape[2:])), spikes.flatten(2).numpy()


def engine_case(name, tmp_path):
    """(SparseNet, inputs [T, N, n_inputs]) of the models the two engines must agree on."""
    rng = np.random.default_rng(len(name))
    if name == "nmnist-fixture":
        return nmnist_fixture_case(tmp_path)
    if name == "rmlp-pruned":
        return export_model(recurrent_mlp(4), (10,)), (rng.random((15, 6, 10)) < 0.4).astype(np.uint8)
    if name.startswith("mlp"):
        torch.manual_seed(8)
        model = pruned_mlp(9) if name == "mlp-pruned" else SpikingMLP(10, [12, 8], 3, weight_init_gain=6.0)
        return export_model(model, (10,)), (rng.random((15, 6, 10)) < 0.4).astype(np.uint8)
    model = pruned_conv() if name == "conv-pruned" else dense_conv()
    return export_model(model, (2, 8, 8)), (rng.random((12, 5, 128)) < 0.3).astype(np.uint8)


@pytest.mark.parametrize("case", ["mlp-dense", "mlp-pruned", "conv-dense", "conv-pruned", "nmnist-fixture",
                                  "rmlp-pruned"])
def test_the_fast_engine_is_the_per_layer_simulation(case, tmp_path):
    """Spikes identical; readout voltages within 1e-9 of their scale (float, summation order aside) or equal."""
    from hw_export.lava_sim import SimOptions, simulate

    net, inputs = engine_case(case, tmp_path)
    batch = inputs.shape[1]
    for precision in ("float", "fixed"):
        per_layer = simulate(net, inputs, SimOptions("processes", precision, batch_size=batch), progress=False)
        fast = simulate(net, inputs, SimOptions("fast", precision, batch_size=batch), progress=False)
        assert all(s.sum() >= 10 for s in per_layer.layer_spikes), f"{case}: every layer must spike"
        for ours, reference in zip(fast.layer_spikes, per_layer.layer_spikes):
            np.testing.assert_array_equal(ours, reference)
        if precision == "fixed":
            np.testing.assert_array_equal(fast.readout_v, per_layer.readout_v)  # the same integers, same scale
        else:
            scale = np.abs(per_layer.readout_v).max()
            assert np.abs(fast.readout_v - per_layer.readout_v).max() <= 1e-9 * scale


def test_fixed_point_weights_outside_the_quantizers_range_are_clipped_and_truncated_as_lava_does():
    """Odd, too large and too small integers (a netx file may hold them) in mixed, excitatory and inhibitory layers."""
    from scipy import sparse

    from hw_export.lava_params import LavaLayer, LavaNetwork
    from hw_export.lava_sim import simulate_chunk

    rng = np.random.default_rng(4)
    mixed = rng.integers(-300, 301, (12, 10)) * (rng.random((12, 10)) < 0.6)
    excitatory = rng.integers(0, 301, (8, 12)) * (rng.random((8, 12)) < 0.6)
    inhibitory = -rng.integers(0, 301, (3, 8))
    layers = (LavaLayer("a", sparse.csr_matrix(mixed.astype(np.int32)), 409, 819, 60, True, 64.0),
              LavaLayer("b", sparse.csr_matrix(excitatory.astype(np.int32)), 409, 819, 200, True, 64.0),
              LavaLayer("readout", sparse.csr_matrix(inhibitory.astype(np.int32)), 409, 819, 2**17, False, 64.0))
    network = LavaNetwork("fixed", 10, layers)
    inputs = (rng.random((12, 4, 10)) < 0.5).astype(np.uint8)
    fast, per_layer = (simulate_chunk(network, inputs, engine) for engine in ENGINES[::-1])
    assert all(s.sum() > 10 for s in per_layer.layer_spikes)
    for a, b in zip(fast.layer_spikes, per_layer.layer_spikes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast.readout_v, per_layer.readout_v)


def counted_run_steps(monkeypatch) -> list:
    """Every Lava run's step count from now on (Lava's RunSteps, counted), in order."""
    from lava.magma.core.run_conditions import RunSteps

    steps = []

    class Counting(RunSteps):
        def __init__(self, num_steps, *args, **kwargs):
            steps.append(num_steps)
            super().__init__(num_steps, *args, **kwargs)

    monkeypatch.setattr("lava.magma.core.run_conditions.RunSteps", Counting)
    return steps


def test_the_fast_engine_runs_as_many_steps_as_the_inputs_have(monkeypatch):
    """No per-layer delay: T steps for T input steps, where the per-layer engine needs T + depth."""
    from hw_export import lava_sim

    steps = counted_run_steps(monkeypatch)
    net = export_model(list(small_pruned_model(seed=2)), (10,))
    inputs = (np.random.default_rng(0).random((7, 2, 10)) < 0.4).astype(np.uint8)
    for engine in ENGINES:
        lava_sim.simulate_chunk(lava_sim.lava_network(net, "float"), inputs, engine)
    assert steps == [7 + net.depth, 7]


def test_a_fast_chunk_is_bounded_by_memory_not_by_copies():
    from hw_export.lava_params import lava_network
    from hw_export.lava_sim import ENGINES as BUILDERS

    conv = lava_network(export_model(dense_conv(input_shape=(2, 34, 34)), (2, 34, 34)), "float")
    fast = BUILDERS["fast"]
    assert fast.max_batch(conv, 10_000, 30) * fast.sample_bytes(conv, 30) <= fast.MAX_BYTES
    assert fast.max_batch(conv, 10_000, 30) > BUILDERS["processes"].max_batch(conv, 10_000, 30)
    assert fast.max_batch(conv, 3, 30) == 3


def test_simulate_chunk_defaults_to_the_engine_every_command_defaults_to(monkeypatch):
    """Without an engine named, simulate_chunk runs SimOptions' default (fast: T steps, no per-layer delay)."""
    from hw_export import lava_sim
    from hw_export.errors import UserError

    steps = counted_run_steps(monkeypatch)
    network = lava_sim.lava_network(export_model(list(small_pruned_model(seed=2)), (10,)), "float")
    inputs = (np.random.default_rng(0).random((7, 2, 10)) < 0.4).astype(np.uint8)
    default = lava_sim.simulate_chunk(network, inputs)
    named = lava_sim.simulate_chunk(network, inputs, lava_sim.SimOptions().engine)
    assert lava_sim.SimOptions().engine == "fast" and steps == [7, 7]
    assert_same_lava_result(default, named)
    with pytest.raises(UserError, match="engine must be one of"):
        lava_sim.simulate_chunk(network, inputs, "loihi")
