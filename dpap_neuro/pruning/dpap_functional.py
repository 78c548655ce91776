"""DPAP's maths as pure functions (developmental-plasticity-inspired adaptive pruning).

After the authors' released implementation (TPAMI 2024, arXiv 2211.12714);
see docs/DESIGN.md, section 4 and docs/dpap.md. Notation: ``T`` steps, ``B``
samples, ``i`` a postsynaptic unit (neuron or conv channel), ``j`` a
presynaptic unit. Nothing here holds state: every function takes the old
statistics and returns new ones, so each step can be checked by hand.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class AdaptiveRuleParams(NamedTuple):
    """Constants of the "use it or lose it, gradually decay" rule."""

    c: float  # offset: units with 2u < c lose reward
    beta: float  # bonus added to a positive change
    tau: float  # schedule units per step of the exponential decay of the step size
    warmup: int = 5  # schedule units before the first pruning decision
    r_decay: float = 0.999  # leak of the accumulator per decision
    r_init: float = 10.0  # starting value of the accumulator


# The authors' constants (docs/DESIGN.md, section 4).
CONV_CHANNEL_RULE = AdaptiveRuleParams(c=0.65, beta=5.0, tau=12.0)
FC_NEURON_RULE = AdaptiveRuleParams(c=1.5, beta=2.0, tau=13.0)
FC_SYNAPSE_RULE = AdaptiveRuleParams(c=1.5, beta=2.0, tau=13.0)


def spike_trace(spikes: torch.Tensor, decay: float = 0.5) -> torch.Tensor:
    """Per-sample trace ``x = e(T) / T`` with ``e(t) = decay * e(t-1) + s(t)``, ``e(0) = 0``.

    ``spikes``: ``[T, B, n]`` (neurons) or ``[T, B, C, H, W]`` (conv; summed
    over ``H x W`` to one value per channel). Returns ``[B, n]`` / ``[B, C]``.
    """
    n_steps = spikes.shape[0]
    if spikes.dim() == 5:
        spikes = spikes.sum(dim=(3, 4))  # [T, B, C]
    elif spikes.dim() != 3:
        spikes = spikes.flatten(2)
    # e(T) = sum_t decay^(T-1-t) s(t): one weighted sum instead of a loop.
    weights = decay ** torch.arange(n_steps - 1, -1, -1, dtype=spikes.dtype, device=spikes.device)
    return torch.einsum("t,tbn->bn", weights, spikes) / n_steps


class PlasticityState(NamedTuple):
    """Statistics of one layer accumulated over training."""

    activity: torch.Tensor  # A: [n_post], sum over samples of the post trace
    plasticity: torch.Tensor  # M: [n_post, n_pre], accumulated BCM-like term
    theta: torch.Tensor  # [n_post], running mean of the post trace (sliding threshold)
    n_samples: int  # samples seen (for the running mean)
    pre_activity: torch.Tensor  # [n_pre], sum over samples of the pre trace (for spike-count-aware scores)


def initial_plasticity(n_post: int, n_pre: int, dtype=torch.float64, device=None) -> PlasticityState:
    return PlasticityState(torch.zeros(n_post, dtype=dtype, device=device),
                           torch.zeros(n_post, n_pre, dtype=dtype, device=device),
                           torch.zeros(n_post, dtype=dtype, device=device), 0,
                           torch.zeros(n_pre, dtype=dtype, device=device))


class PlasticitySums(NamedTuple):
    """One batch's contributions, sums over its samples: data-parallel ranks add theirs up."""

    bcm_pre: torch.Tensor  # [n_post, n_pre]: sum_b x_bi (x_bi - theta_i) x_bj
    post: torch.Tensor  # [n_post]: sum_b x_bi
    count: int  # samples in the batch
    pre: torch.Tensor  # [n_pre]: sum_b x_bj


def plasticity_sums(state: PlasticityState, post_trace: torch.Tensor, pre_trace: torch.Tensor) -> PlasticitySums:
    """The batch's sums, all against the same ``theta`` (the value before this batch)."""
    post = post_trace.to(state.plasticity.dtype)
    pre = pre_trace.to(state.plasticity.dtype)
    bcm = post * (post - state.theta)  # [B, n_post]
    return PlasticitySums(bcm.T @ pre, post.sum(dim=0), post.shape[0], pre.sum(dim=0))


def apply_plasticity(state: PlasticityState, sums: PlasticitySums) -> PlasticityState:
    """Add a batch's sums; ``theta`` becomes the running mean over all samples seen, *after* the M term."""
    seen = state.n_samples + sums.count
    theta = state.theta + (sums.post - sums.count * state.theta) / seen if seen else state.theta
    return PlasticityState(state.activity + sums.post, state.plasticity + sums.bcm_pre, theta, seen,
                           state.pre_activity + sums.pre)


def plasticity_step(state: PlasticityState, post_trace: torch.Tensor, pre_trace: torch.Tensor) -> PlasticityState:
    """One batch of local plasticity statistics.

    ``post_trace``: ``[B, n_post]``, ``pre_trace``: ``[B, n_pre]``.

    * ``A_i += sum_b x_bi``
    * ``M_ij += sum_b x_bi (x_bi - theta_i) x_bj``  (BCM-like: LTP above the
      sliding threshold, LTD below it)
    * ``theta_i`` <- running mean of ``x_i`` over all samples seen, updated
      *after* the M term.

    Every term is a sum over the batch, so splitting a batch over several
    processes and adding their ``plasticity_sums`` gives the same step.
    """
    return apply_plasticity(state, plasticity_sums(state, post_trace, pre_trace))


def min_max(values: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation to 0..1 (all zeros when the values are all equal)."""
    low, high = values.min(), values.max()
    if high <= low:
        return torch.zeros_like(values)
    return (values - low) / (high - low)


def spine_importance(plasticity: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
    """Dendritic-spine importance ``S_i = N(sum_j M_ij) * N(A_i)``; ``[n_post]``."""
    return min_max(plasticity.sum(dim=1)) * min_max(activity)


def magnitude_weighted(score: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``N(score) * N(|w|)``: a synapse score that also needs a large weight (ours, not the authors').

    ``score``, ``weight``: the same shape, ``[n_post, n_pre]`` for synapses
    (BCM's M_ij says whether pre and post fire together; a synapse with a tiny
    weight barely carries that correlation, and one with a large weight matters
    even when M_ij is small) or ``[n_post]`` for units (``S_i`` and the L1
    norm of each unit's incoming weights).
    """
    return min_max(score) * min_max(weight.abs().to(score.dtype))


def normalised_usage(score: torch.Tensor) -> torch.Tensor:
    """``u = clip((S - min S) / (P75(S) - min S), 0, 1)``, elementwise over ``score``."""
    low = score.min()
    p75 = torch.quantile(score.flatten().double(), 0.75).to(score.dtype)
    if p75 <= low:
        # At least 75 % of units share the minimum: those are "unused", the rest fully used.
        return (score > low).to(score.dtype)
    return ((score - low) / (p75 - low)).clamp(0.0, 1.0)


def step_size(unit_index: int, rule: AdaptiveRuleParams) -> float:
    """``exp(-floor((k - warmup) / tau))`` for schedule unit ``k`` (epoch or block of batches)."""
    return math.exp(-math.floor((unit_index - rule.warmup) / rule.tau))


def reward_update(reward: torch.Tensor, usage: torch.Tensor, unit_index: int,
                  rule: AdaptiveRuleParams) -> torch.Tensor:
    """"Use it or lose it, gradually decay": ``R <- r_decay * R + delta * step_size``.

    ``delta = 2u - c``, plus ``beta`` where positive.
    """
    delta = 2.0 * usage - rule.c
    delta = torch.where(delta > 0, delta + rule.beta, delta)
    return rule.r_decay * reward + delta * step_size(unit_index, rule)


def prune_decision(reward: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Units alive after this decision: alive before and ``R >= 0``. Pruning is permanent."""
    return alive & (reward >= 0)


def adaptive_prune(reward: torch.Tensor, alive: torch.Tensor, score: torch.Tensor, unit_index: int,
                   rule: AdaptiveRuleParams, over_alive: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One decision for a group of units (a layer's neurons, channels or synapses).

    Usage is normalised over every unit of the group, pruned ones included,
    as the authors' code does (``over_alive=False``): pruned units keep the
    minimum low, so pruning slows down as the weak units leave. With
    ``over_alive=True`` only the survivors shape the minimum and the 75th
    percentile, so the bar rises as weak units leave (more aggressive).
    Returns ``(new_reward, new_alive)``; pruned units keep their reward frozen.
    """
    if not alive.any():
        return reward, alive
    if over_alive:
        usage = torch.zeros_like(score)
        usage[alive] = normalised_usage(score[alive])
    else:
        usage = normalised_usage(score)
    updated = reward_update(reward, usage, unit_index, rule)
    new_reward = torch.where(alive, updated, reward)
    return new_reward, prune_decision(new_reward, alive)
