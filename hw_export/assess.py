"""Assess a network in Lava: the one function behind ``dpap run``, ``dpap simulate`` and your own model.

Torch-free; the Norse side is ``hw_export.norse`` (``export_model``,
``norse_reference``). For any ``SparseNet``::

    from hw_export.norse import export_model, norse_reference
    from hw_export.assess import assess_arrays

    net = export_model(model, input_shape=(2, 34, 34))   # pruned synapses and dead neurons gone
    report = assess_arrays(net, inputs, labels, reference=lambda x: norse_reference(model, x))

``report`` is a ``ModelReport`` (``hw_export/report.py``): the Lava float
run's accuracy, agreement with the reference, spikes, operations and energy,
and the same for Loihi fixed point under ``fixed``. Lava runs in a child
process (``hw_export.lava_subprocess``), as in ``dpap run``.
"""

from __future__ import annotations

import os
from collections import deque
from functools import reduce
from typing import Callable, Iterable, NamedTuple, Optional

import numpy as np

from hw_export.counting import concatenate_counts, count_operations
from hw_export.energy import PROFILES, EnergyProfile
from hw_export.fidelity import AgreementCounts, count_agreement, readout_prediction
from hw_export.lava_sim import LavaResult, SimOptions
from hw_export.metrics import measure_counts
from hw_export.report import Agreement, EngineCheck, FixedReport, ModelReport
from hw_export.sparsenet import SparseNet

# inputs [T, N, *input_shape] -> (readout_v [T, N, C], spikes [T, N, n] per LIF population of the trained model)
Reference = Callable[[np.ndarray], tuple[np.ndarray, list[np.ndarray]]]
# (inputs [T, N, n_inputs], precision) -> a function that waits for the Lava run of those samples and returns it
# (the run may go on meanwhile, in a subprocess: ``hw_export.lava_subprocess.LavaPool``)
Launcher = Callable[[np.ndarray, str], Callable[[], LavaResult]]
# (this process's {precision: {chunk index: ChunkTally}}) -> every process's, on the one that reports; else None
Gather = Callable[[dict], Optional[list]]


class ChunkTally(NamedTuple):
    """What one precision's run keeps of one chunk of samples: per-sample counts, predictions, agreement."""

    counts: list  # LayerCounts per layer, arrays [N]
    input_spikes: np.ndarray  # [N]
    lava_predictions: np.ndarray  # [N]
    labels: Optional[np.ndarray]  # [N] or None
    reference_predictions: Optional[np.ndarray]  # [N] or None without a reference
    agreement: Optional[AgreementCounts]  # spike tallies against the reference, or None


def tally_chunk(net: SparseNet, inputs: np.ndarray, labels, lava: LavaResult, reference=None) -> ChunkTally:
    """One chunk: ``inputs`` ``[T, N, n_inputs]``, ``labels`` ``[N]``, its Lava run and the reference's."""
    readout_v, spikes = reference if reference is not None else (None, None)
    return ChunkTally(count_operations(net, inputs, lava.layer_spikes), inputs.sum(axis=(0, 2), dtype=np.int64),
                      readout_prediction(lava.readout_v), None if labels is None else np.asarray(labels),
                      None if reference is None else readout_prediction(readout_v),
                      None if reference is None else count_agreement(net, spikes, lava.layer_spikes))


def tally_report(net: SparseNet, chunks: dict[int, ChunkTally], profiles: dict[str, EnergyProfile]) -> dict:
    """Accuracy, agreement, per-sample counts and energy, NeuroBench figures and layers of the chunks, in order.

    Memory does not grow with the test set beyond one integer per sample and layer.
    """
    parts = [chunks[index] for index in sorted(chunks)]
    lava = np.concatenate([part.lava_predictions for part in parts])
    input_spikes = np.concatenate([part.input_spikes for part in parts])
    result = measure_counts(net, concatenate_counts([part.counts for part in parts]), input_spikes, profiles)
    labels = np.concatenate([part.labels for part in parts]) if parts[0].labels is not None else None
    if labels is not None:  # without labels the report has no accuracy (hw_export/report.py: ModelReport)
        result["accuracy"] = {"lava": float((lava == labels).mean())}
    if parts[0].agreement is not None:
        spikes = reduce(lambda a, b: a + b, [part.agreement for part in parts]).result()
        reference = np.concatenate([part.reference_predictions for part in parts])
        result["agreement"] = Agreement(spikes=spikes.elementwise, predictions=float((lava == reference).mean()),
                                        samples_identical=spikes.samples_identical)
        if labels is not None:
            result["accuracy"]["norse"] = float((reference == labels).mean())
    return result


def assess(net: SparseNet, chunks: Iterable[tuple[int, np.ndarray, np.ndarray | None]], launch: Launcher,
           reference: Reference | None = None, profiles: dict[str, EnergyProfile] | None = None,
           precisions: tuple[str, ...] = ("float", "fixed"),
           on_first_chunk: Callable[[np.ndarray, LavaResult], None] | None = None, in_flight: int = 1,
           gather: Gather | None = None) -> ModelReport | None:
    """Simulate ``net`` on every chunk in each precision and measure it: one ``models`` entry of report.json.

    ``chunks``: ``(index, inputs [T, N, *input_shape] 0/1, labels [N] or
    None)``, read once; ``index`` is the chunk's place in the whole set (the
    report joins chunks in that order). Each chunk is launched in every
    precision, its ``reference`` computed while Lava runs, and compared.
    ``in_flight``: chunks launched before the oldest is read (``--lava-workers``
    runs them in parallel). ``on_first_chunk(inputs, float run)`` for chunk 0,
    e.g. to keep one sample's spikes for the report's rasters. ``gather``:
    when several processes share the chunks (torchrun), joins their tallies
    on the one that reports; the others get None. The float run's figures are
    the entry's top level, the fixed-point run's its ``fixed`` block.
    """
    tallies: dict[str, dict[int, ChunkTally]] = {precision: {} for precision in precisions}
    pending: deque = deque()
    for index, inputs, labels in chunks:
        inputs = np.asarray(inputs)  # [T, N, *input_shape]
        flat = inputs.reshape(*inputs.shape[:2], -1).astype(np.uint8)  # [T, N, n_inputs]
        waits = [(precision, launch(flat, precision)) for precision in precisions]
        pending.append((index, flat, labels, reference(inputs) if reference is not None else None, waits))
        while len(pending) > in_flight:
            finish_chunk(net, pending.popleft(), tallies, on_first_chunk)
    while pending:
        finish_chunk(net, pending.popleft(), tallies, on_first_chunk)
    if gather is not None:
        everyone = gather(tallies)
        if everyone is None:
            return None
        tallies = {p: {i: c for part in everyone for i, c in part[p].items()} for p in precisions}
    return model_entry({p: tally_report(net, tallies[p], profiles or PROFILES) for p in precisions}, precisions)


def finish_chunk(net: SparseNet, chunk: tuple, tallies: dict, on_first_chunk) -> None:
    """Wait for a launched chunk's runs and tally them."""
    index, flat, labels, ref, waits = chunk
    for precision, wait in waits:
        lava = wait()
        tallies[precision][index] = tally_chunk(net, flat, labels, lava, ref)
        if index == 0 and precision == waits[0][0] and on_first_chunk is not None:
            on_first_chunk(flat, lava)


def model_entry(reports: dict[str, dict], precisions: tuple[str, ...]) -> ModelReport:
    """The first precision's report as the entry, the fixed-point one (when it is not first) as its ``fixed``."""
    entry: ModelReport = {key: value for key, value in reports[precisions[0]].items()}  # type: ignore[assignment]
    if "fixed" in reports and precisions[0] != "fixed":
        fixed = reports["fixed"]
        entry["fixed"] = FixedReport(accuracy=fixed.get("accuracy", {}).get("lava"), per_sample=fixed["per_sample"],
                                     neurobench=fixed["neurobench"])
        if "agreement" in fixed:
            entry["fixed"]["agreement"] = fixed["agreement"]
    return entry


# (inputs [T, N, n_inputs], precision, engine) -> the Lava run of those samples
EngineSimulator = Callable[[np.ndarray, str, str], LavaResult]


def engine_check(flat: np.ndarray, simulator: EngineSimulator,
                 precisions: tuple[str, ...] = ("float", "fixed")) -> EngineCheck:
    """The fast engine against Lava's per-layer processes on the same samples ``flat`` ``[T, N, n_inputs]``.

    Float readout voltages may differ in their last bits (summation order):
    their largest difference relative to the largest voltage is reported;
    fixed-point voltages must be equal integers.
    """
    check = EngineCheck(samples=int(flat.shape[1]), spikes_identical=True)
    for precision in precisions:
        fast, per_layer = (simulator(flat, precision, engine) for engine in ("fast", "processes"))
        check["spikes_identical"] &= all(np.array_equal(a, b) for a, b in zip(fast.layer_spikes,
                                                                             per_layer.layer_spikes))
        if precision == "fixed":
            check["readout_equal_fixed"] = bool(np.array_equal(fast.readout_v, per_layer.readout_v))
        else:
            scale = float(np.abs(per_layer.readout_v).max(initial=0.0)) or 1.0
            check["readout_max_rel_diff_float"] = float(np.abs(fast.readout_v - per_layer.readout_v).max(
                initial=0.0)) / scale
    return check


def simulate(net: SparseNet | str | os.PathLike, inputs: np.ndarray, options: SimOptions = SimOptions(),
             progress: bool = False) -> LavaResult:
    """Simulate ``net`` (a SparseNet or its HDF5 file) in Lava on ``inputs`` ``[T, N, *input_shape]`` (0/1).

    Runs in a child process (``hw_export.lava_subprocess``). Needs lava-nc
    (Python 3.10).
    """
    from hw_export.h5io import write_sparsenet
    from hw_export.lava_subprocess import simulate_in_subprocess

    flat = np.asarray(inputs).reshape(*np.shape(inputs)[:2], -1)  # [T, N, n_inputs]
    if not isinstance(net, SparseNet):
        return simulate_in_subprocess(net, flat, options, progress)
    if flat.shape[2] != net.n_inputs:
        from hw_export.errors import UserError

        raise UserError(f"inputs have {flat.shape[2]} values per step, the network takes {net.n_inputs}")
    from hw_export.process_group import temporary_folder

    with temporary_folder("dpap-net-") as tmp:
        path = tmp / "net.h5"
        write_sparsenet(net, path)
        return simulate_in_subprocess(path, flat, options, progress)


def assess_arrays(net: SparseNet, inputs: np.ndarray, labels: np.ndarray | None = None,
                  reference: Reference | None = None, options: SimOptions = SimOptions(),
                  profiles: dict[str, EnergyProfile] | None = None) -> ModelReport:
    """``assess`` on one array of samples ``[T, N, *input_shape]`` (your own model), in one Lava run per precision.

    Without ``labels`` the report has no ``accuracy`` (and ``fixed.accuracy`` is null); with a ``reference``
    it still has the agreement with it.
    """
    from dataclasses import replace

    def launch(flat: np.ndarray, precision: str):
        result = simulate(net, flat, replace(options, precision=precision))
        return lambda: result

    entry = assess(net, [(0, inputs, labels)], launch, reference, profiles)
    entry["samples"] = {"norse_test": int(np.shape(inputs)[1]), "lava": int(np.shape(inputs)[1])}
    return entry
