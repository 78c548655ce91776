"""The DPAP pruner: a thin stateful layer over ``dpap_functional``.

It records, with forward hooks, what each prunable layer receives
(presynaptic spikes) and what the LIF population after it emits
(postsynaptic spikes); the hooks only copy detached tensors, so outputs and
gradients are untouched. After every training batch the statistics (A, M,
theta) are updated; at the end of every schedule unit (an epoch, or a block of
batches) past the warm-up, the adaptive rule decides which neurons, channels
and synapses survive. Masks only ever lose entries.

Granularity: hidden ``nn.Linear`` layers lose synapses (by M_ij) and whole
neurons (by S_i); ``nn.Conv2d`` layers lose whole output channels (by S_i,
with channel-to-channel M). The readout layer is never pruned.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, fields

import torch
from norse.torch import LIFCell
from torch import nn

from dpap_neuro.models import SNNOutput
from dpap_neuro.pruning.base import Pruner, check_type
from dpap_neuro.distributed import all_reduce_sum, is_distributed
from dpap_neuro.pruning.dpap_functional import (
    AdaptiveRuleParams,
    PlasticitySums,
    PlasticityState,
    adaptive_prune,
    apply_plasticity,
    initial_plasticity,
    magnitude_weighted,
    plasticity_sums,
    spike_trace,
    spine_importance,
)


SYNAPSE_SCORES = ("bcm", "bcm*magnitude", "bcm*magnitude/pre_rate")
NEURON_SCORES = ("spine", "spine*magnitude")


@dataclass(frozen=True)
class DPAPConfig:
    """DPAP's settings; the defaults are the authors' constants (docs/DESIGN.md, section 4)."""

    trace_decay: float = 0.5  # delta of the spiking trace e(t) = delta * e(t-1) + s(t)
    schedule_unit: str = "epoch"  # "epoch"; "batches": a decision every `batches_per_unit` batches; "run": `decisions_per_run` spread over the run (ours)
    batches_per_unit: int = 0  # batches per schedule unit when schedule_unit == "batches"
    decisions_per_run: int = 0  # schedule units in the whole run when schedule_unit == "run" (any dataset size)
    warmup_units: int = 5  # schedule units before the first decision
    r_init: float = 10.0  # starting value of every accumulator R
    r_decay: float = 0.999  # leak of R per decision
    fc_neuron_c: float = 1.5  # hidden-FC neurons: offset c of delta = 2u - c
    fc_neuron_beta: float = 2.0  # hidden-FC neurons: bonus added to a positive delta
    fc_neuron_tau: float = 13.0  # hidden-FC neurons: units per e-fold of the step size
    fc_synapse_c: float = 1.5  # hidden-FC synapses (u from M_ij): offset c
    fc_synapse_beta: float = 2.0  # hidden-FC synapses: bonus
    fc_synapse_tau: float = 13.0  # hidden-FC synapses: units per e-fold
    conv_channel_c: float = 0.65  # conv output channels: offset c
    conv_channel_beta: float = 5.0  # conv output channels: bonus
    conv_channel_tau: float = 12.0  # conv output channels: units per e-fold
    usage_over: str = "all"  # normalise usage over "all" units of a group (the authors') or the "alive" ones only
    synapse_score: str = "bcm"  # hidden-FC synapses by "bcm" (M_ij, the authors'), ours: "bcm*magnitude", "bcm*magnitude/pre_rate"
    neuron_score: str = "spine"  # neurons / channels by "spine" (S_i, the authors'), ours: "spine*magnitude" (S_i * N(|w_i|_1))
    prune_synapses: bool = True  # hidden-FC synapse granularity on/off
    prune_neurons: bool = True  # neuron / channel granularity on/off
    enabled: bool = True  # False: gather statistics but never prune (for checks)

    def __post_init__(self) -> None:
        kinds = {"float": float, "int": int, "str": str, "bool": bool}
        for f in fields(self):
            check_type("dpap", f.name, getattr(self, f.name), kinds[f.type])
        if self.schedule_unit not in ("epoch", "batches", "run"):
            raise ValueError(f"schedule_unit must be 'epoch', 'batches' or 'run', got {self.schedule_unit!r}")
        if self.usage_over not in ("all", "alive"):
            raise ValueError(f"usage_over must be 'all' or 'alive', got {self.usage_over!r}")
        if self.synapse_score not in SYNAPSE_SCORES:
            raise ValueError(f"synapse_score must be one of {', '.join(SYNAPSE_SCORES)}, got {self.synapse_score!r}")
        if self.neuron_score not in NEURON_SCORES:
            raise ValueError(f"neuron_score must be one of {', '.join(NEURON_SCORES)}, got {self.neuron_score!r}")
        if self.schedule_unit == "batches" and self.batches_per_unit < 1:
            raise ValueError("schedule_unit 'batches' needs batches_per_unit >= 1")
        if self.schedule_unit == "run" and self.decisions_per_run < 1:
            raise ValueError("schedule_unit 'run' needs decisions_per_run >= 1")
        if not 0.0 <= self.trace_decay < 1.0:
            raise ValueError("trace_decay must be in [0, 1)")
        if self.warmup_units < 0 or self.r_init <= 0 or not 0.0 < self.r_decay <= 1.0:
            raise ValueError("need warmup_units >= 0, r_init > 0 and 0 < r_decay <= 1")
        for f in fields(self):
            if f.name.endswith("_tau") and getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive")

    def rule(self, prefix: str) -> AdaptiveRuleParams:
        return AdaptiveRuleParams(c=getattr(self, f"{prefix}_c"), beta=getattr(self, f"{prefix}_beta"),
                                  tau=getattr(self, f"{prefix}_tau"), warmup=self.warmup_units,
                                  r_decay=self.r_decay, r_init=self.r_init)


class _LayerRecord:
    """Per prunable layer: hooks' buffers, statistics, accumulators and survivors."""

    def __init__(self, layer: nn.Module, population: nn.Module, r_init: float) -> None:
        self.layer, self.population = layer, population
        self.is_conv = isinstance(layer, nn.Conv2d)
        n_post = layer.out_channels if self.is_conv else layer.out_features
        n_pre = layer.in_channels if self.is_conv else layer.in_features
        device = layer.weight_orig.device  # statistics live where training runs: no host round-trips
        self.pre_steps: list[torch.Tensor] = []
        self.post_steps: list[torch.Tensor] = []
        self.stats = initial_plasticity(n_post, n_pre, device=device)
        self.unit_reward = torch.full((n_post,), r_init, dtype=torch.float64, device=device)
        self.unit_alive = torch.ones(n_post, dtype=torch.bool, device=device)
        self.synapse_reward = None if self.is_conv else torch.full((n_post, n_pre), r_init, dtype=torch.float64,
                                                                   device=device)
        self.synapse_alive = None if self.is_conv else torch.ones(n_post, n_pre, dtype=torch.bool, device=device)

    STATE_TENSORS = ("unit_reward", "unit_alive", "synapse_reward", "synapse_alive")

    def state_dict(self) -> dict:
        state = {name: getattr(self, name) for name in self.STATE_TENSORS if getattr(self, name) is not None}
        state.update(activity=self.stats.activity, plasticity=self.stats.plasticity, theta=self.stats.theta,
                     n_samples=self.stats.n_samples, pre_activity=self.stats.pre_activity)
        return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}

    def load_state_dict(self, state: dict) -> None:
        device = self.unit_reward.device
        for name in self.STATE_TENSORS:
            if getattr(self, name) is not None:
                setattr(self, name, state[name].to(device))
        self.stats = PlasticityState(state["activity"].to(device), state["plasticity"].to(device),
                                     state["theta"].to(device), int(state["n_samples"]),
                                     state["pre_activity"].to(device))


class DPAPPruner(Pruner):
    """Developmental-plasticity-inspired adaptive pruning (DPAP)."""

    name = "dpap"
    config_cls = DPAPConfig

    def __init__(self, **options) -> None:
        super().__init__()
        self.config = self.config_cls(**options)
        self.records: list[_LayerRecord] = []
        self._hooks = []
        self.decisions = 0
        self.batches_per_unit = self.config.batches_per_unit  # set for "run" by attach

    # -- setup ---------------------------------------------------------------
    def attach(self, model: nn.Module, total_steps: int, steps_per_epoch: int = 1) -> None:
        super().attach(model, total_steps, steps_per_epoch)
        # "run": the same number of decisions whatever the dataset's size (a unit of whole batches).
        self.batches_per_unit = (max(1, total_steps // self.config.decisions_per_run)
                                 if self.config.schedule_unit == "run" else self.config.batches_per_unit)
        for handle in self._hooks:
            handle.remove()
        self._hooks, self.records = [], []
        # The population after a layer: LIF neurons, or ReLU units in an ANN (whose "trace" is the activation).
        populations = (LIFCell, nn.ReLU)
        ordered = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d) + populations)]
        for layer in self.layers:
            after = ordered[ordered.index(layer) + 1:]
            if not after or not isinstance(after[0], populations):
                raise ValueError("DPAP prunes layers that feed a LIF (or ReLU) population; found a layer without one")
            record = _LayerRecord(layer, after[0], self.config.r_init)
            self.records.append(record)
            self._hooks.append(layer.register_forward_hook(self._record_into(record.pre_steps, True)))
            self._hooks.append(after[0].register_forward_hook(self._record_into(record.post_steps, False)))

    @staticmethod
    def _record_into(steps: list, take_input: bool):
        """Forward hook appending the layer's input (or output spikes) of this step, detached."""
        def hook(module, inputs, output):
            if module.training:
                # A LIF cell returns (spikes, state); a ReLU its activation.
                value = inputs[0] if take_input else (output[0] if isinstance(output, tuple) else output)
                steps.append(value.detach())
        return hook

    # -- per batch -----------------------------------------------------------
    @torch.no_grad()
    def observe(self, inputs: torch.Tensor | None = None, output: SNNOutput | None = None) -> None:
        recorded = [r for r in self.records if r.pre_steps]
        sums = []
        for record in recorded:
            pre = spike_trace(torch.stack(record.pre_steps), self.config.trace_decay)  # [B, n_pre]
            post = spike_trace(torch.stack(record.post_steps), self.config.trace_decay)  # [B, n_post]
            sums.append(plasticity_sums(record.stats, post, pre))
            record.pre_steps.clear()
            record.post_steps.clear()
        if not sums:
            return
        # Data parallel: every rank saw its share of the global batch; one all-reduce of all layers'
        # sums (and the sample count) gives every rank the statistics of the whole batch.
        flat = torch.cat([torch.cat([s.bcm_pre.flatten(), s.post, s.pre]) for s in sums]
                         + [torch.tensor([float(sums[0].count)], dtype=torch.float64, device=sums[0].post.device)])
        flat = all_reduce_sum(flat)
        # The global sample count is read back only when several ranks added theirs up.
        count, offset = (int(flat[-1].item()) if is_distributed() else sums[0].count), 0
        for record, local in zip(recorded, sums):
            n_m, n_post, n_pre = local.bcm_pre.numel(), local.post.numel(), local.pre.numel()
            bcm_pre = flat[offset: offset + n_m].view_as(local.bcm_pre)
            post = flat[offset + n_m: offset + n_m + n_post]
            pre = flat[offset + n_m + n_post: offset + n_m + n_post + n_pre]
            offset += n_m + n_post + n_pre
            record.stats = apply_plasticity(record.stats, PlasticitySums(bcm_pre, post, count, pre))

    def _unit_completed(self, step: int, epoch_end: bool) -> int | None:
        """Index (0-based) of the schedule unit that ends at this step, if one does."""
        if self.config.schedule_unit == "epoch":
            return step // self.steps_per_epoch - 1 if epoch_end else None
        per = self.batches_per_unit
        return step // per - 1 if step % per == 0 else None

    @torch.no_grad()
    def update(self, step: int, epoch_end: bool = False) -> None:
        unit = self._unit_completed(step, epoch_end)
        if unit is not None and unit >= self.config.warmup_units and self.config.enabled:
            self.decide(unit)
            super().update(step, epoch_end)  # masks change only when a decision was made

    def decide(self, unit: int) -> None:
        """One pruning decision for every prunable layer (schedule unit ``unit``)."""
        neuron_rule = self.config.rule("fc_neuron")
        synapse_rule = self.config.rule("fc_synapse")
        channel_rule = self.config.rule("conv_channel")
        over_alive = self.config.usage_over == "alive"
        synapses_before = [r.synapse_alive.clone() if r.synapse_alive is not None else None for r in self.records]
        for record in self.records:
            if self.config.prune_neurons:
                importance = spine_importance(record.stats.plasticity, record.stats.activity)
                if self.config.neuron_score == "spine*magnitude":
                    # A unit also needs strong incoming weights (the L1 norm structured pruning ranks by; ours).
                    weight = record.layer.weight_orig * record.layer.weight_mask
                    importance = magnitude_weighted(importance, weight.abs().flatten(1).sum(dim=1))
                rule = channel_rule if record.is_conv else neuron_rule
                was_alive = record.unit_alive
                record.unit_reward, record.unit_alive = adaptive_prune(
                    record.unit_reward, record.unit_alive, importance, unit, rule, over_alive)
                if not bool(record.unit_alive.any()):
                    # A layer without a unit cuts the network in two: nothing would reach the readout.
                    # Keep its most important unit (ours; on tiny data the rule can otherwise empty a layer).
                    best = torch.argmax(torch.where(was_alive, importance, torch.full_like(importance, -math.inf)))
                    record.unit_alive = record.unit_alive.clone()
                    record.unit_alive[best] = True
            if self.config.prune_synapses and not record.is_conv:
                candidates = record.synapse_alive & record.unit_alive[:, None]
                score = record.stats.plasticity
                if self.config.synapse_score == "bcm*magnitude/pre_rate":
                    # Per presynaptic spike: a synapse from a busy input costs a synop per spike, so it
                    # must earn its correlation spike by spike (energy-aware; ours).
                    score = score / record.stats.pre_activity.clamp_min(1e-12)[None, :]
                if self.config.synapse_score != "bcm":
                    score = magnitude_weighted(score, record.layer.weight_orig * record.layer.weight_mask)
                record.synapse_reward, alive = adaptive_prune(
                    record.synapse_reward, candidates, score, unit, synapse_rule, over_alive)
                record.synapse_alive = record.synapse_alive & alive
        self._keep_a_path(synapses_before)
        self.decisions += 1

    def _keep_a_path(self, synapses_before: list) -> None:
        """Keep one path from the input to the readout (ours; never regrows what an earlier decision removed).

        A hidden unit is reachable when it is alive and, for an FC layer, has a
        live synapse from a reachable unit of the layer before. Where a
        decision leaves an FC layer with no reachable unit, the best-rewarded
        synapse that was alive before the decision, from a reachable input
        into an alive unit, is kept. On tiny data the rules can otherwise
        cut the network in two, and the export then has no neurons left.
        """
        reachable_in = None  # the first layer's inputs are all reachable
        for record, before in zip(self.records, synapses_before):
            if record.is_conv or reachable_in is None:
                inputs = None
            else:
                per_unit = before.shape[1] // reachable_in.numel()  # >1 when a conv output is flattened
                inputs = reachable_in.repeat_interleave(per_unit)
            if record.is_conv:
                reachable = record.unit_alive & (True if reachable_in is None else bool(reachable_in.any()))
            else:
                live = record.synapse_alive & record.unit_alive[:, None]
                if inputs is not None:
                    live = live & inputs[None, :]
                if not bool(live.any()):
                    pool = before & record.unit_alive[:, None]
                    if inputs is not None:
                        pool = pool & inputs[None, :]
                    if bool(pool.any()):
                        reward = torch.where(pool, record.synapse_reward,
                                             torch.full_like(record.synapse_reward, -math.inf))
                        post, pre = divmod(int(torch.argmax(reward)), before.shape[1])
                        record.synapse_alive = record.synapse_alive.clone()
                        record.synapse_alive[post, pre] = True
                        live = live.clone()
                        live[post, pre] = True
                reachable = live.any(dim=1)
            reachable_in = reachable

    def compute_mask(self, layer_index, weight, mask, step):
        record = self.records[layer_index]
        keep = record.unit_alive.view(-1, *([1] * (weight.dim() - 1))).expand_as(weight)
        if record.synapse_alive is not None:
            keep = keep & record.synapse_alive
        if layer_index > 0:
            # Inputs from neurons/channels pruned in the previous layer are gone too.
            previous = self.records[layer_index - 1].unit_alive
            if record.is_conv:
                keep = keep & previous.view(1, -1, 1, 1)
            else:
                per_unit = weight.shape[1] // previous.numel()  # >1 when a conv output is flattened
                keep = keep & previous.repeat_interleave(per_unit)[None, :]
        return keep.to(mask.dtype)

    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the masks (which are the model's buffers)."""
        return {"decisions": self.decisions, "records": [record.state_dict() for record in self.records]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["records"]) != len(self.records):
            raise ValueError(f"DPAP state for {len(state['records'])} layers, model has {len(self.records)}")
        self.decisions = int(state["decisions"])
        for record, saved in zip(self.records, state["records"]):
            record.load_state_dict(saved)

    def unit_survival(self) -> list[float]:
        """Share of neurons / channels alive per prunable layer (0..1)."""
        return [float(r.unit_alive.double().mean()) for r in self.records]


@dataclass(frozen=True)
class DPAPPlusConfig(DPAPConfig):
    """dpap+: DPAP with our additions switched on (each is also a named option of plain DPAP).

    * ``synapse_score="bcm*magnitude"``: a synapse also needs weight to
      survive (``dpap_functional.magnitude_weighted``): BCM's M_ij alone kept
      synapses whose tiny weights carried little of the correlation it measured.
    """

    synapse_score: str = "bcm*magnitude"  # N(M_ij) * N(|w_ij|), ours (the authors': "bcm")


class DPAPPlusPruner(DPAPPruner):
    """DPAP with our additions (``DPAPPlusConfig``); benchmarked beside the faithful DPAP."""

    name = "dpap+"
    config_cls = DPAPPlusConfig
