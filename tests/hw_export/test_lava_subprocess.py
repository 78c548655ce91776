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

from conftest import SharedMemoryWatch, needs_lava, processes_with_env
from dpap_neuro.models import SpikingMLP
from hw_export.h5io import write_sparsenet
from hw_export.lava_sim import SimOptions
from hw_export.lava_subprocess import LavaCrash, LavaPool, LavaRunError, simulate_in_subprocess, stop_process_group
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


pytestmark = pytest.mark.usefixtures("sigint_raises")  # conftest: the interrupts tested are Ctrl-C's


@needs_lava
def test_a_run_past_its_timeout_is_stopped_with_everything_it_started(tmp_path, tagged):
    token, temp = tagged
    inputs = (np.random.default_rng(0).random((2000, 64, 20)) < 0.3).astype(np.uint8)  # [T, N, n_in]: long
    with pytest.raises(LavaRunError, match=r"did not finish within 2 s"):
        simulate_in_subprocess(small_net_file(tmp_path), inputs, SimOptions("processes", timeout_s=2), progress=False)
    assert processes_with_env(token) == []
    assert os.listdir(temp) == []


def interrupt_at(token: str, processes: int, delay_s: float, sent: list, done: threading.Event,
                 timeout_s: float = 120.0) -> None:
    """SIGINT to this process (as Ctrl-C would) ``delay_s`` after ``processes`` processes carry the token (the
    child, then Lava's). Never once the call under test has returned (``done``): a late signal would land in
    another test."""
    deadline = time.monotonic() + timeout_s
    while len(processes_with_env(token)) < processes:
        if done.is_set() or time.monotonic() > deadline:
            return
        time.sleep(0.002)
    if done.wait(delay_s):
        return
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)


def interrupted(token: str, processes: int, delay_s: float, call) -> float:
    """Run ``call()`` while interrupting it as ``interrupt_at`` does; returns seconds from the signal to its end."""
    sent, done = [], threading.Event()
    interrupter = threading.Thread(target=interrupt_at, args=(token, processes, delay_s, sent, done), daemon=True)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        done.set()
        interrupter.join()
    assert sent, "the simulation ended before the moment to interrupt it"
    return time.monotonic() - sent[0]


# Long enough never to end before the interrupt (which ends it at once): 20,000 steps.
LONG = (np.random.default_rng(0).random((20_000, 16, 20)) < 0.3).astype(np.uint8)


@needs_lava
def test_an_interrupt_while_waiting_stops_the_child_group_and_removes_the_inputs(tmp_path, tagged):
    token, temp = tagged
    interrupted(token, 3, 0.0, lambda: simulate_in_subprocess(small_net_file(tmp_path), LONG, progress=False))
    assert processes_with_env(token) == []
    assert os.listdir(temp) == []


# (processes carrying the token, then a delay): the child importing; Lava's shared-memory manager, runtime
# service and process models being forked one by one; the runtime compiling and starting; running.
START_MOMENTS = [(1, 0.0), (1, 0.5), (2, 0.0), (3, 0.0), (4, 0.0), (5, 0.0), (5, 0.05), (6, 0.5)]


@needs_lava
@pytest.mark.parametrize("processes, delay_s", START_MOMENTS)
def test_an_interrupt_at_any_moment_of_the_start_ends_fast_and_leaves_nothing(tmp_path, tagged, processes, delay_s):
    token, temp = tagged
    net = small_net_file(tmp_path)
    with SharedMemoryWatch(token) as watch:
        stop_s = interrupted(token, processes, delay_s,
                             lambda: simulate_in_subprocess(net, LONG, SimOptions("fast"), progress=False))
    assert stop_s < 5.0
    assert processes_with_env(token) == []
    assert os.listdir(temp) == []
    if processes >= 6:  # the runtime's channels exist: the check below looked at something
        assert watch.seen, "Lava's shared memory was never seen"
    assert watch.left() == set(), "shared memory left behind"


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
    stop_process_group(proc)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5  # the orphaned grandchild is reaped by init
    while processes_with_env(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_env(token) == []


@needs_lava
def test_a_pool_never_runs_more_children_than_its_workers_and_returns_each_result(tmp_path, tagged):
    from conftest import assert_same_lava_result

    token, temp = tagged
    net = small_net_file(tmp_path)
    chunks = [(np.random.default_rng(k).random((300, 4, 20)) < 0.3).astype(np.uint8) for k in range(3)]
    with LavaPool(2) as pool:
        children = [pool.start(net, chunk, SimOptions("fast"), progress=False) for chunk in chunks[:2]]
        # Both run at once: the second did not wait for the first (a child takes seconds to import Lava alone).
        assert sum(not child.finished for child in children) == 2
        children.append(pool.start(net, chunks[2], SimOptions("fast"), progress=False))
        assert sum(not child.finished for child in children[:2]) <= 1  # the third waited for a free worker
        results = [child.result() for child in children]
    for chunk, result in zip(chunks, results):
        assert_same_lava_result(result, simulate_in_subprocess(net, chunk, SimOptions("fast"), progress=False))
    assert processes_with_env(token) == [] and os.listdir(temp) == []


def test_stopping_a_child_the_group_kill_missed_waits_a_bounded_time_then_kills_it(monkeypatch):
    # The group kill misses the child (it left its group, say): the stop must not wait on it for ever.
    import hw_export.lava_subprocess as lava_subprocess

    monkeypatch.setattr(lava_subprocess, "kill_group", lambda pgid, spare=None: 0)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        stopper = threading.Thread(target=stop_process_group, args=(proc,), daemon=True)
        stopper.start()
        stopper.join(timeout=20)
        assert not stopper.is_alive(), "stop_process_group waited on the child without a bound"
        assert proc.returncode == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
