"""Your own network on the hardware side: simulate an exported SparseNet in Lava and measure it.

Torch-free (the model side is ``norse_reader.export_model`` and
``norse_reader.run_norse``), so these work on any ``SparseNet``::

    from hw_export.norse_reader import export_model, run_norse
    from hw_export.deploy import simulate, assess

    net = export_model(model, input_shape=(2, 34, 34))  # pruned synapses and dead neurons gone
    lava = simulate(net, inputs)  # inputs [T, N, *input_shape] 0/1
    report = assess(net, inputs, lava, labels, run_norse(model, inputs))

Lava runs in a child process (``lava_subprocess``), as in ``dpap run``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from hw_export.energy import PROFILES, EnergyProfile
from hw_export.fidelity import spike_agreement
from hw_export.lava_sim import LavaResult
from hw_export.metrics import measure
from hw_export.sparsenet import SparseNet


def readout_prediction(readout_v: np.ndarray) -> np.ndarray:
    """The class whose readout voltage peaks highest over time: ``[T, N, C]`` -> ``[N]`` (as ``dpap``)."""
    return np.asarray(readout_v).max(axis=0).argmax(axis=-1)


def simulate(net: SparseNet | str | os.PathLike, inputs: np.ndarray, precision: str = "float",
             batch_size: int = 128, timeout_s: float | None = None, progress: bool = False) -> LavaResult:
    """Simulate ``net`` (a SparseNet or its HDF5 file) in Lava on ``inputs`` ``[T, N, *input_shape]`` (0/1).

    ``precision``: "float" (must equal Norse spike for spike) or "fixed"
    (Loihi 8-bit weights, bit-accurate). Needs lava-nc (Python 3.10).
    """
    from hw_export.h5io import write_sparsenet
    from hw_export.lava_subprocess import simulate_in_subprocess

    inputs = np.asarray(inputs)
    flat = inputs.reshape(*inputs.shape[:2], -1)  # [T, N, n_inputs]
    if isinstance(net, SparseNet):
        if flat.shape[2] != net.n_inputs:
            raise ValueError(f"inputs have {flat.shape[2]} values per step, the network takes {net.n_inputs}")
        with tempfile.TemporaryDirectory(prefix="dpap-net-") as tmp:
            path = Path(tmp) / "net.h5"
            write_sparsenet(net, path)
            return simulate_in_subprocess(path, flat, batch_size, progress, precision, timeout_s)
    return simulate_in_subprocess(net, flat, batch_size, progress, precision, timeout_s)


def assess(net: SparseNet, inputs: np.ndarray, lava: LavaResult, labels: np.ndarray | None = None,
           norse: tuple[np.ndarray, list[np.ndarray]] | None = None,
           profiles: dict[str, EnergyProfile] | None = None) -> dict:
    """What ``dpap run`` reports per model: counts, energy, accuracy and agreement with Norse.

    ``norse``: ``run_norse(model, inputs)``'s result, for spike and prediction
    agreement. Energies are joules per sample under each profile
    (``per_sample.energy_j``).
    """
    inputs = np.asarray(inputs)
    flat = inputs.reshape(*inputs.shape[:2], -1)
    report = measure(net, flat, lava.layer_spikes, profiles or PROFILES)
    predictions = readout_prediction(lava.readout_v)
    report["accuracy"] = {}
    if labels is not None:
        report["accuracy"]["lava"] = float((predictions == np.asarray(labels)).mean())
    if norse is not None:
        readout_v, layer_spikes = norse
        norse_predictions = readout_prediction(readout_v)
        agreement = spike_agreement(net, layer_spikes, lava.layer_spikes)
        report["agreement"] = {"spikes": agreement.elementwise, "samples_identical": agreement.samples_identical,
                               "predictions": float((predictions == norse_predictions).mean())}
        if labels is not None:
            report["accuracy"]["norse"] = float((norse_predictions == np.asarray(labels)).mean())
    return report
