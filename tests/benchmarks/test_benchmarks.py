"""Every benchmark script runs to its end on tiny settings (slow: `pytest -m slow`).

Benchmarks print measured ratios and never assert timings; these tests only
make sure a broken benchmark is noticed: each runs as a user runs it, exits
0, and prints its documented last line with a finite number.
"""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_lava

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_script(name, *args, timeout=900):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def last_number(stdout, key):
    line = stdout.strip().splitlines()[-1]
    match = re.fullmatch(rf"{key}: (\S+)", line)
    assert match, f"last line is {line!r}, expected '{key}: X'"
    value = float(match.group(1))
    assert math.isfinite(value) and value > 0
    return value


def test_overhead(tmp_path):
    out = run_script("overhead.py", "--dataset", "digits", "--epochs", "1", "--repeats", "1")
    last_number(out, "dpap_overhead_ratio")


def test_pareto(tmp_path):
    tiny = ["--datasets", "digits", "--models", "mlp", "--seeds", "0", "--epochs", "2", "--workers", "1",
            "--hidden", "16", "16", "--out", tmp_path]
    run_script("pareto.py", "--stage", "recipes", *tiny)
    recipes = json.loads((tmp_path / "pareto.json").read_text())
    assert set(recipes["recipes"]) == {"digits/mlp"} and len(recipes["recipe_runs"]) == 3
    out = run_script("pareto.py", "--grid", "quick", *tiny)
    saved = json.loads((tmp_path / "pareto.json").read_text())
    chosen = recipes["recipes"]["digits/mlp"]
    assert all(r["recipe_name"] == chosen for r in saved["runs"])  # every method trains with the chosen recipe
    # The dense model of the chosen recipe is the recipe stage's run, not trained again.
    dense = [(r["seed"], r["train_wall_time_s"]) for r in saved["runs"] if r["method"] == "dense"]
    assert dense == [(r["seed"], r["train_wall_time_s"]) for r in recipes["recipe_runs"] if r["recipe_name"] == chosen]
    assert ", 1 kept" in out
    assert {"dense", "dpap", "dpap (authors)", "dpap+", "gmp", "magnitude", "random", "structured"} == {
        r["method"] for r in saved["runs"]}
    assert all(0.0 <= r["validation_accuracy"] <= 1.0 and r["energy_j"] > 0 for r in saved["runs"])
    # One selected row per method and strength, each the candidate with the best validation accuracy.
    for row in saved["selected"]:
        runs = [r for r in saved["runs"] if (r["method"], r["strength"]) == (row["method"], row["strength"])]
        assert row["validation_accuracy"] == max(r["validation_accuracy"] for r in runs)
    assert (tmp_path / "pareto_digits_mlp.png").stat().st_size > 0
    assert "digits mlp: dpap+ c=1.0 dominated by:" in out and "goals for dpap+ c=1.0" in out


def test_pareto_update_redoes_only_the_named_methods(tmp_path):
    tiny = ["--datasets", "digits", "--models", "mlp", "--seeds", "0", "--epochs", "1", "--workers", "1",
            "--grid", "quick", "--hidden", "16", "16", "--out", tmp_path]
    (tmp_path / "pareto.json").write_text(json.dumps({"recipes": {"digits/mlp": "adam"}}))
    run_script("pareto.py", *tiny, "--methods", "random")
    first = json.loads((tmp_path / "pareto.json").read_text())
    if not first["runs"][0]["commit"].endswith("+uncommitted"):  # committed code: its runs are kept in OUT/trials
        run_script("pareto.py", *tiny, "--methods", "random")  # as after an interrupt: nothing trained again
        assert json.loads((tmp_path / "pareto.json").read_text())["runs"] == first["runs"]
    out = run_script("pareto.py", *tiny, "--methods", "magnitude", "--update")
    assert "training runs on 1 workers, 3 kept" in out  # dense and random (1 strength x 2 candidates): kept
    second = json.loads((tmp_path / "pareto.json").read_text())
    assert {r["method"] for r in second["runs"]} == {"dense", "random", "magnitude"}
    kept = [r for r in second["runs"] if r["method"] != "magnitude"]
    assert kept == first["runs"] and all(r["commit"] for r in second["runs"])
    mismatch = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pareto.py"), *map(str, tiny[:-1]),
                               str(tmp_path), "--epochs", "2", "--methods", "gmp", "--update"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert mismatch.returncode != 0 and "--update" in mismatch.stderr and "holds runs of --epochs 1" in mismatch.stderr


def test_ann_dpap(tmp_path):
    out = run_script("ann_dpap.py", "--datasets", "digits", "--models", "ann-mlp", "--seeds", "0", "--epochs", "1",
                     "--workers", "1", "--out", tmp_path)
    assert re.search(r"digits ann-mlp: dpap minus gmp at the same synapse sparsity: [+-]\d+\.\d+ points", out)
    saved = json.loads((tmp_path / "ann_dpap.json").read_text())
    assert {"dense", "dpap", "gmp"} == {r["method"] for r in saved["runs"]} and saved["commit"]


def test_ann_dpap_chooses_gmp_settings_over_all_seeds():
    """gmp's per-seed targets differ; its schedule is still chosen on the mean over seeds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ann_dpap import best

    def run(seed, target, start, validation):
        return {"seed": seed, "options": {"target_sparsity": target, "start_fraction": start},
                "validation_accuracy": validation}

    runs = [run(0, 0.58, 0.1, 0.90), run(1, 0.61, 0.1, 0.80), run(0, 0.58, 0.2, 0.88), run(1, 0.61, 0.2, 0.86)]
    chosen = best(runs)
    assert [r["seed"] for r in chosen] == [0, 1]
    assert {r["options"]["start_fraction"] for r in chosen} == {0.2}  # mean 0.87 beats 0.85


@needs_lava
def test_conv_lava():
    out = run_script("conv_lava.py", "--samples", "2", "--batch", "2")
    match = re.search(r"spikes in the first 2 samples: (\d+); Lava Conv vs unrolled Sparse spike agreement: "
                      r"(\S+); batched == one at a time: (\w+)", out)
    assert match, out
    assert int(match[1]) > 0  # spikes to agree on (no spikes would agree trivially)
    assert float(match[2]) == 1.0 and match[3] == "True"  # docs/lava.md: identical spikes
    last_number(out, "unrolled_batched_over_lava_conv")


@needs_lava
def test_lava_throughput(tmp_path):
    run = tmp_path / "run"
    made = subprocess.run([sys.executable, "-m", "dpap_neuro.cli", "run", "--out", str(run), "--quiet",
                           "--dataset", "digits", "--epochs", "1", "--timesteps", "6", "--hidden", "16",
                           "--lava-check-samples", "0"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    out = run_script("lava_throughput.py", "--run", run, "--samples", "40", "--processes-samples", "4",
                     "--conv-samples", "3", "--conv-processes-samples", "1", "--timesteps", "4",
                     "--kernel-samples", "2")
    assert "fast_vs_norse_pruned_mlp: " in out.strip().splitlines()[-2]
    assert re.search(r"pruned/dense \(fast, fixed\): simulation time [\d.]+, synaptic operations [\d.]+", out)
    assert "peak memory of its processes" in out
    last_number(out, "nmnist_conv_fast_samples_per_s")


@needs_lava
def test_lava_interrupts():
    out = run_script("lava_interrupts.py", "--tries", "2")
    assert out.strip().splitlines()[-1] == "leaks_in_2_interrupts: 0", out


def test_train_throughput():
    out = run_script("train_throughput.py", "--dataset", "digits", "--epochs", "1")
    rates = {(m[1], int(m[2])): float(m[3])
             for m in re.finditer(r"^\s*(dense|dpap), (\d) process\(es\):\s+(\S+) samples/s$", out, re.M)}
    assert set(rates) == {("dense", 1), ("dense", 2), ("dpap", 1), ("dpap", 2)}, out
    assert all(math.isfinite(rate) and rate > 0 for rate in rates.values())
    # Each ratio is the one its label names, from the rates printed above it.
    ratios = dict(re.findall(r"^(\w+_\dproc): (\S+)$", out, re.M))
    assert float(ratios["dpap_overhead_1proc"]) == pytest.approx(rates["dense", 1] / rates["dpap", 1], rel=5e-3)
    assert float(ratios["dense_scaling_2proc"]) == pytest.approx(rates["dense", 2] / rates["dense", 1], rel=5e-3)
    scaling = last_number(out, "ddp_scaling_2proc")
    assert scaling == pytest.approx(rates["dpap", 2] / rates["dpap", 1], rel=5e-3)


@needs_lava
@pytest.mark.netx
def test_netx_agreement(tmp_path):
    run = subprocess.run([sys.executable, "-m", "dpap_neuro.cli", "run", "--out", str(tmp_path / "run"), "--quiet",
                          "--epochs", "1", "--timesteps", "6", "--hidden", "16", "--dataset", "digits",
                          "--pruner", "gmp"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run_script("netx_agreement.py", tmp_path / "run", "--samples", "8")
    assert "dense: 8 samples; lava-dl vs ours (fixed): predictions 1.0000" in out
    assert out.strip().splitlines()[-1] == "lava_dl_prediction_agreement_all: True"


@needs_lava
def test_tonic_datasets():
    out = run_script("tonic_datasets.py", "--datasets", "shd", "poker-dvs", "--n-per-class", "2", "--epochs", "1")
    assert re.search(r"shd: read \d+ samples/s binning, \d+ from the cache \(cache_speedup [\d.]+x\)", out)
    header = next(line for line in out.splitlines() if line.startswith("| dataset |"))
    rows = [line for line in out.splitlines() if line.startswith("| shd") or line.startswith("| poker-dvs")]
    assert len(rows) == 2 and all(line.count("|") == header.count("|") for line in rows)  # a cell for each column
    for row in rows:
        cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | ")))
        assert cells["epochs"] == "1" and cells["train/test (Lava)"] == "8/8 (8)"  # 2 per class, 4 classes
        assert all(0.0 <= float(cells[column]) <= 1.0 for column in ("dense acc.", "dpap acc."))
        assert all(0.0 < float(cells[column]) <= 1.0 for column in ("synapses kept", "neurons kept"))
        assert float(cells["energy dpap/dense"]) > 0


def test_loihi_training(tmp_path):
    out = run_script("loihi_training.py", "--datasets", "digits", "--models", "mlp", "--seeds", "0", "--epochs", "1",
                     "--finetune-epochs", "1", "--workers", "1", "--out", tmp_path)
    runs = json.loads((tmp_path / "loihi_training.json").read_text())["runs"]
    assert {r["variant"] for r in runs} == {"float", "finetune", "loihi"}
    # A model trained or fine-tuned Loihi-exact is its own Loihi twin: the same predictions.
    assert all(r["prediction_agreement"] == 1.0 for r in runs if r["variant"] != "float")
    assert re.search(r"loihi_minus_float_points: [+-]?\d+\.\d+", out) and "loihi_training_overhead:" in out


def test_confirm(tmp_path):
    tiny = ["--datasets", "digits", "--models", "mlp", "--seeds", "0", "--epochs", "1", "--workers", "1",
            "--hidden", "16", "16", "--out", tmp_path]
    (tmp_path / "pareto.json").write_text(json.dumps({"recipes": {"digits/mlp": "adam"}}))
    run_script("pareto.py", "--grid", "quick", "--methods", "dpap", "gmp", *tiny)
    out = run_script("confirm.py", "--dataset", "digits", "--model", "mlp", "--max-energy", "10",
                     "--energy-window", "10", "--seeds", "0", "1", "--workers", "1", "--out", tmp_path)
    assert re.search(r"mean_difference_points: [+-]?\d+\.\d+", out)
    assert re.search(r"bootstrap_95_interval_points: \[[+-]?\d+\.\d+, [+-]?\d+\.\d+\]", out)


def test_nir_consumers(tmp_path):
    made = subprocess.run([sys.executable, "-m", "dpap_neuro.cli", "run", "--out", str(tmp_path / "run"), "--quiet",
                           "--epochs", "1", "--timesteps", "6", "--hidden", "16", "--dataset", "digits",
                           "--lava-samples", "8", "--lava-check-samples", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    out = run_script("nir_consumers.py", tmp_path / "run", "--samples", "8", "--consumers", "norse")
    assert "| norse |" in out and "NeuroBench" in out
    assert re.fullmatch(r"nir_consumers_exact: \d+ of \d+", out.strip().splitlines()[-1])


def test_tune_verdict(tmp_path):
    """Each pruner's answer of a finished tune trained again with its seeds, measured on test."""
    from dpap_neuro.config import RunConfig
    from dpap_neuro.tune import Budget, tune

    config = RunConfig(dataset="digits", epochs=1, hidden_sizes=(16,), timesteps=6, val_fraction=0.1,
                       portable_kernels=True)
    base = {k: v for k, v in config.to_dict().items() if k not in ("seed", "pruner", "pruner_options")}
    tune(base, ["gmp", "structured"], Budget(max_drop_points=99), [0], tmp_path, workers=1, progress=False)
    out = run_script("tune_verdict.py", tmp_path, "--workers", "1", "--markdown", "--seeds", "0", "1")
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert [r["pruner"] for r in verdict["rows"]] == ["dense", "gmp", "structured"]
    assert all(r["seeds"] == [0, 1] and 0 <= r["test_accuracy"] <= 1 for r in verdict["rows"])
    assert verdict["rows"][0]["test_energy_ratio"] == 1.0 and sum(r["pick"] for r in verdict["rows"]) == 1
    assert "<- pick" in out and "| gmp" in out
    test_runs = [json.loads(f.read_text()) for f in (tmp_path / "trials").glob("*.json")]
    test_runs = [run for run in test_runs if "test_accuracy" in run]
    assert len(test_runs) == 6 and {run["cpu_capability"] for run in test_runs} == {"DEFAULT"}  # the tune's pins


def test_gmp_conv_diagnosis(tmp_path):
    out = run_script("gmp_conv_diagnosis.py", "--epochs", "1", "--workers", "1", "--settings", "dense",
                     "random 0.8 at 0.15", "--out", tmp_path)
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert [r["label"] for r in runs] == ["dense", "random 0.8 at 0.15"] and runs[1]["sparsity"] > 0.7
    assert re.search(r"^random 0\.8 at 0\.15 +0\.\d{4} ", out, re.M)


def test_recurrent(tmp_path):
    """Recurrent against feed-forward at equal neurons, each one's rate and initial gain chosen on validation; a
    pruner's tune answer."""
    out = run_script("recurrent.py", tmp_path, "--seeds", "0", "--epochs", "1", "--hidden", "8", "--workers", "0",
                     "--pruners", "gmp", "--portable-kernels", "--markdown")
    saved = json.loads((tmp_path / "recurrent.json").read_text())
    assert set(saved["dense"]) == {"rmlp", "mlp"} and saved["dense"]["rmlp"]["neurons"] == saved["dense"]["mlp"][
        "neurons"]
    assert saved["dense"]["rmlp"]["synapses"] > saved["dense"]["mlp"]["synapses"]  # the recurrent matrix
    for entry in saved["dense"].values():  # every setting tried; the pick is the best on validation
        by_setting = entry["validation_by_setting"]
        assert set(by_setting) == {"lr 0.002", "lr 0.002 gain 2", "lr 0.005", "lr 0.005 gain 2"}
        assert entry["validation"] == by_setting[entry["setting"]] == max(by_setting.values(), key=sum)
    assert re.search(r"^recurrent_minus_feedforward_test_points: -?\d+\.\d\d$", out, re.M)
    assert 0.0 <= saved["tune"]["gmp"]["recurrent_synapses_kept"] <= 1.0
    assert re.search(r"^gmp: [\d.]+ \((within|outside) 1 point\)", out, re.M) and "| rmlp |" in out
    trials = [json.loads(f.read_text()) for f in [*tmp_path.glob("trials/*.json"), *tmp_path.glob("tune/trials/*.json")]]
    assert trials and {trial["cpu_capability"] for trial in trials} == {"DEFAULT"}  # --portable-kernels


def test_recurrent_pilot():
    out = run_script("recurrent_pilot.py", "rmlp", "--recurrent-gain", "1.0", "--epochs", "1", "--hidden", "8",
                     "--steps-per-column", "1", "--silent-steps", "2")
    assert re.search(r"\nvalidation_accuracy: [01]\.\d{4}$", out.rstrip())
