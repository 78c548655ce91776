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
    out = run_script("pareto.py", "--datasets", "digits", "--seeds", "0", "--epochs", "1", "--workers", "1",
                     "--hidden", "16", "16", "--out", tmp_path)
    saved = json.loads((tmp_path / "pareto.json").read_text())
    methods = {r["method"] for r in saved["runs"]}
    assert {"dense", "dpap", "gmp", "magnitude", "random"} <= methods
    assert (tmp_path / "pareto_digits.png").stat().st_size > 0
    assert "dpap minus gmp at the same sparsity" in out


@needs_lava
def test_conv_lava():
    out = run_script("conv_lava.py", "--samples", "2", "--batch", "2")
    assert "agreement" in out


@needs_lava
def test_lava_throughput(tmp_path):
    run = tmp_path / "run"
    made = subprocess.run([sys.executable, "-m", "dpap_neuro.cli", "run", "--out", str(run), "--quiet",
                           "--dataset", "digits", "--epochs", "1", "--timesteps", "6", "--hidden", "16"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    out = run_script("lava_throughput.py", "--run", run, "--single", "2", "--batch", "16")
    last_number(out, "batched_speedup")


def test_train_throughput():
    out = run_script("train_throughput.py", "--dataset", "digits", "--epochs", "1")
    assert "dpap_overhead_1proc:" in out
    last_number(out, "ddp_scaling_2proc")
