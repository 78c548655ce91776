"""Run a Lava simulation in an operating-system subprocess (not a Lava Process: those are in ``lava_procs``).

Lava sets the multiprocessing start method when it is imported and spawns a
process per Lava process, so it stays out of the training process: the parent
writes the inputs to a temporary folder, ``python -m hw_export.lava_subprocess``
simulates and writes the results there, and the parent reads them back.

Supervision, so that an interrupt or a timeout never leaves orphans or files:

* the child starts a session of its own: a Ctrl-C on the terminal reaches the
  parent only, not the child's Lava workers (which would each print a
  ``KeyboardInterrupt`` traceback);
* when the parent is interrupted (``KeyboardInterrupt``, or ``Terminated``
  from the SIGTERM handler of ``dpap``) or the run outlasts ``timeout_s``, it
  sends SIGTERM to the child, then to the child's whole process group (Lava
  workers, multiprocessing's resource tracker), and SIGKILL to what is left
  after a grace period (``stop_process_group``); SIGINT is forwarded as
  SIGTERM, which ends Python workers without a traceback each;
* the child, on SIGTERM or SIGINT, stops the Lava runtime (the ``finally`` of
  ``lava_sim.simulate_chunk``), writes nothing and exits with 128 + signal;
* the temporary folder is removed on every exit path.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hw_export.errors import UserError
from hw_export.lava_sim import LavaResult, SimOptions

STOP_GRACE_S = 10.0  # how long the child has to stop the Lava runtime after SIGTERM
WORKER_GRACE_S = 0.5  # then how long its leftover workers have after SIGTERM, before SIGKILL


class LavaRunError(UserError):
    """The Lava subprocess failed or timed out; the message carries its last error line."""


class LavaCrash(RuntimeError):
    """The Lava subprocess failed for a reason that is not the user's (a bug, or Lava itself): its traceback."""


USER_ERROR_STATUS = 2  # the child's exit status for a UserError (bad file or inputs)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (like ``KeyboardInterrupt`` on SIGINT), so cleanup runs."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler that unwinds the stack (``finally`` blocks, temporary folders) instead of dying."""
    raise Terminated(signum)


def stop_process_group(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Stop the child and everything in its process group, however it behaves.

    1. SIGTERM to the child alone: it stops the Lava runtime (which ends Lava's
       workers in order) and exits; wait up to ``grace_s`` for it.
    2. SIGTERM to the whole group: workers and multiprocessing's resource
       tracker that are still there; wait up to ``WORKER_GRACE_S``.
    3. SIGKILL to whatever is left of the group.
    """
    for target, grace in ((proc.pid, grace_s), (-proc.pid, WORKER_GRACE_S)):
        try:
            os.kill(target, signal.SIGTERM)  # a negative pid addresses the process group
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (proc.poll() is None if target > 0 else group_alive(proc.pid)):
            time.sleep(0.02)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def simulate_in_subprocess(net_path: str | os.PathLike, inputs: np.ndarray, options: SimOptions = SimOptions(),
                           progress: bool = True) -> LavaResult:
    """Simulate the SparseNet file ``net_path`` on ``inputs`` ``[T, N, n_inputs]`` in a child process.

    ``options.timeout_s``: wall-clock limit for the whole simulation (None:
    none); past it the child's process group is stopped and ``LavaRunError``
    raised.
    """
    timeout_s = options.timeout_s
    with tempfile.TemporaryDirectory(prefix="dpap-lava-") as tmp:
        in_path, out_path = Path(tmp) / "inputs.npy", Path(tmp) / "result.npz"
        err_path = Path(tmp) / "stderr.txt"
        np.save(in_path, np.asarray(inputs, dtype=np.uint8))
        cmd = [sys.executable, "-m", "hw_export.lava_subprocess", str(net_path), str(in_path), str(out_path),
               "--options", json.dumps(options.to_dict())] + ([] if progress else ["--no-progress"])
        with open(err_path, "w") as err:
            # With progress the child's bars go to our stderr; its error lines come back through the file.
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=None if progress else err,
                                    start_new_session=True, env={**os.environ, "DPAP_LAVA_ERRORS": str(err_path)})
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                stop_process_group(proc)
                raise LavaRunError(f"Lava simulation of {net_path} did not finish within {timeout_s:g} s "
                                   "(raise the limit with --lava-timeout)") from None
            except BaseException:  # KeyboardInterrupt, Terminated: stop the child's whole group first
                stop_process_group(proc)
                raise
            finally:
                if proc.poll() is None:
                    stop_process_group(proc)
        if returncode != 0 or not out_path.exists():
            detail = err_path.read_text(errors="replace").strip()
            if returncode == USER_ERROR_STATUS:  # the child refused its input: one line for the user
                raise LavaRunError(f"Lava simulation of {net_path} failed: {detail.splitlines()[-1] if detail else ''}")
            raise LavaCrash(f"the Lava subprocess simulating {net_path} ended with status {returncode}:\n"
                            f"{detail or '(it wrote no error)'}")
        with np.load(out_path) as result:
            n_layers = int(result["n_spiking_layers"])
            return LavaResult([result[f"spikes_{k}"] for k in range(n_layers)], result["readout_v"])


class _Stop(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame) -> None:
    # Lava's runtime and its workers may print while they are torn down; the user asked to stop,
    # and the parent prints the one line that says so.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    raise _Stop(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate a SparseNet HDF5 file in Lava.")
    parser.add_argument("net", help="SparseNet HDF5 file")
    parser.add_argument("inputs", help=".npy of input spikes [T, N, n_inputs]")
    parser.add_argument("out", help=".npz to write")
    parser.add_argument("--options", default="{}", help="SimOptions as JSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def report_error(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        errors = os.environ.get("DPAP_LAVA_ERRORS")
        if errors:
            with open(errors, "a") as fh:
                fh.write(message + "\n")

    try:
        # Lava must be imported before anything touches multiprocessing (tqdm's
        # lock does): it insists on setting the start method itself.
        import lava.magma.core.process.process  # noqa: F401

        from hw_export.files import atomic_write
        from hw_export.h5io import read_sparsenet
        from hw_export.lava_sim import simulate

        try:
            net = read_sparsenet(args.net)
            inputs = np.load(args.inputs, allow_pickle=False)
            result = simulate(net, inputs, SimOptions.from_dict(json.loads(args.options)),
                              progress=not args.no_progress, work_dir=str(Path(args.out).parent))
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

        atomic_write(args.out, write, suffix=".npz")
        return 0
    except _Stop as stop:
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
