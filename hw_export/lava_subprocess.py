"""Run a Lava simulation in an operating-system subprocess (not a Lava Process: those are in ``lava_procs``).

Lava sets the multiprocessing start method when it is imported and spawns a
process per Lava process, so it stays out of the training process: the parent
writes the inputs to a temporary folder, ``python -m hw_export.lava_subprocess``
simulates and writes the results there, and the parent reads them back.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hw_export.lava_sim import LavaResult


class LavaRunError(RuntimeError):
    """The Lava subprocess failed; the message carries its last error line."""


def simulate_in_subprocess(
    net_path: str | os.PathLike, inputs: np.ndarray, batch_size: int = 128, progress: bool = True,
    precision: str = "float",
) -> LavaResult:
    """Simulate the SparseNet file ``net_path`` on ``inputs`` ``[T, N, n_inputs]`` in a child process."""
    with tempfile.TemporaryDirectory(prefix="dpap-lava-") as tmp:
        in_path, out_path = Path(tmp) / "inputs.npy", Path(tmp) / "result.npz"
        np.save(in_path, np.asarray(inputs, dtype=np.uint8))
        cmd = [sys.executable, "-m", "hw_export.lava_subprocess", str(net_path), str(in_path), str(out_path),
               "--batch-size", str(batch_size), "--precision", precision] + ([] if progress else ["--no-progress"])
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE, text=True)
        if proc.returncode != 0 or not out_path.exists():
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise LavaRunError(f"Lava simulation of {net_path} failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
        with np.load(out_path) as result:
            n_layers = int(result["n_spiking_layers"])
            return LavaResult([result[f"spikes_{k}"] for k in range(n_layers)], result["readout_v"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate a SparseNet HDF5 file in Lava.")
    parser.add_argument("net", help="SparseNet HDF5 file")
    parser.add_argument("inputs", help=".npy of input spikes [T, N, n_inputs]")
    parser.add_argument("out", help=".npz to write")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--precision", choices=("float", "fixed"), default="float")
    args = parser.parse_args(argv)

    # Lava must be imported before anything touches multiprocessing (tqdm's
    # lock does): it insists on setting the start method itself.
    import lava.magma.core.process.process  # noqa: F401

    from hw_export.files import ArtifactError, atomic_write
    from hw_export.h5io import read_sparsenet
    from hw_export.lava_sim import simulate

    try:
        net = read_sparsenet(args.net)
        inputs = np.load(args.inputs, allow_pickle=False)
        result = simulate(net, inputs, batch_size=args.batch_size, progress=not args.no_progress,
                          precision=args.precision)
    except (ArtifactError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    arrays = {f"spikes_{k}": s for k, s in enumerate(result.layer_spikes)}

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, readout_v=result.readout_v, n_spiking_layers=len(result.layer_spikes), **arrays)

    atomic_write(args.out, write, suffix=".npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
