"""The same run, the same numbers, on any x86 CPU: the CPU kernels ``dpap run --portable-kernels`` pins.

PyTorch, MKL, oneDNN and numpy's OpenBLAS each pick their code for the CPU
they run on, and float rounding then differs between machines: a spike at
threshold flips, and pruning decisions amplify it (docs/demo.md, "How much
these numbers move"). What differed, measured on one AMD EPYC (AVX2) by
forcing each library's other branches:

* ATen's vectorised kernels (``ATEN_CPU_CAPABILITY``: default, avx2, avx512):
  ``uniform_`` (the weight initialisation: FMA-contracted scaling),
  ``log_softmax``, ``sigmoid``, ``lerp`` (Adam) and the lane order of sums;
* MKL's ``sgemm``/``dgemm`` (every ``Linear`` and the float64 reference): its
  ISA branch (``MKL_CBWR``), and the number of threads (a ``[870, 128] x
  [128, 256]`` product, the last batch of an epoch, differs between 1 and 2);
* oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``), and ATen's sums over more
  than 32,768 elements (split by thread);
* OpenBLAS's ``dgemm`` (``OPENBLAS_CORETYPE``), which Lava's float run uses.

The pins: ATen's portable ``default`` kernels, MKL's ``COMPATIBLE`` branch
(SSE2, the one MKL documents as the same on Intel and non-Intel CPUs), one
intra-op thread, convolutions by ATen and MKL instead of oneDNN, and on CPUs
with AVX2 and FMA numpy's OpenBLAS on its Haswell kernels. The environment
variables must be set before torch and numpy load their libraries, so
``dpap``'s ``main`` calls ``pin_environment`` before importing anything that
loads them; ``pin_torch`` sets the rest at run time.
"""

from __future__ import annotations

import os
import platform
import sys

ENV_PINS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
OPENBLAS_CORETYPE = "Haswell"  # numpy's OpenBLAS, on x86 CPUs with AVX2 and FMA (forcing it elsewhere crashes)
THREADS = 1  # intra-op threads: MKL's gemm and ATen's large sums depend on the count


def _cpuinfo(key: str) -> str:
    """The first ``key`` line of Linux's /proc/cpuinfo ("" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.split(":", 1)[0].strip() == key), "")
    except OSError:
        return ""


def _has_avx2_fma() -> bool:
    flags = _cpuinfo("flags").split() if platform.machine().lower() in ("x86_64", "amd64") else []
    return "avx2" in flags and "fma" in flags


def env_pins() -> dict[str, str]:
    """The environment variables the pins set (before torch and numpy load)."""
    pins = dict(ENV_PINS)
    if _has_avx2_fma():
        pins["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE
    return pins


_pinned_before_load: bool | None = None  # None: pin_environment not called in this process


def pin_environment() -> bool:
    """Set ``env_pins()`` in ``os.environ`` (over the user's values; child processes inherit them).

    Returns whether they came in time: before torch and numpy were imported
    (in a process that had loaded them, ATen and MKL may already have read
    their variables; the report's ``environment.kernels`` says so).
    """
    global _pinned_before_load
    os.environ.update(env_pins())
    _pinned_before_load = "torch" not in sys.modules and "numpy" not in sys.modules
    return _pinned_before_load


def pin_torch() -> dict:
    """One intra-op thread and no oneDNN convolutions; returns what to give ``restore_torch`` afterwards."""
    import torch

    saved = {"threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.enabled}
    torch.set_num_threads(THREADS)
    torch.backends.mkldnn.enabled = False
    return saved


def restore_torch(saved: dict) -> None:
    """Undo ``pin_torch`` (for a caller that runs ``dpap`` in its own process, such as a test)."""
    import torch

    torch.set_num_threads(saved["threads"])
    torch.backends.mkldnn.enabled = saved["mkldnn"]


def kernel_state() -> dict[str, str]:
    """``report.json``'s ``environment.kernels``: the kernels this process computes with, and whether pinned."""
    import torch

    from hw_export.norse import native

    if _pinned_before_load is None:
        pinned = "no"
    elif _pinned_before_load:
        pinned = "yes"
    else:
        pinned = "partly (torch or numpy was loaded before the pins: ATen and MKL may not have read them)"
    return {"pinned": pinned, "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"),
            "intra_op_threads": str(torch.get_num_threads()),
            "onednn_convolutions": "on" if torch.backends.mkldnn.enabled else "off",
            "lif_loops": "compiled" if native.available() else "python",
            "cpu": _cpuinfo("model name") or platform.processor() or platform.machine()}


def requested(argv: list[str]) -> bool:
    """Whether a ``dpap`` command line gets the pins: ``dpap run --portable-kernels`` (given, or, with
    ``--resume DIR``, in ``DIR/config.json``) and ``dpap tune --portable-kernels`` (its trial processes inherit
    them). Read before anything loads torch, so from the words alone."""
    import json

    if not argv or argv[0] not in ("run", "tune"):
        return False
    if "--portable-kernels" in argv:
        return True
    for k, word in enumerate(argv):
        resume = argv[k + 1] if word == "--resume" and k + 1 < len(argv) else (
            word.split("=", 1)[1] if word.startswith("--resume=") else None)
        if resume is not None:
            try:
                with open(os.path.join(resume, "config.json")) as fh:
                    return bool(json.load(fh).get("portable_kernels", False))
            except (OSError, ValueError, AttributeError):
                return False  # run_config says what is wrong with it
    return False
