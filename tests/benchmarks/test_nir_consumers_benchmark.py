"""benchmarks/nir_consumers.py runs to its end on two tiny `dpap run` directories (slow: `pytest -m slow`)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HAVE_SINABS, needs_lava

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.snntorch, pytest.mark.neurobench]


def tiny_run(out: Path, *model_args: str) -> None:
    made = subprocess.run([sys.executable, "-m", "dpap_neuro.cli", "run", "--out", str(out), "--quiet",
                           "--dataset", "digits", "--epochs", "1", "--timesteps", "6", "--hidden", "16",
                           "--pruner", "gmp", "--lava-samples", "4", *model_args],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]


@needs_lava
def test_nir_consumers_on_a_tiny_mlp_and_conv_run(tmp_path):
    tiny_run(tmp_path / "mlp")
    tiny_run(tmp_path / "conv", "--model", "conv", "--conv-channels", "2")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "nir_consumers.py"), str(tmp_path / "mlp"),
                           str(tmp_path / "conv"), "--samples", "8", "--consumers", "norse", "snntorch", "sinabs"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| consumer | mlp dense | mlp gmp | conv dense | conv gmp |" in out
    for consumer in ("norse", "snntorch") + (("sinabs",) if HAVE_SINABS else ()):
        assert f"| {consumer} | " + " | ".join(["1.0000 / 1.0000"] * 4) + " |" in out
    for metric in ("SynapticOperations Effective_ACs", "ActivationSparsity"):  # the definitions that match
        rows = re.findall(rf"\| {metric} \| \S+ \| \S+ \| (\S+) \|", out)
        assert len(rows) == 4 and all(float(r) <= 1e-6 for r in rows)
    expected = 12 if HAVE_SINABS else 8
    assert out.strip().splitlines()[-1] == f"nir_consumers_exact: {expected} of 12"
