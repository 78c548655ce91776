"""DPAP's maths as pure functions (developmental-plasticity-inspired adaptive pruning).

After the authors' released implementation (TPAMI 2024, arXiv 2211.12714);
see docs/DESIGN.md, section 4 and docs/dpap.md. Notation: ``T`` steps, ``B``
samples, ``i`` a postsynaptic unit (neuron or conv channel), ``j`` a
presynaptic unit. Nothing here holds state: every function takes the old
statistics and returns new ones, so each step can be checked by hand. The
decision policy built on these (which units and synapses a decision keeps)
is in ``dpap_policy``; the constants are ``DPAPConfig``'s and the presets'.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import torch

from hw_export.energy import LOIHI, EnergyProfile
from hw_export.errors import UserError

TRACES = ("final", "mean")  # "final": the authors' e(T)/T; "mean": the mean of e(t) over the sample (ours)


def per_unit(values: torch.Tensor) -> torch.Tensor:
    """``[T, B, n]`` from ``[T, B, n]`` (neurons), ``[T, B, C, H, W]`` (conv: summed over H x W) or ``[T, B, ...]``."""
    if values.dim() == 5:
        return values.sum(dim=(3, 4))
    return values if values.dim() == 3 else values.flatten(2)


def spike_trace(spikes: torch.Tensor, decay: float = 0.5, kind: str = "final") -> torch.Tensor:
    """Per-sample trace of each unit, from ``e(t) = decay * e(t-1) + s(t)``, ``e(-1) = 0``.

    ``kind="final"`` (the authors'): ``x = e(T) / T``; with decay 0.5,
    87.5 % of it comes from the last three steps. ``kind="mean"`` (ours):
    ``x = (1/T) sum_t e(t)``, every step of the sample weighted alike but
    for the last few (a spike at step s counts ``(1 - decay^(T-s)) /
    (1 - decay)``). ``spikes``: ``[T, B, n]`` or ``[T, B, C, H, W]`` (conv:
    one value per channel, summed over ``H x W``). Returns ``[B, n]`` / ``[B, C]``.
    """
    return trace_and_count(spikes, decay, kind)[0]


def spike_counts(spikes: torch.Tensor) -> torch.Tensor:
    """Spikes of each unit in each sample, all its neurons and steps: ``[T, B, ...]`` -> ``[B, n]``."""
    return per_unit(spikes).sum(dim=0)


def trace_and_count(spikes: torch.Tensor, decay: float = 0.5, kind: str = "final"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spike_trace, spike_counts)`` of ``spikes`` in one pass over them: ``[T, B, ...]`` -> ``[B, n]`` each."""
    spikes = per_unit(spikes)
    both = _step_weights(spikes.shape[0], decay, kind, spikes.dtype, spikes.device) @ spikes.flatten(1)  # [2, B * n]
    return both[0].view(spikes.shape[1:]), both[1].view(spikes.shape[1:])


@functools.lru_cache(maxsize=16)  # the same few every batch; never modified
def _step_weights(n_steps: int, decay: float, kind: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[2, T]``: the trace's weight of each step (divided by ``T``), and ones (the count)."""
    ages = torch.arange(n_steps - 1, -1, -1, dtype=dtype, device=device)  # T-1-t
    if kind == "final":
        weights = decay ** ages  # e(T) = sum_t decay^(T-1-t) s(t): one weighted sum instead of a loop
    elif kind == "mean":
        weights = (1.0 - decay ** (ages + 1)) / (1.0 - decay)  # sum_{t' >= t} decay^(t'-t)
    else:
        raise UserError(f"unknown trace {kind!r}; choose one of {', '.join(TRACES)}")
    return torch.stack([weights / n_steps, torch.ones_like(weights)])


class PlasticityState(NamedTuple):
    """Statistics of one layer accumulated over training (sums over every sample seen)."""

    activity: torch.Tensor  # A: [n_post], sum over samples of the post trace
    plasticity: torch.Tensor  # M: [n_post, n_pre], accumulated BCM-like term
    theta: torch.Tensor  # [n_post], running mean of the post trace (sliding threshold)
    n_samples: int  # samples seen (for the running mean)
    pre_activity: torch.Tensor  # [n_pre], sum over samples of the pre trace
    post_count: torch.Tensor  # [n_post], spikes of each unit (all its neurons), summed over samples
    pre_count: torch.Tensor  # [n_pre], the layer's input summed over steps and samples (0: never fired)


def initial_plasticity(n_post: int, n_pre: int, dtype=torch.float64, device=None) -> PlasticityState:
    def zeros(*shape):
        return torch.zeros(*shape, dtype=dtype, device=device)

    return PlasticityState(zeros(n_post), zeros(n_post, n_pre), zeros(n_post), 0, zeros(n_pre), zeros(n_post),
                           zeros(n_pre))


class PlasticitySums(NamedTuple):
    """One batch's contributions, sums over its samples: data-parallel ranks add theirs up."""

    bcm_pre: torch.Tensor  # [n_post, n_pre]: sum_b x_bi (x_bi - theta_i) x_bj
    post: torch.Tensor  # [n_post]: sum_b x_bi
    count: int  # samples in the batch
    pre: torch.Tensor  # [n_pre]: sum_b x_bj
    post_count: torch.Tensor  # [n_post]: spikes per unit
    pre_count: torch.Tensor  # [n_pre]: input per unit


def plasticity_sums(state: PlasticityState, post_trace: torch.Tensor, pre_trace: torch.Tensor,
                    post_count: torch.Tensor, pre_count: torch.Tensor) -> PlasticitySums:
    """The batch's sums, all against the same ``theta`` (the value before this batch).

    ``post_trace``, ``post_count``: ``[B, n_post]``; ``pre_trace``, ``pre_count``: ``[B, n_pre]``.
    """
    dtype = state.plasticity.dtype
    post, pre = post_trace.to(dtype), pre_trace.to(dtype)
    bcm = post * (post - state.theta)  # [B, n_post]
    return PlasticitySums(bcm.T @ pre, post.sum(dim=0), post.shape[0], pre.sum(dim=0),
                          post_count.to(dtype).sum(dim=0), pre_count.to(dtype).sum(dim=0))


def batches_sums(state: PlasticityState, post_traces: Sequence[torch.Tensor], pre_traces: Sequence[torch.Tensor],
                 post_counts: Sequence[torch.Tensor], pre_counts: Sequence[torch.Tensor],
                 post_totals: torch.Tensor | None = None, sample_counts: Sequence[int] | None = None
                 ) -> PlasticitySums:
    """The sums of ``K`` batches at once, equal to ``K`` ``plasticity_step`` calls (up to float64 rounding).

    Batch ``k``'s BCM term is measured against ``theta`` after the batches
    before it (``apply_plasticity``'s update, batch by batch), and all ``K``
    terms are added in one matrix product: one call where ``K`` would cost
    ``K`` times the small operations. Each list holds one ``[B_k, n]``
    tensor per batch, as ``plasticity_sums`` takes them. ``post_totals``
    (``[K, n_post]``: each batch's ``sum_b x_bi``) and ``sample_counts``
    are over every data-parallel rank (default: these batches', one process).
    """
    dtype = state.plasticity.dtype
    posts = [trace.to(dtype) for trace in post_traces]
    if post_totals is None:
        post_totals, sample_counts = torch.stack([post.sum(dim=0) for post in posts]), [len(p) for p in posts]
    theta, seen, bcm = state.theta, state.n_samples, []
    for post, total, count in zip(posts, post_totals, sample_counts):
        bcm.append(post * (post - theta))  # [B_k, n_post]
        seen += count
        theta = theta + (total - count * theta) / seen if seen else theta
    pre = torch.cat(list(pre_traces)).to(dtype)  # [sum_k B_k, n_pre]
    post = torch.cat(posts)
    return PlasticitySums(torch.cat(bcm).T @ pre, post.sum(dim=0), post.shape[0], pre.sum(dim=0),
                          torch.cat(list(post_counts)).to(dtype).sum(dim=0),
                          torch.cat(list(pre_counts)).to(dtype).sum(dim=0))


def apply_plasticity(state: PlasticityState, sums: PlasticitySums) -> PlasticityState:
    """Add a batch's sums; ``theta`` becomes the running mean over all samples seen, *after* the M term."""
    seen = state.n_samples + sums.count
    theta = state.theta + (sums.post - sums.count * state.theta) / seen if seen else state.theta
    return PlasticityState(state.activity + sums.post, state.plasticity + sums.bcm_pre, theta, seen,
                           state.pre_activity + sums.pre, state.post_count + sums.post_count,
                           state.pre_count + sums.pre_count)


def plasticity_step(state: PlasticityState, post_trace: torch.Tensor, pre_trace: torch.Tensor,
                    post_count: torch.Tensor | None = None, pre_count: torch.Tensor | None = None) -> PlasticityState:
    """One batch of local plasticity statistics.

    ``post_trace``: ``[B, n_post]``, ``pre_trace``: ``[B, n_pre]``; the
    counts (``spike_counts``) default to zeros.

    * ``A_i += sum_b x_bi``
    * ``M_ij += sum_b x_bi (x_bi - theta_i) x_bj``  (BCM-like: LTP above the
      sliding threshold, LTD below it)
    * ``theta_i`` <- running mean of ``x_i`` over all samples seen, updated
      *after* the M term.

    Every term is a sum over the batch, so splitting a batch over several
    processes and adding their ``plasticity_sums`` gives the same step.
    """
    post_count = torch.zeros_like(post_trace) if post_count is None else post_count
    pre_count = torch.zeros_like(pre_trace) if pre_count is None else pre_count
    return apply_plasticity(state, plasticity_sums(state, post_trace, pre_trace, post_count, pre_count))


# --- scores: how much a unit or synapse is used ---------------------------------------------------------


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
    """``N(score) * N(|w|)``: a score that also needs a large weight (ours, not the authors').

    ``score``, ``weight``: the same shape, ``[n_post, n_pre]`` for synapses
    (BCM's M_ij says whether pre and post fire together; a synapse with a tiny
    weight barely carries that correlation, and one with a large weight matters
    even when M_ij is small) or ``[n_post]`` for units (``S_i`` and the L1
    norm of each unit's incoming weights).
    """
    return min_max(score) * min_max(weight.abs().to(score.dtype))


def silent_inputs_unused(plasticity: torch.Tensor, pre_count: torch.Tensor) -> torch.Tensor:
    """Signed ``M_ij``, but a synapse whose input never fired gets the group's lowest score (ours).

    Such a synapse has ``M_ij = 0``: it sits mid-range among signed scores
    (above every depressed synapse) although it has carried no spike, so it
    cannot have mattered to any output so far and removing it costs nothing
    (nor saves anything: no spike, no synaptic operation; it frees synapse
    memory). As the least used it loses reward at the full rate ``c``; if
    its input starts firing, its score recovers. ``plasticity``: ``[n_post,
    n_pre]``; ``pre_count``: ``[n_pre]``.
    """
    silent = (pre_count <= 0)[None, :].expand_as(plasticity)
    return torch.where(silent, plasticity.min(), plasticity)


def fan_out_per_neuron(next_mask: torch.Tensor, n_units: int) -> torch.Tensor:
    """Live synapses that one spike of a neuron of each unit reaches in the next synaptic layer; ``[n_units]``.

    ``next_mask``: the next layer's mask, ``[C_out, C_in, kh, kw]`` (a
    conv: every pixel of input channel ``j`` reaches the live kernel entries
    of ``j``, borders aside; average pooling in between changes the weight,
    not the synapses reached) or ``[n_out, n_in]`` (a ``Linear``; ``n_in =
    n_units * positions`` after a flattened conv output: the mean over a
    channel's positions).
    """
    per_input = (next_mask != 0).sum(dim=0).double()  # [C_in, kh, kw] or [n_in]
    if next_mask.dim() == 4:
        return per_input.flatten(1).sum(dim=1)
    return per_input.view(n_units, -1).mean(dim=1)


def unit_energy_pj(spikes_per_sample: torch.Tensor, fan_out: torch.Tensor, neurons_per_unit: int, steps: int,
                   profile: EnergyProfile = LOIHI) -> torch.Tensor:
    """Loihi energy one unit costs per sample, picojoules; ``[n_units]``.

    Each spike reaches ``fan_out`` synapses (``e_synop_pj`` each) and is
    routed once (``e_spike_pj``); each of the unit's neurons is updated at
    every step (``e_neuron_update_inactive_pj``, or ``..._active_pj`` in
    the steps it spikes). Constants: ``hw_export.energy.LOIHI``, Davies et
    al., IEEE Micro 38(1), 2018, Table 2 (23.6 pJ per synaptic op, 81 / 52
    pJ per active / inactive neuron update, 1.7 pJ per spike).
    """
    per_spike = (fan_out * profile.e_synop_pj + profile.e_spike_pj
                 + profile.e_neuron_update_active_pj - profile.e_neuron_update_inactive_pj)
    return spikes_per_sample * per_spike + steps * neurons_per_unit * profile.e_neuron_update_inactive_pj


def importance_per_energy(importance: torch.Tensor, energy_pj: torch.Tensor) -> torch.Tensor:
    """``S_i / E_i``: importance per picojoule (ours), so an expensive unit must be the more important to stay."""
    return importance / energy_pj.to(importance.dtype).clamp_min(1e-12)


def normalised_usage(score: torch.Tensor) -> torch.Tensor:
    """``u = clip((S - min S) / (P75(S) - min S), 0, 1)``, elementwise over ``score``."""
    low = score.min()
    p75 = torch.quantile(score.flatten().double(), 0.75).to(score.dtype)
    if p75 <= low:
        # At least 75 % of units share the minimum: those are "unused", the rest fully used.
        return (score > low).to(score.dtype)
    return ((score - low) / (p75 - low)).clamp(0.0, 1.0)


# --- the rule: "use it or lose it, gradually decay" -----------------------------------------------------


class AdaptiveRuleParams(NamedTuple):
    """One "use it or lose it, gradually decay" rule (a layer's channels, neurons or synapses)."""

    c: float  # offset: units with 2u < c lose reward
    beta: float  # bonus added to a positive change
    tau: float  # schedule units per step of the exponential decay of the step size
    warmup: int  # schedule units before the first pruning decision
    r_decay: float  # leak of the accumulator per decision
    r_init: float  # starting value of the accumulator


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


def unused_unit_rewards(rule: AdaptiveRuleParams, n_decisions: int) -> list[float]:
    """R after each of ``n_decisions`` decisions (units ``warmup``, ``warmup + 1``, ...) of a unit of usage 0 at each.

    The lowest R any unit can reach: usage 0 gives the largest fall, ``c * step_size``.
    """
    reward, rewards = rule.r_init, []
    for unit in range(rule.warmup, rule.warmup + n_decisions):
        reward = rule.r_decay * reward - rule.c * step_size(unit, rule)
        rewards.append(reward)
    return rewards


def first_possible_pruning(rule: AdaptiveRuleParams, n_decisions: int) -> int | None:
    """The first decision (1-based) at which a unit of usage 0 at every decision is pruned; None if never."""
    for decision, reward in enumerate(unused_unit_rewards(rule, n_decisions), start=1):
        if reward < 0:
            return decision
    return None


def calibrated_rule(c: float, beta: float, warmup: int, r_decay: float, n_decisions: int,
                    prune_after_fraction: float, tau_fraction: float) -> AdaptiveRuleParams:
    """The authors' rule with tau and R0 set from the run's length (ours): the "calibrated" rule.

    The step size keeps the authors' staircase ``exp(-floor(n / tau))`` (fast
    early, slowing down) with ``tau = tau_fraction * n_decisions``, so the
    same fraction of the run falls on each stair whatever the number of
    decisions. A unit with usage 0 at every decision has, after ``n``
    decisions, ``R_n = r_decay^n (R0 - c G_n)``, ``G_n = sum_{m<=n}
    r_decay^-m s_m``; R0 is set halfway between ``c G_{n*-1}`` and ``c
    G_{n*}``, so that unit is pruned exactly at decision ``n* =
    ceil(prune_after_fraction * n_decisions)``; a unit of constant usage
    ``u < c/2`` goes at the first decision with ``G_n > G* c / (c - 2u)``,
    if the run has one. A rule with ``c <= 0`` never loses reward; its R0
    is set as for ``c = 1``.
    """
    if n_decisions < 1:  # nothing to calibrate: no decision in this run
        return AdaptiveRuleParams(c, beta, 1.0, warmup, r_decay, 1.0)
    tau = tau_fraction * n_decisions
    target = min(n_decisions, max(1, math.ceil(prune_after_fraction * n_decisions - 1e-9)))
    rule = AdaptiveRuleParams(c, beta, tau, warmup, r_decay, 0.0)
    decline = [r_decay ** -m * step_size(warmup + m - 1, rule) for m in range(1, target + 1)]  # r_decay^-m s_m
    before, at = sum(decline[:-1]), sum(decline)
    scale = c if c > 0 else 1.0
    return rule._replace(r_init=scale * (before + at) / 2)
