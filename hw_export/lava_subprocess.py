"""Run Lava simulations in operating-system subprocesses (not Lava Processes: those are in ``lava_procs``).

Lava sets the multiprocessing start method when it is imported and forks a
process per Lava process, so it stays out of the training process: the parent
writes a chunk's inputs to a temporary folder, ``python -m
hw_export.lava_subprocess`` simulates it and writes the result there, and the
parent reads it back. ``LavaChild`` is one such simulation, ``LavaPool`` runs
up to ``workers`` of them at once (``--lava-workers``), ``simulate_in_subprocess``
one from start to result.

Supervision, so that an interrupt, whenever it lands, or a timeout never
leaves a process, a temporary folder or shared memory behind:

* each child starts a session of its own: a Ctrl-C on the terminal reaches
  the parent only, not the Lava processes (which would each print a
  ``KeyboardInterrupt`` traceback);
* starting a child (folder, inputs, process) and stopping it run with
  SIGINT/SIGTERM deferred (``process_group.signals_deferred``), so a signal
  never finds a child that is running but not yet known, or half cleaned up;
* when the parent is interrupted (``KeyboardInterrupt``, or ``Terminated``
  from the SIGTERM handler of ``dpap``) or a run outlasts ``timeout_s``, the
  child's whole process group is frozen, its shared memory noted, the group
  killed and the shared memory unlinked (``process_group.kill_group``): the
  same few milliseconds whether Lava is importing, starting its runtime,
  running or stopping (Lava's own stop is never asked for: it fails when a
  runtime is half started);
* the child, if it gets SIGTERM or SIGINT itself, does the same to the rest
  of its group and exits with 128 + signal, writing nothing;
* the temporary folder is removed on every exit path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from hw_export.errors import UserError
from hw_export.lava_sim import LavaResult, SimOptions
from hw_export.process_group import REAP_TIMEOUT_S, group_members, kill_group, signals_deferred


class LavaRunError(UserError):
    """The Lava subprocess failed or timed out; the message carries its last error line."""


class LavaCrash(RuntimeError):
    """The Lava subprocess failed for a reason that is not the user's (a bug, or Lava itself): its traceback."""


USER_ERROR_STATUS = 2  # the child's exit status for a UserError (bad file or inputs)
TEMP_PREFIX = "dpap-lava-"
# The child's TMPDIR is its folder, unless that path is so long that the Unix sockets multiprocessing puts
# there (pymp-*/listener-*, at most 107 characters) would not fit.
MAX_TMPDIR_CHARS = 64


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (like ``KeyboardInterrupt`` on SIGINT), so cleanup runs."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler that unwinds the stack (``finally`` blocks, temporary folders) instead of dying."""
    raise Terminated(signum)


def stop_process_group(proc: subprocess.Popen) -> int:
    """Stop the child ``proc`` and everything in its process group at once; returns shared-memory files removed."""
    with signals_deferred():
        removed = kill_group(proc.pid)
        try:
            proc.wait(timeout=REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # it left its group (a session of its own), or the kill missed it
            proc.kill()
            try:
                proc.wait(timeout=REAP_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # stuck in the kernel (uninterruptible I/O): it ends when that returns
                print(f"warning: the Lava subprocess {proc.pid} has not ended {2 * REAP_TIMEOUT_S:.0f} s after "
                      "SIGKILL; going on without it", file=sys.stderr)
    return removed


class LavaChild:
    """One Lava simulation in a child process, started on construction; ``result()`` waits and reads it.

    ``net_path``: a SparseNet HDF5 file; ``inputs`` ``[T, N, n_inputs]`` (0/1).
    Use it as a context manager (or call ``stop()``) so that it is stopped and
    its folder removed however the caller leaves.
    """

    def __init__(self, net_path: str | os.PathLike, inputs: np.ndarray, options: SimOptions = SimOptions(),
                 progress: bool = True) -> None:
        self.net_path, self.timeout_s = net_path, options.timeout_s
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.closed = False  # stopped, or its result read: its folder is gone
        self.folder: Path | None = None
        self.started = time.monotonic()
        try:
            with signals_deferred():  # a signal in here would leave a folder, or a child nobody knows of
                self.folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
                self._start(np.asarray(inputs, dtype=np.uint8), options, progress)
        except BaseException:  # a failure, or the signal deferred above: nobody else will stop this child
            self.stop()
            raise

    def _start(self, inputs: np.ndarray, options: SimOptions, progress: bool) -> None:
        np.save(self.folder / "inputs.npy", inputs)
        cmd = [sys.executable, "-m", "hw_export.lava_subprocess", str(self.net_path), str(self.folder / "inputs.npy"),
               str(self.folder / "result.npz"), "--options", json.dumps(options.to_dict())]
        err_path = self.folder / "stderr.txt"
        env = {**os.environ, "DPAP_LAVA_ERRORS": str(err_path)}
        if len(str(self.folder)) <= MAX_TMPDIR_CHARS:
            env["TMPDIR"] = str(self.folder)  # multiprocessing's pymp-* folders too go where they are removed
        with open(err_path, "w") as err:
            # With progress the child's bars go to our stderr; its error lines come back through the file.
            self.proc = subprocess.Popen(cmd + ([] if progress else ["--no-progress"]), stdout=subprocess.DEVNULL,
                                         stderr=None if progress else err, start_new_session=True, env=env)

    def __enter__(self) -> "LavaChild":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def finished(self) -> bool:
        return self.returncode is not None or (self.proc is not None and self.proc.poll() is not None)

    def wait(self) -> None:
        """Wait for the child to end; past ``timeout_s`` (from its start) stop it and raise ``LavaRunError``."""
        if self.returncode is not None:
            return
        remaining = None if self.timeout_s is None else max(0.0, self.started + self.timeout_s - time.monotonic())
        try:
            self.returncode = self.proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.stop()
            raise LavaRunError(f"Lava simulation of {self.net_path} did not finish within {self.timeout_s:g} s "
                               "(raise the limit with --lava-timeout)") from None

    def result(self) -> LavaResult:
        """Wait for the child, read its result and remove its folder; ``LavaRunError`` / ``LavaCrash`` if it failed."""
        try:
            self.wait()
            return self._read()
        finally:
            self.stop()

    def _read(self) -> LavaResult:
        out_path = self.folder / "result.npz"
        if self.returncode != 0 or not out_path.exists():
            detail = (self.folder / "stderr.txt").read_text(errors="replace").strip()
            if self.returncode == USER_ERROR_STATUS:  # the child refused its input: one line for the user
                last = detail.splitlines()[-1] if detail else ""
                raise LavaRunError(f"Lava simulation of {self.net_path} failed: {last}")
            raise LavaCrash(f"the Lava subprocess simulating {self.net_path} ended with status {self.returncode}:\n"
                            f"{detail or '(it wrote no error)'}")
        with np.load(out_path) as result:
            n_layers = int(result["n_spiking_layers"])
            return LavaResult([result[f"spikes_{k}"] for k in range(n_layers)], result["readout_v"])

    def stop(self) -> None:
        """Kill the child's whole group if it still runs, and remove the folder (idempotent)."""
        with signals_deferred():
            if self.proc is not None and self.proc.poll() is None:
                stop_process_group(self.proc)
            elif self.proc is not None and group_members(self.proc.pid):
                # The child ended but a straggler of its Lava runtime still runs in its group. Linux does not
                # reuse a process-group id while a member is alive, so this group is still the child's.
                kill_group(self.proc.pid)
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
            self.closed = True


class LavaPool:
    """Up to ``workers`` Lava children at once: ``start`` waits for a free worker, ``close`` stops them all.

    Memory: each running child holds one chunk (``FastEngine.MAX_BYTES`` per
    Lava run at most for the fast engine, plus its chunk's inputs and spikes).
    """

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise UserError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.children: deque[LavaChild] = deque()

    def start(self, net_path, inputs: np.ndarray, options: SimOptions, progress: bool = False) -> LavaChild:
        """Start a simulation once fewer than ``workers`` run (waiting for the oldest running one)."""
        self.children = deque(child for child in self.children if not child.closed)  # drop the ones read
        while sum(not child.finished for child in self.children) >= self.workers:
            next(child for child in self.children if not child.finished).wait()
        with signals_deferred():  # started and noted at once: close() stops every child that exists
            child = LavaChild(net_path, inputs, options, progress)
            self.children.append(child)
        return child

    def __enter__(self) -> "LavaPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every child still running and remove every folder (on success they are already gone)."""
        with signals_deferred():
            while self.children:
                self.children.popleft().stop()


def simulate_in_subprocess(net_path: str | os.PathLike, inputs: np.ndarray, options: SimOptions = SimOptions(),
                           progress: bool = True) -> LavaResult:
    """Simulate the SparseNet file ``net_path`` on ``inputs`` ``[T, N, n_inputs]`` in a child process.

    ``options.timeout_s``: wall-clock limit for the whole simulation (None:
    none); past it the child's process group is stopped and ``LavaRunError``
    raised.
    """
    with LavaPool(1) as pool:
        return pool.start(net_path, inputs, options, progress).result()


def _stop_here(work_dir: str):
    """The child's SIGTERM/SIGINT handler: kill the rest of its group (the Lava runtime, in whatever state),
    unlink their shared memory, remove its record folders and exit with 128 + signal, writing nothing."""
    def handler(signum, frame) -> None:
        kill_group(os.getpgrp(), spare=os.getpid())
        for folder in Path(work_dir).glob("dpap-lava-rec-*"):
            shutil.rmtree(folder, ignore_errors=True)
        os._exit(128 + signum)

    return handler


def report_error(message: str) -> None:
    """An error line for the parent: on stderr, and in the file ``DPAP_LAVA_ERRORS`` names."""
    print(f"error: {message}", file=sys.stderr)
    errors = os.environ.get("DPAP_LAVA_ERRORS")
    if errors:
        with open(errors, "a") as fh:
            fh.write(message + "\n")


def simulate_to_file(net_path: str, inputs_path: str, out_path: str, options: SimOptions, progress: bool) -> int:
    """The child's work: read, simulate, write ``out_path`` atomically; returns the exit status."""
    from hw_export.files import atomic_write
    from hw_export.h5io import read_sparsenet
    from hw_export.lava_sim import simulate

    try:
        net = read_sparsenet(net_path)
        inputs = np.load(inputs_path, allow_pickle=False)
        result = simulate(net, inputs, options, progress=progress, work_dir=str(Path(out_path).parent))
    except UserError as exc:
        report_error(str(exc))
        return USER_ERROR_STATUS
    except Exception:  # a bug, or a failure inside Lava: the whole traceback for the parent's report
        import traceback

        report_error(traceback.format_exc())
        return 1
    arrays = {f"spikes_{k}": s for k, s in enumerate(result.layer_spikes)}

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, readout_v=result.readout_v, n_spiking_layers=len(result.layer_spikes), **arrays)

    atomic_write(out_path, write, suffix=".npz")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate a SparseNet HDF5 file in Lava.")
    parser.add_argument("net", help="SparseNet HDF5 file")
    parser.add_argument("inputs", help=".npy of input spikes [T, N, n_inputs]")
    parser.add_argument("out", help=".npz to write")
    parser.add_argument("--options", default="{}", help="SimOptions as JSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_here(str(Path(args.out).parent)))
    # Lava must be imported before anything touches multiprocessing (tqdm's
    # lock does): it insists on setting the start method itself.
    import lava.magma.core.process.process  # noqa: F401

    return simulate_to_file(args.net, args.inputs, args.out, SimOptions.from_dict(json.loads(args.options)),
                            not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
