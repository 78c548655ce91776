"""Lava's bit-accurate LIF written once (hw_export/loihi_fixed.py): by hand, against Lava, numpy = torch."""

import numpy as np
import pytest
import torch
from scipy import sparse

from conftest import needs_lava
from hw_export.lava_params import LavaLayer, LavaNetwork
from hw_export.loihi_fixed import V_LIMIT, decay, lif_step, wrap_current

# One neuron, du = dv = 410 (Lava adds 1 to du), threshold mantissa 100 (fires when v > 6400).
DU, DV, VTH = 410, 410, 100
A_IN = [100, 0, -50, -200, 0]  # synaptic input per step
# By hand: u <- trunc(u * (4096 - 411) / 4096) + 64 a ; v <- trunc(v * (4096 - 410) / 4096) + u, then the spike.
#   t1: u = 6400                                v = 6400                      (not > 6400: no spike)
#   t2: u = trunc(6400 * 3685 / 4096) = 5757    v = 5759 + 5757 = 11516 > 6400: spike, v = 0
#   t3: u = trunc(5757 * 3685 / 4096) - 3200 = 5179 - 3200 = 1979          v = 0 + 1979 = 1979
#   t4: u = trunc(1979 * 3685 / 4096) - 12800 = 1780 - 12800 = -11020      v = 1780 - 11020 = -9240
#   t5: u = -trunc(11020 * 3685 / 4096) = -9914 (towards zero, not -9915)   v = -8315 - 9914 = -18229
HAND_U = [6400, 5757, 1979, -11020, -9914]
HAND_V = [6400, 0, 1979, -9240, -18229]
HAND_SPIKES = [False, True, False, False, False]


def trajectory(xp):
    u = v = xp.zeros(1, dtype=xp.int64)
    us, vs, spikes = [], [], []
    for a in A_IN:
        u, v, s = lif_step(u, v, xp.full((1,), a, dtype=xp.int64), DU, DV, VTH, xp)
        us.append(int(u[0])), vs.append(int(v[0])), spikes.append(bool(s[0]))
    return us, vs, spikes


@pytest.mark.parametrize("xp", [np, torch], ids=["numpy", "torch"])
def test_one_neuron_follows_the_hand_computed_integers(xp):
    assert trajectory(xp) == (HAND_U, HAND_V, HAND_SPIKES)


def test_decay_rounds_towards_zero_and_the_current_wraps_once():
    assert decay(np.array([-11020]), 411).tolist() == [-9914] and decay(np.array([11020]), 411).tolist() == [9914]
    assert wrap_current(np.array([2**23 + 5, 2**23, -2**23, -2**23 - 5])).tolist() == [
        -2**23 + 5, 2**23, 2**23, 2**23 - 5]
    _, v, spikes = lif_step(np.zeros(1, np.int64), np.array([V_LIMIT]), np.array([2**16]), 0, 0, 2**17)
    assert v.tolist() == [V_LIMIT] and not spikes[0]  # saturated, and the readout's threshold is out of reach


def one_neuron_network() -> tuple[LavaNetwork, np.ndarray]:
    """The hand case as a network: three inputs with weights 100, -50, -200 into the neuron, a readout after it."""
    hidden = LavaLayer("fc1", sparse.csr_matrix(np.array([[100, -50, -200]], dtype=np.int32)), DU, DV, VTH, True, 1.0)
    readout = LavaLayer("readout", sparse.csr_matrix(np.array([[-254]], dtype=np.int32)), 100, 300, 2**17, False, 1.0)
    inputs = np.zeros((5, 1, 3))
    inputs[0, 0, 0] = inputs[2, 0, 1] = inputs[3, 0, 2] = 1  # a_in = 100, 0, -50, -200, 0
    return LavaNetwork("fixed", 3, (hidden, readout)), inputs


@needs_lava
def test_lava_bit_accurate_processes_compute_the_same_integers():
    from hw_export.lava_sim import simulate_chunk

    network, inputs = one_neuron_network()
    result = simulate_chunk(network, inputs, "processes")
    assert result.layer_spikes[0][:, 0, 0].tolist() == HAND_SPIKES
    # The readout, by the same rules from the hidden spikes: its voltage as Lava holds it.
    u = v = np.zeros(1, np.int64)
    expected = []
    for spike in HAND_SPIKES:
        u, v, _ = lif_step(u, v, np.array([-254 * spike]), 100, 300, 2**17)
        expected.append(int(v[0]))
    assert result.readout_v[:, 0, 0].tolist() == expected and min(expected) < 0
