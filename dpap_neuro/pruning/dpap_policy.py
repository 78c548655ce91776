"""DPAP's decision policy as pure functions: which units and synapses one decision keeps.

``dpap_functional`` has the maths of one group (a layer's channels, neurons
or synapses: usage, the reward rule, ``R < 0``); this module puts a whole
decision together over a network's prunable layers, in order: each layer's
units (with the one-unit floor), then its synapses, then the path floor, and
turns what survives into masks. Everything works on plain tensors
(``LayerVerdict``), so every case can be built by hand and checked without a
model; ``DPAPPruner`` only gathers the statistics and calls ``decide``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from dpap_neuro.pruning.base import alive_inputs
from dpap_neuro.pruning.dpap_functional import (
    AdaptiveRuleParams,
    PlasticityState,
    adaptive_prune,
    importance_per_energy,
    magnitude_weighted,
    silent_inputs_unused,
    spine_importance,
)

# Scores a DPAP decision can rank by; the first of each is the authors'.
SYNAPSE_SCORES = ("bcm", "abs-bcm", "bcm-silent-unused", "bcm*magnitude", "bcm*magnitude/pre_rate")
NEURON_SCORES = ("spine", "spine*magnitude", "spine/energy")
WEIGHTED_SCORES = ("spine*magnitude", "bcm*magnitude", "bcm*magnitude/pre_rate")  # the ones that read the weight


class LayerVerdict(NamedTuple):
    """What DPAP has decided so far for one prunable layer (``True``: alive)."""

    unit_reward: torch.Tensor  # [n_post] float64: R of each neuron or channel
    unit_alive: torch.Tensor  # [n_post] bool
    synapse_reward: torch.Tensor | None  # [n_post, n_pre] float64 for a hidden Linear; None for a conv
    synapse_alive: torch.Tensor | None  # [n_post, n_pre] bool, or None


class LayerRules(NamedTuple):
    """The rules one layer is judged by."""

    unit: AdaptiveRuleParams  # conv channels or FC neurons
    synapse: AdaptiveRuleParams | None  # FC synapses (None for a conv layer)


class DecisionOptions(NamedTuple):
    prune_units: bool = True  # neuron / channel granularity
    prune_synapses: bool = True  # FC synapse granularity
    over_alive: bool = False  # usage normalised over the survivors only (ours) instead of all units (the authors')


def initial_verdict(n_post: int, n_pre: int, rules: LayerRules, device=None) -> LayerVerdict:
    """Every unit (and, for FC, synapse) alive with its rule's R0."""
    unit_reward = torch.full((n_post,), rules.unit.r_init, dtype=torch.float64, device=device)
    alive = torch.ones(n_post, dtype=torch.bool, device=device)
    if rules.synapse is None:
        return LayerVerdict(unit_reward, alive, None, None)
    return LayerVerdict(unit_reward, alive,
                        torch.full((n_post, n_pre), rules.synapse.r_init, dtype=torch.float64, device=device),
                        torch.ones(n_post, n_pre, dtype=torch.bool, device=device))


def unit_score(kind: str, stats: PlasticityState, weight: torch.Tensor | None,
               energy_pj: torch.Tensor | None = None) -> torch.Tensor:
    """Importance of each unit, ``[n_post]`` (``NEURON_SCORES``).

    ``"spine"`` (the authors'): ``S_i``. ``"spine*magnitude"`` (ours):
    ``N(S_i) N(|w_i|_1)``, ``weight`` the layer's effective weight
    ``[n_post, ...]``. ``"spine/energy"`` (ours): ``S_i`` per picojoule the
    unit costs per sample (``energy_pj``, ``[n_post]``, from
    ``dpap_functional.unit_energy_pj``). ``weight`` is read only by
    ``WEIGHTED_SCORES`` (None will do for the others).
    """
    importance = spine_importance(stats.plasticity, stats.activity)
    if kind == "spine*magnitude":
        return magnitude_weighted(importance, weight.abs().flatten(1).sum(dim=1))
    if kind == "spine/energy":
        return importance_per_energy(importance, energy_pj)
    return importance


def synapse_score(kind: str, stats: PlasticityState, weight: torch.Tensor | None) -> torch.Tensor:
    """Usage score of each synapse of a hidden Linear, ``[n_post, n_pre]`` (``SYNAPSE_SCORES``).

    ``"bcm"`` (the authors'): signed ``M_ij``. ``"abs-bcm"`` (ours):
    ``|M_ij|``: strong depression is use too, and a silent input (``M = 0``)
    is the least used. ``"bcm-silent-unused"`` (ours): signed, with the
    synapses of inputs that never fired at the bottom
    (``silent_inputs_unused``). ``"bcm*magnitude"``: ``N(M) N(|w|)``;
    ``"bcm*magnitude/pre_rate"``: ``N(M_ij / A_j) N(|w|)``, the correlation
    per presynaptic spike (a busy input costs a synop per spike).
    """
    plasticity = stats.plasticity
    if kind == "abs-bcm":
        return plasticity.abs()
    if kind == "bcm-silent-unused":
        return silent_inputs_unused(plasticity, stats.pre_count)
    if kind == "bcm*magnitude/pre_rate":
        plasticity = plasticity / stats.pre_activity.clamp_min(1e-12)[None, :]
    if kind.startswith("bcm*magnitude"):
        return magnitude_weighted(plasticity, weight)
    return plasticity


def keep_most_important(alive: torch.Tensor, was_alive: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """The one-unit floor (ours): a decision that empties a layer keeps its most important unit that was alive.

    A layer without a unit cuts the network in two (nothing reaches the
    readout); on tiny data the rule can otherwise empty one.
    """
    if bool(alive.any()) or not bool(was_alive.any()):
        return alive
    best = torch.argmax(torch.where(was_alive, importance, torch.full_like(importance, -math.inf)))
    kept = alive.clone()
    kept[best] = True
    return kept


def decide_units(verdict: LayerVerdict, importance: torch.Tensor, unit_index: int, rule: AdaptiveRuleParams,
                 over_alive: bool = False) -> LayerVerdict:
    """One decision on a layer's neurons or channels (``importance``: ``[n_post]``), with the one-unit floor."""
    reward, alive = adaptive_prune(verdict.unit_reward, verdict.unit_alive, importance, unit_index, rule,
                                   over_alive)
    return verdict._replace(unit_reward=reward,
                            unit_alive=keep_most_important(alive, verdict.unit_alive, importance))


def decide_synapses(verdict: LayerVerdict, score: torch.Tensor, unit_index: int, rule: AdaptiveRuleParams,
                    over_alive: bool = False) -> LayerVerdict:
    """One decision on a hidden Linear's synapses (``score``: ``[n_post, n_pre]``); those of dead units go too."""
    candidates = verdict.synapse_alive & verdict.unit_alive[:, None]
    if not over_alive:  # usage normalised over every synapse of the layer: the whole matrix
        reward, alive = adaptive_prune(verdict.synapse_reward, candidates, score, unit_index, rule, over_alive)
        return verdict._replace(synapse_reward=reward, synapse_alive=verdict.synapse_alive & alive)
    # Usage over the candidates alone: the decision works on the vector of candidates (the same numbers,
    # at a cost that shrinks with the network), every one alive in it.
    where = candidates.flatten().nonzero()[:, 0]
    reward, alive = adaptive_prune(verdict.synapse_reward.flatten()[where], candidates.new_ones(where.shape),
                                   score.flatten()[where], unit_index, rule)
    reward = verdict.synapse_reward.flatten().index_copy(0, where, reward).view_as(candidates)
    alive = torch.zeros_like(candidates).flatten().index_copy_(0, where, alive).view_as(candidates)
    return verdict._replace(synapse_reward=reward, synapse_alive=verdict.synapse_alive & alive)


def _restore_best_synapse(verdict: LayerVerdict, pool: torch.Tensor) -> LayerVerdict:
    """``verdict`` with the best-rewarded synapse of ``pool`` (``[n_post, n_pre]`` bool) alive again."""
    reward = torch.where(pool, verdict.synapse_reward, torch.full_like(verdict.synapse_reward, -math.inf))
    post, pre = divmod(int(torch.argmax(reward)), pool.shape[1])
    synapse_alive = verdict.synapse_alive.clone()
    synapse_alive[post, pre] = True
    return verdict._replace(synapse_alive=synapse_alive)


def keep_a_path(verdicts: Sequence[LayerVerdict], synapses_before: Sequence[torch.Tensor | None],
                own_columns: Sequence[int] | None = None) -> list[LayerVerdict]:
    """The path floor (ours): keep one path from the input to the readout; nothing pruned earlier grows back.

    A hidden unit is reachable when it is alive and, for an FC layer, has a
    live synapse from a reachable unit of the layer before (a conv channel:
    when some channel before is reachable), or, in a recurrent layer, from a
    reachable unit of its own layer. Where a decision leaves an FC layer
    without a reachable unit, the best-rewarded synapse that was alive
    before the decision (``synapses_before``, per layer ``[n_post, n_pre]``
    or None for conv), from a reachable input into an alive unit, is kept.
    ``own_columns[l]``: the last columns of layer ``l`` that come from its
    own units one step earlier (a recurrent layer's; 0 or None: none).
    """
    kept, reachable_in = [], None  # the first layer's inputs are all reachable
    for index, (verdict, before) in enumerate(zip(verdicts, synapses_before)):
        own = own_columns[index] if own_columns else 0
        if verdict.synapse_alive is None:  # a conv layer
            reachable = verdict.unit_alive & (reachable_in is None or bool(reachable_in.any()))
        else:
            n_from_below = before.shape[1] - own
            inputs = (torch.ones(n_from_below, dtype=torch.bool, device=before.device) if reachable_in is None
                      else alive_inputs(reachable_in, (before.shape[0], n_from_below))[0])
            live = verdict.synapse_alive[:, :n_from_below] & verdict.unit_alive[:, None] & inputs[None, :]
            pool = before[:, :n_from_below] & verdict.unit_alive[:, None] & inputs[None, :]
            if not bool(live.any()) and bool(pool.any()):
                verdict = _restore_best_synapse(verdict, torch.cat([pool, pool.new_zeros(pool.shape[0], own)], 1))
                live = verdict.synapse_alive[:, :n_from_below] & verdict.unit_alive[:, None] & inputs[None, :]
            reachable = live.any(dim=1)
            if own:  # and whatever reachable units of its own layer reach, in any number of steps
                recurrent = verdict.synapse_alive[:, n_from_below:] & verdict.unit_alive[:, None]
                while True:
                    grown = reachable | (recurrent & reachable[None, :]).any(dim=1)
                    if torch.equal(grown, reachable):
                        break
                    reachable = grown
        kept.append(verdict)
        reachable_in = reachable
    return kept


def decide(verdicts: Sequence[LayerVerdict], unit_scores: Sequence[torch.Tensor],
           synapse_scores: Sequence[torch.Tensor | None], unit_index: int, rules: Sequence[LayerRules],
           options: DecisionOptions = DecisionOptions(), own_columns: Sequence[int] | None = None
           ) -> list[LayerVerdict]:
    """One pruning decision (schedule unit ``unit_index``) over every prunable layer, first to last.

    Per layer: its units by ``unit_scores[l]`` (``[n_post]``), then, for a
    hidden Linear, its synapses by ``synapse_scores[l]`` (``[n_post,
    n_pre]``; a recurrent layer's input and recurrent synapses side by side,
    ``own_columns[l]`` of them its own); then the path floor over the whole
    network.
    """
    before = [v.synapse_alive for v in verdicts]
    decided = []
    for verdict, importance, score, rule in zip(verdicts, unit_scores, synapse_scores, rules):
        if options.prune_units:
            verdict = decide_units(verdict, importance, unit_index, rule.unit, options.over_alive)
        if options.prune_synapses and verdict.synapse_alive is not None:
            verdict = decide_synapses(verdict, score, unit_index, rule.synapse, options.over_alive)
        decided.append(verdict)
    return keep_a_path(decided, before, own_columns)


def keep_mask(verdict: LayerVerdict, weight_shape: torch.Size | tuple,
              previous_alive: torch.Tensor | None, own_columns: int = 0) -> torch.Tensor:
    """The layer's mask from a verdict: alive units' rows, alive synapses, inputs from alive units before.

    ``weight_shape``: ``[n_post, n_pre]`` or ``[C_out, C_in, kh, kw]``;
    ``previous_alive``: the previous prunable layer's ``unit_alive`` (None
    for the first). ``own_columns``: the last columns come from the layer's
    own units (a recurrent layer's ``[n_post, n_in + n_post]``): a dead
    unit loses its column there too. Returns a bool tensor of ``weight_shape``.
    """
    keep = verdict.unit_alive.view(-1, *([1] * (len(weight_shape) - 1))).expand(*weight_shape)
    if verdict.synapse_alive is not None:
        keep = keep & verdict.synapse_alive
    if own_columns:
        n_from_below = weight_shape[1] - own_columns
        below = (torch.ones(n_from_below, dtype=torch.bool, device=keep.device) if previous_alive is None
                 else alive_inputs(previous_alive, (weight_shape[0], n_from_below))[0])
        return keep & torch.cat([below, verdict.unit_alive])[None, :]
    if previous_alive is not None:
        keep = keep & alive_inputs(previous_alive, weight_shape)
    return keep
