"""DPAP's maths, each step on a small case computed by hand."""

import math

import pytest
import torch

from dpap_neuro.pruning.dpap_functional import (
    FC_NEURON_RULE,
    adaptive_prune,
    initial_plasticity,
    normalised_usage,
    plasticity_step,
    prune_decision,
    reward_update,
    spike_trace,
    spine_importance,
    step_size,
)


def test_spike_trace_by_hand():
    spikes = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])  # [T=3, B=1, n=2]
    # e1 = [1, 0]; e2 = [0.5, 1]; e3 = [1.25, 1.5]; x = e3 / 3
    torch.testing.assert_close(spike_trace(spikes, 0.5), torch.tensor([[1.25 / 3, 0.5]]))


def test_conv_trace_is_one_value_per_channel():
    spikes = torch.zeros(2, 1, 3, 2, 2)  # [T, B, C, H, W]
    spikes[1, 0, 2] = 1.0  # channel 2: all 4 pixels spike at the last step
    spikes[0, 0, 0, 0, 0] = 1.0  # channel 0: one pixel at the first step
    # Channel 2: e2 = 4 -> 4/2; channel 0: e2 = 0.5 -> 0.25.
    torch.testing.assert_close(spike_trace(spikes, 0.5), torch.tensor([[0.25, 0.0, 2.0]]))


def test_bcm_term_with_sliding_threshold_by_hand():
    state = initial_plasticity(1, 2)
    post = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    pre = torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64)
    state = plasticity_step(state, post, pre)
    # theta = 0 during the first term: 0.25*[1, 0] + 1.0*[0.5, 2] = [0.75, 2.0]
    torch.testing.assert_close(state.plasticity, torch.tensor([[0.75, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(state.activity, torch.tensor([1.5], dtype=torch.float64))
    torch.testing.assert_close(state.theta, torch.tensor([0.75], dtype=torch.float64))
    torch.testing.assert_close(state.pre_activity, torch.tensor([1.5, 2.0], dtype=torch.float64))  # sum_b x_bj
    # Second batch: 1.0 * (1.0 - 0.75) * [1, 1] is added; theta = (0.5 + 1 + 1) / 3.
    state = plasticity_step(state, torch.tensor([[1.0]]), torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(state.plasticity, torch.tensor([[1.0, 2.25]], dtype=torch.float64))
    assert float(state.theta) == pytest.approx(2.5 / 3)
    assert state.n_samples == 3
    # Activity below the threshold depresses (LTD).
    state = plasticity_step(state, torch.tensor([[0.5]]), torch.tensor([[1.0, 0.0]]))
    assert float(state.plasticity[0, 0]) == pytest.approx(1.0 + 0.5 * (0.5 - 2.5 / 3))


def test_spine_importance_by_hand():
    plasticity = torch.tensor([[1.0, 0.0], [2.0, 1.0], [1.0, 1.0]])  # row sums 1, 3, 2
    activity = torch.tensor([2.0, 0.0, 4.0])
    # N(sum M) = [0, 1, 0.5]; N(A) = [0.5, 0, 1]
    torch.testing.assert_close(spine_importance(plasticity, activity), torch.tensor([0.0, 0.0, 0.5]))


def test_usage_is_normalised_by_the_75th_percentile():
    usage = normalised_usage(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(usage, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0, 1.0]))


def test_reward_update_and_stepwise_decay_by_hand():
    reward = torch.tensor([10.0, 10.0])
    usage = torch.tensor([0.0, 1.0])
    # delta = 2u - 1.5 = [-1.5, 0.5]; positive gets beta = 2 -> 2.5; step size exp(0) at unit 5.
    torch.testing.assert_close(reward_update(reward, usage, 5, FC_NEURON_RULE), torch.tensor([8.49, 12.49]))
    assert step_size(17, FC_NEURON_RULE) == 1.0
    assert step_size(18, FC_NEURON_RULE) == pytest.approx(math.exp(-1))
    assert step_size(31, FC_NEURON_RULE) == pytest.approx(math.exp(-2))


def test_prune_when_reward_is_negative_and_never_revive():
    alive = torch.tensor([True, True, False])
    assert prune_decision(torch.tensor([1.0, -0.1, 5.0]), alive).tolist() == [True, False, False]
    # A unit that is gone stays gone even with the best score, and its reward is frozen.
    reward = torch.tensor([10.0, -1.0, 10.0, 10.0, 10.0])
    alive = torch.tensor([True, False, True, True, True])
    score = torch.tensor([0.0, 100.0, 1.0, 2.0, 3.0])
    new_reward, new_alive = adaptive_prune(reward, alive, score, 5, FC_NEURON_RULE)
    assert not new_alive[1] and new_reward[1] == -1.0


def test_unused_unit_is_pruned_after_enough_decisions():
    # u = 0 forever: R_k = 0.999 R_{k-1} - 1.5 goes below zero at the 7th decision.
    reward, alive = torch.tensor([10.0, 10.0]), torch.tensor([True, True])
    score = torch.tensor([0.0, 1.0])
    lifetimes = []
    for unit in range(5, 20):
        reward, alive = adaptive_prune(reward, alive, score, unit, FC_NEURON_RULE)
        lifetimes.append(bool(alive[0]))
    assert lifetimes.index(False) == 6
    assert alive[1], "a fully used unit survives"


def test_usage_is_normalised_over_all_units_as_the_authors_do_or_over_survivors():
    # Unit 0 is pruned (score 0). Over all units: min 0, P75 of [0, 1, 2, 3, 4] = 3, so unit 1 has
    # u = 1/3 and delta = 2/3 - 1.5. Over survivors: min 1, so unit 1 has u = 0 and delta = -1.5.
    reward = torch.full((5,), 10.0, dtype=torch.float64)
    alive = torch.tensor([False, True, True, True, True])
    score = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    over_all, _ = adaptive_prune(reward, alive, score, 5, FC_NEURON_RULE)
    over_alive, _ = adaptive_prune(reward, alive, score, 5, FC_NEURON_RULE, over_alive=True)
    assert over_all[1].item() == pytest.approx(0.999 * 10 + (2 / 3 - 1.5))
    assert over_alive[1].item() == pytest.approx(0.999 * 10 - 1.5)
    assert over_all[0] == over_alive[0] == 10.0  # a pruned unit's reward stays frozen either way


def test_magnitude_weighted_synapse_score_needs_both_correlation_and_weight():
    from dpap_neuro.pruning.dpap_functional import magnitude_weighted

    bcm = torch.tensor([[0.0, 1.0], [1.0, 0.5]], dtype=torch.float64)
    weight = torch.tensor([[2.0, -0.5], [-2.0, 0.5]])
    # N(M) = [[0, 1], [1, .5]], N(|w|) = [[1, 0], [1, 0]]
    assert magnitude_weighted(bcm, weight).tolist() == [[0.0, 0.0], [1.0, 0.0]]
