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
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hw_export.counting import concatenate_counts, count_operations
from hw_export.energy import PROFILES, EnergyProfile
from hw_export.fidelity import AgreementCounts, count_agreement, readout_prediction
from hw_export.lava_sim import LavaResult, SimOptions
from hw_export.metrics import measure_counts
from hw_export.report import Agreement, FixedReport, ModelReport
from hw_export.sparsenet import SparseNet

# inputs [T, N, *input_shape] -> (readout_v [T, N, C], spikes [T, N, n] per LIF population of the trained model)
Reference = Callable[[np.ndarray], tuple[np.ndarray, list[np.ndarray]]]
# (inputs [T, N, n_inputs], precision) -> the Lava run of those samples
Simulator = Callable[[np.ndarray, str], LavaResult]


class Tally:
    """What one precision's run keeps of each chunk of samples: per-sample counts and agreement tallies.

    Memory does not grow with the test set beyond one integer per sample and layer.
    """

    def __init__(self, net: SparseNet) -> None:
        self.net = net
        self.counts, self.input_spikes, self.labels = [], [], []
        self.lava_predictions, self.reference_predictions = [], []
        self.agreement: AgreementCounts | None = None

    def add(self, inputs: np.ndarray, labels: np.ndarray | None, lava: LavaResult, reference=None) -> None:
        """One chunk: ``inputs`` ``[T, N, n_inputs]``, ``labels`` ``[N]``, its Lava run and the reference's."""
        self.counts.append(count_operations(self.net, inputs, lava.layer_spikes))
        self.input_spikes.append(inputs.sum(axis=(0, 2), dtype=np.int64))
        self.lava_predictions.append(readout_prediction(lava.readout_v))
        if labels is not None:
            self.labels.append(np.asarray(labels))
        if reference is not None:
            readout_v, spikes = reference
            self.reference_predictions.append(readout_prediction(readout_v))
            tally = count_agreement(self.net, spikes, lava.layer_spikes)
            self.agreement = tally if self.agreement is None else self.agreement + tally

    def report(self, profiles: dict[str, EnergyProfile]) -> dict:
        """Accuracy, agreement, per-sample counts and energy, NeuroBench figures and layers of the run."""
        lava = np.concatenate(self.lava_predictions)
        result = measure_counts(self.net, concatenate_counts(self.counts), np.concatenate(self.input_spikes), profiles)
        labels = np.concatenate(self.labels) if self.labels else None
        result["accuracy"] = {} if labels is None else {"lava": float((lava == labels).mean())}
        if self.agreement is not None:
            spikes = self.agreement.result()
            reference = np.concatenate(self.reference_predictions)
            result["agreement"] = Agreement(spikes=spikes.elementwise, predictions=float((lava == reference).mean()),
                                            samples_identical=spikes.samples_identical)
            if labels is not None:
                result["accuracy"]["norse"] = float((reference == labels).mean())
        return result


def assess(net: SparseNet, chunks: Iterable[tuple[np.ndarray, np.ndarray | None]], simulator: Simulator,
           reference: Reference | None = None, profiles: dict[str, EnergyProfile] | None = None,
           precisions: tuple[str, ...] = ("float", "fixed"),
           on_first_chunk: Callable[[np.ndarray, LavaResult], None] | None = None) -> ModelReport:
    """Simulate ``net`` on every chunk in each precision and measure it: one ``models`` entry of report.json.

    ``chunks``: ``(inputs [T, N, *input_shape] 0/1, labels [N] or None)``,
    read once; each chunk is simulated in every precision and compared with
    ``reference`` (computed once per chunk). ``on_first_chunk(inputs,
    float run)``: e.g. to keep one sample's spikes for the report's rasters.
    The float run's figures are the entry's top level, the fixed-point run's
    its ``fixed`` block.
    """
    tallies = {precision: Tally(net) for precision in precisions}
    for index, (inputs, labels) in enumerate(chunks):
        inputs = np.asarray(inputs)  # [T, N, *input_shape]
        flat = inputs.reshape(*inputs.shape[:2], -1).astype(np.uint8)  # [T, N, n_inputs]
        ref = reference(inputs) if reference is not None else None
        for precision, tally in tallies.items():
            lava = simulator(flat, precision)
            tally.add(flat, labels, lava, ref)
            if index == 0 and precision == precisions[0] and on_first_chunk is not None:
                on_first_chunk(flat, lava)
    reports = {precision: tally.report(profiles or PROFILES) for precision, tally in tallies.items()}
    entry: ModelReport = {key: value for key, value in reports[precisions[0]].items()}  # type: ignore[assignment]
    if "fixed" in reports and precisions[0] != "fixed":
        fixed = reports["fixed"]
        entry["fixed"] = FixedReport(accuracy=fixed["accuracy"].get("lava"), per_sample=fixed["per_sample"],
                                     neurobench=fixed["neurobench"])
        if "agreement" in fixed:
            entry["fixed"]["agreement"] = fixed["agreement"]
    return entry


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
    with tempfile.TemporaryDirectory(prefix="dpap-net-") as tmp:
        path = Path(tmp) / "net.h5"
        write_sparsenet(net, path)
        return simulate_in_subprocess(path, flat, options, progress)


def assess_arrays(net: SparseNet, inputs: np.ndarray, labels: np.ndarray | None = None,
                  reference: Reference | None = None, options: SimOptions = SimOptions(),
                  profiles: dict[str, EnergyProfile] | None = None) -> ModelReport:
    """``assess`` on one array of samples ``[T, N, *input_shape]`` (your own model), in one Lava run per precision."""
    from dataclasses import replace

    def simulator(flat: np.ndarray, precision: str) -> LavaResult:
        return simulate(net, flat, replace(options, precision=precision))

    entry = assess(net, [(inputs, labels)], simulator, reference, profiles)
    entry["samples"] = {"norse_test": int(np.shape(inputs)[1]), "lava": int(np.shape(inputs)[1])}
    return entry
