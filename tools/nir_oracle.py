"""Run a NIR file in an outside consumer, as its user would; the oracle for our NIR export.

    PYTHON tools/nir_oracle.py CONSUMER NET.nir INPUTS.npz OUT.npz

CONSUMER is norse, snntorch or neurobench (run with .venv's Python),
sinabs, rockpool or spyx (run with ``.venv-<consumer>/bin/python``, built by
``make <consumer>-env``); ``sinabs-defaults`` and ``rockpool-defaults`` run
sinabs and rockpool without setting reset or spike count after import. It
imports only numpy, nir and the consumer, never dpap-neuro. INPUTS.npz holds ``spikes``: ``[T, N, n_inputs]`` 0/1; the file
must have been written for this consumer (``write_nir(net, path,
target=CONSUMER)``). OUT.npz gets ``spikes_<k>``: ``[T, N, n_k]`` 0/1 for
every hidden population k = 1, 2, ... (spike counts for consumers that emit
several spikes a step) and ``readout_v``: ``[T, N, n_classes]``, the
readout voltage in the consumer's own units (ours is it times the file's
``readout_v_scale`` metadata). Step ``t`` holds the state after the input of
step ``t``. ``neurobench`` writes NeuroBench's metrics instead (scalars).
"""

from __future__ import annotations

import sys

import numpy as np


def _hidden_names(graph) -> list[str]:
    """Names of the hidden populations in forward order: ``lif1``, ``lif2``, ..."""
    names = [name for name in graph.nodes if name.startswith("lif") and not name.endswith("_syn")]
    return sorted(names, key=lambda name: int(name[3:]))


def run_norse(graph, spikes: np.ndarray) -> dict[str, np.ndarray]:
    """norse 1.1: ``from_nir(graph, dt=...)``, stepped with its state; readout ``v`` from the state."""
    import norse.torch
    import torch

    model = norse.torch.from_nir(graph, dt=float(graph.metadata.get("dt_s", 1e-3)))
    hidden, state, recorded = _hidden_names(graph), None, {}
    with torch.no_grad():
        for x_t in torch.as_tensor(spikes, dtype=torch.float32):  # [N, n_inputs]
            _, state = model(x_t, state)
            for name in hidden:
                recorded.setdefault(name, []).append(state.cache[name].numpy().copy())
            recorded.setdefault("readout", []).append(_membrane(state.state["readout"]).v.numpy().copy())
    return _stacked(hidden, recorded)


def _membrane(state):
    """The last state holding a voltage ``v`` in norse's nested state tuples (synapse first, then membrane)."""
    if hasattr(state, "v"):
        return state
    return [_membrane(part) for part in state if part is not None][-1]


def run_snntorch(graph, spikes: np.ndarray) -> dict[str, np.ndarray]:
    """snntorch 1.0: ``import_from_nir(graph)``; hidden state reset first; readout ``mem`` of its module."""
    import torch
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    model = _quietly(import_from_nir, graph)
    utils.reset(model)  # init_hidden=True: the state lives in the modules until reset
    modules = dict(model.named_modules())
    hidden, recorded = _hidden_names(graph), {}
    for name in hidden:  # a module called with init_hidden=True returns its spikes
        modules[name].register_forward_hook(
            lambda module, args, out, name=name: recorded.setdefault(name, []).append(out.numpy().copy()))
    with torch.no_grad():
        for x_t in torch.as_tensor(spikes, dtype=torch.float32):
            model(x_t)
            recorded.setdefault("readout", []).append(modules["readout"].mem.numpy().copy())
    return _stacked(hidden, recorded)


def run_sinabs(graph, spikes: np.ndarray, exact: bool = True) -> dict[str, np.ndarray]:
    """sinabs 3.1: ``from_nir(graph, batch_size=N)`` on ``[N*T, n]``; with ``exact``, its LIF layers get
    ``MembraneReset`` and ``SingleSpike`` (its defaults: subtract the threshold, several spikes a step)."""
    import sinabs
    import torch
    from sinabs.activation import MembraneReset, SingleSpike

    n_steps, n_samples = spikes.shape[:2]
    model = sinabs.from_nir(graph, batch_size=n_samples)
    modules = dict(model.named_modules())
    hidden, recorded = _hidden_names(graph), {}
    for name in hidden:
        if exact:
            modules[name].reset_fn, modules[name].spike_fn = MembraneReset(), SingleSpike
        modules[name].register_forward_hook(lambda module, args, out, name=name: recorded.__setitem__(name, out))
    sinabs.reset_states(model)
    x = torch.as_tensor(spikes, dtype=torch.float32).transpose(0, 1).reshape(n_samples * n_steps, -1)
    with torch.no_grad():
        readout, _ = model(x)  # [N*T, n_classes]: the last LI's voltage (nirtorch returns the state too)

    def per_step(value) -> np.ndarray:  # [N*T, n] -> [T, N, n]
        return value.reshape(n_samples, n_steps, -1).transpose(0, 1).numpy()

    out = {f"spikes_{k}": per_step(recorded[name]) for k, name in enumerate(hidden, start=1)}
    out["readout_v"] = per_step(readout).astype(np.float64)
    return out


def run_rockpool(graph, spikes: np.ndarray, max_spikes_per_dt: int | None = 1) -> dict[str, np.ndarray]:
    """rockpool 3.1: ``from_nir(graph)`` runs whole ``[N, T, n]`` sequences; readout ``vmem`` recorded.

    ``max_spikes_per_dt``: set on every LIF after import (rockpool's default
    lets a neuron emit up to 2^16 spikes a step); None keeps the default.
    """
    import torch
    from rockpool.nn.modules import from_nir

    model = from_nir(graph)
    modules = dict(model.named_modules())
    hidden, recorded = _hidden_names(graph), {}
    for name in hidden + ["readout"]:
        if max_spikes_per_dt is not None:
            modules[name].max_spikes_per_dt = torch.tensor(float(max_spikes_per_dt))
        modules[name]._record = True  # keep vmem per step in _record_dict
        modules[name].register_forward_hook(lambda module, args, out, name=name: recorded.__setitem__(name, out))
    x = torch.as_tensor(spikes, dtype=torch.float32).transpose(0, 1)  # [N, T, n_inputs]
    with torch.no_grad():
        model(x)
    out = {f"spikes_{k}": recorded[name].transpose(0, 1).numpy() for k, name in enumerate(hidden, start=1)}
    out["readout_v"] = modules["readout"]._record_dict["vmem"].transpose(0, 1).numpy().astype(np.float64)
    return out


def run_spyx(graph, spikes: np.ndarray) -> dict[str, np.ndarray]:
    """spyx 0.1: ``from_nir(graph, x, dt=1)``, applied with all states returned; spikes read from ``V``.

    A spyx ``CuBaLIF`` fires from the previous step's ``V``, so hidden layer
    k lags by k steps and the readout by the number of hidden layers: the
    inputs get that many empty steps more, and the lag is undone here.
    """
    import jax.numpy as jnp
    from spyx.nir import from_nir

    hidden = _hidden_names(graph)
    thresholds = [float(np.unique(graph.nodes[name].v_threshold)[0]) for name in hidden]
    n_steps, n_samples = spikes.shape[:2]
    padded = np.zeros((n_samples, n_steps + len(hidden), spikes.shape[2]), dtype=np.float32)
    padded[:, :n_steps] = spikes.transpose(1, 0, 2)
    snn, params = from_nir(graph, jnp.asarray(padded), dt=1.0, return_all_states=True)
    _, states = snn.apply(params, jnp.asarray(padded))  # per CuBaLIF: [N, T', 2 n] = [V, I]
    voltages = [np.asarray(state)[..., : state.shape[-1] // 2] for state in states]
    out = {f"spikes_{k}": (voltages[k - 1][:, k - 1 : k - 1 + n_steps] > thresholds[k - 1]).transpose(1, 0, 2)
           for k in range(1, len(hidden) + 1)}
    out["readout_v"] = voltages[-1][:, len(hidden) : len(hidden) + n_steps].transpose(1, 0, 2).astype(np.float64)
    return {key: value.astype(np.float64) if key != "readout_v" else value for key, value in out.items()}


def neurobench_metrics(graph, spikes: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """NeuroBench 2.3 on the snntorch import of a graph written for snntorch, as its documentation runs a model.

    ``SNNTorchModel`` steps the network over ``[N, T, n_inputs]`` batches; the
    net it wraps returns the readout's ``mem`` as its output. Returns
    Footprint, ConnectionSparsity, ActivationSparsity, SynapticOperations
    (Effective_ACs, Effective_MACs, Dense) and MembraneUpdates, per sample.
    """
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    class ReadoutVoltage(torch.nn.Module):
        """The imported net, returning ``(readout mem, None)`` per step as SNNTorchModel unpacks it."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net
            self.readout = [dict(net.named_modules())["readout"]]  # in a list: not a second child module

        def forward(self, x):
            self.net(x)
            return self.readout[0].mem, None

        def reset(self) -> None:
            utils.reset(self.net)

    data = torch.as_tensor(spikes, dtype=torch.float32).transpose(0, 1)  # [N, T, n_inputs]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, torch.zeros(len(data))),
                                         batch_size=batch_size)
    model = SNNTorchModel(ReadoutVoltage(_quietly(import_from_nir, graph)))
    metrics = [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations, MembraneUpdates]]
    results = Benchmark(model, loader, [], [], metrics).run(quiet=True)
    flat = {key: value for key, value in results.items() if not isinstance(value, dict)}
    flat.update({f"SynapticOperations.{key}": value for key, value in results["SynapticOperations"].items()})
    return {key: float(value) for key, value in flat.items()}


def _quietly(function, *args):
    """``function(*args)`` with its prints swallowed (snntorch's importer prints progress to stdout)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def _stacked(hidden: list[str], recorded: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    out = {f"spikes_{k}": np.stack(recorded[name]) for k, name in enumerate(hidden, start=1)}
    out["readout_v"] = np.stack(recorded["readout"]).astype(np.float64)
    return out


RUNNERS = {"neurobench": lambda graph, spikes: {k: np.array(v) for k, v in neurobench_metrics(graph, spikes).items()},
           "norse": run_norse, "snntorch": run_snntorch, "sinabs": run_sinabs,
           "sinabs-defaults": lambda graph, spikes: run_sinabs(graph, spikes, exact=False),
           "rockpool": run_rockpool, "spyx": run_spyx,
           "rockpool-defaults": lambda graph, spikes: run_rockpool(graph, spikes, max_spikes_per_dt=None)}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] not in RUNNERS:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    import nir

    consumer, net_path, inputs_path, out_path = argv
    spikes = np.load(inputs_path)["spikes"]
    np.savez(out_path, **RUNNERS[consumer](nir.read(net_path), spikes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
