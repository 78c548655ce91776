"""The shape of ``report.json``, declared once, and the one validator that reads it back.

Every producer (``dpap run``, ``dpap simulate``, ``dpap compare`` and the
own-model API ``hw_export.assess``) builds these dicts, and every reader
(``dpap compare``, the reports, benchmarks) checks a file with ``check`` before
use. ``check`` refuses a field the schema does not declare, so a producer
cannot drift from the declaration; ``docs/report_json.md`` is rendered from it
(``schema_markdown``). Units are in field names (``_j``, ``_s``, ``_bytes``);
fractions are 0..1; ``per_sample`` values are means over the simulated samples.
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any, Optional, TypedDict, Union

from hw_export.errors import UserError

SCHEMA_VERSION = 2  # 2: declared schema; simulate reports wrap one model; pruning_log, pruner_preset


class Accuracy(TypedDict, total=False):
    """Test accuracy, 0..1."""

    lava: float  # the Lava run on the `samples.lava` test samples
    norse: float  # the Norse model on all `samples.norse_test` test samples
    norse_lava_samples: float  # the Norse model on Lava's subset (only when it is a subset)
    validation: float  # the Norse model on the validation split (only with --val-fraction)


class Agreement(TypedDict):
    """How closely a Lava run reproduces the reference (the trained Norse model)."""

    spikes: float  # share of equal (layer, step, sample, neuron) spike entries over surviving neurons
    predictions: float  # share of samples with the same prediction
    samples_identical: float  # share of samples whose every spike is equal


class PerSample(TypedDict):
    """Means over the simulated samples."""

    spikes: float  # spikes of the network's own populations (inputs excluded)
    input_spikes: float  # spikes arriving at the input
    synops: float  # synaptic operations: every presynaptic spike x its remaining fan-out
    neuron_updates: float  # alive neurons x steps
    energy_j: dict[str, float]  # per energy profile, joules
    energy_breakdown_j: dict[str, dict[str, float]]  # per profile: synops, dense_macs, neuron_updates, spikes


class SynapticOperations(TypedDict):
    """NeuroBench's names for our counts (Yik et al., Nature Communications 2025)."""

    effective_acs: float  # per sample: accumulates of spikes into remaining synapses (= per_sample.synops)
    effective_macs: float  # per sample: multiply-accumulates of non-binary activations (none in an SNN)
    dense: float  # per sample: remaining synapses x steps (what dense arithmetic would compute)


class NeuroBench(TypedDict):
    """NeuroBench's metrics (Yik et al., Nature Communications 2025) from our counts."""

    connection_sparsity: float  # pruned share of the trained (fully connected / unrolled) synapses
    activation_sparsity: float  # 1 - spikes / neuron updates
    synaptic_operations: SynapticOperations  # per sample
    memory_footprint_bytes: int  # parameters stored as CSR (float32 values, int32 indices and row pointers)
    neuron_updates: float  # per sample


class LayerReport(TypedDict, total=False):
    """One population and the synapses into it; a recurrent layer (feeding its own neurons one step later) also
    names its recurrent part, which its synapses and synops include."""

    name: str  # "fc1", "conv1", "rec1", ..., "readout"
    neurons: int  # alive neurons of the population
    original_neurons: int  # neurons of the trained layer
    synapses: int  # remaining synapses into it
    original_synapses: int  # synapses of the trained layer (conv: unrolled, fully connected form)
    spikes: float  # per sample
    synops: float  # per sample, into this layer
    neuron_updates: float  # per sample
    recurrent_synapses: int  # recurrent layers: of `synapses`, those from the population's own neurons
    original_recurrent_synapses: int  # recurrent layers: of `original_synapses`, n (n - 1) (n * n with autapses)
    recurrent_synops: float  # recurrent layers, per sample: of `synops`, own spikes of steps 0..T-2 x their recurrent fan-out


class FixedReport(TypedDict, total=False):
    """The Loihi fixed-point run (hw_export/quantize.py), compared with the same reference."""

    accuracy: Optional[float]  # test accuracy of the fixed-point run (null without labels)
    agreement: Agreement  # against the reference (absent without one)
    per_sample: PerSample  # the fixed-point run
    neurobench: NeuroBench  # the fixed-point run


class EngineCheck(TypedDict, total=False):
    """The fast Lava engine against Lava's per-layer processes on a seeded subset (docs/DESIGN.md, section 3)."""

    samples: int  # samples simulated by both engines (a seeded subset of the Lava samples: --lava-check-samples)
    spikes_identical: bool  # every spike of every layer, step and sample equal, in every precision checked
    readout_max_rel_diff_float: float  # float run: largest readout voltage difference over the largest voltage (summation order: <= 1e-9)
    readout_equal_fixed: bool  # fixed-point run: readout voltages equal as integers


class PruningEvent(TypedDict):
    """One change of the masks during training."""

    step: int  # optimiser step after which the masks changed
    units_alive: list[int]  # per prunable layer: neurons / channels with input left
    synapses_alive: list[int]  # per prunable layer


class TrainingReport(TypedDict, total=False):
    """The training run, epoch by epoch."""

    loss: list[Optional[float]]  # mean training loss per epoch (null where it diverged)
    train_accuracy: list[float]  # per epoch
    sparsity: list[float]  # per epoch: pruned share of prunable synapses
    neuron_sparsity: list[float]  # per epoch: pruned share of hidden neurons / channels
    layer_sparsity: list[list[float]]  # per epoch, per prunable layer
    wall_time_s: float  # training time, seconds
    epoch_time_s: list[float]  # wall time of each epoch, seconds
    epoch_forward_macs: list[float]  # per epoch: multiply-accumulates of the PyTorch forward passes, every weight entry of the layers as they were (dense-equivalent; a compacted model's smaller layers count less)
    pruning_log: list[PruningEvent]  # every mask change


class Samples(TypedDict):
    """How many test samples each figure covers."""

    norse_test: int  # test samples the Norse accuracy covers
    lava: int  # test samples simulated in Lava


class Files(TypedDict):
    """Files of the model beside report.json."""

    checkpoint: str  # relative to the run directory
    network: str  # SparseNet HDF5


class ModelReport(TypedDict, total=False):
    """One model: structure, Lava float run (top level), fixed-point run, training."""

    pruner: Optional[str]  # pruning method ("none" for the dense model)
    pruner_options: dict[str, Any]  # every option the pruner used ("preset" included for the dpap family)
    synapses: int  # synapses of the exported network
    neurons: int  # neurons of the exported network, readout included
    samples: Samples  # how many samples each figure covers
    accuracy: Accuracy  # test accuracy (absent without labels: the own-model API, hw_export.assess)
    agreement: Agreement  # float Lava run against the Norse model (absent without a reference)
    per_sample: PerSample  # float Lava run
    neurobench: NeuroBench  # float Lava run, NeuroBench's names
    layers: list[LayerReport]  # per population, in forward order
    fixed: FixedReport  # the same test samples in Loihi fixed point
    engine_check: EngineCheck  # the fast engine against the per-layer one (when it ran)
    training: TrainingReport  # the training run (dpap run)
    files: Files  # written beside report.json (dpap run)


REQUIRED_MODEL_FIELDS = ("synapses", "neurons", "per_sample", "layers")


class Dataset(TypedDict, total=False):
    """The data a report covers."""

    name: str  # dataset name (built-in or tonic)
    n_train: Optional[int]  # training samples (null where unknown: a comparison of artifacts)
    n_validation: int  # validation samples held out of the training split
    n_test: int  # test samples
    n_lava: int  # test samples simulated in Lava
    timesteps: int  # steps per sample
    input_shape: list[int]  # one sample, one step
    seed: int  # split and encoding seed (dpap simulate)


class Ratios(TypedDict):
    """Pruned / baseline, per sample; null where the baseline's value is 0."""

    synapses: Optional[float]  # synapses of the exported networks
    neurons: Optional[float]  # neurons of the exported networks
    spikes: Optional[float]  # spikes per sample
    synops: Optional[float]  # synaptic operations per sample
    energy: Optional[float]  # energy per sample under `energy_profile`


class Comparison(TypedDict):
    """Which two models the ratios compare."""

    baseline: str  # model name
    pruned: str  # model name
    ratios: Ratios  # pruned / baseline


class Environment(TypedDict):
    """Where the report came from."""

    python: str  # Python version
    torch: str  # PyTorch version
    commit: str  # git commit of the code ("+uncommitted" when it differs), or "unknown"
    command: str  # the command line that made it
    kernels: dict[str, str]  # the CPU kernels it computed with: pinned (yes, no, partly), aten_cpu_capability, mkl_cbwr, openblas_coretype, intra_op_threads, onednn_convolutions, lif_loops (compiled: hw_export/norse/native.py; python), cpu (dpap_neuro/kernels.py)


class RunReport(TypedDict, total=False):
    """``report.json`` of ``dpap run`` and ``dpap compare``."""

    schema_version: int  # SCHEMA_VERSION of hw_export/report.py
    dataset: Dataset  # the data
    models: dict[str, ModelReport]  # by name: "dense" and the pruner's name (dpap run)
    comparison: Comparison  # the pruned model against the baseline
    energy_profile: str  # the profile of comparison.ratios.energy
    energy_profiles: dict[str, dict[str, Any]]  # every profile's constants and source
    environment: Environment  # software and commit (dpap run)
    sources: list[str]  # dpap compare: the run directories and artifacts compared


class SimulationReport(TypedDict, total=False):
    """The JSON file of ``dpap simulate``."""

    schema_version: int  # SCHEMA_VERSION of hw_export/report.py
    artifact: str  # the SparseNet HDF5 file simulated
    checkpoint: Optional[str]  # the Norse checkpoint compared with (null: none)
    precision: str  # "float" or "fixed"
    engine: str  # the Lava engine
    dataset: Dataset  # the test split simulated
    model: str  # the model's name in its run
    result: ModelReport  # the measurements (top level: the run in `precision`)


REQUIRED = {RunReport: ("schema_version", "dataset", "models"), Dataset: ("name", "n_test", "timesteps"),
            ModelReport: REQUIRED_MODEL_FIELDS, Accuracy: ("lava",),
            SimulationReport: ("schema_version", "artifact", "dataset", "result"),
            FixedReport: ("accuracy", "per_sample", "neurobench"), EngineCheck: ("samples", "spikes_identical"),
            Environment: ("python", "torch", "commit", "command"),
            LayerReport: ("name", "neurons", "original_neurons", "synapses", "original_synapses", "spikes", "synops",
                          "neuron_updates")}


def _is_typed_dict(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, dict) and hasattr(kind, "__annotations__")


def _check_value(value, kind, where: str) -> None:
    """Raise UserError naming ``where`` if ``value`` is not of the declared ``kind``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return
    if origin is Union:
        if value is None and type(None) in args:
            return
        return _check_value(value, next(a for a in args if a is not type(None)), where)
    if _is_typed_dict(kind):
        return _check_fields(value, kind, where)
    if origin in (list, dict):
        expected = list if origin is list else dict
        if not isinstance(value, expected):
            raise UserError(f"{where} must be a JSON {'array' if origin is list else 'object'}")
        items = enumerate(value) if origin is list else value.items()
        for key, item in items:
            _check_value(item, args[-1], f"{where}[{key}]" if origin is list else f"{where}.{key}")
        return
    numeric = {float: (int, float), int: (int,)}.get(kind)
    ok = (isinstance(value, numeric) and not isinstance(value, bool)) if numeric else isinstance(value, kind)
    if not ok or (kind is float and not math.isfinite(value)):
        raise UserError(f"{where} must be {'a number' if numeric else kind.__name__}, got {value!r}")


def _check_fields(value, kind, where: str) -> None:
    if not isinstance(value, dict):
        raise UserError(f"{where or 'the report'} must be a JSON object")
    hints = typing.get_type_hints(kind)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise UserError(f"{where or 'the report'} holds {', '.join(unknown)}, which the schema "
                        f"({kind.__name__}, hw_export/report.py) does not declare")
    required = REQUIRED.get(kind, () if not kind.__total__ else tuple(hints))
    for key in required:
        if key not in value:
            raise UserError(f"incomplete report: {where + '.' if where else ''}{key} is missing")
    for key, item in value.items():
        _check_value(item, hints[key], f"{where}.{key}" if where else key)


def check(report, kind=RunReport, source: str = "") -> None:
    """Validate ``report`` against the schema ``kind``; ``UserError`` names the source and the first problem."""
    try:
        _check_fields(report, kind, "")
    except UserError as exc:
        raise UserError(f"{source}: {exc}" if source else str(exc)) from None


def strict_json(value) -> str:
    """JSON that every parser reads: a NaN or infinite number (a diverged loss, say) becomes null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False) + "\n"


def ratios(baseline: ModelReport, pruned: ModelReport, profile: str) -> Ratios:
    """Pruned / baseline per sample; None where the baseline's value is 0 (JSON null, not NaN)."""
    def ratio(a: float, b: float) -> float | None:
        return float(b / a) if a else None

    base, other = baseline["per_sample"], pruned["per_sample"]
    return Ratios(synapses=ratio(baseline["synapses"], pruned["synapses"]),
                  neurons=ratio(baseline["neurons"], pruned["neurons"]),
                  spikes=ratio(base["spikes"], other["spikes"]), synops=ratio(base["synops"], other["synops"]),
                  energy=ratio(base["energy_j"][profile], other["energy_j"][profile]))


def _type_name(kind) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Union:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"object of {_type_name(args[1])}"
    names = {float: "number", int: "integer", str: "string", bool: "boolean", Any: "any"}
    return names.get(kind, getattr(kind, "__name__", "any"))


def schema_markdown() -> str:
    """Every declared type as a Markdown table (name, type, meaning from the source comment)."""
    import inspect
    import re

    lines = []
    for kind in (RunReport, SimulationReport, Dataset, Comparison, Ratios, Environment, ModelReport, Samples,
                 Accuracy, Agreement, PerSample, NeuroBench, SynapticOperations, LayerReport, FixedReport,
                 EngineCheck, TrainingReport, PruningEvent, Files):
        comments = dict(re.findall(r"^\s+(\w+): [^#\n]+#\s*(.+)$", inspect.getsource(kind), re.M))
        required = REQUIRED.get(kind, () if not kind.__total__ else tuple(kind.__annotations__))
        doc = " ".join((kind.__doc__ or "").split())
        lines += [f"### {kind.__name__}", "", doc, "",
                  "| field | type | required | meaning |", "|---|---|---|---|"]
        for name, hint in typing.get_type_hints(kind).items():
            lines.append(f"| `{name}` | {_type_name(hint)} | {'yes' if name in required else ''} | "
                         f"{comments.get(name, '')} |")
        lines.append("")
    return "\n".join(lines)
