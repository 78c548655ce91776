"""DPAP's decision policy on hand-made tensors, without a model."""

import pytest
import torch

from dpap_neuro.pruning.base import alive_inputs
from dpap_neuro.pruning.dpap_functional import AdaptiveRuleParams, PlasticityState, adaptive_prune
from dpap_neuro.pruning.dpap_policy import (
    DecisionOptions,
    LayerRules,
    LayerVerdict,
    decide,
    decide_synapses,
    decide_units,
    initial_verdict,
    keep_a_path,
    keep_mask,
    keep_most_important,
    synapse_score,
    unit_score,
)
from hw_export.errors import UserError

T, F = True, False
# R0 = 0.5, no leak, step size 1: one decision with usage u moves R by 2u - c (+ beta if positive).
RULE = AdaptiveRuleParams(c=1.0, beta=0.0, tau=1e9, warmup=0, r_decay=1.0, r_init=0.5)


def fc(alive_units, synapses, reward=0.5):
    """A hidden Linear's verdict: unit flags and a [n_post, n_pre] synapse grid, every R = ``reward``."""
    units = torch.tensor(alive_units)
    grid = torch.tensor(synapses)
    return LayerVerdict(torch.full(units.shape, reward, dtype=torch.float64), units,
                        torch.full(grid.shape, reward, dtype=torch.float64), grid)


def conv(alive_channels):
    channels = torch.tensor(alive_channels)
    return LayerVerdict(torch.full(channels.shape, 0.5, dtype=torch.float64), channels, None, None)


def test_initial_verdict_starts_every_unit_and_synapse_at_its_rules_r0():
    rules = LayerRules(RULE, RULE._replace(r_init=7.0))
    verdict = initial_verdict(3, 2, rules)
    assert verdict.unit_reward.tolist() == [0.5] * 3 and verdict.unit_alive.all()
    assert verdict.synapse_reward.tolist() == [[7.0, 7.0]] * 3 and verdict.synapse_alive.all()
    assert initial_verdict(3, 2, LayerRules(RULE, None)).synapse_alive is None  # conv: channels only


def test_the_floor_keeps_the_most_important_unit_that_was_alive():
    importance = torch.tensor([0.2, 0.5, 0.9])
    # Unit 2 was already gone: it does not come back, even though it is the most important.
    kept = keep_most_important(torch.tensor([F, F, F]), torch.tensor([T, T, F]), importance)
    assert kept.tolist() == [F, T, F]
    some = torch.tensor([T, F, F])
    assert keep_most_important(some, torch.tensor([T, T, T]), importance) is some  # nothing emptied: unchanged


def test_decide_units_prunes_below_zero_and_applies_the_floor():
    # Scores [0, 1, 2, 3, 4]: usage [0, 1/3, 2/3, 1, 1] -> delta = 2u - 1 = [-1, -1/3, 1/3, 1, 1].
    verdict = initial_verdict(5, 1, LayerRules(RULE, None))
    after = decide_units(verdict, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64), 0, RULE)
    assert after.unit_alive.tolist() == [F, T, T, T, T]
    torch.testing.assert_close(after.unit_reward, torch.tensor([-0.5, 0.5 - 1 / 3, 0.5 + 1 / 3, 1.5, 1.5],
                                                               dtype=torch.float64))
    # A rule whose offset sinks every unit: the layer keeps its most important one.
    harsh = RULE._replace(c=10.0)
    emptied = decide_units(verdict, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64), 0, harsh)
    assert emptied.unit_alive.tolist() == [F, F, F, F, T]


def test_decide_synapses_freezes_those_of_dead_units_and_removes_them():
    verdict = fc([T, F], [[T, T, T], [T, T, T]])
    score = torch.tensor([[0.0, 2.0, 4.0], [9.0, 9.0, 9.0]], dtype=torch.float64)
    after = decide_synapses(verdict, score, 0, RULE)
    # Row 0: usage over all 6 scores (min 0, P75 = 9): [0, 2/9, 4/9] -> delta [-1, -5/9, -1/9]: all go.
    # Row 1 belongs to a dead unit: not a candidate, its rewards frozen, its synapses gone.
    assert after.synapse_alive.tolist() == [[F, F, T], [F, F, F]]
    torch.testing.assert_close(after.synapse_reward[0], torch.tensor([-0.5, 0.5 - 5 / 9, 0.5 - 1 / 9],
                                                                     dtype=torch.float64))
    assert after.synapse_reward[1].tolist() == [0.5, 0.5, 0.5]


def test_decide_synapses_over_the_survivors_normalises_by_the_candidates_alone():
    verdict = fc([T, F], [[T, T, T], [T, T, T]])
    score = torch.tensor([[0.0, 2.0, 4.0], [9.0, 9.0, 9.0]], dtype=torch.float64)
    after = decide_synapses(verdict, score, 0, RULE, over_alive=True)
    # Candidates [0, 2, 4] alone: min 0, P75 = 3 -> usage [0, 2/3, 1] -> delta [-1, 1/3, 1].
    assert after.synapse_alive.tolist() == [[F, T, T], [F, F, F]]
    torch.testing.assert_close(after.synapse_reward, torch.tensor([[-0.5, 0.5 + 1 / 3, 1.5], [0.5, 0.5, 0.5]],
                                                                  dtype=torch.float64))


@pytest.mark.parametrize("seed", range(5))
def test_decide_synapses_over_the_survivors_equals_the_whole_matrix_rule(seed):
    """It works on the vector of candidates: the same numbers, to the bit, as the rule over the whole matrix."""
    generator = torch.Generator().manual_seed(seed)
    units = torch.rand(40, generator=generator) < 0.6
    verdict = LayerVerdict(torch.zeros(40, dtype=torch.float64), units,
                           torch.rand(40, 30, generator=generator, dtype=torch.float64),
                           torch.rand(40, 30, generator=generator) < 0.5)
    score = torch.randn(40, 30, generator=generator, dtype=torch.float64)
    rule = RULE._replace(c=1.3, beta=0.7, r_decay=0.99)
    after = decide_synapses(verdict, score, 3, rule, over_alive=True)
    candidates = verdict.synapse_alive & units[:, None]
    reward, alive = adaptive_prune(verdict.synapse_reward, candidates, score, 3, rule, over_alive=True)
    assert torch.equal(after.synapse_reward, reward)
    assert torch.equal(after.synapse_alive, verdict.synapse_alive & alive)
    assert 0 < int(after.synapse_alive.sum()) < int(candidates.sum())  # the case decides something


def test_the_path_floor_restores_the_best_synapse_from_a_reachable_input():
    first = fc([T, F], [[T, T], [F, F]])  # only unit 0 of layer 1 is alive and reachable
    before = torch.tensor([[T, T], [T, T]])  # layer 2 before the decision
    second = fc([T, T], [[F, F], [F, F]])  # the decision removed every synapse of layer 2
    second = second._replace(synapse_reward=torch.tensor([[-0.3, -0.1], [-0.2, -0.05]], dtype=torch.float64))
    kept = keep_a_path([first, second], [torch.tensor([[T, T], [T, T]]), before])
    # Best-rewarded synapse from the reachable input (unit 0 of layer 1): [1, 0] at -0.2 (not [1, 1]).
    assert kept[1].synapse_alive.tolist() == [[F, F], [T, F]]
    assert kept[0] is first


def test_the_path_floor_expands_a_flattened_conv_output_and_never_regrows():
    channels = conv([F, T])  # channel 0 gone; each channel feeds two columns of the Linear
    before = torch.tensor([[T, F, F, F], [F, F, T, F]])  # before the decision: [1, 2] is from channel 1
    linear = fc([T, T], [[T, F, F, F], [F, F, F, F]])  # only a synapse from dead channel 0 is left
    linear = linear._replace(synapse_reward=torch.tensor([[9.0, 9.0, 9.0, 9.0], [-1.0, 9.0, -2.0, 9.0]],
                                                         dtype=torch.float64))
    kept = keep_a_path([channels, linear], [None, before])
    # [0, 0] is reachable from nothing; [1, 2] was alive before and comes from channel 1; the 9s never were.
    assert kept[1].synapse_alive.tolist() == [[T, F, F, F], [F, F, T, F]]


def test_decide_goes_layer_by_layer_then_keeps_a_path():
    rules = [LayerRules(RULE, RULE), LayerRules(RULE, RULE._replace(c=10.0))]  # layer 2's synapse rule sinks all
    verdicts = [initial_verdict(2, 2, rules[0]), initial_verdict(2, 2, rules[1])]
    unit_scores = [torch.tensor([1.0, 1.0], dtype=torch.float64)] * 2  # all equal: usage 0 -> delta -1: floor
    synapse_scores = [torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)] * 2
    after = decide(verdicts, unit_scores, synapse_scores, 0, rules)
    assert [v.unit_alive.tolist() for v in after] == [[T, F], [T, F]]  # one unit each (the floor, argmax: first)
    # Layer 1 keeps nothing from the synapse rule either (delta -1): the path floor brings one synapse back
    # into each layer, from a reachable input into the alive unit.
    assert after[0].synapse_alive.tolist() == [[T, F], [F, F]]
    assert after[1].synapse_alive.tolist() == [[T, F], [F, F]]
    only_units = decide(verdicts, unit_scores, synapse_scores, 0, rules, DecisionOptions(prune_synapses=False))
    assert only_units[1].synapse_alive.all()


def test_keep_mask_combines_units_synapses_and_the_inputs_from_alive_units():
    verdict = fc([T, F, T], [[T, T, F, T], [T, T, T, T], [T, T, T, T]])
    mask = keep_mask(verdict, (3, 4), previous_alive=torch.tensor([T, F]))  # 2 units x 2 positions
    assert mask.tolist() == [[T, T, F, F], [F, F, F, F], [T, T, F, F]]
    channels = keep_mask(conv([T, F]), (2, 3, 1, 1), previous_alive=torch.tensor([F, T, T]))
    assert channels[:, :, 0, 0].tolist() == [[F, T, T], [F, F, F]]
    assert keep_mask(conv([T, F]), (2, 3, 1, 1), None)[:, :, 0, 0].tolist() == [[T, T, T], [F, F, F]]


def test_alive_inputs_is_the_one_fan_in_rule():
    assert alive_inputs(torch.tensor([T, F]), (5, 2, 3, 3)).shape == (1, 2, 1, 1)
    assert alive_inputs(torch.tensor([T, F]), (5, 6)).flatten().tolist() == [T, T, T, F, F, F]
    with pytest.raises(UserError, match="5 inputs cannot come from 2 units"):
        alive_inputs(torch.tensor([T, F]), (1, 5))


def stats(plasticity, activity, pre_activity, pre_count):
    d = torch.float64
    p = torch.tensor(plasticity, dtype=d)
    return PlasticityState(torch.tensor(activity, dtype=d), p, torch.zeros(p.shape[0], dtype=d), 4,
                           torch.tensor(pre_activity, dtype=d), torch.zeros(p.shape[0], dtype=d),
                           torch.tensor(pre_count, dtype=d))


def test_synapse_scores_signed_unsigned_and_silent_inputs():
    s = stats([[0.5, -0.8, 0.0], [0.2, 0.1, 0.0]], [1.0, 1.0], [2.0, 2.0, 0.0], [4.0, 4.0, 0.0])
    weight = torch.ones(2, 3)
    assert synapse_score("bcm", s, weight).tolist() == [[0.5, -0.8, 0.0], [0.2, 0.1, 0.0]]
    # Unsigned: the strongly depressed synapse is used; the silent input (M = 0) is the least used.
    assert synapse_score("abs-bcm", s, weight).tolist() == [[0.5, 0.8, 0.0], [0.2, 0.1, 0.0]]
    assert synapse_score("bcm-silent-unused", s, weight).tolist() == [[0.5, -0.8, -0.8], [0.2, 0.1, -0.8]]


def test_unit_scores_spine_magnitude_and_energy():
    s = stats([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], [2.0, 2.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    weight = torch.tensor([[2.0, -2.0], [0.5, 0.5], [1.0, -2.0]])  # L1 norms 4, 1, 3
    assert unit_score("spine", s, weight).tolist() == [1.0, 1.0, 0.0]
    assert unit_score("spine*magnitude", s, weight).tolist() == [1.0, 0.0, 0.0]
    energy = torch.tensor([3000.0, 1000.0, 1000.0])
    torch.testing.assert_close(unit_score("spine/energy", s, weight, energy),
                               torch.tensor([1 / 3000, 1 / 1000, 0.0], dtype=torch.float64))
