"""Compiled loops over time for Norse's ``LIFCell`` and ``LICell`` (``lif_kernels.c``): one call per layer.

``hw_export.norse.fused`` runs a population through ``T`` steps in one
autograd node; in Python each step is a dozen PyTorch operations on a
``[B, n]`` tensor, whose fixed cost (dispatch, allocation) is most of a
training step for the layers of a spiking network, and does not shrink when
pruning removes neurons. Here the whole sequence is one C loop whose time is
proportional to ``T x B x n``, so a compacted layer is cheaper in proportion.

The forward pass gives PyTorch's spikes and voltages to the bit (one float32
operation per expression, no fused multiply-add; tested); the adjoint equals
the Python one up to float rounding (PyTorch's own ``addcmul`` may fuse a
multiply-add on one CPU and not on another; this loop never does, so it
gives the same gradients on every CPU).

The C file is compiled once per machine with the system's C compiler
(``$CC`` or ``cc``, a second or so) into ``$DPAP_CACHE_DIR/kernels`` (else
``~/.cache/dpap-neuro/kernels``), keyed by a hash of source and flags, and
loaded with ``ctypes``: no PyTorch headers, no build step at install. Where
no compiler works, or ``DPAP_NATIVE_KERNELS=0``, ``available()`` is False
and the Python loop runs instead (same spikes, slower).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from hw_export.files import cache_dir

SOURCE = Path(__file__).with_name("lif_kernels.c")
# -ffp-contract=off: no fused multiply-add, so every expression rounds as PyTorch's separate operations do.
FLAGS = ("-O3", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared")
_f32, _i64 = ctypes.c_float, ctypes.c_int64
_ptr = ctypes.c_void_p
_SIGNATURES = {
    "lif_forward": (_ptr, _i64, _i64, _f32, _f32, _f32, _f32, _f32, _ptr, _ptr, _ptr, _ptr),
    "lif_backward": (_ptr, _ptr, _i64, _i64, _f32, _f32, _f32, _f32, _f32, _ptr, _ptr, _ptr),
    "li_forward": (_ptr, _i64, _i64, _f32, _f32, _f32, _ptr, _ptr),
    "li_backward": (_ptr, _i64, _i64, _f32, _f32, _f32, _ptr, _ptr, _ptr),
}


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def library_path() -> Path:
    """Where the compiled loops live for this source, these flags and this machine's architecture."""
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + platform.machine().encode())
    return cache_dir() / "kernels" / f"lif_kernels-{key.hexdigest()[:16]}.so"


def _build(target: Path) -> bool:
    """Compile into a temporary file beside ``target``, then move it onto ``target`` in one step (several
    processes may build at once: the last move wins, each file complete). False where it cannot be built."""
    compiler = _compiler()
    if compiler is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        done = subprocess.run([compiler, *FLAGS, "-o", tmp, str(SOURCE)], capture_output=True, timeout=120)
        if done.returncode != 0:
            return False
        os.replace(tmp, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    if os.environ.get("DPAP_NATIVE_KERNELS", "1") == "0":
        return None
    try:
        path = library_path()
        if not path.is_file() and not _build(path):
            print("dpap: no working C compiler ($CC or cc): LIF layers step in Python (the same spikes, "
                  "slower training)", file=sys.stderr)
            return None
        library = ctypes.CDLL(str(path))
    except OSError:  # an unwritable cache folder, a file from another machine
        return None
    for name, arguments in _SIGNATURES.items():
        getattr(library, name).argtypes = arguments
        getattr(library, name).restype = None
    return library


def available() -> bool:
    """Whether the compiled loops are in use here (built or found, and not switched off)."""
    return _library() is not None


def applies_to(inputs: torch.Tensor) -> bool:
    """Whether ``inputs`` can take the compiled loop: float32 on the CPU, the loops available."""
    return inputs.dtype == torch.float32 and inputs.device.type == "cpu" and available()


def _p(tensor: torch.Tensor) -> int:
    return tensor.data_ptr()


def lif_forward(inputs: torch.Tensor, a: float, syn: float, v_leak: float, v_th: float, v_reset: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes float32 0/1 [T, ...], v_decayed float32 [T, ...])`` of a LIF population from Norse's initial
    state."""
    x = inputs.contiguous()
    steps, n = x.shape[0], x[0].numel()
    spiked, decayed = torch.empty_like(x), torch.empty_like(x)
    i_state, v_state = torch.empty(n), torch.empty(n)
    _library().lif_forward(_p(x), steps, n, a, syn, v_leak, v_th, v_reset, _p(i_state), _p(v_state), _p(spiked),
                           _p(decayed))
    return spiked, decayed


def lif_backward(grad_spikes: torch.Tensor, decayed: torch.Tensor, a: float, b: float, v_th: float,
                 v_reset: float) -> torch.Tensor:
    """``dLoss/dx [T, ...]`` from ``dLoss/dspikes`` and the voltages ``lif_forward`` returned (the spikes are
    ``decayed > v_th`` again)."""
    grad = grad_spikes.contiguous()
    steps, n = grad.shape[0], grad[0].numel()
    grad_in, voltages = torch.empty_like(grad), decayed.contiguous()
    grad_v, grad_i = torch.empty(n), torch.empty(n)
    _library().lif_backward(_p(grad), _p(voltages), steps, n, a, _float32(1 - a), _float32(1 - b),
                            v_th, v_reset, _p(grad_v), _p(grad_i), _p(grad_in))
    return grad_in


def li_forward(inputs: torch.Tensor, a: float, syn: float, v_leak: float) -> torch.Tensor:
    """Voltages ``[T, ...]`` of an LI population (the readout) from Norse's initial state."""
    x = inputs.contiguous()
    steps, n = x.shape[0], x[0].numel()
    voltages, i_state = torch.empty_like(x), torch.empty(n)
    _library().li_forward(_p(x), steps, n, a, syn, v_leak, _p(i_state), _p(voltages))
    return voltages


def li_backward(grad_voltages: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """``dLoss/dx [T, ...]`` of an LI population from ``dLoss/dv``."""
    grad = grad_voltages.contiguous()
    steps, n = grad.shape[0], grad[0].numel()
    grad_in, grad_v, grad_i = torch.empty_like(grad), torch.empty(n), torch.empty(n)
    _library().li_backward(_p(grad), steps, n, a, _float32(1 - a), _float32(1 - b), _p(grad_v), _p(grad_i),
                           _p(grad_in))
    return grad_in


def _float32(value: float) -> float:
    """``value`` rounded to float32, as PyTorch rounds a Python scalar multiplying a float32 tensor."""
    return float(torch.tensor(value, dtype=torch.float32))
