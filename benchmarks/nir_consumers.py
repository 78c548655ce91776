"""Outside NIR consumers on the models of `dpap run` directories: spike and prediction agreement, and NeuroBench.

For each model of each run (``<model>.h5`` and its checkpoint ``<model>.pt``
beside ``report.json``): the reference is the trained Norse model in float64
on the run's test samples (``norse_reference``; Lava reproduces it spike for spike).
For each consumer, the SparseNet is written with ``write_nir(net, path,
target=consumer)``, the consumer runs the file as its user would
(``tools/nir_oracle.py``: norse, snntorch and NeuroBench in this venv,
sinabs, rockpool and spyx in ``.venv-<consumer>``, built by ``make
<consumer>-env``), and every kept neuron's spike at every step and every
prediction is compared. ``sinabs (defaults)`` and ``rockpool (defaults)``
run the same files without setting reset or spike count after import.
NeuroBench 2.3 then measures the snntorch import on the same inputs, next
to ``hw_export.metrics.measure`` of our network.

    python benchmarks/nir_consumers.py RUN_DIR [RUN_DIR ...] [--samples N] [--consumers NAME ...]

e.g. ``make demo`` (MLP dense and DPAP) and ``dpap run --model conv --out
runs/conv``, then ``python benchmarks/nir_consumers.py runs/demo runs/conv``.
Prints two markdown tables (docs/nir.md shows them) and, last,
``nir_consumers_exact: N of M`` (consumer x model cells with spikes and
predictions both 1.0, among the exact targets norse, snntorch and sinabs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT / "tools" / "nir_oracle.py"
# consumer -> (NIR target written, oracle runner, venv or None for this one)
CONSUMERS = {
    "norse": ("norse", "norse", None),
    "snntorch": ("snntorch", "snntorch", None),
    "sinabs": ("sinabs", "sinabs", ".venv-sinabs"),
    "sinabs (defaults)": ("sinabs", "sinabs-defaults", ".venv-sinabs"),
    "rockpool": ("rockpool", "rockpool", ".venv-rockpool"),
    "rockpool (defaults)": ("rockpool", "rockpool-defaults", ".venv-rockpool"),
    "spyx": ("spyx", "spyx", ".venv-spyx"),
}
EXACT = ("norse", "snntorch", "sinabs")


@dataclass(frozen=True)
class Reference:
    """One model of a run and its Norse reference on ``N`` test samples."""

    label: str  # "<model kind> <model name>", e.g. "mlp dpap"
    net: object  # SparseNet
    spikes: np.ndarray  # [T, N, n_inputs] 0/1
    readout_v: np.ndarray  # [T, N, n_classes]
    layer_spikes: list  # per population [T, N, n_original]


@dataclass(frozen=True)
class Agreement:
    spikes: float | None  # share of equal (layer, step, sample, kept neuron) entries; None: not run
    predictions: float | None
    note: str = ""


def load_oracle():
    spec = importlib.util.spec_from_file_location("nir_oracle", ORACLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def references(run_dir: Path, n_samples: int | None) -> list[Reference]:
    """Every model of a finished run with its Norse reference on the first ``n_samples`` test samples."""
    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.data import load_dataset
    from hw_export.h5io import read_sparsenet
    from hw_export.norse import norse_reference

    report = json.loads((run_dir / "report.json").read_text())
    kind = json.loads((run_dir / "config.json").read_text()).get("model", "mlp")
    found = []
    for name in report["models"]:
        net = read_sparsenet(run_dir / f"{name}.h5")
        meta = net.metadata
        _, test = load_dataset(meta["dataset"], int(meta["timesteps"]), int(meta["seed"]),
                               float(meta["test_fraction"]), train=False)
        spikes = test.spikes.numpy()[:, :n_samples]  # [T, N, *input_shape]
        model, _ = load_checkpoint(run_dir / f"{name}.pt")
        readout_v, layer_spikes = norse_reference(model, spikes.astype(float))
        flat = spikes.reshape(*spikes.shape[:2], -1).astype(np.uint8)
        found.append(Reference(f"{kind} {name}", net, flat, readout_v, layer_spikes))
    return found


def run_consumer(consumer: str, ref: Reference, tmp: Path, oracle) -> dict[str, np.ndarray] | str:
    """The consumer's spikes and readout on ``ref``'s inputs, or a one-line reason it did not run."""
    import nir

    from hw_export.nir_export import write_nir

    target, runner, venv = CONSUMERS[consumer]
    path = tmp / f"{target}.nir"
    write_nir(ref.net, path, target)
    if venv is None:
        return oracle.RUNNERS[runner](nir.read(path), ref.spikes)
    python = ROOT / venv / "bin" / "python"
    if not python.is_file():
        return f"{venv} absent (make {venv.removeprefix('.venv-')}-env)"
    np.savez(tmp / "inputs.npz", spikes=ref.spikes)
    done = subprocess.run([str(python), str(ORACLE), runner, str(path), str(tmp / "inputs.npz"),
                           str(tmp / "out.npz")], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        return f"failed: {lines[-1][:120]}"
    return dict(np.load(tmp / "out.npz"))


def agreement(ref: Reference, out: dict[str, np.ndarray] | str) -> Agreement:
    """Spike entries (a step with several spikes counts as a spike) and predictions equal to the reference."""
    from hw_export.fidelity import readout_prediction
    from hw_export.fidelity import spike_agreement

    if isinstance(out, str):
        return Agreement(None, None, out)
    simulated = [np.minimum(out[f"spikes_{k}"], 1) for k in range(1, ref.net.depth)]
    spikes = spike_agreement(ref.net, ref.layer_spikes, simulated).elementwise
    predictions = float((readout_prediction(out["readout_v"]) == readout_prediction(ref.readout_v)).mean())
    return Agreement(spikes, predictions)


def neurobench_rows(ref: Reference, oracle) -> list[tuple[str, float, float, str]]:
    """(metric, NeuroBench, ours, how they relate) for the snntorch import of ``ref`` on its inputs."""
    from hw_export.metrics import measure
    from hw_export.nir_export import to_nir

    theirs = oracle.neurobench_metrics(to_nir(ref.net, "snntorch"), ref.spikes)
    kept = [s[:, :, layer.kept] for s, layer in zip(ref.layer_spikes, ref.net.layers)]
    ours = measure(ref.net, ref.spikes, kept, {})["neurobench"]
    entries = sum(layer.n_out * layer.n_in for layer in ref.net.layers)
    steps = ref.spikes.shape[0]
    same = "same definition"
    return [
        ("SynapticOperations Effective_ACs", theirs["SynapticOperations.Effective_ACs"],
         ours["synaptic_operations"]["effective_acs"], same),
        ("ActivationSparsity", theirs["ActivationSparsity"], ours["activation_sparsity"], same),
        ("SynapticOperations Effective_MACs", theirs["SynapticOperations.Effective_MACs"],
         ours["synaptic_operations"]["effective_macs"], same),
        ("SynapticOperations Dense", theirs["SynapticOperations.Dense"], ours["synaptic_operations"]["dense"],
         f"theirs: every matrix entry x steps ({entries} x {steps}); ours: synapses x steps"),
        ("ConnectionSparsity", theirs["ConnectionSparsity"], ours["connection_sparsity"],
         f"theirs: zeros of the exported matrices, 4 places ({1 - ref.net.n_synapses / entries:.4f}); "
         "ours: against the trained layer widths"),
        ("MembraneUpdates", theirs["MembraneUpdates"], ours["neuron_updates"],
         "theirs: membranes that changed; ours: every neuron every step"),
        ("Footprint (bytes)", theirs["Footprint"], ours["memory_footprint_bytes"],
         "theirs: dense float32 matrices, biases, snntorch buffers; ours: CSR"),
    ]


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def cell(a: Agreement) -> str:
    if a.spikes is None:
        return a.note
    return f"{a.spikes:.4f} / {a.predictions:.4f}"


def print_tables(refs: list[Reference], results: dict, bench: dict) -> int:
    """The two markdown tables; returns how many exact-target cells agree fully."""
    labels = [ref.label for ref in refs]
    print("Spike agreement / prediction agreement with our network "
          f"({refs[0].spikes.shape[1]} test samples per model):\n")
    print("| consumer | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for consumer in results:
        print(f"| {consumer} | " + " | ".join(cell(results[consumer][label]) for label in labels) + " |")
    print("\nNeuroBench 2.3 on the snntorch import against hw_export.metrics.measure (per sample):\n")
    print("| model | metric | NeuroBench | ours | relative difference | definitions |")
    print("|---|---|---|---|---|---|")
    for label, rows in bench.items():
        for metric, theirs, ours, how in rows:
            print(f"| {label} | {metric} | {theirs:.10g} | {ours:.10g} | {relative(theirs, ours):.2e} | {how} |")
    return sum(1 for consumer in EXACT if consumer in results for label in labels
               if results[consumer][label].spikes == 1.0 and results[consumer][label].predictions == 1.0)


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="finished `dpap run` directories")
    parser.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    parser.add_argument("--consumers", nargs="+", default=list(CONSUMERS), choices=list(CONSUMERS), metavar="NAME",
                        help=f"of: {', '.join(CONSUMERS)} (default: all)")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        if not (run_dir / "report.json").is_file():
            print(f"nir_consumers: {run_dir / 'report.json'}: no such file (not a finished `dpap run` directory)",
                  file=sys.stderr)
            return 2
    oracle = load_oracle()
    refs = [ref for run_dir in args.run_dirs for ref in references(run_dir, args.samples)]
    results: dict[str, dict[str, Agreement]] = {}
    with tempfile.TemporaryDirectory(prefix="nir-consumers-") as tmp_dir:
        for consumer in args.consumers:
            results[consumer] = {ref.label: agreement(ref, run_consumer(consumer, ref, Path(tmp_dir), oracle))
                                 for ref in refs}
            print(f"{consumer}: done", file=sys.stderr, flush=True)
    bench = {ref.label: neurobench_rows(ref, oracle) for ref in refs}
    exact = print_tables(refs, results, bench)
    total = len(refs) * sum(1 for consumer in EXACT if consumer in results)
    print(f"\nnir_consumers_exact: {exact} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
