"""The ``dpap`` command as a user runs it: real subprocesses, real files."""

import functools
import json
import math
import os
import re
import subprocess
import sys

import pytest

from conftest import assert_same_lava_result, needs_lava, without_timings

DPAP = [sys.executable, "-m", "dpap_neuro.cli"]


def dpap(*args, cwd=None):
    return subprocess.run([*DPAP, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def flag(name):
    from dpap_neuro.cli import CLI_NAMES

    return CLI_NAMES.get(name, "--" + name.replace("_", "-"))


def unspaced(text):
    return "".join(text.split())  # argparse wraps help text wherever it likes


@functools.lru_cache(maxsize=1)
def parser():
    from dpap_neuro.cli import build_parser

    return build_parser()


def test_help_describes_every_run_option(capsys):
    import dataclasses

    from dpap_neuro.cli import COMPARE_FIELDS, SIMULATE_FIELDS
    from dpap_neuro.config import RunConfig, field_help

    top = dpap("--help")
    assert top.returncode == 0 and all(command in top.stdout for command in ("run", "simulate", "compare", "export"))
    comments = field_help()
    fields = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    assert set(comments) == set(fields)  # every field has its comment, the option's help
    for command, names in (("run", list(fields)), ("simulate", SIMULATE_FIELDS), ("compare", COMPARE_FIELDS)):
        with pytest.raises(SystemExit) as done:
            parser().parse_args([command, "--help"])  # `dpap COMMAND --help`, in this process
        assert done.value.code == 0
        text = unspaced(capsys.readouterr().out)
        for name in names:
            described = unspaced(flag(name)) + ".*?" + re.escape(unspaced(comments[name].replace("None: ", "default: ")))
            default = fields[name]
            if default is not None and not isinstance(default, bool):
                value = " ".join(map(str, default)) if isinstance(default, tuple) else str(default)
                described += re.escape(unspaced(f"(default: {value})"))
            assert re.search(described, text), f"`dpap {command} --help` does not describe {flag(name)} ({name})"
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "--help"])
    run_help = capsys.readouterr().out
    assert all(option in run_help for option in ("--out", "--resume", "--quiet"))


def parse_run(*args):
    """``dpap run``'s parser on ``args`` (in this process), and the RunConfig fields the options gave."""
    import dataclasses

    from dpap_neuro.cli import config_from_args
    from dpap_neuro.config import RunConfig

    parsed = parser().parse_args(["run", "--out", "unused", *map(str, args)])
    return parsed, config_from_args(parsed, [f.name for f in dataclasses.fields(RunConfig)])


TONIC_ONLY = ("data_dir", "downsample", "denoise_us", "cache_dir", "workers")


def test_the_command_line_accepts_every_fields_default_value():
    """What a user hits when the option's own default is refused (``--loihi-finetune-epochs 0`` was)."""
    import dataclasses

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import dataset_defaults

    filled = {**dataset_defaults("nmnist"), **dataset_defaults("digits-events")}
    tried = []
    for field in dataclasses.fields(RunConfig):
        default = filled.get(field.name) if field.default is None else field.default
        if default is None or isinstance(default, (bool, dict)):
            continue  # None: leave the option out; a bool is a switch (--no-cache); a dict is built KEY=VALUE
        tonic = ["--dataset", "nmnist", "--data-dir", "d"] if field.name in TONIC_ONLY else []
        values = default if isinstance(default, tuple) else (default,)
        _, given = parse_run(*tonic, flag(field.name), *values)  # an argparse error would exit here
        assert given[field.name] == default
        assert getattr(RunConfig(**given), field.name) == default
        tried.append(field.name)
    assert {"loihi_finetune_epochs", "seed", "workers", "epochs", "timesteps", "hidden_sizes"} <= set(tried)


def test_loihi_finetune_epochs_0_its_default_is_accepted():
    from dpap_neuro.cli import run_config

    parsed, _ = parse_run("--loihi-finetune-epochs", "0")
    config, out = run_config(parsed)
    assert config.loihi_finetune_epochs == 0 and not config.loihi_exact and out == "unused"


@pytest.mark.parametrize("value", [-2, -1, 0, 0.5, 1, 3])
def test_the_command_line_and_runconfig_refuse_the_same_values(value):
    """The CLI checks each number option by RunConfig's own table, so they accept and refuse alike."""
    import dataclasses
    import typing

    from dpap_neuro.config import RunConfig
    from hw_export.errors import UserError

    hints = typing.get_type_hints(RunConfig)
    numbers = [f.name for f in dataclasses.fields(RunConfig)
               if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}]
    assert len(numbers) >= 20
    for name in numbers:
        if int in {hints[name], *typing.get_args(hints[name])} and value != int(value):
            continue
        context = {"dataset": "nmnist", "data_dir": "d"} if name in TONIC_ONLY else {}
        try:
            parse_run(*[a for k, v in context.items() for a in (flag(k), v)], flag(name), value)
            cli_accepts = True
        except SystemExit:
            cli_accepts = False
        try:
            RunConfig(**context, **{name: (value,) if typing.get_origin(hints[name]) is tuple else value})
            config_accepts = True
        except UserError as refusal:
            config_accepts = not str(refusal).startswith(f"{name} must be ")  # not its own range: another rule
        assert cli_accepts == config_accepts, f"{flag(name)} {value}: command line {cli_accepts}, RunConfig {config_accepts}"


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "argument --epochs: expected an integer >= 1, got '0'"),
    (["--epochs", "many"], "argument --epochs: expected an integer >= 1, got 'many'"),
    (["--loihi-finetune-epochs", "-1"], "argument --loihi-finetune-epochs: expected an integer >= 0, got '-1'"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["--warmup-epochs", "30"], "warmup_epochs must be in [0, epochs)"),
    (["--pruner-option", "target_sparsity=2"], "target_sparsity"),
    (["--pruner-option", "nonsense=1"], "has no option nonsense"),
    (["--model", "ann-mlp"], "is an ANN (ReLU): the pruners train it, but it has no spiking export"),
    (["--val-fraction", "1.5"], "argument --val-fraction: expected a number in [0, 1), got '1.5'"),
    (["--downsample", "2"], "--downsample: for the tonic datasets"),
    (["--data-dir", "/data"], "--data-dir: for the tonic datasets"),
    (["--dataset", "shd"], "--dataset shd is read from your files: give --data-dir DIR holding DIR/SHD/shd_train.h5"),
])
def test_bad_input_is_one_clear_line_and_nothing_written(tmp_path, args, message):
    out = tmp_path / "run"
    result = dpap("run", "--out", str(out), "--quiet", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpap: error:") and message in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_unknown_dataset_is_rejected_by_the_parser(tmp_path):
    result = dpap("run", "--out", str(tmp_path), "--dataset", "mnist")
    assert result.returncode == 2 and "invalid choice" in result.stderr


@needs_lava
def test_run_writes_the_report_contract(tmp_path):
    out = tmp_path / "run"
    result = dpap("run", "--out", str(out), "--quiet", "--epochs", "2", "--timesteps", "8",
                  "--hidden", "24", "--dataset", "digits", "--pruner", "gmp", "--val-fraction", "0.1")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 2
    # 1,437 training digits, 10 % of them (stratified) held out for validation.
    assert report["dataset"] == {"name": "digits", "n_train": 1293, "n_validation": 144, "n_test": 360,
                                 "n_lava": 360, "timesteps": 8, "input_shape": [64]}
    assert set(report["models"]) == {"dense", "gmp"}
    for name, model in report["models"].items():
        assert (out / f"{name}.pt").is_file() and (out / f"{name}.h5").is_file()
        assert model["agreement"] == {**model["agreement"], "spikes": 1.0, "predictions": 1.0}
        assert 0.0 <= model["accuracy"]["norse"] <= 1.0
        assert model["accuracy"]["lava"] == model["accuracy"]["norse"]
        assert 0.0 <= model["accuracy"]["validation"] <= 1.0
        assert set(model["per_sample"]) >= {"spikes", "synops", "neuron_updates", "energy_j"}
        assert model["per_sample"]["energy_j"]["loihi"] > 0
        assert sum(layer["synapses"] for layer in model["layers"]) == model["synapses"]
        assert sum(layer["neurons"] for layer in model["layers"]) == model["neurons"]
        assert sum(layer["synops"] for layer in model["layers"]) == pytest.approx(model["per_sample"]["synops"])
    comparison = report["comparison"]
    assert comparison["baseline"] == "dense" and comparison["pruned"] == "gmp"
    dense, gmp = report["models"]["dense"], report["models"]["gmp"]
    assert comparison["ratios"]["synapses"] == pytest.approx(gmp["synapses"] / dense["synapses"])
    assert comparison["ratios"]["synapses"] < 0.5
    assert "| dense |" in (out / "report.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    for model in report["models"].values():
        fixed = model["fixed"]
        assert 0.0 <= fixed["accuracy"] <= 1.0 and fixed["agreement"]["predictions"] > 0.8

    # `dpap simulate` on the exported artifact reproduces the run's float numbers.
    simulated = dpap("simulate", str(out / "gmp.h5"), "--dataset", "digits", "--quiet")
    assert simulated.returncode == 0, simulated.stderr
    sim_report = json.loads((out / "gmp-float.json").read_text())
    # simulate sees the test set only: the run's validation accuracy has no counterpart there.
    run_accuracy = {k: v for k, v in report["models"]["gmp"]["accuracy"].items() if k != "validation"}
    assert sim_report["result"]["accuracy"] == run_accuracy
    assert sim_report["result"]["agreement"]["spikes"] == 1.0
    assert sim_report["result"]["per_sample"] == report["models"]["gmp"]["per_sample"]

    # A network and a dataset that do not fit together: one clear line.
    wrong = dpap("simulate", str(out / "gmp.h5"), "--dataset", "digits-events", "--quiet")
    assert wrong.returncode == 2 and "takes inputs of shape" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


@needs_lava
def test_export_round_trip_gives_identical_spikes(tmp_path):
    """Checkpoint -> `dpap export` -> read back -> Lava spikes identical to the direct export."""
    import numpy as np
    import torch

    from dpap_neuro.checkpoint import save_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import GMPPruner
    from hw_export.h5io import read_sparsenet
    from hw_export.lava_sim import SimOptions, simulate
    from hw_export.norse import export_model

    config = RunConfig(hidden_sizes=(12,), timesteps=10, dataset="digits")
    torch.manual_seed(0)
    model = build_model((64,), config.hidden_sizes, 10, **config.model_kwargs())
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=4)
    pruner.update(4)
    save_checkpoint(tmp_path / "m.pt", model, config, "gmp", "gmp", (64,), 10)
    result = dpap("export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.h5"))
    assert result.returncode == 0, result.stderr
    exported = read_sparsenet(tmp_path / "m.h5")
    assert exported.metadata["timesteps"] == 10 and exported.metadata["dataset"] == "digits"
    direct = export_model(model, (64,))
    inputs = (np.random.default_rng(0).random((10, 6, 64)) < 0.3).astype(float)
    assert_same_lava_result(simulate(direct, inputs, SimOptions(batch_size=6), progress=False),
                            simulate(exported, inputs, SimOptions(batch_size=6), progress=False))

    missing = dpap("export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.h5"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert not (tmp_path / "x.h5").exists()


def small_checkpoint(tmp_path, input_shape=(64,), model="mlp"):
    import torch

    from dpap_neuro.checkpoint import save_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.models import build_model

    dataset = "digits" if input_shape == (64,) else "digits-events"
    config = RunConfig(hidden_sizes=(12,), timesteps=10, dataset=dataset, model=model, conv_channels=(4, 6))
    torch.manual_seed(0)
    net = build_model(input_shape, config.hidden_sizes, 10, **config.model_kwargs())
    save_checkpoint(tmp_path / "m.pt", net, config, "dense", "none", input_shape, 10)
    return tmp_path / "m.pt"


@pytest.mark.parametrize("input_shape, model", [((64,), "mlp"), ((2, 8, 8), "mlp"), ((2, 8, 8), "conv")])
def test_every_model_kind_exports_to_nir_with_its_pruned_topology(tmp_path, input_shape, model):
    """NIR carries the SparseNet: a chain of Affine and neuron nodes on flat input (conv unrolled), dead neurons gone."""
    import nir

    ckpt = small_checkpoint(tmp_path, input_shape, model)
    result = dpap("export", str(ckpt), "--out", str(tmp_path / "m.nir"), "--format", "nir")
    assert result.returncode == 0, result.stderr
    graph = nir.read(tmp_path / "m.nir")
    chain, node = [], "input"
    successors = dict(graph.edges)
    while successors.get(node, "output") != "output":
        node = successors[node]
        chain.append(type(graph.nodes[node]).__name__)
    n_lif = 3 if model == "conv" else 1  # conv: two conv blocks and one hidden layer of 12
    assert chain == ["Affine", "CubaLIF"] * n_lif + ["Affine", "CubaLI"]
    assert list(graph.nodes["input"].input_type["input"]) == [math.prod(input_shape)]
    assert list(graph.nodes["output"].output_type["output"]) == [10]
    assert graph.nodes["fc1"].weight.shape[1] == math.prod(input_shape)
    wrong = dpap("export", str(ckpt), "--out", str(tmp_path / "m.h5"), "--nir-target", "norse")
    assert wrong.returncode == 2 and "--nir-target is for --format nir" in wrong.stderr


def test_export_formats_and_precision_rules(tmp_path):
    import h5py
    import nir

    ckpt = small_checkpoint(tmp_path)
    for fmt, name in (("netx", "m-netx.h5"), ("nir", "m.nir"), ("sparsenet", "m.h5")):
        result = dpap("export", str(ckpt), "--out", str(tmp_path / name), "--format", fmt)
        assert result.returncode == 0, result.stderr
    with h5py.File(tmp_path / "m-netx.h5") as f:
        assert f["layer/0/type"][0] == b"input" and f["layer/1/neuron/type"][0] == b"CUBA"
    assert "lif1" in nir.read(tmp_path / "m.nir").nodes
    wrong = dpap("export", str(ckpt), "--out", str(tmp_path / "x.h5"), "--format", "netx", "--precision", "float")
    assert wrong.returncode == 2 and "netx is fixed only" in wrong.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable HDF5"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 40, "not a readable HDF5"),
    (b"plain text", "not a readable HDF5"),
])
def test_bad_artifacts_get_one_line_naming_the_file(tmp_path, content, message):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    result = dpap("simulate", str(bad), "--dataset", "digits", "--quiet")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert str(bad) in lines[0] and message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_checkpoint_gets_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04junk")
    result = dpap("export", str(bad), "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 2 and str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def long_simulation_artifact(tmp_path):
    """A network on the built-in digits with 3,000 steps per sample: Lava runs long enough to be interrupted."""
    import torch

    from dpap_neuro.models import SpikingMLP
    from hw_export.h5io import write_sparsenet
    from hw_export.norse import export_model

    torch.manual_seed(0)
    path = tmp_path / "net.h5"
    meta = {"dataset": "digits", "timesteps": 3000, "seed": 0, "test_fraction": 0.2, "model": "m"}
    write_sparsenet(export_model(list(SpikingMLP(64, [64], 10)), (64,), meta), path)
    return path


# When the signal lands, by the processes carrying the test's token: dpap (1), its Lava child importing (2),
# Lava's resource tracker, shared-memory manager, runtime service and two process models being forked (3-7:
# the runtime starting), all of them there (7: running).
INTERRUPT_MOMENTS = [("SIGINT to the process group (Ctrl-C)", 130, 2), ("SIGTERM to dpap alone", 143, 3),
                     ("SIGINT to the process group (Ctrl-C)", 130, 5), ("SIGTERM to dpap alone", 143, 6),
                     ("SIGTERM to dpap alone (kill, timeout, schedulers)", 143, 7)]


@pytest.fixture
def sigint_default():
    """dpap starts with SIGINT's default action (so Python makes it KeyboardInterrupt), also where pytest was
    started with SIGINT ignored (a background job of a shell without job control), which children inherit."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@needs_lava
@pytest.mark.parametrize("how, status, processes", INTERRUPT_MOMENTS)
def test_interrupting_simulate_leaves_no_process_and_no_temporary_folder(tmp_path, how, status, processes,
                                                                         sigint_default):
    """Whenever it lands, also while a Lava runtime starts: within 5 s, one line, nothing left (shared memory too)."""
    import os
    import uuid

    from conftest import SharedMemoryWatch, interrupt_and_wait, processes_with_env, wait_for_processes

    artifact = long_simulation_artifact(tmp_path)
    token, temp = uuid.uuid4().hex, tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "DPAP_TEST_TOKEN": token, "TMPDIR": str(temp)}
    stderr_path = tmp_path / "stderr.txt"  # a file, not a pipe: output nobody reads yet can never block dpap
    with SharedMemoryWatch(token) as watch, open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([*DPAP, "simulate", str(artifact), "--dataset", "digits", "--quiet"], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        # Generous: a cold start (torch's libraries read from disk) is not what this test is about.
        wait_for_processes(token, processes, proc, 300, stderr_path)
        took_s = interrupt_and_wait(proc, sigint=status == 130, timeout_s=60)
    assert took_s < 5.0
    assert proc.returncode == status
    assert stderr_path.read_text().strip().splitlines() == ["dpap: interrupted"]
    assert processes_with_env(token) == []
    assert os.listdir(temp) == []
    assert not (tmp_path / "net-float.json").exists()
    assert watch.left() == set(), "shared memory left behind"


@pytest.mark.parametrize("args, message", [
    (["--pruner", "dpap", "--pruner-option", "fc_neuron_c=abc"], "dpap: option fc_neuron_c must be a finite number"),
    (["--pruner", "dpap", "--pruner-option", "schedule_unit=weekly"], "schedule_unit must be 'epoch', 'batches' or 'run'"),
    (["--pruner", "gmp", "--pruner-option", "target_sparsity=high"], "gmp: option target_sparsity must be a finite"),
    (["--pruner", "random", "--pruner-option", "sparsity=[0.5, \"x\"]"], "random: option sparsity must be a finite"),
    (["--pruner", "magnitude", "--pruner-option", "at_epoch=1.5"], "magnitude: option at_epoch must be an integer"),
    (["--energy-profile", "loihi3"], "unknown energy profile 'loihi3'"),
])
def test_bad_options_fail_before_any_work(tmp_path, args, message):
    out = tmp_path / "run"
    result = dpap("run", "--out", str(out), "--quiet", *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("change, message", [
    ({"name": "loihi"}, "is a built-in profile's; give yours another name"),
    ({"e_synop_pj": -1.0}, "e_synop_pj must be a non-negative number"),
    ({"e_spike_pj": "NaN"}, "e_spike_pj must be a non-negative number"),
    ({"e_typo_pj": 1.0}, "unknown fields e_typo_pj"),
])
def test_bad_energy_profiles_fail_before_any_work(tmp_path, change, message):
    from hw_export.energy import LOIHI

    fields = {**LOIHI.to_dict(), "name": "mine", **change}
    profile = tmp_path / "mine.json"
    profile.write_text(json.dumps(fields).replace('"NaN"', "NaN"))
    out = tmp_path / "run"
    result = dpap("run", "--out", str(out), "--quiet", "--energy-profile", str(profile))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_bad_paths_are_refused_before_any_work(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["run", "--out", str(a_file), "--quiet"], "is a file, not a directory"),
        (["run", "--out", str(a_file / "run"), "--quiet"], "is a file, so nothing can be written inside it"),
        (["export", str(small_checkpoint(tmp_path)), "--out", str(tmp_path)], "is a directory, not a file"),
        (["compare", str(tmp_path / "nowhere"), str(tmp_path / "nothing"), "--out", str(tmp_path / "c")],
         "no such run directory or artifact"),
    ]
    artifact = tmp_path / "m.h5"
    assert dpap("export", str(small_checkpoint(tmp_path)), "--out", str(artifact)).returncode == 0
    cases.append((["simulate", str(artifact), "--dataset", "digits", "--checkpoint", str(tmp_path / "typo.pt")],
                  "typo.pt: no such file"))
    for args, message in cases:
        result = dpap(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)
    assert a_file.read_text() == "x"


def test_a_missing_lava_is_reported_before_training(tmp_path, monkeypatch, capsys):
    import importlib.util

    from dpap_neuro import cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lava" else real_find_spec(name, *a))
    status = cli.main(["run", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "lava-nc is not installed" in err[0]
    assert not (tmp_path / "run").exists()


def fake_run(directory, models=("dense", "dpap"), spikes=10.0):
    from conftest import small_report

    directory.mkdir(parents=True)
    report = small_report(models)
    for model in report["models"].values():
        model["per_sample"] = {**model["per_sample"], "spikes": spikes}
    (directory / "report.json").write_text(json.dumps(report))
    return directory


def test_compare_refuses_two_runs_that_give_the_same_model_name(tmp_path):
    first, second = fake_run(tmp_path / "a" / "run"), fake_run(tmp_path / "b" / "run")
    result = dpap("compare", str(first), str(second), "--out", str(tmp_path / "c"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "'run/dense' came already from an earlier source" in lines[0]


def test_compare_names_what_an_incomplete_report_lacks(tmp_path):
    run = fake_run(tmp_path / "x")
    report = json.loads((run / "report.json").read_text())
    del report["models"]["dpap"]["per_sample"]["synops"]
    (run / "report.json").write_text(json.dumps(report))
    result = dpap("compare", str(run), "--out", str(tmp_path / "c"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "models.dpap.per_sample.synops is missing" in lines[0]


def test_an_undefined_ratio_is_json_null_not_nan(tmp_path):
    run = fake_run(tmp_path / "x", spikes=0.0)
    result = dpap("compare", str(run), "--out", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "c" / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert report["comparison"]["ratios"]["spikes"] is None
    assert "spikes undefined" not in result.stdout  # only synapses, synops and energy are printed


@needs_lava
def test_the_same_command_twice_gives_the_same_report(tmp_path):
    reports = []
    for name in ("first", "second"):
        result = dpap("run", "--out", str(tmp_path / name), "--quiet", "--epochs", "2", "--timesteps", "6",
                      "--hidden", "16", "--dataset", "digits-events", "--pruner", "dpap",
                      "--pruner-option", "batches_per_unit=2", "--pruner-option", "warmup_units=1")
        assert result.returncode == 0, result.stderr
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    assert reports[0]["models"]["dpap"]["training"]["sparsity"][-1] > 0  # DPAP did prune, both times
    assert without_timings(reports[0]) == without_timings(reports[1])


@pytest.mark.parametrize("fmt", ["sparsenet", "netx", "nir"])
def test_an_ann_checkpoint_is_refused_by_every_export_with_the_reason(tmp_path, fmt):
    ckpt = small_checkpoint(tmp_path, (2, 8, 8), "ann-mlp")
    result = dpap("export", str(ckpt), "--out", str(tmp_path / "m.out"), "--format", fmt)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "(ReLU): an ANN activation is not a spiking neuron" in lines[0]
    assert not (tmp_path / "m.out").exists()


def test_a_bug_shows_its_traceback_and_says_it_is_one_while_bad_input_is_one_line(tmp_path):
    # The child imports sitecustomize from PYTHONPATH at start-up: there, a bug planted in the export.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import hw_export.norse.export as export\n"
        "def broken(*args, **kwargs):\n    raise ValueError('an internal shape mismatch')\n"
        "export.export_model = broken\nimport hw_export.norse\nhw_export.norse.export_model = broken\n")
    ckpt = small_checkpoint(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])}
    crashed = subprocess.run([*DPAP, "export", str(ckpt), "--out", str(tmp_path / "m.h5")], capture_output=True,
                             text=True, env=env, timeout=300)
    assert crashed.returncode == 1
    assert "Traceback" in crashed.stderr and "ValueError: an internal shape mismatch" in crashed.stderr
    assert crashed.stderr.strip().splitlines()[-1].startswith("dpap: internal error (a bug in dpap-neuro")
    assert not (tmp_path / "m.h5").exists()
