"""The same run, the same numbers, on any x86 CPU: ``dpap run --portable-kernels`` pins its CPU kernels
(``dpap_neuro/kernels.py``).

Two machines are played on one: each run gets the environment another CPU
would give its libraries (ATen's vector width, MKL's branch, OpenBLAS's
kernels, the number of threads); the pins must make both reports the same.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

from conftest import needs_lava, without_timings

DPAP = [sys.executable, "-m", "dpap_neuro.cli"]
TINY = ["--quiet", "--epochs", "2", "--timesteps", "6", "--hidden", "16", "--pruner-option", "batches_per_unit=2",
        "--pruner-option", "warmup_units=1", "--lava-samples", "8", "--lava-check-samples", "0"]


def test_only_dpap_run_and_tune_with_portable_kernels_are_pinned(tmp_path):
    from dpap_neuro.kernels import requested

    assert requested(["run", "--out", "x", "--portable-kernels"])
    assert requested(["tune", "--max-drop", "1", "--out", "x", "--portable-kernels"])
    assert not requested(["tune", "--max-drop", "1", "--out", "x"])
    assert not requested(["run", "--out", "x"]) and not requested(["run", "--resume", str(tmp_path)])
    assert not requested(["simulate", "a.h5"]) and not requested([]) and not requested(["--help"])
    (tmp_path / "config.json").write_text(json.dumps({"portable_kernels": True}))
    assert requested(["run", "--resume", str(tmp_path)]) and requested(["run", f"--resume={tmp_path}"])


def test_the_pins_are_set_before_torch_loads_and_recorded():
    script = ("import sys; from dpap_neuro import kernels; assert kernels.pin_environment(); import os, torch; "
              "saved = kernels.pin_torch(); import json; print(json.dumps(kernels.kernel_state())); "
              "kernels.restore_torch(saved)")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "", "MKL_CBWR": "AUTO"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["pinned"] == "yes" and state["aten_cpu_capability"] == "DEFAULT" and state["mkl_cbwr"] == "COMPATIBLE"
    assert state["intra_op_threads"] == "1" and state["onednn_convolutions"] == "off"


def other_machines() -> tuple[dict, dict]:
    """Two environments that make this CPU's libraries compute as two different machines' would."""
    import torch

    best = torch.backends.cpu.get_cpu_capability().lower()  # what an unset ATEN_CPU_CAPABILITY gives
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    one = {"ATEN_CPU_CAPABILITY": best, "MKL_CBWR": "AUTO", "OMP_NUM_THREADS": "2"}
    other = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1",
             **({"MKL_CBWR": "COMPATIBLE", "OPENBLAS_CORETYPE": "Prescott"} if x86 else {})}
    return one, other


def run_under(tmp_path, name: str, machine: dict, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE",
                                                             "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([*DPAP, "run", "--out", str(tmp_path / name), *TINY, *extra], capture_output=True,
                          text=True, env={**env, **machine}, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / name / "report.json").read_text())


@pytest.mark.slow
@needs_lava
def test_the_same_run_under_two_cpu_capabilities_gives_the_same_report(tmp_path):
    one, other = other_machines()
    pinned = [run_under(tmp_path, name, machine, "--portable-kernels")
              for name, machine in (("one", one), ("other", other))]
    assert pinned[0]["environment"]["kernels"]["pinned"] == "yes"
    assert pinned[0]["models"]["dpap"]["training"]["sparsity"][-1] > 0  # DPAP did prune
    assert without_timings(pinned[0]) == without_timings(pinned[1])  # kernels recorded included
    # Without the pins the two "machines" compute differently (so the test above can fail).
    if one["ATEN_CPU_CAPABILITY"] == "default":
        pytest.skip("this CPU has no vector kernels beyond ATen's default: no second capability to compare")
    fast = [run_under(tmp_path, f"fast-{name}", machine) for name, machine in (("one", one), ("other", other))]
    assert fast[0]["environment"]["kernels"]["pinned"] == "no"
    assert without_timings(fast[0]["models"]) != without_timings(fast[1]["models"])
