"""Where a result came from: the code's commit and the software around it (``report.json``'s ``environment``)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path


def source_commit() -> str:
    """The git commit of this source tree (``+uncommitted`` when tracked files differ, the benchmarks' own
    results aside: a benchmark running rewrites them), or ``unknown``."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=root, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], capture_output=True,
                               text=True, cwd=root, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def environment() -> dict:
    """``report.json``'s ``environment``: Python, torch, the commit, the command that ran and the CPU kernels."""
    import torch

    from dpap_neuro.kernels import kernel_state

    return {"python": platform.python_version(), "torch": torch.__version__, "commit": source_commit(),
            "command": " ".join(["dpap", *sys.argv[1:]]), "kernels": kernel_state()}
