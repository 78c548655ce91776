"""The ``dpap`` command line.

Bad input ends with one ``dpap: error: ...`` line and exit status 2; nothing
half-written is left behind (every output file is written atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def _positive_number(text: str, unit: str = "") -> float:
    """A positive finite number from the command line (``unit``, e.g. " of seconds", for the message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number{unit}, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number{unit}, got {text!r}")
    return value


def _seconds(text: str) -> float:
    return _positive_number(text, " of seconds")


def _microseconds(text: str) -> float:
    return _positive_number(text, " of microseconds")


def check_output_path(path: str, kind: str) -> None:
    """Refuse, before any work, an output path that cannot be written as ``kind`` ("file" or "directory")."""
    from pathlib import Path

    target = Path(path)
    if kind == "directory" and target.exists() and not target.is_dir():
        raise ValueError(f"--out {path}: is a file, not a directory")
    if kind == "file" and target.is_dir():
        raise ValueError(f"--out {path}: is a directory, not a file")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {path}: {parent} is a file, so nothing can be written inside it")
            if not os.access(parent, os.W_OK):
                raise ValueError(f"--out {path}: {parent} is not writable")
            break


def require_lava(command: str) -> None:
    """Lava must be importable before a command that simulates starts its work (training included)."""
    import importlib.util

    if importlib.util.find_spec("lava") is None:
        raise ValueError(f"`dpap {command}` simulates in Lava, and lava-nc is not installed in this Python "
                         f"({sys.version.split()[0]}); lava-nc 0.10 needs Python 3.10 (see the README's set-up)")


def build_parser() -> argparse.ArgumentParser:
    from dpap_neuro.config import ARCHITECTURES, RunConfig
    from dpap_neuro.data import DATASETS, NEUROMORPHIC
    from dpap_neuro.pruning import PRUNERS

    defaults = RunConfig()
    parser = argparse.ArgumentParser(
        prog="dpap",
        description="Train and prune spiking networks (Norse), run them in Lava, and compare spikes, "
                    "synaptic operations and energy before and after pruning.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run", help="train a dense and a pruned model, export both, simulate both in Lava, write a report",
        description="Train a dense model and a pruned model (same architecture, seed, data and epochs), "
                    "export both as SparseNet HDF5, simulate both in Lava on the test set, and write "
                    "report.json and report.md to the output folder.",
    )
    run.add_argument("--out", metavar="DIR", help="run directory to write (created if missing)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the run in DIR (killed or interrupted) from its last finished epoch, with "
                          "DIR/config.json's settings (only --device, --lava-timeout and --quiet apply)")
    run.add_argument("--device", default=None, metavar="auto|cpu|cuda[:N]",
                     help=f"training device (default: {defaults.device}: CUDA when available); "
                          "export and Lava always run on the CPU")
    run.add_argument("--dataset", default=defaults.dataset, choices=DATASETS,
                     help=f"built-in dataset, or one read through tonic from --data-dir "
                          f"({', '.join(NEUROMORPHIC)}; layouts in the README) (default: {defaults.dataset})")
    add_tonic_arguments(run)
    run.add_argument("--model", default=None, choices=ARCHITECTURES,
                     help=f"network: fully connected LIF layers, or conv blocks then LIF layers; ann-*: their ReLU "
                          f"twins (no Lava export: benchmarks/ann_dpap.py) (default: {defaults.model}; tonic "
                          "datasets: conv for the cameras, mlp for shd)")
    run.add_argument("--conv-channels", type=int, nargs="+", default=list(defaults.conv_channels), metavar="C",
                     help=f"output channels per conv block, --model conv (default: "
                          f"{' '.join(map(str, defaults.conv_channels))})")
    run.add_argument("--pruner", default=defaults.pruner, choices=[p for p in PRUNERS if p != "none"],
                     help=f"pruning method of the pruned model (default: {defaults.pruner})")
    run.add_argument("--pruner-option", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                     help="option of the pruner, e.g. target_sparsity=0.9 for gmp or fc_neuron_c=1.5 for dpap "
                          "(repeatable; each one overrides that option of the built-in-data defaults, the "
                          "others stay)")
    run.add_argument("--epochs", type=int, default=defaults.epochs,
                     help=f"training epochs of each model (default: {defaults.epochs})")
    run.add_argument("--timesteps", type=int, default=None,
                     help=f"simulation steps per sample; tonic datasets: time bins per sample (default: "
                          f"{defaults.timesteps}; " + ", ".join(f"{n} {s.default_timesteps}" for n, s in NEUROMORPHIC.items())
                          + ")")
    run.add_argument("--seed", type=int, default=defaults.seed,
                     help=f"seed of split, encoding, initialisation and batch order (default: {defaults.seed})")
    run.add_argument("--val-fraction", type=float, default=defaults.val_fraction, metavar="F",
                     help=f"stratified share of the training split held out as validation (the report gives "
                          f"each model's validation accuracy; 0: none; default: {defaults.val_fraction:g})")
    run.add_argument("--hidden", type=int, nargs="+", default=list(defaults.hidden_sizes), metavar="N",
                     help=f"hidden layer sizes (default: {' '.join(map(str, defaults.hidden_sizes))})")
    run.add_argument("--energy-profile", default=defaults.energy_profile, metavar="NAME_OR_FILE",
                     help="energy profile of the report's energy ratio: loihi, cmos45, or a JSON/TOML file "
                          f"with EnergyProfile's fields (default: {defaults.energy_profile})")
    run.add_argument("--lava-timeout", type=_seconds, default=defaults.lava_timeout_s, metavar="SECONDS",
                     help=f"wall-clock limit of each Lava simulation (default: {defaults.lava_timeout_s:g})")
    add_lava_sample_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    sim = commands.add_parser(
        "simulate", help="run an exported network (SparseNet HDF5) in Lava on a built-in test split",
        description="Simulate an exported SparseNet in Lava on a built-in dataset's test split and write "
                    "the same per-model fields as `dpap run` (accuracy, agreement with Norse when the "
                    "checkpoint is available, spikes, synaptic operations, energy).",
    )
    sim.add_argument("artifact", help="SparseNet HDF5 file written by `dpap run` or `dpap export`")
    sim.add_argument("--dataset", required=True, choices=DATASETS,
                     help="dataset whose test split to simulate (a tonic one is read from --data-dir)")
    sim.add_argument("--data-dir", default=None, metavar="DIR",
                     help="folder holding the tonic dataset's files (README, \"Neuromorphic datasets through tonic\")")
    sim.add_argument("--workers", type=int, default=0, metavar="N",
                     help="DataLoader worker processes reading a tonic dataset (default: 0)")
    sim.add_argument("--precision", choices=("float", "fixed"), default="float",
                     help="Lava floating-point models, or Loihi bit-accurate fixed point (default: float)")
    sim.add_argument("--timesteps", type=int, default=None, help="steps per sample (default: the artifact's)")
    sim.add_argument("--seed", type=int, default=None, help="seed of split and encoding (default: the artifact's)")
    sim.add_argument("--checkpoint", default=None,
                     help="Norse checkpoint for spike agreement (default: ARTIFACT with .pt, if present)")
    sim.add_argument("--out", default=None, metavar="FILE",
                     help="JSON report to write (default: ARTIFACT-<precision>.json beside the artifact)")
    sim.add_argument("--lava-timeout", type=_seconds, default=defaults.lava_timeout_s, metavar="SECONDS",
                     help=f"wall-clock limit of each Lava simulation (default: {defaults.lava_timeout_s:g})")
    add_lava_sample_arguments(sim)
    sim.add_argument("--quiet", action="store_true", help="no progress bars")

    cmp_ = commands.add_parser(
        "compare", help="one report (report.md, report.html, figures) over runs and/or exported networks",
        description="Compare models from `dpap run` directories and/or SparseNet artifacts (simulated in "
                    "Lava on their run's test split): report.json, report.md, report.html and figures/.",
    )
    cmp_.add_argument("sources", nargs="+", metavar="RUN_DIR_OR_ARTIFACT")
    cmp_.add_argument("--out", default="compare", metavar="DIR", help="output directory (default: compare)")
    cmp_.add_argument("--quiet", action="store_true", help="no progress bars")

    export = commands.add_parser(
        "export", help="export a checkpoint: SparseNet HDF5, netx HDF5 (Loihi) or NIR",
        description="Export a dpap checkpoint (.pt): `sparsenet` (framework-free HDF5, float, "
                    "docs/sparsenet_hdf5.md), `netx` (lava-dl netx HDF5 in Loihi fixed point, "
                    "docs/netx_hdf5.md) or `nir` (NIR graph, float, time constants in seconds).",
    )
    export.add_argument("checkpoint", help="checkpoint written by `dpap run`")
    export.add_argument("--out", required=True, metavar="FILE", help="file to write")
    export.add_argument("--format", choices=("sparsenet", "netx", "nir"), default="sparsenet",
                        help="output format (default: sparsenet)")
    export.add_argument("--precision", choices=("float", "fixed"), default=None,
                        help="float for sparsenet and nir, fixed (Loihi) for netx; the default is the format's own")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_tonic_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the datasets read through tonic (they must be absent for the built-in ones)."""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder holding a tonic dataset's files, in tonic's layout (README, \"Neuromorphic datasets through tonic\"); "
                             "nothing is downloaded")
    parser.add_argument("--downsample", type=_positive_int, default=None, metavar="FACTOR",
                        help="tonic datasets: spatial downsampling factor (34x34 with 2 -> 17x17; shd: channels) "
                             "(default: dvs-gesture 4, others 1)")
    parser.add_argument("--denoise-us", type=_microseconds, default=None, metavar="MICROSECONDS",
                        help="tonic camera datasets: drop events with no neighbour event within this time "
                             "(tonic's Denoise; default: off)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="cache of binned frames (default: $DPAP_CACHE_DIR or ~/.cache/dpap-neuro)")
    parser.add_argument("--no-cache", action="store_true", help="bin every sample again, each time")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="DataLoader worker processes reading a tonic dataset (default: 0)")


def add_lava_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lava-samples", type=_positive_int, default=None, metavar="N",
                        help="simulate a seeded subset of N test samples in Lava (default: all); the report "
                             "says how many samples each figure covers")
    parser.add_argument("--lava-chunk-size", type=_positive_int, default=512, metavar="N",
                        help="test samples per Lava subprocess; the test set is streamed in chunks (default: 512)")


def check_dataset_files(dataset: str, data_dir: str | None) -> None:
    """A tonic dataset's files must be in place before anything starts (one line saying what goes where)."""
    from dpap_neuro.data import NEUROMORPHIC
    from dpap_neuro.data.neuromorphic import check_files

    if dataset not in NEUROMORPHIC:
        if data_dir is not None:
            raise ValueError(f"--data-dir is for the tonic datasets ({', '.join(NEUROMORPHIC)}); "
                             f"{dataset} is built in")
        return
    spec = NEUROMORPHIC[dataset]
    if data_dir is None:
        raise ValueError(f"--dataset {dataset} is read from your files: give --data-dir DIR holding "
                         f"{spec.layout} (published at {spec.published_at})")
    for train in (True, False):
        check_files(spec, data_dir, train)


EXPORT_PRECISION = {"sparsenet": "float", "nir": "float", "netx": "fixed"}


def _ratio(value) -> str:
    return "undefined (dense is 0)" if value is None else f"{value:.3f}"


def cmd_compare(args) -> int:
    from dpap_neuro.pipeline import compare_runs

    check_output_path(args.out, "directory")
    if any(os.path.isfile(source) for source in args.sources):
        require_lava("compare")  # artifacts are simulated; run directories are only read

    report = compare_runs(args.sources, args.out, progress=not args.quiet)
    ratios = report["comparison"]["ratios"]
    print(f"{report['comparison']['pruned']} / {report['comparison']['baseline']}: synapses "
          f"{_ratio(ratios['synapses'])}, synops {_ratio(ratios['synops'])}, energy {_ratio(ratios['energy'])}")
    print(f"report: {os.path.join(args.out, 'report.html')}")
    return 0


def cmd_export(args) -> int:
    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.pipeline import artifact_metadata
    from hw_export.h5io import write_sparsenet
    from hw_export.norse_reader import from_norse

    check_output_path(args.out, "file")
    model, meta = load_checkpoint(args.checkpoint)
    config = RunConfig.from_dict(meta["config"])
    net = from_norse(list(model), meta["input_shape"],
                     metadata=artifact_metadata(config, meta["model_name"], meta["pruner"]))
    precision = args.precision or EXPORT_PRECISION[args.format]
    if precision != EXPORT_PRECISION[args.format]:
        raise ValueError(f"--format {args.format} is {EXPORT_PRECISION[args.format]} only; "
                         f"use --format {'netx' if precision == 'fixed' else 'sparsenet or nir'} for {precision}")
    if args.format == "netx":
        from hw_export.netx import write_netx

        write_netx(net, args.out)
    elif args.format == "nir":
        from hw_export.nir_export import write_nir
        from hw_export.norse_reader import modules_to_nir

        write_nir(modules_to_nir(list(model), meta["input_shape"]), args.out)
    else:
        write_sparsenet(net, args.out)
    print(f"{args.out}: {args.format} ({precision}), {net.depth} layers, {net.n_neurons} neurons, "
          f"{net.n_synapses} synapses")
    return 0


def cmd_simulate(args) -> int:
    from dpap_neuro.pipeline import simulate_artifact, strict_json
    from hw_export.files import atomic_write_text

    base = os.path.splitext(args.artifact)[0]
    out = args.out or f"{base}-{args.precision}.json"
    check_output_path(out, "file")
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint {args.checkpoint}: no such file")
    check_dataset_files(args.dataset, args.data_dir)
    require_lava("simulate")
    report = simulate_artifact(args.artifact, args.dataset, args.precision, args.timesteps, args.seed,
                               args.checkpoint, progress=not args.quiet, timeout_s=args.lava_timeout,
                               data_dir=args.data_dir, lava_samples=args.lava_samples,
                               chunk_size=args.lava_chunk_size, workers=args.workers)
    atomic_write_text(out, strict_json(report))
    line = f"{args.precision}: Lava accuracy {report['accuracy']['lava']:.4f} ({report['samples']['lava']} samples)"
    if "agreement" in report:
        line += (f", Norse accuracy {report['accuracy']['norse']:.4f}, spike agreement "
                 f"{report['agreement']['spikes']:.4f}, prediction agreement {report['agreement']['predictions']:.4f}")
    print(line)
    print(f"report: {out}")
    return 0


def cmd_run(args) -> int:
    import dataclasses

    from dpap_neuro.config import RunConfig
    from dpap_neuro.distributed import resolve_device, shutdown
    from dpap_neuro.pipeline import run

    if args.resume is None:
        check_dataset_files(args.dataset, args.data_dir)  # missing files: what to place where, first
    if (args.out is None) == (args.resume is None):
        raise ValueError("give either --out DIR (a new run) or --resume DIR (continue one)")
    if args.resume is not None:
        saved = os.path.join(args.resume, "config.json")
        if not os.path.isfile(saved):
            raise ValueError(f"--resume {args.resume}: no config.json (not a `dpap run` directory)")
        try:
            with open(saved) as fh:
                saved_config = json.load(fh)
            # Runs started before validation splits existed trained on the whole training split.
            saved_config.setdefault("val_fraction", 0.0)
            config = RunConfig.from_dict(saved_config)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{saved}: not a valid run config ({exc})") from None
        check_dataset_files(config.dataset, config.data_dir)
        changes = {"lava_timeout_s": args.lava_timeout}
        if args.device is not None:
            changes["device"] = args.device
        config = dataclasses.replace(config, **changes)
        args.out = args.resume
    else:
        from dpap_neuro.data import NEUROMORPHIC

        spec = NEUROMORPHIC.get(args.dataset)
        tonic = {} if spec is None else dict(
            data_dir=args.data_dir, downsample=args.downsample or spec.default_downsample,
            denoise_us=args.denoise_us, cache=not args.no_cache, cache_dir=args.cache_dir, workers=args.workers)
        if spec is None and (args.downsample or args.denoise_us or args.cache_dir or args.no_cache or args.workers):
            raise ValueError("--downsample, --denoise-us, --cache-dir, --no-cache and --workers are for the tonic "
                             f"datasets ({', '.join(NEUROMORPHIC)})")
        defaults = RunConfig()
        config = RunConfig(dataset=args.dataset, pruner=args.pruner,
                           pruner_options=dict(args.pruner_option) if args.pruner_option else None,
                           epochs=args.epochs, seed=args.seed, val_fraction=args.val_fraction,
                           timesteps=(args.timesteps if args.timesteps is not None
                                      else spec.default_timesteps if spec else defaults.timesteps),
                           model=args.model or (spec.default_model if spec else defaults.model),
                           hidden_sizes=tuple(args.hidden), conv_channels=tuple(args.conv_channels),
                           energy_profile=args.energy_profile, lava_timeout_s=args.lava_timeout,
                           lava_samples=args.lava_samples, lava_chunk_size=args.lava_chunk_size,
                           device=args.device or defaults.device, **tonic)
    check_output_path(args.out, "directory")
    resolve_device(config.device)  # a device that is not there: one line before any work
    require_lava("run")
    try:
        report = run(config, args.out, progress=not args.quiet, resume=args.resume is not None)
    finally:
        shutdown()
    if report is None:  # a data-parallel rank other than 0: rank 0 reports
        return 0
    ratios = report["comparison"]["ratios"]
    for name, model in report["models"].items():
        print(f"{name:>10}: Norse accuracy {model['accuracy']['norse']:.4f}, Lava accuracy "
              f"{model['accuracy']['lava']:.4f}, spike agreement {model['agreement']['spikes']:.4f}, "
              f"{model['synapses']} synapses, {model['neurons']} neurons; Loihi fixed point: accuracy "
              f"{model['fixed']['accuracy']:.4f}, prediction agreement {model['fixed']['agreement']['predictions']:.4f}")
    print(f"pruned/dense: synapses {_ratio(ratios['synapses'])}, synops {_ratio(ratios['synops'])}, "
          f"energy {_ratio(ratios['energy'])}")
    data = report["dataset"]
    if data["n_lava"] != data["n_test"]:
        print(f"Norse accuracy: all {data['n_test']} test samples; Lava figures: {data['n_lava']} of them "
              "(--lava-samples)")
    print(f"report: {os.path.join(args.out, 'report.md')} and report.html")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done; 2 bad input or a failed step (one ``dpap: error:`` line); 130 / 143 interrupted
    by SIGINT / SIGTERM (one ``dpap: interrupted`` line; the Lava subprocess and its temporary files are gone)."""
    import signal

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
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from dpap_neuro.checkpoint import CheckpointError
    from hw_export.files import ArtifactError
    from hw_export.lava_subprocess import LavaRunError

    handlers = {"run": cmd_run, "simulate": cmd_simulate, "export": cmd_export, "compare": cmd_compare}
    try:
        return handlers[args.command](args)
    except (ValueError, CheckpointError, ArtifactError, LavaRunError, OSError) as exc:
        print(f"dpap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
