"""DPAP's maths, each step on a small case computed by hand."""

import math

import pytest
import torch

from dpap_neuro.pruning.dpap import DPAPConfig
from dpap_neuro.pruning.dpap_functional import (
    AdaptiveRuleParams,
    PlasticityState,
    adaptive_prune,
    apply_plasticity,
    batches_sums,
    calibrated_rule,
    fan_out_per_neuron,
    first_possible_pruning,
    importance_per_energy,
    initial_plasticity,
    normalised_usage,
    plasticity_step,
    prune_decision,
    reward_update,
    silent_inputs_unused,
    spike_counts,
    spike_trace,
    spine_importance,
    step_size,
    unit_energy_pj,
    unused_unit_rewards,
)
from hw_export.errors import UserError

# A rule written out by hand (the authors' FC constants), so these cases do not depend on any default.
FC_RULE = AdaptiveRuleParams(c=1.5, beta=2.0, tau=13.0, warmup=5, r_decay=0.999, r_init=10.0)


def test_the_authors_constants_are_the_default_rules():
    config = DPAPConfig()
    assert config.rule("fc_neuron", 15) == FC_RULE
    assert config.rule("fc_synapse", 15) == FC_RULE
    assert config.rule("conv_channel", 15) == AdaptiveRuleParams(0.65, 5.0, 12.0, 5, 0.999, 10.0)


def test_spike_trace_by_hand():
    spikes = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])  # [T=3, B=1, n=2]
    # e1 = [1, 0]; e2 = [0.5, 1]; e3 = [1.25, 1.5]; x = e3 / 3
    torch.testing.assert_close(spike_trace(spikes, 0.5), torch.tensor([[1.25 / 3, 0.5]]))
    # The whole-window trace: the mean of e1, e2, e3 = [2.75, 2.5] / 3.
    torch.testing.assert_close(spike_trace(spikes, 0.5, "mean"), torch.tensor([[2.75 / 3, 2.5 / 3]]))
    with pytest.raises(UserError, match="unknown trace 'last'"):
        spike_trace(spikes, 0.5, "last")


def test_the_final_trace_forgets_early_spikes_and_the_mean_trace_does_not():
    early, late = torch.zeros(30, 1, 1), torch.zeros(30, 1, 1)
    early[:10] = 1.0  # ten spikes in the first third of the sample
    late[-10:] = 1.0  # ten spikes in the last third
    final = [float(spike_trace(s, 0.5, "final")) for s in (early, late)]
    mean = [float(spike_trace(s, 0.5, "mean")) for s in (early, late)]
    assert final[0] < 1e-5 * final[1]  # e(T) has forgotten the early burst: 0.5^20 of the late one
    # Mean of e(t): each spike counts (1 - 0.5^(T-s)) / 0.5; the late burst loses only its tail.
    assert mean[0] == pytest.approx(20 / 30, rel=1e-6)
    assert mean[1] == pytest.approx(sum((1 - 0.5 ** k) / 0.5 for k in range(1, 11)) / 30)


def test_conv_trace_and_counts_are_one_value_per_channel():
    spikes = torch.zeros(2, 1, 3, 2, 2)  # [T, B, C, H, W]
    spikes[1, 0, 2] = 1.0  # channel 2: all 4 pixels spike at the last step
    spikes[0, 0, 0, 0, 0] = 1.0  # channel 0: one pixel at the first step
    # Channel 2: e2 = 4 -> 4/2; channel 0: e2 = 0.5 -> 0.25.
    torch.testing.assert_close(spike_trace(spikes, 0.5), torch.tensor([[0.25, 0.0, 2.0]]))
    torch.testing.assert_close(spike_counts(spikes), torch.tensor([[1.0, 0.0, 4.0]]))


def test_bcm_term_with_sliding_threshold_by_hand():
    state = initial_plasticity(1, 2)
    post = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    pre = torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64)
    state = plasticity_step(state, post, pre, torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0, 0.0], [1.0, 4.0]]))
    # theta = 0 during the first term: 0.25*[1, 0] + 1.0*[0.5, 2] = [0.75, 2.0]
    torch.testing.assert_close(state.plasticity, torch.tensor([[0.75, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(state.activity, torch.tensor([1.5], dtype=torch.float64))
    torch.testing.assert_close(state.theta, torch.tensor([0.75], dtype=torch.float64))
    torch.testing.assert_close(state.pre_activity, torch.tensor([1.5, 2.0], dtype=torch.float64))  # sum_b x_bj
    torch.testing.assert_close(state.post_count, torch.tensor([4.0], dtype=torch.float64))  # spikes, summed
    torch.testing.assert_close(state.pre_count, torch.tensor([3.0, 4.0], dtype=torch.float64))
    # Second batch: 1.0 * (1.0 - 0.75) * [1, 1] is added; theta = (0.5 + 1 + 1) / 3.
    state = plasticity_step(state, torch.tensor([[1.0]]), torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(state.plasticity, torch.tensor([[1.0, 2.25]], dtype=torch.float64))
    assert float(state.theta) == pytest.approx(2.5 / 3)
    assert state.n_samples == 3
    # Activity below the threshold depresses (LTD).
    state = plasticity_step(state, torch.tensor([[0.5]]), torch.tensor([[1.0, 0.0]]))
    assert float(state.plasticity[0, 0]) == pytest.approx(1.0 + 0.5 * (0.5 - 2.5 / 3))


def test_the_sums_of_several_batches_equal_one_step_per_batch():
    """``batches_sums`` (one product for K batches, each against theta after the ones before) = K steps."""
    generator = torch.Generator().manual_seed(0)
    sizes = [5, 3, 5]  # the last batch of an epoch may be smaller
    posts = [torch.rand(b, 4, generator=generator) for b in sizes]
    pres = [torch.rand(b, 6, generator=generator) for b in sizes]
    post_counts = [torch.randint(0, 5, (b, 4), generator=generator).float() for b in sizes]
    pre_counts = [torch.randint(0, 5, (b, 6), generator=generator).float() for b in sizes]
    start = plasticity_step(initial_plasticity(4, 6), torch.rand(2, 4, generator=generator),
                            torch.rand(2, 6, generator=generator))  # theta != 0: the order matters
    stepped = start
    for batch in zip(posts, pres, post_counts, pre_counts):
        stepped = plasticity_step(stepped, *batch)
    at_once = apply_plasticity(start, batches_sums(start, posts, pres, post_counts, pre_counts))
    for name in PlasticityState._fields:
        torch.testing.assert_close(getattr(at_once, name), getattr(stepped, name), rtol=1e-12, atol=1e-12)
    # Against theta as it was before all three batches instead, M would differ: the test can tell.
    frozen = sum(((p.double() * (p.double() - start.theta)).T @ q.double() for p, q in zip(posts, pres)))
    assert not torch.allclose(start.plasticity + frozen, stepped.plasticity, rtol=1e-6, atol=1e-9)


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
    torch.testing.assert_close(reward_update(reward, usage, 5, FC_RULE), torch.tensor([8.49, 12.49]))
    assert step_size(17, FC_RULE) == 1.0
    assert step_size(18, FC_RULE) == pytest.approx(math.exp(-1))
    assert step_size(31, FC_RULE) == pytest.approx(math.exp(-2))


def test_prune_when_reward_is_negative_and_never_revive():
    alive = torch.tensor([True, True, False])
    assert prune_decision(torch.tensor([1.0, -0.1, 5.0]), alive).tolist() == [True, False, False]
    # A unit that is gone stays gone even with the best score, and its reward is frozen.
    reward = torch.tensor([10.0, -1.0, 10.0, 10.0, 10.0])
    alive = torch.tensor([True, False, True, True, True])
    score = torch.tensor([0.0, 100.0, 1.0, 2.0, 3.0])
    new_reward, new_alive = adaptive_prune(reward, alive, score, 5, FC_RULE)
    assert not new_alive[1] and new_reward[1] == -1.0


def test_unused_unit_is_pruned_after_enough_decisions():
    # u = 0 forever: R_k = 0.999 R_{k-1} - 1.5 goes below zero at the 7th decision.
    reward, alive = torch.tensor([10.0, 10.0]), torch.tensor([True, True])
    score = torch.tensor([0.0, 1.0])
    lifetimes = []
    for unit in range(5, 20):
        reward, alive = adaptive_prune(reward, alive, score, unit, FC_RULE)
        lifetimes.append(bool(alive[0]))
    assert lifetimes.index(False) == 6
    assert alive[1], "a fully used unit survives"
    assert first_possible_pruning(FC_RULE, 15) == 7  # the same, without running the rule on tensors
    assert unused_unit_rewards(FC_RULE, 2) == pytest.approx([8.49, 0.999 * 8.49 - 1.5])


def test_usage_is_normalised_over_all_units_as_the_authors_do_or_over_survivors():
    # Unit 0 is pruned (score 0). Over all units: min 0, P75 of [0, 1, 2, 3, 4] = 3, so unit 1 has
    # u = 1/3 and delta = 2/3 - 1.5. Over survivors: min 1, so unit 1 has u = 0 and delta = -1.5.
    reward = torch.full((5,), 10.0, dtype=torch.float64)
    alive = torch.tensor([False, True, True, True, True])
    score = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    over_all, _ = adaptive_prune(reward, alive, score, 5, FC_RULE)
    over_alive, _ = adaptive_prune(reward, alive, score, 5, FC_RULE, over_alive=True)
    assert over_all[1].item() == pytest.approx(0.999 * 10 + (2 / 3 - 1.5))
    assert over_alive[1].item() == pytest.approx(0.999 * 10 - 1.5)
    assert over_all[0] == over_alive[0] == 10.0  # a pruned unit's reward stays frozen either way


def test_magnitude_weighted_synapse_score_needs_both_correlation_and_weight():
    from dpap_neuro.pruning.dpap_functional import magnitude_weighted

    bcm = torch.tensor([[0.0, 1.0], [1.0, 0.5]], dtype=torch.float64)
    weight = torch.tensor([[2.0, -0.5], [-2.0, 0.5]])
    # N(M) = [[0, 1], [1, .5]], N(|w|) = [[1, 0], [1, 0]]
    assert magnitude_weighted(bcm, weight).tolist() == [[0.0, 0.0], [1.0, 0.0]]


# --- issue #20: the arithmetic of the authors' rule in short runs --------------------------------------


def test_the_authors_channel_rule_cannot_prune_in_20_epochs_per_epoch():
    # Decisions at epochs 5..19 (15): 12 steps of 0.65 and 3 of 0.65/e leave an unused channel at R = 1.40.
    channel = DPAPConfig().rule("conv_channel", 15)
    rewards = unused_unit_rewards(channel, 15)
    assert min(rewards) == pytest.approx(1.40, abs=0.005)
    assert first_possible_pruning(channel, 15) is None
    # The FC rules (c = 1.5, tau = 13) do prune in the same run: at the 7th decision, epoch 11.
    assert first_possible_pruning(DPAPConfig().rule("fc_neuron", 15), 15) == 7


@pytest.mark.parametrize("c, lowest, first_unit", [(0.35, 3.00, None), (0.43, 1.59, None), (0.54, None, 46)])
def test_the_channel_rule_with_5_batch_units_on_the_builtin_data(c, lowest, first_unit):
    # 20 epochs of 23 batches in units of 5: units 0..91, decisions at units 5..91 (87).
    rule = DPAPConfig().rule("conv_channel", 87)._replace(c=c)
    if lowest is not None:
        assert min(unused_unit_rewards(rule, 87)) == pytest.approx(lowest, abs=0.005)
        assert first_possible_pruning(rule, 87) is None
    else:  # only a channel unused at every decision up to unit 46 (the 42nd decision) can go
        assert first_possible_pruning(rule, 87) + rule.warmup - 1 == first_unit


# --- the calibrated rule (ours) ------------------------------------------------------------------------


def test_calibrated_rule_by_hand():
    # 4 decisions, prune after 1/2 of them, tau = 1/2 of them = 2 decisions, no leak:
    # step sizes 1, 1, 1/e, 1/e; G = 1, 2, 2 + 1/e, ...; the unused unit must go at decision 2:
    # R0 = c (G1 + G2) / 2 = 1.5 c.
    rule = calibrated_rule(c=2.0, beta=1.0, warmup=3, r_decay=1.0, n_decisions=4, prune_after_fraction=0.5,
                           tau_fraction=0.5)
    assert rule == AdaptiveRuleParams(2.0, 1.0, 2.0, 3, 1.0, 3.0)
    assert unused_unit_rewards(rule, 4) == pytest.approx([1.0, -1.0, -1.0 - 2 / math.e, -1.0 - 4 / math.e])


@pytest.mark.parametrize("n_decisions", [1, 3, 15, 87, 295, 3750])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.6, 1.0])
def test_calibrated_rule_prunes_an_unused_unit_at_the_chosen_fraction_whatever_the_run_length(n_decisions, fraction):
    for c, beta in ((0.65, 5.0), (1.5, 2.0)):
        rule = calibrated_rule(c, beta, 5, 0.999, n_decisions, fraction, 0.25)
        assert first_possible_pruning(rule, n_decisions) == max(1, math.ceil(fraction * n_decisions - 1e-9))
        # The authors' shape: the step size starts at 1 and never grows.
        sizes = [step_size(unit, rule) for unit in range(5, 5 + n_decisions)]
        assert sizes[0] == 1.0 and sizes == sorted(sizes, reverse=True)


def test_calibrated_rule_keeps_the_authors_shape_on_the_run_scale():
    # tau = 1/4 of the run: four stairs of the step size, 1, 1/e, 1/e^2, 1/e^3, whatever the length.
    for n in (40, 400):
        rule = calibrated_rule(0.65, 5.0, 5, 0.999, n, 0.25, 0.25)
        stairs = sorted({round(step_size(unit, rule), 6) for unit in range(5, 5 + n)}, reverse=True)
        assert stairs == [round(math.exp(-k), 6) for k in range(4)]


def test_calibrated_rule_without_decisions_or_with_a_rule_that_never_loses_reward():
    assert calibrated_rule(0.65, 5.0, 5, 0.999, 0, 0.25, 0.25).r_init > 0
    never = calibrated_rule(-1.0, 2.0, 5, 0.999, 20, 0.25, 0.25)
    assert never.r_init > 0 and first_possible_pruning(never, 20) is None


# --- score options (ours) ------------------------------------------------------------------------------


def test_silent_inputs_get_the_lowest_signed_score():
    plasticity = torch.tensor([[0.5, -0.2, 0.0], [0.1, -0.4, 0.0]], dtype=torch.float64)
    pre_count = torch.tensor([3.0, 7.0, 0.0])  # input 2 never fired: its M is 0, mid-range when signed
    score = silent_inputs_unused(plasticity, pre_count)
    assert score.tolist() == [[0.5, -0.2, -0.4], [0.1, -0.4, -0.4]]
    usage = normalised_usage(score)
    assert usage[:, 2].tolist() == [0.0, 0.0]  # least used: they lose reward at the full rate c


def test_fan_out_per_neuron_of_linear_and_conv_next_layers():
    # Linear after a flattened conv of 2 channels x 2 positions: columns 0-1 are channel 0, 2-3 channel 1.
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(fan_out_per_neuron(mask, 2), torch.tensor([2.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(fan_out_per_neuron(mask, 4), torch.tensor([3.0, 2.0, 0.0, 1.0], dtype=torch.float64))
    conv = torch.ones(4, 2, 3, 3)  # next conv: 4 output channels, 3x3 kernels
    conv[1:, 1] = 0  # input channel 1 feeds only output channel 0
    torch.testing.assert_close(fan_out_per_neuron(conv, 2), torch.tensor([36.0, 9.0], dtype=torch.float64))


def test_unit_energy_by_hand_with_the_loihi_constants():
    # 2 spikes per sample into 10 synapses each, 30 steps of one neuron:
    # 2 * (10 * 23.6 + 1.7 + 81 - 52) + 30 * 52 = 2 * 266.7 + 1560 = 2093.4 pJ.
    energy = unit_energy_pj(torch.tensor([2.0, 0.0]), torch.tensor([10.0, 10.0]), neurons_per_unit=1, steps=30)
    torch.testing.assert_close(energy, torch.tensor([2093.4, 1560.0]))
    # A conv channel of 16 neurons pays 16 updates per step.
    assert float(unit_energy_pj(torch.tensor([0.0]), torch.tensor([0.0]), 16, 30)) == pytest.approx(16 * 30 * 52)


def test_importance_per_energy_ranks_an_expensive_unit_below_a_cheap_one_of_equal_importance():
    importance = torch.tensor([0.8, 0.8, 0.2], dtype=torch.float64)
    energy = torch.tensor([4000.0, 1000.0, 1000.0])
    score = importance_per_energy(importance, energy)
    torch.testing.assert_close(score, torch.tensor([2e-4, 8e-4, 2e-4], dtype=torch.float64))
    assert normalised_usage(score)[0] == 0.0 and normalised_usage(importance)[0] == 1.0
