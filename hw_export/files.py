"""Files every artifact shares: atomic writes, and the one error for a file that cannot be used.

An output file either appears complete or not at all: it is written to a
temporary file in the same folder and moved onto its name in one
``os.replace``. A file that cannot be read (missing, truncated, foreign,
inconsistent) raises ``ArtifactError``, whose message is one line naming the
file and the problem; the command line prints it as ``dpap: error: ...``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hw_export.errors import UserError


def cache_dir() -> Path:
    """Where dpap keeps what it can rebuild (binned event frames, compiled loops): ``$DPAP_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/dpap-neuro``, else ``~/.cache/dpap-neuro``."""
    if os.environ.get("DPAP_CACHE_DIR"):
        return Path(os.environ["DPAP_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dpap-neuro"


class ArtifactError(UserError):
    """A file that cannot be used; ``str()`` is one line naming file and problem."""

    def __init__(self, path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


# What h5py raises on a damaged or unexpected file, besides the ArtifactError of our own checks:
# KeyError for a missing member, TypeError/AttributeError when a group stands where a dataset
# should (or the reverse), OSError/RuntimeError for damaged blocks, ValueError/IndexError for
# data of another shape or kind. Readers turn these into one ArtifactError line.
MALFORMED_HDF5 = (KeyError, TypeError, AttributeError, OSError, RuntimeError, ValueError, IndexError)


def first_line(exc: BaseException) -> str:
    """An exception's first message line, or its class name when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def atomic_write(path: str | os.PathLike, write_fn, suffix: str = "") -> None:
    """Call ``write_fn(tmp_path)`` then move the result onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)
