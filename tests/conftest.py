"""Shared test helpers (no module-scoped fixtures holding state)."""

import importlib.util
import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")

HAVE_LAVA = importlib.util.find_spec("lava") is not None
if HAVE_LAVA:
    # Lava insists on choosing the multiprocessing start method at import, so it
    # must be imported before anything else touches multiprocessing.
    import lava.magma.core.process.process  # noqa: F401

needs_lava = pytest.mark.skipif(not HAVE_LAVA, reason="lava-nc is not installed (it needs Python 3.10)")
