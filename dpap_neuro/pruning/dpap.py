"""The DPAP pruner: a thin stateful layer over ``dpap_functional`` (maths) and ``dpap_policy`` (decisions).

It records, with forward hooks, what each prunable layer receives
(presynaptic spikes) and what the LIF population after it emits
(postsynaptic spikes); the hooks only copy detached tensors, so outputs and
gradients are untouched. At every ``step`` (after each optimiser step) the
batch's per-unit traces and spike counts are kept; at the end of every
schedule unit (an epoch, or a block of batches) or epoch, their statistics
(A, M, theta, spike counts) are added in one product per layer, summed over
data-parallel ranks, and past the warm-up ``dpap_policy.decide`` says which
neurons, channels and synapses survive. Masks only ever lose entries.

Granularity: hidden ``nn.Linear`` layers lose synapses (by M_ij) and whole
neurons (by S_i); ``nn.Conv2d`` layers lose whole output channels (by S_i,
with channel-to-channel M). The readout layer is never pruned. A recurrent
layer (Norse ``LIFRecurrentCell``) is judged as one FC layer whose synapses
are its input and recurrent weights side by side (``RecurrentSynapses``,
``[n, n_in + n]``): the presynaptic activity of the recurrent ones is the
layer's own spikes one step earlier, what they carry; a removed neuron
loses its row, its column of the recurrent weights and its column of the
next layer.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from norse.torch import LIFCell
from norse.torch.module.snn import SNNCell
from torch import nn

from dpap_neuro.distributed import all_reduce_sum, is_distributed
from dpap_neuro.pruning import dpap_policy as policy
from dpap_neuro.pruning.base import Pruner, SynapseView, check_type, synaptic_groups
from dpap_neuro.pruning.dpap_functional import (
    TRACES,
    AdaptiveRuleParams,
    PlasticitySums,
    PlasticityState,
    apply_plasticity,
    batches_sums,
    calibrated_rule,
    fan_out_per_neuron,
    first_possible_pruning,
    initial_plasticity,
    trace_and_count,
    unit_energy_pj,
    unused_unit_rewards,
)
from dpap_neuro.pruning.dpap_policy import NEURON_SCORES, SYNAPSE_SCORES, WEIGHTED_SCORES
from dpap_neuro.pruning.presets import DEFAULT_PRESET, DPAP_PRESETS
from hw_export.norse.loop import whole_sequence_steps
from hw_export.errors import UserError
from hw_export.norse.compaction import (built_shape, is_compacted, kept_in, kept_out, part_map, to_built,
                                       units_to_built)

MAX_PENDING_BATCHES = 32  # batches whose statistics wait for one product (a decision or an epoch's end flushes sooner)
RULES = ("conv_channel", "fc_neuron", "fc_synapse")  # option prefixes of the three rules
REWARD_RULES = ("authors", "calibrated")


@dataclass(frozen=True)
class DPAPConfig:
    """DPAP's settings; the field defaults are the authors' constants and schedule (the ``authors`` preset)."""

    trace: str = "final"  # per-sample trace: "final" x = e(T)/T (the authors'); "mean": the mean of e(t) over all T steps (ours)
    trace_decay: float = 0.5  # delta of the spiking trace e(t) = delta * e(t-1) + s(t)
    schedule_unit: str = "epoch"  # "epoch"; "batches": a decision every `batches_per_unit` batches; "run": `decisions_per_run` spread over the run (ours)
    batches_per_unit: int = 0  # batches per schedule unit when schedule_unit == "batches"
    decisions_per_run: int = 0  # schedule units in the whole run when schedule_unit == "run" (any dataset size)
    warmup_units: int = 5  # schedule units before the first decision
    stop_fraction: float = 1.0  # ours: no decision after this share of the run's schedule units, so the network recovers while the learning rate decays (1.0: decide to the end, as the authors)
    reward_rule: str = "authors"  # "authors": R0 = r_init, step size e-folds every *_tau units; "calibrated" (ours): R0 and tau from the run's length
    r_init: float = 10.0  # authors' rule: starting value of every accumulator R
    r_decay: float = 0.999  # leak of R per decision
    prune_after_fraction: float = 0.25  # calibrated rule: a unit unused at every decision is pruned after this share of the run's decisions
    tau_fraction: float = 0.25  # calibrated rule: one e-fold of the step size per this share of the run's decisions
    fc_neuron_c: float = 1.5  # hidden-FC neurons: offset c of delta = 2u - c
    fc_neuron_beta: float = 2.0  # hidden-FC neurons: bonus added to a positive delta
    fc_neuron_tau: float = 13.0  # hidden-FC neurons, authors' rule: schedule units per e-fold of the step size
    fc_synapse_c: float = 1.5  # hidden-FC synapses (u from M_ij): offset c
    fc_synapse_beta: float = 2.0  # hidden-FC synapses: bonus
    fc_synapse_tau: float = 13.0  # hidden-FC synapses, authors' rule: units per e-fold
    conv_channel_c: float = 0.65  # conv output channels: offset c
    conv_channel_beta: float = 5.0  # conv output channels: bonus
    conv_channel_tau: float = 12.0  # conv output channels, authors' rule: units per e-fold
    usage_over: str = "all"  # normalise usage over "all" units of a group (the authors') or the "alive" ones only
    synapse_score: str = "bcm"  # hidden-FC synapses by: "bcm" (M_ij, the authors'); ours: "abs-bcm", "bcm-silent-unused", "bcm*magnitude", "bcm*magnitude/pre_rate"
    neuron_score: str = "spine"  # neurons / channels by: "spine" (S_i, the authors'); ours: "spine*magnitude", "spine/energy"
    prune_synapses: bool = True  # hidden-FC synapse granularity on/off
    prune_neurons: bool = True  # neuron / channel granularity on/off
    enabled: bool = True  # False: gather statistics but never prune (for checks)

    def __post_init__(self) -> None:
        kinds = {"float": float, "int": int, "str": str, "bool": bool}
        for f in fields(self):
            check_type("dpap", f.name, getattr(self, f.name), kinds[f.type])
        for name, allowed in (("trace", TRACES), ("schedule_unit", ("epoch", "batches", "run")),
                              ("reward_rule", REWARD_RULES), ("usage_over", ("all", "alive")),
                              ("synapse_score", SYNAPSE_SCORES), ("neuron_score", NEURON_SCORES)):
            if getattr(self, name) not in allowed:
                choices = " or ".join([", ".join(map(repr, allowed[:-1])), repr(allowed[-1])])
                raise UserError(f"dpap: {name} must be {choices}, got {getattr(self, name)!r}")
        checks = [
            (self.schedule_unit != "batches" or self.batches_per_unit >= 1,
             "schedule_unit 'batches' needs batches_per_unit >= 1"),
            (self.schedule_unit != "run" or self.decisions_per_run >= 1,
             "schedule_unit 'run' needs decisions_per_run >= 1"),
            (0.0 <= self.trace_decay < 1.0, "trace_decay must be in [0, 1)"),
            (self.warmup_units >= 0 and self.r_init > 0 and 0.0 < self.r_decay <= 1.0,
             "need warmup_units >= 0, r_init > 0 and 0 < r_decay <= 1"),
            (0.0 < self.prune_after_fraction <= 1.0, "prune_after_fraction must be in (0, 1]"),
            (0.0 < self.stop_fraction <= 1.0, "stop_fraction must be in (0, 1]"),
            (self.tau_fraction > 0, "tau_fraction must be positive"),
            *((getattr(self, f"{rule}_tau") > 0, f"{rule}_tau must be positive") for rule in RULES),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"dpap: {message}")

    def unused_options(self) -> set[str]:
        """Options this configuration does not read (another schedule's or the other reward rule's)."""
        unused = {"batches_per_unit", "decisions_per_run"} - {
            {"batches": "batches_per_unit", "run": "decisions_per_run"}.get(self.schedule_unit)}
        if self.reward_rule == "calibrated":
            return unused | {"r_init"} | {f"{rule}_tau" for rule in RULES}
        return unused | {"prune_after_fraction", "tau_fraction"}

    def rule(self, prefix: str, n_decisions: int) -> AdaptiveRuleParams:
        """The rule named by ``prefix`` (one of ``RULES``) for a run of ``n_decisions`` decisions."""
        c, beta = getattr(self, f"{prefix}_c"), getattr(self, f"{prefix}_beta")
        if self.reward_rule == "calibrated":
            return calibrated_rule(c, beta, self.warmup_units, self.r_decay, n_decisions,
                                   self.prune_after_fraction, self.tau_fraction)
        return AdaptiveRuleParams(c, beta, getattr(self, f"{prefix}_tau"), self.warmup_units, self.r_decay,
                                  self.r_init)


def preset_options(preset: str) -> dict:
    """A preset's values (over ``DPAPConfig``'s defaults); UserError naming the presets for an unknown one."""
    if not isinstance(preset, str) or preset not in DPAP_PRESETS:
        raise UserError(f"unknown DPAP preset {preset!r}; choose one of {', '.join(DPAP_PRESETS)}")
    return dict(DPAP_PRESETS[preset])


def _at_built(values: torch.Tensor, index: torch.Tensor | None, n_built: int) -> torch.Tensor:
    """Per-unit ``values`` (``[..., n]``) scattered into the built layer's ``n_built`` units (``index``: their built
    indices; None: not compacted, already built)."""
    return values if index is None else units_to_built(values, index.to(values.device), n_built, values.dim() - 1)


def _shape_changed(where: tuple | None, then: tuple | None) -> bool:
    """Whether a layer was compacted between two ``add_batch`` calls (``kept_out``, ``kept_in``; None: as built)."""
    if where is None or then is None:
        return where is not then
    return where[0] is not then[0] or where[1] is not then[1]  # compaction replaces the index buffers


class RecurrentSynapses:
    """A recurrent cell's input and recurrent weights side by side, as DPAP judges one layer's synapses:
    ``weight_orig``, ``weight_mask`` and ``weight`` are ``[n, n_in + n]`` (the columns of its own neurons
    last); ``n_in`` says where they start."""

    def __init__(self, cell: nn.Module) -> None:
        self.cell = cell

    @property
    def n_in(self) -> int:
        """Inputs of the cell as built (compacted or not: the pruner's masks keep the built shape)."""
        return built_shape(self.cell)[1]

    # Compacted: the map back to the build (``part_map``), as ``SynapseView``'s.
    built_shape = property(lambda self: part_map(self.cell, "joined")[0])
    kept_out = property(lambda self: part_map(self.cell, "joined")[1])
    kept_in = property(lambda self: part_map(self.cell, "joined")[2])

    def _joined(self, suffix: str) -> torch.Tensor:
        return torch.cat([getattr(self.cell, f"input_weights{suffix}"),
                          getattr(self.cell, f"recurrent_weights{suffix}")], dim=1)

    @property
    def weight_orig(self) -> torch.Tensor:
        return self._joined("_orig")

    @property
    def weight_mask(self) -> torch.Tensor:
        return self._joined("_mask")

    @property
    def weight(self) -> torch.Tensor:
        return self._joined("")


class _LayerRecord:
    """Per prunable layer: hooks' buffers, statistics and the verdict so far."""

    def __init__(self, layer: nn.Module, population: nn.Module, next_layer: nn.Module,
                 rules: policy.LayerRules) -> None:
        self.layer, self.population, self.next_layer, self.rules = layer, population, next_layer, rules
        self.is_conv = isinstance(layer, nn.Conv2d)
        # Statistics keep the layer's built shape, compacted or not (hw_export.norse.compaction).
        n_post, n_pre = built_shape(layer)[:2]
        device = layer.weight_orig.device  # statistics live where training runs: no host round-trips
        self.pre_steps: list[torch.Tensor] = []
        self.post_steps: list[torch.Tensor] = []
        self.pending: list[tuple] = []  # batches since the statistics were last brought up to date (add_batch)
        self.stats = initial_plasticity(n_post, n_pre, device=device)
        self.verdict = policy.initial_verdict(n_post, n_pre, rules, device=device)
        self.neurons_per_unit, self.steps_per_sample = 1, 1  # a conv channel: H x W neurons (seen in the spikes)
        self.own_columns = n_post if isinstance(layer, RecurrentSynapses) else 0  # recurrent synapses, last
        if self.own_columns and not getattr(layer.cell, "autapses", True):  # no synapse on the diagonal
            units = torch.arange(n_post, device=device)
            self.verdict.synapse_alive[units, n_pre - n_post + units] = False

    def energy_pj(self) -> torch.Tensor:
        """Loihi energy each unit costs per sample so far (``dpap_functional.unit_energy_pj``), ``[n_post]``."""
        next_mask = getattr(self.next_layer, "weight_mask", None)
        next_mask = (torch.ones(built_shape(self.next_layer), device=self.next_layer.weight.device)
                     if next_mask is None else to_built(next_mask, self.next_layer))
        fan_out = fan_out_per_neuron(next_mask, self.verdict.unit_alive.numel())
        per_sample = self.stats.post_count / max(self.stats.n_samples, 1)
        return unit_energy_pj(per_sample, fan_out, self.neurons_per_unit, self.steps_per_sample)

    def add_batch(self, post_trace: torch.Tensor, pre_trace: torch.Tensor, post_count: torch.Tensor,
                  pre_count: torch.Tensor) -> None:
        """Keep a batch's per-unit values (``[B, n_post]``, ``[B, n_pre]``, the layer as it is now) until ``pending_sums``."""
        where = (kept_out(self.layer), kept_in(self.layer)) if is_compacted(self.layer) else None
        self.pending.append((post_trace, pre_trace, post_count, pre_count, where))

    def pending_post_totals(self) -> torch.Tensor:
        """``[K, n_post]`` float64 at the built shape: each pending batch's ``sum_b x_bi`` (for the running theta)."""
        n_post, dtype = built_shape(self.layer)[0], self.stats.theta.dtype
        return torch.stack([_at_built(post.sum(dim=0).to(dtype), where and where[0], n_post)
                            for post, _, _, _, where in self.pending])

    def pending_sums(self, post_totals: torch.Tensor | None = None,
                     sample_counts: list[int] | None = None) -> PlasticitySums:
        """``batches_sums`` of the pending batches at the layer's built shape; empties the queue.

        A compacted layer's removed units are silent (traces, counts 0), so
        their rows and columns of every sum are zeros: the sums are computed
        on the small layer and scattered, equal to the masked model's.
        ``post_totals`` (built shape) and ``sample_counts``: over every
        data-parallel rank (``batches_sums``).
        """
        pending, self.pending = self.pending, []
        n_post, n_pre = built_shape(self.layer)[:2]
        where = pending[0][4]
        if any(_shape_changed(entry[4], where) for entry in pending):  # compacted in between: all at the built shape
            pending = [(_at_built(post, w and w[0], n_post), _at_built(pre, w and w[1], n_pre),
                        _at_built(post_count, w and w[0], n_post), _at_built(pre_count, w and w[1], n_pre), None)
                       for post, pre, post_count, pre_count, w in pending]
            where = None
        posts, pres, post_counts, pre_counts, _ = zip(*pending)
        if where is None:
            return batches_sums(self.stats, posts, pres, post_counts, pre_counts, post_totals, sample_counts)
        rows, cols = where[0].to(posts[0].device), where[1].to(posts[0].device)
        small = batches_sums(self.stats._replace(theta=self.stats.theta[rows]), posts, pres, post_counts, pre_counts,
                             None if post_totals is None else post_totals[:, rows], sample_counts)
        bcm_pre = small.bcm_pre.new_zeros(n_post, n_pre)
        bcm_pre[rows.view(-1, 1), cols.view(1, -1)] = small.bcm_pre
        return PlasticitySums(bcm_pre, _at_built(small.post, rows, n_post), small.count,
                              _at_built(small.pre, cols, n_pre), _at_built(small.post_count, rows, n_post),
                              _at_built(small.pre_count, cols, n_pre))

    def state_dict(self) -> dict:
        state = {f"stats.{k}": v for k, v in self.stats._asdict().items()}
        state.update({f"verdict.{k}": v for k, v in self.verdict._asdict().items() if v is not None})
        state.update(neurons_per_unit=self.neurons_per_unit, steps_per_sample=self.steps_per_sample)
        return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}

    def load_state_dict(self, state: dict) -> None:
        device = self.verdict.unit_reward.device

        def value(key):
            saved = state[key]
            return saved.to(device) if isinstance(saved, torch.Tensor) else saved

        self.stats = PlasticityState(*(value(f"stats.{k}") for k in PlasticityState._fields))
        self.verdict = policy.LayerVerdict(*(value(f"verdict.{k}") if f"verdict.{k}" in state else None
                                             for k in policy.LayerVerdict._fields))
        self.neurons_per_unit, self.steps_per_sample = int(state["neurons_per_unit"]), int(state["steps_per_sample"])


class DPAPPruner(Pruner):
    """Developmental-plasticity-inspired adaptive pruning (DPAP).

    ``DPAPPruner(preset=None, **options)``: the values of ``preset`` (one of
    ``DPAP_PRESETS``: ``"authors"``, ``"builtin"``, ``"tonic"``) over
    ``DPAPConfig``'s defaults, then ``options`` over those. Without a preset
    it is ``"authors"``: the authors' constants and one decision per epoch
    after 5, made for 300 epochs; in a short run their channel rule cannot
    prune at all (``diagnose`` says so). ``dpap run`` uses ``"builtin"``
    on the built-in data and ``"tonic"`` on the tonic datasets, rules
    calibrated to the run's length; pass the same preset for your own model.
    """

    name = "dpap"
    config_cls = DPAPConfig
    overrides: ClassVar[dict] = {}  # a variant's own choices, over any preset (dpap+)

    def __init__(self, preset: str | None = None, **options) -> None:
        super().__init__()
        self.preset = DEFAULT_PRESET if preset is None else preset
        self.config = self.config_cls(**{**preset_options(self.preset), **self.overrides, **options})
        self.records: list[_LayerRecord] = []
        self._hooks = []
        self.decisions = 0
        self.batches_per_unit = self.config.batches_per_unit  # set for "run" by attach
        self.n_units = self.n_decisions = self.last_unit = 0  # schedule units, decisions, end of decisions (attach)
        self._masked_alive = None

    def options(self) -> dict:
        """Every option with its value, the preset included: ``type(self)(**options())`` is this pruner again."""
        return {"preset": self.preset, **{f.name: getattr(self.config, f.name) for f in fields(self.config)}}

    # -- setup ---------------------------------------------------------------
    def attach(self, model: nn.Module, total_steps: int, steps_per_epoch: int = 1) -> None:
        super().attach(model, total_steps, steps_per_epoch)
        # "run": the same number of decisions whatever the dataset's size (a unit of whole batches).
        self.batches_per_unit = (max(1, total_steps // self.config.decisions_per_run)
                                 if self.config.schedule_unit == "run" else self.config.batches_per_unit)
        per_unit = steps_per_epoch if self.config.schedule_unit == "epoch" else self.batches_per_unit
        self.n_units = total_steps // per_unit
        self.last_unit = math.floor(self.config.stop_fraction * self.n_units + 1e-9)  # units from here: no decision
        self.n_decisions = max(0, self.last_unit - self.config.warmup_units)
        self.decisions = 0
        self._masked_alive = None  # the verdicts the masks were last made from
        for handle in self._hooks:
            handle.remove()
        self._hooks, self.records = [], []
        # The population after a layer: LIF neurons, or ReLU units in an ANN (whose "trace" is the activation).
        populations = (LIFCell, nn.ReLU)
        ordered = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d) + populations)]
        groups = synaptic_groups(model)  # self.layers and the readout's
        self._record_of = []  # per prunable group (self.layers): its record's index
        for index, layer in enumerate(self.layers):
            if isinstance(layer, SynapseView):  # a recurrent cell: one record for its two groups
                if layer.is_recurrent:
                    self._record_of.append(len(self.records) - 1)
                    continue
                synapses, population, source = RecurrentSynapses(layer.module), layer.module, layer.module
                next_layer = groups[index + 2]
            else:
                after = ordered[ordered.index(layer) + 1:]
                if not after or not isinstance(after[0], populations):
                    raise UserError("DPAP prunes layers that feed a LIF (or ReLU) population; found a layer "
                                    "without one")
                synapses, population, source, next_layer = layer, after[0], layer, groups[index + 1]
            record = _LayerRecord(synapses, population, next_layer, self.layer_rules(layer))
            self._record_of.append(len(self.records))
            self.records.append(record)
            self._hooks.append(source.register_forward_hook(self._record_into(record.pre_steps, True)))
            self._hooks.append(population.register_forward_hook(self._record_into(record.post_steps, False)))

    def layer_rules(self, layer: nn.Module) -> policy.LayerRules:
        """The rules for ``layer`` in this run (after ``attach`` has counted the decisions)."""
        if isinstance(layer, nn.Conv2d):
            return policy.LayerRules(self.config.rule("conv_channel", self.n_decisions), None)
        return policy.LayerRules(self.config.rule("fc_neuron", self.n_decisions),
                                 self.config.rule("fc_synapse", self.n_decisions))

    @staticmethod
    def _record_into(steps: list, take_input: bool):
        """Forward hook appending the layer's input (or output spikes), detached, as ``[steps, B, ...]``."""
        def hook(module, inputs, output):
            if module.training:
                # A LIF cell returns (spikes, state); a ReLU its activation.
                value = (inputs[0] if take_input else (output[0] if isinstance(output, tuple) else output)).detach()
                n_steps = whole_sequence_steps()  # None: one step [B, ...]
                if n_steps is None:
                    value = value.unsqueeze(0)
                elif take_input or not isinstance(module, SNNCell):  # a cell's whole output is [T, B, ...] already
                    value = value.unflatten(0, (n_steps, -1))  # the sequence folded into the batch
                steps.append(value)
        return hook

    def diagnose(self) -> list[str]:
        """One line per rule that cannot prune a single unit in this run (from the rule and the run's length)."""
        if not self.config.enabled or not self.records:
            return []
        if self.n_decisions == 0:
            return [f"dpap: no pruning decision in this run: {self.n_units} schedule units "
                    f"({self.config.schedule_unit}), the first {self.config.warmup_units} of them warm-up"]
        kinds = {record.is_conv for record in self.records}
        checks = [("conv channels", "conv_channel", self.config.prune_neurons and True in kinds),
                  ("FC neurons", "fc_neuron", self.config.prune_neurons and False in kinds),
                  ("FC synapses", "fc_synapse", self.config.prune_synapses and False in kinds)]
        warnings = []
        for label, prefix, applies in checks:
            rule = self.config.rule(prefix, self.n_decisions)
            if applies and first_possible_pruning(rule, self.n_decisions) is None:
                lowest = unused_unit_rewards(rule, self.n_decisions)[-1]
                warnings.append(
                    f"dpap: {label} cannot be pruned in this run: one unused at all {self.n_decisions} decisions "
                    f"ends at R = {lowest:.2f} > 0 ({self.config.reward_rule} rule, {prefix}_c = {rule.c:g}, "
                    f"preset {self.preset!r}); use preset 'builtin' or 'tonic' (calibrated to the run), a larger c "
                    f"or a longer run")
        return warnings

    # -- per batch -----------------------------------------------------------
    @torch.no_grad()
    def update(self, step: int, epoch_end: bool = False) -> None:
        """Add the batch's statistics; at the end of a schedule unit past the warm-up, decide and mask."""
        self._gather()
        unit = self._unit_completed(step, epoch_end)
        if unit is not None or epoch_end or len(self.records[0].pending) >= MAX_PENDING_BATCHES:
            self._flush()
        if unit is not None and self.config.warmup_units <= unit < self.last_unit and self.config.enabled:
            self.decide(unit)
            alive = [(r.verdict.unit_alive, r.verdict.synapse_alive) for r in self.records]
            if self._masked_alive is None or not all(
                    torch.equal(old, new) for was, now in zip(self._masked_alive, alive) for old, new in zip(was, now)
                    if old is not None):
                self.apply_masks(step)  # masks change only when a verdict did
                self._masked_alive = alive

    def _gather(self) -> None:
        """Turn the steps the hooks recorded into this batch's per-unit traces and counts (``_flush`` adds them up)."""
        per_tensor = {}  # one layer's output is often the next one's input: its trace is computed once
        trace, decay = self.config.trace, self.config.trace_decay

        def traced(steps: list) -> tuple[torch.Tensor, torch.Tensor]:
            values = steps[0] if len(steps) == 1 else torch.cat(steps)  # [T, B, ...]
            key = (values.data_ptr(), tuple(values.shape), tuple(values.stride()))
            if key not in per_tensor:
                per_tensor[key] = trace_and_count(values, decay, trace)  # [B, n] each
            return per_tensor[key]

        for record in self.records:
            if not record.pre_steps:
                continue
            post = record.post_steps[0] if len(record.post_steps) == 1 else torch.cat(record.post_steps)
            record.steps_per_sample = post.shape[0]
            record.neurons_per_unit = post[0, 0, 0].numel() if post.dim() > 3 else 1
            pre_steps = record.pre_steps
            if record.own_columns:  # [T, B, n_in + n]: the input at t, then the layer's own spikes of t - 1
                below = pre_steps[0] if len(pre_steps) == 1 else torch.cat(pre_steps)
                pre_steps = [torch.cat([below, torch.cat([torch.zeros_like(post[:1]), post[:-1]])], dim=-1)]
            (post_trace, post_count), (pre_trace, pre_count) = traced(record.post_steps), traced(pre_steps)
            record.pre_steps.clear()
            record.post_steps.clear()
            record.add_batch(post_trace, pre_trace, post_count, pre_count)

    def _flush(self) -> None:
        """Add the pending batches' statistics, in one product per layer, summed over data-parallel ranks."""
        recorded = [r for r in self.records if r.pending]
        if not recorded:
            return
        post_totals, sample_counts = [None] * len(recorded), None
        if is_distributed():  # each batch's theta needs its post sums and sample count over every rank
            local = [r.pending_post_totals() for r in recorded]
            counts = torch.tensor([float(len(entry[0])) for entry in recorded[0].pending], dtype=torch.float64,
                                  device=local[0].device)
            flat = all_reduce_sum(torch.cat([t.flatten() for t in local] + [counts]))
            sample_counts = [int(c) for c in flat[-counts.numel():].tolist()]
            offsets = torch.tensor([0] + [t.numel() for t in local]).cumsum(0).tolist()
            post_totals = [flat[a:b].view_as(t) for a, b, t in zip(offsets, offsets[1:], local)]
        sums = [r.pending_sums(totals, sample_counts) for r, totals in zip(recorded, post_totals)]
        for record, total in zip(recorded, _all_reduce(sums)):
            record.stats = apply_plasticity(record.stats, total)

    def _unit_completed(self, step: int, epoch_end: bool) -> int | None:
        """Index (0-based) of the schedule unit that ends at this step, if one does."""
        if self.config.schedule_unit == "epoch":
            return step // self.steps_per_epoch - 1 if epoch_end else None
        per = self.batches_per_unit
        return step // per - 1 if step % per == 0 else None

    def decide(self, unit: int) -> None:
        """One decision for every prunable layer (schedule unit ``unit``): scores here, policy in ``dpap_policy``."""
        config = self.config
        unit_scores, synapse_scores = [], []
        reads_weight = config.neuron_score in WEIGHTED_SCORES or config.synapse_score in WEIGHTED_SCORES
        for record in self.records:
            weight = (to_built(record.layer.weight_orig * record.layer.weight_mask, record.layer) if reads_weight
                      else None)
            energy = record.energy_pj() if config.neuron_score == "spine/energy" else None
            unit_scores.append(policy.unit_score(config.neuron_score, record.stats, weight, energy)
                               if config.prune_neurons else None)
            synapse_scores.append(None if record.is_conv or not config.prune_synapses
                                  else policy.synapse_score(config.synapse_score, record.stats, weight))
        options = policy.DecisionOptions(config.prune_neurons, config.prune_synapses, config.usage_over == "alive")
        verdicts = policy.decide([r.verdict for r in self.records], unit_scores, synapse_scores, unit,
                                 [r.rules for r in self.records], options, [r.own_columns for r in self.records])
        for record, verdict in zip(self.records, verdicts):
            record.verdict = verdict
        self.decisions += 1

    def compute_mask(self, layer_index, weight, mask, step):
        index = self._record_of[layer_index]
        record = self.records[index]
        previous = self.records[index - 1].verdict.unit_alive if index > 0 else None
        if not record.own_columns:
            return policy.keep_mask(record.verdict, weight.shape, previous).to(mask.dtype)
        n_in = record.layer.n_in  # a recurrent cell's group: its input or its recurrent columns of the record
        keep = policy.keep_mask(record.verdict, (weight.shape[0], n_in + record.own_columns), previous,
                                record.own_columns)
        return (keep[:, n_in:] if self.layers[layer_index].is_recurrent else keep[:, :n_in]).to(mask.dtype)

    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the masks (which are the model's buffers)."""
        if is_distributed() and any(r.pending for r in self.records):  # adding them up needs every rank
            raise UserError("DPAP's state is complete at the end of a schedule unit or an epoch under data parallel; "
                            "save it there")
        self._flush()
        return {**super().state_dict(), "decisions": self.decisions,
                "records": [record.state_dict() for record in self.records]}

    def load_state_dict(self, state: dict) -> None:
        if len(state.get("records", ())) != len(self.records):
            raise UserError(f"DPAP state for {len(state.get('records', ()))} layers, model has {len(self.records)}")
        super().load_state_dict(state)
        self.decisions = int(state["decisions"])
        for record, saved in zip(self.records, state["records"]):
            record.load_state_dict(saved)

    def unit_survival(self) -> list[float]:
        """Share of neurons / channels alive per prunable layer (0..1)."""
        return [float(r.verdict.unit_alive.double().mean()) for r in self.records]


def _all_reduce(sums: list[PlasticitySums]) -> list[PlasticitySums]:
    """Every layer's batch sums added over data-parallel ranks, in one all-reduce (unchanged in one process)."""
    if not sums or not is_distributed():  # one process: nothing to add up
        return sums
    parts = [(s.bcm_pre, s.post, s.pre, s.post_count, s.pre_count) for s in sums]
    count = torch.tensor([float(sums[0].count)], dtype=torch.float64, device=sums[0].post.device)
    flat = all_reduce_sum(torch.cat([t.flatten() for part in parts for t in part] + [count]))
    # The global sample count is read back only when several ranks added theirs up (a host sync).
    total_count = int(flat[-1].item()) if is_distributed() else sums[0].count
    reduced, offset = [], 0
    for part in parts:
        pieces = []
        for tensor in part:
            pieces.append(flat[offset: offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()
        bcm_pre, post, pre, post_count, pre_count = pieces
        reduced.append(PlasticitySums(bcm_pre, post, total_count, pre, post_count, pre_count))
    return reduced


class DPAPPlusPruner(DPAPPruner):
    """dpap+: DPAP with our magnitude-weighted synapse score, over any preset (``N(M_ij) N(|w_ij|)``).

    BCM's M_ij alone kept synapses whose tiny weights carried little of the
    correlation it measured (docs/dpap.md); benchmarked beside the faithful DPAP.
    """

    name = "dpap+"
    overrides = {"synapse_score": "bcm*magnitude"}


def presets_table() -> str:
    """docs/dpap.md's table of the presets: every option's value in each (a test keeps the doc equal to this)."""
    configs = {name: DPAPPruner(preset=name).config for name in DPAP_PRESETS}
    lines = ["| option | " + " | ".join(f"`{name}`" for name in configs) + " |",
             "|---|" + "---|" * len(configs)]
    for f in fields(DPAPConfig):
        cells = []
        for config in configs.values():
            value = getattr(config, f.name)
            # bold: not the authors' value; a dash: the preset's schedule or rule does not read it
            cells.append("–" if f.name in config.unused_options() else f"**{value}**" if value != f.default
                         else str(value))
        lines.append(f"| `{f.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
