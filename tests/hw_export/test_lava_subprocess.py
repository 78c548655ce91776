"""Lava in its own process: results come back; a timeout or an interrupt leaves nothing behind."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import torch

from conftest import needs_lava, processes_with_env
from dpap_neuro.models import SpikingMLP
from hw_export.h5io import write_sparsenet
from hw_export.lava_sim import SimOptions
from hw_export.lava_subprocess import LavaCrash, LavaRunError, simulate_in_subprocess, stop_process_group
from hw_export.norse import export_model


def small_net_file(tmp_path, n_hidden=16):
    torch.manual_seed(0)
    path = tmp_path / "net.h5"
    write_sparsenet(export_model(list(SpikingMLP(20, [n_hidden], 4)), (20,)), path)
    return path


@pytest.fixture
def tagged(monkeypatch, tmp_path):
    """A token every process started from here inherits, and a private temporary folder."""
    token = uuid.uuid4().hex
    monkeypatch.setenv("DPAP_TEST_TOKEN", token)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    return token, temp


@needs_lava
def test_a_run_past_its_timeout_is_stopped_with_everything_it_started(tmp_path, tagged):
    token, temp = tagged
    inputs = (np.random.default_rng(0).random((2000, 64, 20)) < 0.3).astype(np.uint8)  # [T, N, n_in]: long
    with pytest.raises(LavaRunError, match=r"did not finish within 2 s"):
        simulate_in_subprocess(small_net_file(tmp_path), inputs, SimOptions(timeout_s=2), progress=False)
    assert processes_with_env(token) == []
    assert os.listdir(temp) == []


def interrupt_once_lava_runs(token: str, timeout_s: float = 120.0) -> None:
    """SIGINT to this process (as Ctrl-C would) once Lava's workers exist (the child plus 2 or more)."""
    deadline = time.monotonic() + timeout_s
    while len(processes_with_env(token)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)


@needs_lava
def test_an_interrupt_while_waiting_stops_the_child_group_and_removes_the_inputs(tmp_path, tagged):
    token, temp = tagged
    inputs = (np.random.default_rng(0).random((2000, 64, 20)) < 0.3).astype(np.uint8)
    interrupter = threading.Thread(target=interrupt_once_lava_runs, args=(token,), daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        simulate_in_subprocess(small_net_file(tmp_path), inputs, progress=False)
    interrupter.join()
    assert processes_with_env(token) == []
    assert os.listdir(temp) == []


@needs_lava
def test_a_failure_in_the_child_is_one_line(tmp_path, tagged):
    inputs = np.zeros((4, 2, 7), dtype=np.uint8)  # the network takes 20 inputs
    with pytest.raises(LavaRunError) as error:
        simulate_in_subprocess(small_net_file(tmp_path), inputs, progress=False)
    assert "inputs must be [T, B, 20]" in str(error.value) and "\n" not in str(error.value)


@needs_lava
def test_a_bug_in_the_child_comes_back_with_its_traceback_not_as_a_user_error(tmp_path, tagged, monkeypatch):
    # The child imports sitecustomize from its PYTHONPATH at start-up: there a simulation that crashes.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import hw_export.lava_sim as sim\n"
        "def crash(*args, **kwargs):\n    raise RuntimeError('something inside Lava broke')\n"
        "sim.simulate = crash\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]))
    inputs = np.zeros((4, 2, 20), dtype=np.uint8)
    with pytest.raises(LavaCrash, match=r"(?s)ended with status 1.*Traceback.*RuntimeError: something inside"):
        simulate_in_subprocess(small_net_file(tmp_path), inputs, progress=False)
    assert not issubclass(LavaCrash, ValueError)  # the CLI shows it as a bug, with the traceback


def test_a_child_that_ignores_sigterm_is_killed_with_its_group(tmp_path):
    # The child ignores SIGTERM and starts a grandchild that ignores it too.
    token = uuid.uuid4().hex
    script = ("import signal, subprocess, sys, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            env={**os.environ, "DPAP_TEST_TOKEN": token})
    deadline = time.monotonic() + 20
    while len(processes_with_env(token)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_with_env(token)) == 2
    stop_process_group(proc, grace_s=0.5)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5  # the orphaned grandchild is reaped by init
    while processes_with_env(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_env(token) == []
