"""The ``dpap`` command as a user runs it: real subprocesses, real files."""

import json
import subprocess
import sys

import pytest

from conftest import assert_same_lava_result, needs_lava

DPAP = [sys.executable, "-m", "dpap_neuro.cli"]


def dpap(*args, cwd=None):
    return subprocess.run([*DPAP, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_help_describes_every_run_option():
    top = dpap("--help")
    assert top.returncode == 0 and "run" in top.stdout
    run_help = dpap("run", "--help").stdout
    for option in ["--out", "--dataset", "--pruner", "--epochs", "--timesteps", "--seed"]:
        assert option in run_help


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--pruner-option", "target_sparsity=2"], "target_sparsity"),
    (["--pruner-option", "nonsense=1"], "has no option nonsense"),
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
                  "--hidden", "24", "--dataset", "digits", "--pruner", "gmp")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1
    assert report["dataset"] == {"name": "digits", "n_train": 1437, "n_test": 360, "timesteps": 8}
    assert set(report["models"]) == {"dense", "gmp"}
    for name, model in report["models"].items():
        assert (out / f"{name}.pt").is_file() and (out / f"{name}.h5").is_file()
        assert model["agreement"] == {**model["agreement"], "spikes": 1.0, "predictions": 1.0}
        assert 0.0 <= model["accuracy"]["norse"] <= 1.0
        assert model["accuracy"]["lava"] == model["accuracy"]["norse"]
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
    assert sim_report["accuracy"] == report["models"]["gmp"]["accuracy"]
    assert sim_report["agreement"]["spikes"] == 1.0
    assert sim_report["per_sample"] == report["models"]["gmp"]["per_sample"]

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
    from hw_export.lava_sim import simulate
    from hw_export.norse_reader import from_norse

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
    direct = from_norse(list(model), (64,))
    inputs = (np.random.default_rng(0).random((10, 6, 64)) < 0.3).astype(float)
    assert_same_lava_result(simulate(direct, inputs, batch_size=6, progress=False),
                            simulate(exported, inputs, batch_size=6, progress=False))

    missing = dpap("export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.h5"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert not (tmp_path / "x.h5").exists()


def small_checkpoint(tmp_path):
    import torch

    from dpap_neuro.checkpoint import save_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.models import build_model

    config = RunConfig(hidden_sizes=(12,), timesteps=10, dataset="digits")
    torch.manual_seed(0)
    model = build_model((64,), config.hidden_sizes, 10, **config.model_kwargs())
    save_checkpoint(tmp_path / "m.pt", model, config, "dense", "none", (64,), 10)
    return tmp_path / "m.pt"


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
