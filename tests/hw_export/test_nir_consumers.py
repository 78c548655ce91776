"""Outside NIR consumers decide: each reads the graph written for it and spikes exactly as our network.

The reference is the trained Norse model in float64 (``norse_reference``; Lava
reproduces it spike for spike), restricted to the neurons the SparseNet
keeps. norse and snntorch run in this venv, sinabs in ``.venv-sinabs``
(``make sinabs-env``), each through ``tools/nir_oracle.py`` as its user would
run the file (docs/nir.md). Models: a dense MLP, a pruned MLP with dead
neurons, and a pruned conv net with a dead channel, all tiny.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from conftest import SINABS_PYTHON, pruned_mlp, recurrent_mlp
from hw_export.errors import UserError
from hw_export.fidelity import spike_agreement
from hw_export.metrics import measure
from hw_export.nir_export import BEST_EFFORT_TARGETS, NIR_TARGETS, to_nir, write_nir
from hw_export.norse import export_model, norse_reference

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "tools" / "nir_oracle.py"
MODEL_KINDS = ("dense-mlp", "pruned-mlp", "conv")
RECURRENT = "pruned-rmlp"  # LIFRecurrentCell layers: the cycle lif -> rec -> lif (norse and NIR's equations read it)


def load_oracle():
    spec = importlib.util.spec_from_file_location("nir_oracle", ORACLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kill_neurons(layer: torch.nn.Module, rows: list[int]) -> None:
    """Mask every incoming synapse of ``rows`` (as DPAP removes a neuron), on top of the GMP masks."""
    with torch.no_grad():
        layer.weight_mask[rows] = 0.0


def tiny_model(kind: str):
    """``(model, input_shape, inputs [T, N, *input_shape])`` of one model kind; every hidden layer fires."""
    from dpap_neuro.models import SpikingConvNet, SpikingMLP
    from dpap_neuro.pruning import GMPPruner

    if kind == RECURRENT:
        model = recurrent_mlp(6)
        with torch.no_grad():  # rec1 neuron 3 receives nothing, from below or from its own layer: removed
            model[0].input_weights_mask[3] = model[0].recurrent_weights_mask[3] = 0.0
        return model, (10,), np.random.default_rng(7).random((15, 6, 10)) < 0.4
    generator = np.random.default_rng(MODEL_KINDS.index(kind))
    if kind == "dense-mlp":
        torch.manual_seed(1)
        return SpikingMLP(10, [12, 8], 3, weight_init_gain=6.0), (10,), generator.random((15, 6, 10)) < 0.4
    if kind == "pruned-mlp":
        model = pruned_mlp(0)
        kill_neurons(model[1], [1, 5, 7])  # three dead fc1 neurons: the SparseNet drops them
        return model, (10,), generator.random((15, 6, 10)) < 0.4
    torch.manual_seed(0)
    model = SpikingConvNet((2, 8, 8), (4, 6), (10,), 3, weight_init_gain=20.0)
    pruner = GMPPruner(target_sparsity=0.3, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(10)
    kill_neurons(model[0], [1])  # a dead channel: its neurons are removed
    return model, (2, 8, 8), generator.random((12, 5, 2, 8, 8)) < 0.3


def reference(kind: str):
    """``(net, flat inputs [T, N, n_inputs], readout_v [T, N, C], spikes per population [T, N, n_original])``."""
    model, shape, inputs = tiny_model(kind)
    net = export_model(model, shape)
    readout_v, spikes = norse_reference(model, inputs.astype(float))
    assert all(s[:, :, layer.kept].sum() > 5 for s, layer in zip(spikes, net.layers))  # not vacuous
    return net, inputs.reshape(*inputs.shape[:2], -1), readout_v, spikes


def assert_consumer_reproduces(net, out: dict, readout_v, spikes, voltage_scale: float) -> None:
    """Every kept neuron's spike at every step, the readout voltage (x ``voltage_scale``, the file's
    ``readout_v_scale``) and the predictions."""
    simulated = [out[f"spikes_{k}"] for k in range(1, net.depth)]
    agreement = spike_agreement(net, spikes, simulated)
    assert agreement.elementwise == 1.0 and agreement.samples_identical == 1.0, agreement
    theirs = out["readout_v"] * voltage_scale
    np.testing.assert_allclose(theirs, readout_v, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(theirs.max(0).argmax(-1), readout_v.max(0).argmax(-1))


def count_graph(graph) -> tuple[int, int]:
    """(neurons, synapses) of a written graph: population sizes (a sinabs synapse node is no neuron of its
    own) and non-zero weights."""
    neurons = sum(int(np.prod(node.output_type["output"])) for name, node in graph.nodes.items()
                  if (name.startswith("lif") or name == "readout") and not name.endswith("_syn"))
    synapses = sum(int(np.count_nonzero(node.weight)) for node in graph.nodes.values() if isinstance(node, nir.Affine))
    return neurons, synapses


@pytest.mark.parametrize("kind", MODEL_KINDS + (RECURRENT,))
def test_every_target_holds_the_pruned_topology_of_the_sparsenet_and_report(kind, tmp_path):
    model, shape, inputs = tiny_model(kind)
    net = export_model(model, shape)
    flat = inputs.reshape(*inputs.shape[:2], -1)
    report = measure(net, flat, [np.zeros((*flat.shape[:2], layer.n_out)) for layer in net.layers[:-1]], {})
    if kind != "dense-mlp":
        assert any(layer.n_out < layer.n_original for layer in net.layers[:-1])  # dead neurons were dropped
    for target in NIR_TARGETS + BEST_EFFORT_TARGETS:
        write_nir(net, tmp_path / f"{target}.nir", target)
        graph = nir.read(tmp_path / f"{target}.nir")
        assert count_graph(graph) == (net.n_neurons, net.n_synapses) == (report["neurons"], report["synapses"])
        assert graph.metadata["nir_target"] == target and list(graph.nodes["input"].input_type["input"]) == [
            net.n_inputs]


@pytest.mark.parametrize("kind", MODEL_KINDS + (RECURRENT,))
def test_the_nir_target_simulates_like_norse_by_nir_equations(kind):
    from test_nir_export import simulate_nir_graph

    net, flat, readout_v, spikes = reference(kind)
    simulated, readout = simulate_nir_graph(to_nir(net), torch.as_tensor(flat, dtype=torch.float64), dt=1e-3)
    assert_consumer_reproduces(net, {**{f"spikes_{k + 1}": s.numpy() for k, s in enumerate(simulated)},
                                     "readout_v": readout.numpy()}, readout_v, spikes, 1.0)


@pytest.mark.parametrize("kind", MODEL_KINDS + (RECURRENT,))
def test_norse_reads_the_norse_target_spike_for_spike(kind, tmp_path):
    net, flat, readout_v, spikes = reference(kind)
    write_nir(net, tmp_path / "net.nir", "norse")
    graph = nir.read(tmp_path / "net.nir")
    out = load_oracle().run_norse(graph, flat)
    assert_consumer_reproduces(net, out, readout_v, spikes, graph.metadata["readout_v_scale"])


@pytest.mark.snntorch
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_snntorch_reads_the_snntorch_target_spike_for_spike(kind, tmp_path):
    net, flat, readout_v, spikes = reference(kind)
    write_nir(net, tmp_path / "net.nir", "snntorch")
    graph = nir.read(tmp_path / "net.nir")
    out = load_oracle().run_snntorch(graph, flat)
    assert graph.metadata["readout_v_scale"] == net.layers[-1].neuron.dv
    assert_consumer_reproduces(net, out, readout_v, spikes, graph.metadata["readout_v_scale"])


@pytest.mark.snntorch
def test_snntorch_cannot_import_a_recurrent_graph_yet(tmp_path):
    """snntorch 1.0 finds the cycle and builds an RSynaptic subgraph, which nirtorch 2.6's interpreter then
    fails to build (docs/nir.md, "Recurrent layers"): when this fails, snntorch reads them and the doc is stale."""
    net, flat, _, _ = reference(RECURRENT)
    write_nir(net, tmp_path / "net.nir", "snntorch")
    with pytest.raises(AttributeError, match="has no attribute 'items'"):
        load_oracle().run_snntorch(nir.read(tmp_path / "net.nir"), flat)


@pytest.mark.sinabs
def test_sinabs_runs_a_recurrent_graph_as_if_it_had_no_loop(tmp_path):
    """sinabs 3.1.3 imports the cycle without a word and drops it: its spikes are those of the same network with
    every recurrent synapse masked (docs/nir.md, "Recurrent layers"): when this fails, the doc is stale."""
    net, flat, _, spikes = reference(RECURRENT)
    write_nir(net, tmp_path / "net.nir", "sinabs")
    out = run_in_venv(SINABS_PYTHON, "sinabs", tmp_path / "net.nir", flat, tmp_path)
    simulated = [out[f"spikes_{k}"] for k in range(1, net.depth)]
    assert spike_agreement(net, spikes, simulated).samples_identical < 1.0  # not the recurrent network
    model, _, inputs = tiny_model(RECURRENT)
    with torch.no_grad():
        for cell in model[:2]:
            cell.recurrent_weights_mask.zero_()
    _, without_loops = norse_reference(model, inputs.astype(float))
    agreement = spike_agreement(net, without_loops, simulated)
    assert agreement.elementwise == 1.0 and agreement.samples_identical == 1.0


def run_in_venv(python: Path, consumer: str, net_path: Path, flat: np.ndarray, tmp_path: Path) -> dict:
    """Run ``tools/nir_oracle.py`` with another venv's Python; its ``OUT.npz`` as a dict."""
    np.savez(tmp_path / "inputs.npz", spikes=flat.astype(np.uint8))
    done = subprocess.run([str(python), str(ORACLE), consumer, str(net_path), str(tmp_path / "inputs.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(tmp_path / "out.npz"))


@pytest.mark.sinabs
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_sinabs_reads_the_sinabs_target_spike_for_spike_with_its_reset_set(kind, tmp_path):
    net, flat, readout_v, spikes = reference(kind)
    write_nir(net, tmp_path / "net.nir", "sinabs")
    out = run_in_venv(SINABS_PYTHON, "sinabs", tmp_path / "net.nir", flat, tmp_path)
    assert_consumer_reproduces(net, out, readout_v, spikes, nir.read(tmp_path / "net.nir").metadata["readout_v_scale"])


@pytest.mark.sinabs
def test_sinabs_with_its_default_reset_does_not_reproduce_our_spikes(tmp_path):
    net, flat, readout_v, spikes = reference("pruned-mlp")
    write_nir(net, tmp_path / "net.nir", "sinabs")
    out = run_in_venv(SINABS_PYTHON, "sinabs-defaults", tmp_path / "net.nir", flat, tmp_path)
    simulated = [np.minimum(out[f"spikes_{k}"], 1) for k in range(1, net.depth)]
    assert 0.5 < spike_agreement(net, spikes, simulated).elementwise < 1.0  # subtractive reset, several spikes


def test_an_unknown_target_is_a_one_line_user_error(tmp_path):
    net = export_model(pruned_mlp(0), (10,))
    with pytest.raises(UserError, match=r"^unknown NIR target 'loihi'; choose one of nir, norse, snntorch, sinabs"):
        write_nir(net, tmp_path / "net.nir", target="loihi")
    assert not (tmp_path / "net.nir").exists()


def test_a_leak_voltage_is_refused_by_the_consumer_targets_and_kept_by_nir(tmp_path):
    import dataclasses

    net = export_model(pruned_mlp(0), (10,))
    leaky = dataclasses.replace(net.layers[0].neuron, v_leak=0.1)
    net = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0], neuron=leaky), *net.layers[1:]))
    with pytest.raises(UserError, match=r"^the norse NIR target needs v_leak = 0 and v_reset = 0; layer fc1"):
        to_nir(net, "norse")
    np.testing.assert_allclose(to_nir(net, "nir").nodes["lif1"].v_leak, 0.1)


@pytest.mark.snntorch
@pytest.mark.neurobench
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_neurobench_counts_our_synaptic_operations_and_activation_sparsity(kind):
    """NeuroBench 2.3 on the snntorch import over the same inputs; docs/nir.md names every definition."""
    net, flat, _, spikes = reference(kind)
    theirs = load_oracle().neurobench_metrics(to_nir(net, "snntorch"), flat)
    ours = measure(net, flat, [s[:, :, layer.kept] for s, layer in zip(spikes, net.layers)], {})["neurobench"]
    # Same definitions: equal.
    assert theirs["SynapticOperations.Effective_ACs"] == pytest.approx(ours["synaptic_operations"]["effective_acs"],
                                                                       rel=1e-6)
    assert theirs["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], rel=1e-6)
    assert theirs["SynapticOperations.Effective_MACs"] == ours["synaptic_operations"]["effective_macs"] == 0.0
    # Different definitions: NeuroBench counts every entry of the exported matrices (zeros too), against ours
    # the synapses (dense ops) or the trained layer widths (connection sparsity, rounded to 4 places) ...
    entries = sum(layer.n_out * layer.n_in for layer in net.layers)
    assert theirs["SynapticOperations.Dense"] == entries * flat.shape[0]
    assert ours["synaptic_operations"]["dense"] == net.n_synapses * flat.shape[0]
    assert theirs["ConnectionSparsity"] == round(1 - net.n_synapses / entries, 4)
    # ... membrane updates only where the membrane moved (ours: every neuron at every step) ...
    assert 0 < theirs["MembraneUpdates"] <= ours["neuron_updates"]
    # ... and the footprint of dense float32 matrices plus snntorch's buffers (ours: CSR).
    assert theirs["Footprint"] >= 4 * entries
