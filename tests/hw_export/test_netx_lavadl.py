"""lava-dl decides: our netx files, loaded by lava-dl's own reader and fed spikes at
``net.inp``, must compute bit for bit what ``dpap simulate --precision fixed`` computes.

lava-dl runs in its own venv (`make netx-env`) through ``tools/netx_oracle.py``.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import NETX_PYTHON, pruned_mlp, recurrent_mlp
from hw_export.netx import write_netx
from hw_export.norse import export_model

ORACLE = Path(__file__).parents[2] / "tools" / "netx_oracle.py"
pytestmark = [pytest.mark.lava, pytest.mark.netx]


def lava_dl_voltage(net_path: Path, spikes: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The readout voltage ``[T, N, n_out]`` lava-dl computes from the netx file."""
    inputs, out = tmp_path / "inputs.npz", tmp_path / "voltage.npz"
    np.savez(inputs, spikes=spikes.astype(np.uint8))
    done = subprocess.run([str(NETX_PYTHON), str(ORACLE), str(net_path), str(inputs), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)["voltage"]


def assert_lava_dl_matches_fixed_point(net, spikes, tmp_path):
    from hw_export.lava_sim import SimOptions, simulate
    from hw_export.quantize import quantize

    path = tmp_path / "net.h5"
    write_netx(net, path)
    theirs = lava_dl_voltage(path, spikes, tmp_path)
    ours = simulate(net, spikes.astype(float), SimOptions(batch_size=spikes.shape[1], precision="fixed"), progress=False)
    ours_v = np.rint(ours.readout_v * quantize(net).layers[-1].voltage_scale).astype(np.int64)
    np.testing.assert_array_equal(theirs, ours_v)
    # Not a vacuous match: every hidden layer fired and the readout moved.
    assert all(s.any() for s in ours.layer_spikes) and np.abs(theirs).max() > 0
    # So the predictions (largest readout voltage over time) agree on every sample.
    np.testing.assert_array_equal(theirs.max(0).argmax(-1), ours_v.max(0).argmax(-1))


def test_lava_dl_runs_a_pruned_mlp_exactly_as_our_fixed_point_path(tmp_path):
    net = export_model(list(pruned_mlp(seed=3)), (10,))
    spikes = np.random.default_rng(0).random((14, 6, 10)) < 0.4
    assert_lava_dl_matches_fixed_point(net, spikes, tmp_path)


def test_lava_dl_runs_an_unrolled_conv_net_exactly_as_our_fixed_point_path(tmp_path):
    from dpap_neuro.models import SpikingConvNet

    torch.manual_seed(0)
    model = SpikingConvNet((2, 8, 8), (4, 6), (10,), 3, weight_init_gain=20.0)  # gain: every layer fires
    with torch.no_grad():
        model[0].weight[1] = 0.0  # a dead channel: its neurons are removed from the file
    net = export_model(model, (2, 8, 8))
    spikes = np.random.default_rng(1).random((12, 5, 128)) < 0.4
    assert_lava_dl_matches_fixed_point(net, spikes, tmp_path)


def test_lava_dl_runs_a_pruned_recurrent_mlp_exactly_as_our_fixed_point_path(tmp_path):
    """``dense_rec`` blocks, built by lava-dl 0.6's reader as ``RecurrentDense`` (docs/netx_hdf5.md)."""
    net = export_model(recurrent_mlp(5), (10,))
    assert net.is_recurrent
    spikes = np.random.default_rng(2).random((14, 6, 10)) < 0.4
    assert_lava_dl_matches_fixed_point(net, spikes, tmp_path)


def test_oracle_refuses_inputs_of_the_wrong_width(tmp_path):
    net = export_model(list(pruned_mlp(seed=3)), (10,))
    path = tmp_path / "net.h5"
    write_netx(net, path)
    np.savez(tmp_path / "inputs.npz", spikes=np.zeros((3, 2, 7), dtype=np.uint8))
    done = subprocess.run([str(NETX_PYTHON), str(ORACLE), str(path), str(tmp_path / "inputs.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "takes (10,) inputs, the spikes have 7" in done.stderr


def test_lava_dl_reproduces_a_loihi_exact_trained_model_spike_for_spike(tmp_path):
    """The network you train is the network the chip runs: lava-dl's readout is the trained model's."""
    from hw_export.norse import norse_reference
    from hw_export.norse.loihi import loihi_exact

    model = loihi_exact(pruned_mlp(seed=3))
    net = export_model(model, (10,))
    spikes = np.random.default_rng(1).random((14, 6, 10)) < 0.4
    theirs = lava_dl_voltage(_written(net, tmp_path), spikes, tmp_path)
    readout_v, _ = norse_reference(model, spikes.astype(float))
    from hw_export.quantize import quantize

    np.testing.assert_array_equal(theirs, np.rint(readout_v * quantize(net).layers[-1].voltage_scale))
    assert np.abs(theirs).max() > 0


def _written(net, tmp_path: Path) -> Path:
    path = tmp_path / "loihi.h5"
    write_netx(net, path)
    return path
