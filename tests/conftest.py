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


def pruned_mlp(seed=0, n_inputs=10, hidden=(12, 8), n_classes=3, sparsity=0.4, gain=6.0):
    """A small SpikingMLP with GMP masks applied (40 % of hidden synapses gone), for export tests."""
    import torch

    from dpap_neuro.models import SpikingMLP
    from dpap_neuro.pruning import GMPPruner

    torch.manual_seed(seed)
    model = SpikingMLP(n_inputs, list(hidden), n_classes, weight_init_gain=gain)
    pruner = GMPPruner(target_sparsity=sparsity, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(10)
    return model


def assert_same_lava_result(a, b):
    """Two LavaResults are identical: every layer's spikes and the readout voltage, bit for bit."""
    import numpy as np

    assert len(a.layer_spikes) == len(b.layer_spikes)
    for x, y in zip(a.layer_spikes, b.layer_spikes):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.readout_v, b.readout_v)
