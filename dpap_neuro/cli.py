"""The ``dpap`` command line.

Options that set up a run are ``RunConfig``'s fields (``dpap_neuro/config.py``):
their names, defaults and help texts come from the fields and their comments,
so each is declared once. Bad input ends with one ``dpap: error: ...`` line and
exit status 2 (a ``UserError``); any other exception is a bug and shows its
traceback with a line that says so (exit status 1). Nothing half-written is
left behind (every output file is written atomically).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import types
import typing
import warnings

from hw_export.errors import UserError

# Command-line spellings that differ from the field's name (``--field-name`` otherwise).
CLI_NAMES = {"hidden_sizes": "--hidden", "lava_timeout_s": "--lava-timeout", "pruner_options": "--pruner-option",
             "cache": "--no-cache", "compact": "--no-compact"}
# RunConfig fields that `dpap simulate` takes too (the artifact's metadata gives the rest).
SIMULATE_FIELDS = ("data_dir", "workers", "downsample", "denoise_us", "cache", "cache_dir", "timesteps", "seed",
                   "lava_engine", "lava_batch_size", "lava_timeout_s", "lava_samples", "lava_chunk_size",
                   "lava_workers", "lava_check_samples")
# RunConfig fields that `dpap compare` takes for the artifacts it simulates.
COMPARE_FIELDS = ("lava_engine", "lava_workers", "lava_timeout_s")
# What `dpap run --resume DIR` may change of DIR/config.json.
RESUME_FIELDS = ("device", "lava_timeout_s", "lava_engine", "lava_workers")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one ``dpap: error:`` line (usage only on ``--help``)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"dpap: error: {message} (see `{self.prog} --help`)\n")


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def _number(kind: type, name: str):
    """An argparse type: an int or a finite float in the field ``name``'s range (``RANGES`` of
    ``dpap_neuro/config.py``, the table RunConfig checks too), with a message naming what was expected."""
    from dpap_neuro.config import RANGES, in_range

    allowed = RANGES.get(name)
    expected = f"{'an integer' if kind is int else 'a number'}{'' if allowed is None else ' ' + allowed}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (kind is float and not math.isfinite(value)) or (allowed is not None and not in_range(value, allowed)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _choices() -> dict[str, typing.Sequence[str]]:
    from dpap_neuro.config import LR_SCHEDULES, OPTIMIZERS, TRAIN_PRECISIONS
    from dpap_neuro.data import DATASETS
    from dpap_neuro.models import ARCHITECTURES
    from dpap_neuro import pruning
    from dpap_neuro.pruning import PRUNERS
    from hw_export.lava_sim import ENGINES

    return {"dataset": DATASETS, "model": ARCHITECTURES, "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES,
            "train_precision": TRAIN_PRECISIONS,
            "pruner": [p for p in PRUNERS if p != "none"], "pruner_preset": list(getattr(pruning, "DPAP_PRESETS", ("authors", "builtin", "tonic"))),
            "lava_engine": list(ENGINES)}


def _metavar(name: str, kind: type) -> str:
    for suffix, metavar in (("_dir", "DIR"), ("_per_s", "PER_SECOND"), ("_us", "MICROSECONDS"), ("_s", "SECONDS")):
        if name.endswith(suffix):
            return metavar
    return "N" if kind is int else "X"


def add_config_option(parser: argparse.ArgumentParser, name: str, choices: dict) -> None:
    """``--<field>`` for the RunConfig field ``name``: type, help and default shown from the field itself."""
    from dpap_neuro.config import RunConfig, field_help

    hint = typing.get_type_hints(RunConfig)[name]
    default = next(f.default for f in dataclasses.fields(RunConfig) if f.name == name)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(k for k in typing.get_args(hint) if k is not type(None))  # X | None -> X
    kind = typing.get_origin(hint) or hint
    text = field_help()[name].replace("%", "%%").replace("None: ", "default: ")
    if default is not None and kind is not bool:
        text += f" (default: {' '.join(map(str, default)) if isinstance(default, tuple) else default})"
    common = dict(dest=name, default=None, help=text)
    flag = CLI_NAMES.get(name, "--" + name.replace("_", "-"))
    if kind is bool:
        parser.add_argument(flag, action="store_false" if default else "store_true", **common)
    elif kind is dict:
        parser.add_argument(flag, action="append", type=_key_value, metavar="KEY=VALUE", **common)
    elif kind is tuple:
        parser.add_argument(flag, type=_number(typing.get_args(hint)[0], name), nargs="+", metavar="N", **common)
    elif kind in (int, float):
        parser.add_argument(flag, type=_number(kind, name), metavar=_metavar(name, kind), **common)
    else:
        metavar = None if name in choices else _metavar(name, str) if name.endswith("_dir") else "NAME"
        parser.add_argument(flag, choices=choices.get(name), metavar=metavar, **common)


def config_from_args(args: argparse.Namespace, names: typing.Iterable[str]) -> dict:
    """The RunConfig fields the user gave on the command line (``pruner_options`` as a dict)."""
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if "pruner_options" in given:
        given["pruner_options"] = dict(given["pruner_options"])
    if "hidden_sizes" in given or "conv_channels" in given:
        given.update({k: tuple(v) for k, v in given.items() if k in ("hidden_sizes", "conv_channels")})
    return given


def build_parser() -> argparse.ArgumentParser:
    from dpap_neuro.config import RunConfig

    choices = _choices()
    parser = Parser(
        prog="dpap", description="Train and prune spiking networks (Norse), run them in Lava, and compare "
                                 "spikes, synaptic operations and energy before and after pruning.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run", help="train a dense and a pruned model, export both, simulate both in Lava, write a report",
        description="Train a dense model and a pruned model (same architecture, seed, data and epochs), export "
                    "both as SparseNet HDF5, simulate both in Lava on the test set (float and Loihi fixed point), "
                    "and write report.json, report.md, report.html and figures/ to the output folder.")
    run.add_argument("--out", metavar="DIR", help="run directory to write (created if missing)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the run in DIR (killed or interrupted) from its last finished epoch, with "
                          "DIR/config.json's settings (only " + ", ".join(CLI_NAMES.get(f, "--" + f.replace("_", "-"))
                                                               for f in RESUME_FIELDS) + " and --quiet may be given)")
    for field in dataclasses.fields(RunConfig):
        add_config_option(run, field.name, choices)
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_simulate_parser(commands, choices)
    add_compare_parser(commands, choices)
    add_export_parser(commands)
    add_tune_parser(commands, choices)
    return parser


# `dpap run`'s options that tune passes on (not RunConfig.workers: tune's --workers are its trial processes).
TUNE_FIELDS = ("dataset", "data_dir", "model", "epochs", "hidden_sizes", "conv_channels", "timesteps", "downsample",
               "denoise_us", "cache", "cache_dir", "val_fraction", "energy_profile", "portable_kernels", "device")


def add_tune_parser(commands, choices: dict) -> None:
    from dpap_neuro.tune import STRENGTHS

    tune = commands.add_parser(
        "tune", help="the cheapest (or most accurate) pruned network within a budget, chosen on validation",
        description="Search each pruner's strength on a validation split (a bisection, the same number of trials "
                    "for every pruner), pick the lowest-energy network within --max-drop (or the most accurate "
                    "within --max-energy), then run the pick through `dpap run`'s whole pipeline into OUT/pick. "
                    "Finished trials are kept in OUT/trials: run the same command again to continue.")
    budget = tune.add_mutually_exclusive_group(required=True)
    budget.add_argument("--max-drop", type=float, metavar="POINTS",
                        help="validation accuracy the pick may lose against the dense model, percentage points")
    budget.add_argument("--max-energy", type=float, metavar="RATIO",
                        help="energy per sample the pick may cost, as a share of the dense model's (0..1]")
    tune.add_argument("--pruners", default="dpap,gmp,structured,magnitude,random", metavar="LIST",
                      help=f"comma-separated, from {', '.join(STRENGTHS)} (default: all but dpap+)")
    tune.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per trial: 0..N-1 (default: 3)")
    tune.add_argument("--workers", type=int, default=None, metavar="K",
                      help="trials trained at once, one process each (default: the cores, at most 4)")
    tune.add_argument("--out", required=True, metavar="DIR", help="tune directory (trials/, tune.json, pick/)")
    tune.add_argument("--dense-from", nargs="+", default=(), metavar="RUN",
                      help="`dpap run` folders (or their dense.pt) whose dense models this tune reuses, one per "
                           "seed, instead of training them (same data, split and recipe; checked)")
    for name in TUNE_FIELDS:
        add_config_option(tune, name, choices)
    tune.add_argument("--quiet", action="store_true", help="no progress bars")


def add_simulate_parser(commands, choices: dict) -> None:
    from dpap_neuro.data import DATASETS

    sim = commands.add_parser(
        "simulate", help="run an exported network (SparseNet HDF5) in Lava on its dataset's test split",
        description="Simulate an exported SparseNet in Lava on a dataset's test split (by default the split and "
                    "binning its run used, from the artifact's metadata) and write the per-model fields of `dpap "
                    "run` (accuracy, agreement with Norse when the checkpoint is there, spikes, operations, energy).")
    sim.add_argument("artifact", help="SparseNet HDF5 file written by `dpap run` or `dpap export`")
    sim.add_argument("--dataset", required=True, choices=DATASETS,
                     help="dataset whose test split to simulate (a tonic one is read from --data-dir)")
    sim.add_argument("--precision", choices=("float", "fixed"), default="float",
                     help="Lava floating-point models, or Loihi bit-accurate fixed point (default: float)")
    sim.add_argument("--checkpoint", default=None,
                     help="Norse checkpoint for spike agreement (default: ARTIFACT with .pt, if present)")
    sim.add_argument("--out", default=None, metavar="FILE",
                     help="JSON report to write (default: ARTIFACT-<precision>.json beside the artifact)")
    for name in SIMULATE_FIELDS:
        add_config_option(sim, name, choices)
    sim.add_argument("--quiet", action="store_true", help="no progress bars")


def add_compare_parser(commands, choices: dict) -> None:
    cmp_ = commands.add_parser(
        "compare", help="one report (report.md, report.html, figures) over runs and/or exported networks",
        description="Compare models from `dpap run` directories and/or SparseNet artifacts (simulated in Lava on "
                    "their run's test split): report.json, report.md, report.html and figures/.")
    cmp_.add_argument("sources", nargs="+", metavar="RUN_DIR_OR_ARTIFACT")
    cmp_.add_argument("--out", default="compare", metavar="DIR", help="output directory (default: compare)")
    for name in COMPARE_FIELDS:
        add_config_option(cmp_, name, choices)
    cmp_.add_argument("--quiet", action="store_true", help="no progress bars")


def add_export_parser(commands) -> None:
    from hw_export.nir_export import BEST_EFFORT_TARGETS, NIR_TARGETS

    export = commands.add_parser(
        "export", help="export a checkpoint: SparseNet HDF5, netx HDF5 (Loihi) or NIR",
        description="Export a dpap checkpoint (.pt): `sparsenet` (framework-free HDF5, float, "
                    "docs/sparsenet_hdf5.md), `netx` (lava-dl netx HDF5 in Loihi fixed point, docs/netx_hdf5.md) "
                    "or `nir` (NIR graph, float, time constants in seconds).")
    export.add_argument("checkpoint", help="checkpoint written by `dpap run`")
    export.add_argument("--out", required=True, metavar="FILE", help="file to write")
    export.add_argument("--format", choices=tuple(EXPORT_PRECISION), default="sparsenet",
                        help="output format (default: sparsenet)")
    export.add_argument("--precision", choices=("float", "fixed"), default=None,
                        help="float for sparsenet and nir, fixed (Loihi) for netx; the default is the format's own")
    export.add_argument("--nir-target", choices=NIR_TARGETS + BEST_EFFORT_TARGETS, default="nir",
                        help="--format nir: the graph as NIR's specification reads it (nir), or the equivalent graph "
                             "that consumer reads exactly (norse, snntorch, sinabs) or as closely as it can "
                             "(rockpool, spyx); docs/nir.md (default: nir)")


EXPORT_PRECISION = {"sparsenet": "float", "netx": "fixed", "nir": "float"}


def check_output_path(path: str, kind: str) -> None:
    """Refuse, before any work, an output path that cannot be written as ``kind`` ("file" or "directory")."""
    from pathlib import Path

    target = Path(path)
    if kind == "directory" and target.exists() and not target.is_dir():
        raise UserError(f"--out {path}: is a file, not a directory")
    if kind == "file" and target.is_dir():
        raise UserError(f"--out {path}: is a directory, not a file")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {path}: {parent} is a file, so nothing can be written inside it")
            if not os.access(parent, os.W_OK):
                raise UserError(f"--out {path}: {parent} is not writable")
            break


def require_lava(command: str) -> None:
    """Lava must be importable before a command that simulates starts its work (training included)."""
    import importlib.util

    if importlib.util.find_spec("lava") is None:
        raise UserError(f"`dpap {command}` simulates in Lava, and lava-nc is not installed in this Python "
                        f"({sys.version.split()[0]}); lava-nc 0.10 needs Python 3.10 (see the README's quick start)")


def check_dataset_files(dataset: str, data_dir: str | None) -> None:
    """A tonic dataset's files must be in place before anything starts (one line saying what goes where)."""
    from dpap_neuro.data import NEUROMORPHIC
    from dpap_neuro.data.neuromorphic import check_files

    if dataset not in NEUROMORPHIC:
        return
    spec = NEUROMORPHIC[dataset]
    if data_dir is None:
        raise UserError(f"--dataset {dataset} is read from your files: give --data-dir DIR holding "
                        f"{spec.layout} (published at {spec.published_at})")
    for train in (True, False):
        check_files(spec, data_dir, train)


def _ratio(value) -> str:
    return "undefined (dense is 0)" if value is None else f"{value:.3f}"


def cmd_compare(args) -> int:
    from dpap_neuro.compare import compare_runs

    check_output_path(args.out, "directory")
    if any(os.path.isfile(source) for source in args.sources):
        require_lava("compare")  # artifacts are simulated; run directories are only read
    report = compare_runs(args.sources, args.out, progress=not args.quiet, **config_from_args(args, COMPARE_FIELDS))
    ratios = report["comparison"]["ratios"]
    print(f"{report['comparison']['pruned']} / {report['comparison']['baseline']}: synapses "
          f"{_ratio(ratios['synapses'])}, synops {_ratio(ratios['synops'])}, energy {_ratio(ratios['energy'])}")
    print(f"report: {os.path.join(args.out, 'report.html')}")
    return 0


def cmd_export(args) -> int:
    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.run import artifact_metadata
    from hw_export.h5io import write_sparsenet
    from hw_export.norse import export_model

    check_output_path(args.out, "file")
    if args.nir_target != "nir" and args.format != "nir":
        raise UserError(f"--nir-target is for --format nir, not {args.format}")
    precision = args.precision or EXPORT_PRECISION[args.format]
    if precision != EXPORT_PRECISION[args.format]:
        raise UserError(f"--format {args.format} is {EXPORT_PRECISION[args.format]} only; "
                        f"use --format {'netx' if precision == 'fixed' else 'sparsenet or nir'} for {precision}")
    model, meta = load_checkpoint(args.checkpoint)
    config = RunConfig.from_dict(meta["config"])
    net = export_model(model, meta["input_shape"], artifact_metadata(config, meta["model_name"], meta["pruner"]))
    if args.format == "netx":
        from hw_export.netx import write_netx

        write_netx(net, args.out)
    elif args.format == "nir":
        from hw_export.nir_export import write_nir

        write_nir(net, args.out, target=args.nir_target)
    else:
        write_sparsenet(net, args.out)
    print(f"{args.out}: {args.format} ({precision}), {net.depth} layers, {net.n_neurons} neurons, "
          f"{net.n_synapses} synapses")
    return 0


def cmd_simulate(args) -> int:
    from dpap_neuro.simulate import simulate_artifact
    from hw_export.files import atomic_write_text
    from hw_export.report import strict_json

    out = args.out or f"{os.path.splitext(args.artifact)[0]}-{args.precision}.json"
    check_output_path(out, "file")
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise UserError(f"--checkpoint {args.checkpoint}: no such file")
    check_dataset_files(args.dataset, args.data_dir)
    require_lava("simulate")
    report = simulate_artifact(args.artifact, args.dataset, args.precision, args.checkpoint,
                               progress=not args.quiet, **config_from_args(args, SIMULATE_FIELDS))
    atomic_write_text(out, strict_json(report))
    result = report["result"]
    line = f"{args.precision}: Lava accuracy {result['accuracy']['lava']:.4f} ({result['samples']['lava']} samples)"
    if "agreement" in result:
        line += (f", Norse accuracy {result['accuracy']['norse']:.4f}, spike agreement "
                 f"{result['agreement']['spikes']:.4f}, prediction agreement {result['agreement']['predictions']:.4f}")
    print(line)
    print(f"report: {out}")
    return 0


def run_config(args):
    """The RunConfig of ``dpap run``: from the options, or (``--resume``) from the run directory's config.json."""
    from dpap_neuro.config import RunConfig

    names = [f.name for f in dataclasses.fields(RunConfig)]
    given = config_from_args(args, names)
    if (args.out is None) == (args.resume is None):
        raise UserError("give either --out DIR (a new run) or --resume DIR (continue one)")
    if args.resume is None:
        check_dataset_files(given.get("dataset", RunConfig.dataset), given.get("data_dir"))
        return RunConfig(**given), args.out
    others = sorted(set(given) - set(RESUME_FIELDS))
    if others:
        raise UserError(f"--resume takes its settings from {args.resume}/config.json; only "
                        f"{', '.join(RESUME_FIELDS)} may be given (not {', '.join(others)})")
    saved = os.path.join(args.resume, "config.json")
    if not os.path.isfile(saved):
        raise UserError(f"--resume {args.resume}: no config.json (not a `dpap run` directory)")
    try:
        with open(saved) as fh:
            config = RunConfig.from_dict({**json.load(fh), **given})
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{saved}: not a valid run config ({exc})") from None
    check_dataset_files(config.dataset, config.data_dir)
    return config, args.resume


def cmd_run(args) -> int:
    from dpap_neuro.distributed import resolve_device, shutdown
    from dpap_neuro.run import run

    config, out = run_config(args)
    check_output_path(out, "directory")
    resolve_device(config.device)  # a device that is not there: one line before any work
    require_lava("run")
    from dpap_neuro import kernels

    saved = kernels.pin_torch() if config.portable_kernels else None
    try:
        report = run(config, out, progress=not args.quiet, resume=args.resume is not None)
    finally:
        shutdown()
        if saved is not None:
            kernels.restore_torch(saved)
    if report is not None:  # None: a data-parallel rank other than 0 (rank 0 reports)
        print_run_summary(report, out)
    return 0


def cmd_tune(args) -> int:
    from pathlib import Path

    from dpap_neuro.config import RunConfig
    from dpap_neuro.reporting import write_reports
    from dpap_neuro.distributed import init_from_env, launched_by_torchrun, rank, resolve_device
    from dpap_neuro.run import check_startable, run
    from dpap_neuro.tune import (Budget, TrialCache, check_pruners, no_pick_message, plot_frontier, reuse_dense, trial_threads, tune,
                                 usable_cores)

    budget = Budget(args.max_drop, args.max_energy)
    pruners = [p.strip() for p in args.pruners.split(",") if p.strip()]
    check_pruners(pruners)
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    workers = min(4, usable_cores()) if args.workers is None else args.workers
    if workers < 0:
        raise UserError(f"--workers must be >= 0, got {workers}")
    given = config_from_args(args, TUNE_FIELDS)
    given.setdefault("val_fraction", 0.1)
    config = RunConfig(**given)  # checks every value, one line for a bad one
    if config.val_fraction <= 0:
        raise UserError("dpap tune chooses on a validation split: --val-fraction must be above 0")
    check_dataset_files(config.dataset, config.data_dir)
    check_startable(config)  # an ANN twin (no spiking export), an unreadable energy profile: one line now
    check_output_path(args.out, "directory")
    require_lava("tune")  # the pick runs through the whole pipeline: say it now, not after the search
    out = Path(args.out)
    base = {k: v for k, v in config.to_dict().items() if k not in ("seed", "pruner", "pruner_options")}
    if launched_by_torchrun():  # ranks share the trials; a trial trains in a process of its own, outside DDP
        init_from_env(resolve_device(config.device))
        workers = max(1, workers)
    for path in args.dense_from:  # measured on validation into the trial cache: the tune finds them there
        reuse_dense(Path(path), base, list(range(args.seeds)), trial_threads(workers), TrialCache(out / "trials"))
    result = tune(base, pruners, budget, list(range(args.seeds)), out, workers, progress=not args.quiet)
    if rank() == 0:
        plot_frontier(result, out / "tune.png")
    if rank() == 0 and not args.quiet:
        print_per_pruner(result)
    if result["pick"] is None:
        if rank() != 0:
            return 2
        raise UserError(no_pick_message(result, budget))
    pick = result["pick"]
    if rank() == 0:
        print(f"pick ({budget.describe()}, validation): {pick['pruner']} at strength {pick['strength']:g}: validation "
              f"accuracy {pick['validation_accuracy']:.4f} (dense {result['dense']['validation_accuracy']:.4f}), "
              f"{pick['energy_ratio']:.3f}x the dense energy; tune.json and tune.png in {out}")
    report = run(RunConfig(**{**config.to_dict(), "pruner": pick["pruner"], "pruner_options": pick["options"]}),
                 out / "pick", progress=not args.quiet)
    if report is not None:  # the pick's report gains the frontier it was chosen on
        plot_frontier(result, out / "pick" / "figures" / "tune.png")
        write_reports(report, out / "pick", extra_figures=("tune",))
        print_run_summary(report, str(out / "pick"))
    return 0


def print_per_pruner(result: dict) -> None:
    """Each pruner's answer on validation (means over the seeds), one line each."""
    dense = result["dense"]["validation_accuracy"]
    for pruner, point in result["per_pruner"].items():
        print(f"  {pruner:>10} {point['strength']:<6g} validation {point['validation_accuracy']:.4f} "
              f"({100 * (point['validation_accuracy'] - dense):+.2f} points), {point['energy_ratio']:.3f}x energy, "
              f"{point['synapses_kept']:.3f} of the synapses: {'within' if point['meets'] else 'outside'} the budget")


def print_run_summary(report: dict, out: str) -> None:
    from dpap_neuro.reporting import training_times

    for name, model in report["models"].items():
        print(f"{name:>10}: Norse accuracy {model['accuracy']['norse']:.4f}, Lava accuracy "
              f"{model['accuracy']['lava']:.4f}, spike agreement {model['agreement']['spikes']:.4f}, "
              f"{model['synapses']} synapses, {model['neurons']} neurons; Loihi fixed point: accuracy "
              f"{model['fixed']['accuracy']:.4f}, prediction agreement {model['fixed']['agreement']['predictions']:.4f}")
    checks = [model["engine_check"] for model in report["models"].values() if "engine_check" in model]
    if checks:
        same = all(c["spikes_identical"] and c.get("readout_equal_fixed", True) and
                   c.get("readout_max_rel_diff_float", 0.0) <= 1e-9 for c in checks)
        print(f"Lava's fast engine against its per-layer processes ({checks[0]['samples']} samples per model): "
              f"{'the same spikes and readout voltages' if same else 'THEY DIFFER (see engine_check in report.json)'}")
    times, baseline = training_times(report), report["comparison"]["baseline"]
    if times:
        print("training time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items()) +
              "".join(f"; {name}/{baseline} {seconds / times[baseline]:.3f}" for name, seconds in times.items()
                      if name != baseline and baseline in times))
    ratios = report["comparison"]["ratios"]
    print(f"pruned/dense: synapses {_ratio(ratios['synapses'])}, synops {_ratio(ratios['synops'])}, "
          f"energy {_ratio(ratios['energy'])}")
    data = report["dataset"]
    if data["n_lava"] != data["n_test"]:
        print(f"Norse accuracy: all {data['n_test']} test samples; Lava figures: {data['n_lava']} of them "
              "(--lava-samples)")
    print(f"report: {os.path.join(out, 'report.md')} and report.html")


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done; 2 bad input (one ``dpap: error:`` line); 1 a bug (traceback and a line saying so);
    130 / 143 interrupted by SIGINT / SIGTERM (one ``dpap: interrupted`` line; no process or temporary file left)."""
    import signal

    from dpap_neuro import kernels

    if kernels.requested(sys.argv[1:] if argv is None else list(argv)):
        kernels.pin_environment()  # before anything loads torch or numpy (dpap_neuro/kernels.py)
    from hw_export.lava_subprocess import Terminated, raise_terminated

    previous_sigterm = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("dpap: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated as stop:
        print("dpap: interrupted", file=sys.stderr)
        return 128 + stop.signum
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _main(argv: list[str] | None) -> int:
    import traceback

    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"run": cmd_run, "simulate": cmd_simulate, "export": cmd_export, "compare": cmd_compare,
                "tune": cmd_tune}
    try:
        return handlers[args.command](args)
    except (UserError, OSError) as exc:  # OSError: a disk full, a file that vanished: the user's to fix
        print(f"dpap: error: {exc}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001  a bug: keep its traceback, and say what it is
        traceback.print_exc()
        print("dpap: internal error (a bug in dpap-neuro, not in your input; please report it with the "
              "traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
