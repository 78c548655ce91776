"""The ``dpap`` command as a user runs it: real subprocesses, real files."""

import json
import subprocess
import sys

import pytest

from conftest import needs_lava

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
