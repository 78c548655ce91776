"""Stop a process group at once and completely: its processes, and the shared memory they held (Linux).

A Lava runtime is a tree of processes (the runtime service, one per Lava
process, multiprocessing's shared-memory manager and resource tracker) that
exchange messages through POSIX shared memory (``/dev/shm/psm_*``). Asking it
to stop (``runtime.stop()``) works once it runs, but a stop that lands while
it starts fails inside Lava (``'SharedMemoryManager' object has no attribute
'shutdown'``), and what it leaves is either cleaned up late by the resource
tracker (which warns "There appear to be N leaked shared_memory objects") or,
if that is killed too, never. So a Lava subprocess (a session, hence a
process group, of its own) is stopped from outside, the same way whatever
state it is in (``kill_group``):

1. SIGSTOP to the whole group: nothing in it runs on, forks or creates
   shared memory any more (the kernel delivers a group signal atomically,
   also to a child being forked);
2. the shared-memory files every member has mapped or open are noted, and
   the folders of the Unix sockets they listen on (multiprocessing's
   ``$TMPDIR/pymp-*``, which its exit handlers would have removed);
3. SIGKILL to the whole group: no handler runs, nothing prints;
4. those files and folders are removed (the kernel frees shared memory once
   unmapped).

Nothing of the group survives, in well under a second. ``signals_deferred``
keeps SIGINT and SIGTERM from cutting such a stop, or the start of a child
and the note that it exists, in half.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PROC = Path("/proc")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REAP_TIMEOUT_S = 2.0  # how long to wait for the killed group's processes to vanish from /proc


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM arriving inside the block are handled when it ends (by the handlers in place before).

    Only the main thread can change handlers; elsewhere this does nothing.
    The first signal that arrived is raised again on exit, so a
    ``KeyboardInterrupt`` (or the CLI's ``Terminated``) still unwinds the
    caller, after the block has finished its work.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


@contextlib.contextmanager
def temporary_folder(prefix: str):
    """A temporary folder that no SIGINT/SIGTERM leaves behind: neither made nor removed half-way."""
    folder = None
    try:
        with signals_deferred():  # a deferred signal is raised at its end: inside the try, so removed below
            folder = Path(tempfile.mkdtemp(prefix=prefix))
        yield folder
    finally:
        if folder is not None:
            with signals_deferred():
                shutil.rmtree(folder, ignore_errors=True)


def group_members(pgid: int) -> list[int]:
    """Processes (not zombies) whose process group is ``pgid``, from ``/proc``."""
    members = []
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":  # fields: state, ppid, pgrp, ...
            members.append(int(entry.name))
    return members


def shared_memory_of(pids: list[int]) -> set[str]:
    """Names of the files in ``/dev/shm`` that these processes have mapped or open (and that still exist)."""
    names = set()
    prefix = f"{SHM_DIR}/"
    for pid in pids:
        try:
            maps = (PROC / str(pid) / "maps").read_text(errors="replace").splitlines()
            fds = [os.readlink(fd) for fd in (PROC / str(pid) / "fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        paths = [line.split(None, 5)[5] for line in maps if len(line.split(None, 5)) == 6] + fds
        names.update(p[len(prefix):] for p in paths if p.startswith(prefix) and not p.endswith("(deleted)"))
    return {name for name in names if "/" not in name}


def socket_folders_of(pids: list[int]) -> set[str]:
    """multiprocessing's ``pymp-*`` folders holding the Unix sockets these processes have open."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in (PROC / str(pid) / "fd").iterdir()]
        except OSError:
            continue
        inodes.update(link[len("socket:["):-1] for link in links if link.startswith("socket:["))
    try:
        table = (PROC / "net" / "unix").read_text().splitlines()[1:]  # Num RefCount ... Inode Path
    except OSError:
        return set()
    paths = [fields[7] for fields in map(str.split, table) if len(fields) == 8 and fields[6] in inodes]
    return {os.path.dirname(p) for p in paths if os.path.basename(os.path.dirname(p)).startswith("pymp-")}


def kill_group(pgid: int, spare: int | None = None) -> int:
    """Freeze, note the shared memory of, kill and clean up process group ``pgid``; returns the shared-memory
    files unlinked.

    ``spare``: a member to leave alone (a process cleaning up its own group);
    then its group is stopped member by member instead of at once.
    """
    def send(sig: int) -> None:
        if spare is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            return
        for pid in group_members(pgid):
            if pid != spare:
                with contextlib.suppress(ProcessLookupError, PermissionError):  # gone since the scan: go on
                    os.kill(pid, sig)

    send(signal.SIGSTOP)
    members = [pid for pid in group_members(pgid) if pid != spare]
    segments, folders = shared_memory_of(members), socket_folders_of(members)
    send(signal.SIGKILL)
    removed = 0
    for name in segments:
        try:
            (SHM_DIR / name).unlink()
            removed += 1
        except OSError:
            pass
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    deadline = time.monotonic() + REAP_TIMEOUT_S
    while time.monotonic() < deadline and any(pid != spare for pid in group_members(pgid)):
        time.sleep(0.01)
    return removed
