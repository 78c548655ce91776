"""NIR export: read the file back with nir and simulate the graph independently."""

import nir
import numpy as np
import torch

from conftest import pruned_mlp
from hw_export.nir_export import write_nir
from hw_export.norse import export_model


def test_nir_file_round_trip_simulates_like_norse(tmp_path):
    model = pruned_mlp(0)
    net = export_model(model, (10,))
    path = tmp_path / "net.nir"
    write_nir(net, path)
    graph = nir.read(path)
    assert isinstance(graph.nodes["lif1"], nir.CubaLIF) and isinstance(graph.nodes["readout"], nir.CubaLI)
    np.testing.assert_allclose(graph.nodes["lif1"].tau_syn, 1 / 200.0)  # seconds, not dt * tau
    np.testing.assert_allclose(graph.nodes["lif1"].tau_mem, 1 / 100.0)
    inputs = (torch.rand(15, 6, 10, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    with torch.no_grad():
        norse = model.double()(inputs)
    spikes, readout = simulate_nir_graph(graph, inputs, dt=1e-3)
    assert sum(int(s.sum()) for s in spikes) > 20
    for layer, simulated, reference in zip(net.layers, spikes, norse.layer_spikes):
        assert torch.equal(simulated, reference[:, :, layer.kept].bool())
    torch.testing.assert_close(readout, norse.readout_v, rtol=1e-6, atol=1e-6)


def simulate_nir_graph(graph, inputs, dt):
    """Forward-Euler simulation of a chain of NIR nodes, written from NIR's equations only.

    ``inputs``: [T, B, ...] tensor. Returns (spikes of each CubaLIF [T, B, ...], CubaLI voltage [T, B, n]).
    Discretisation: an input raises I by w_in / tau_syn * x at once, then v and I take one Euler step.
    A cycle ``lif -> rec (Affine) -> lif`` adds ``rec`` of the population's spikes one step earlier (an edge
    is a connection, a cycle needs a step to close).
    """
    import torch.nn.functional as F

    order, node = [], "input"
    successors = {src: dst for src, dst in graph.edges if not dst.startswith("rec")}  # the chain
    loops = {dst: src for src, dst in graph.edges if src.startswith("rec")}  # population -> its recurrent Affine
    last_spikes = {}  # population -> its spikes of the step before
    while node in successors:
        node = successors[node]
        order.append(node)
    state, spikes, readout = {}, {}, []
    for x_t in inputs:  # [B, C, H, W]
        h = torch.as_tensor(x_t)
        for name in order:
            n = graph.nodes[name]
            if isinstance(n, nir.Conv2d):
                h = F.conv2d(h, torch.as_tensor(n.weight), torch.as_tensor(n.bias), tuple(n.stride), tuple(n.padding))
            elif isinstance(n, nir.AvgPool2d):
                h = F.avg_pool2d(h, tuple(int(k) for k in n.kernel_size), tuple(int(s) for s in n.stride))
            elif isinstance(n, nir.Flatten):
                h = h.flatten(1)
            elif isinstance(n, nir.Affine):
                h = h @ torch.as_tensor(n.weight).T + torch.as_tensor(n.bias)
            elif isinstance(n, (nir.CubaLIF, nir.CubaLI)):
                if name in loops and name in last_spikes:
                    h = h + last_spikes[name] @ torch.as_tensor(graph.nodes[loops[name]].weight).T
                zeros = torch.zeros_like(h)
                i, v = state.get(name, (zeros, zeros))
                i = i + torch.as_tensor(n.w_in / n.tau_syn) * h
                v = v + torch.as_tensor(dt / n.tau_mem) * (torch.as_tensor(n.v_leak) - v + torch.as_tensor(n.r) * i)
                i = i - torch.as_tensor(dt / n.tau_syn) * i
                if isinstance(n, nir.CubaLIF):
                    z = v > torch.as_tensor(n.v_threshold)
                    v = torch.where(z, torch.as_tensor(n.v_reset), v)
                    spikes.setdefault(name, []).append(z)
                    h = last_spikes[name] = z.double()
                else:
                    readout.append(v)
                    h = v
                state[name] = (i, v)
    return [torch.stack(spikes[k]) for k in sorted(spikes)], torch.stack(readout)


def assert_graph_simulates_like_norse(graph, model, input_seed: int, min_spikes: int) -> None:
    """The graph, simulated from NIR's equations on random event frames, spikes exactly as Norse."""
    inputs = (torch.rand(12, 3, 2, 8, 8, generator=torch.Generator().manual_seed(input_seed)) < 0.3).double()
    with torch.no_grad():
        norse = model(inputs)
    spikes, readout = simulate_nir_graph(graph, inputs, dt=1e-3)
    assert sum(int(s.sum()) for s in spikes) > min_spikes  # not a vacuous match
    for simulated, reference in zip(spikes, norse.layer_spikes):
        assert torch.equal(simulated, reference.bool())
    torch.testing.assert_close(readout, norse.readout_v, rtol=1e-6, atol=1e-6)
