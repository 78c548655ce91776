"""hw_export/process_group.py: a group stopped at once leaves no process, shared memory or socket folder;
signals wait for a critical section to end; a temporary folder is never left half made or half removed."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import processes_with_env
from hw_export.process_group import group_members, kill_group, signals_deferred, temporary_folder

pytestmark = pytest.mark.usefixtures("sigint_raises")  # conftest: the interrupts tested are Ctrl-C's


# A group leader that forks a worker; the worker creates shared memory (as multiprocessing's manager does for Lava)
# and a listening Unix socket in a pymp-* folder, writes their names and waits to be killed.
GROUP_SCRIPT = """
import multiprocessing as mp, sys, time
from multiprocessing import shared_memory
from multiprocessing.connection import Listener
def work(path):
    shm = shared_memory.SharedMemory(create=True, size=4096)
    listener = Listener(family="AF_UNIX")
    open(path, "w").write(shm.name + "\\n" + listener.address)
    time.sleep(120)
if __name__ == "__main__":
    mp.set_start_method("fork")
    worker = mp.Process(target=work, args=(sys.argv[1],))
    worker.start()
    time.sleep(120)
"""


def test_a_killed_group_leaves_no_process_no_shared_memory_and_no_socket_folder(tmp_path):
    token, names = uuid.uuid4().hex, tmp_path / "names.txt"
    env = {**os.environ, "DPAP_TEST_TOKEN": token, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", GROUP_SCRIPT, str(names)], start_new_session=True, env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (names.exists() and "\n" in names.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    shm_name, socket_path = names.read_text().split("\n")
    assert Path(f"/dev/shm/{shm_name}").exists() and Path(socket_path).exists()
    assert len(group_members(proc.pid)) >= 3  # leader, worker, resource tracker
    assert kill_group(proc.pid) >= 1
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not Path(f"/dev/shm/{shm_name}").exists(), "the shared memory was left behind"
    assert not Path(socket_path).parent.exists(), "multiprocessing's pymp-* folder was left behind"
    assert processes_with_env(token) == [] and group_members(proc.pid) == []
    assert "leaked" not in proc.stderr.read()


def test_a_signal_inside_a_critical_section_is_raised_when_it_ends():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler would have run here
            done.append("finished")
    assert done == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_nested_critical_sections_raise_once_at_the_outermost_end():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            steps.append("inner ended")
            time.sleep(0.05)
            steps.append("outer ending")
    assert steps == ["inner ended", "outer ending"]


def test_a_temporary_folder_is_removed_even_when_interrupted_inside(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with pytest.raises(KeyboardInterrupt):
        with temporary_folder("dpap-test-") as folder:
            (folder / "inputs.npy").write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert os.listdir(tmp_path) == []


def test_sparing_a_member_still_kills_the_others_when_one_exits_between_scan_and_kill(monkeypatch):
    import hw_export.process_group as process_group

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    gone = int(Path("/proc/sys/kernel/pid_max").read_text())  # no process has this id: it exited after the scan
    try:
        # The scan lists a member that is gone by the time the signal is sent, before the live one.
        monkeypatch.setattr(process_group, "group_members",
                            lambda pgid: [gone, proc.pid] if proc.poll() is None else [])
        kill_group(proc.pid, spare=os.getpid())
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
