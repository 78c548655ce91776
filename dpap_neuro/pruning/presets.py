"""DPAP's named presets: the one place its defaults live (values over ``DPAPConfig``'s field defaults).

``DPAPConfig``'s field defaults are the authors' constants and their
per-epoch schedule, so the ``authors`` preset changes nothing. ``builtin``
(what ``dpap run`` uses on the built-in data) and ``tonic`` (the tonic
datasets) share one rule calibrated to the run's length (ours,
``reward_rule="calibrated"``, docs/dpap.md) and differ in how the
decisions are paced and when pruning can start; ``builtin-recurrent`` and
``tonic-recurrent`` are the same with the synapse rule that recurrent
networks need (``RECURRENT_RULE``). Select one from Python (``DPAPPruner(preset="builtin")``,
``make_pruner("dpap", preset="builtin")``) or from the command line
(``--pruner-preset builtin``); given options override the preset's values.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# The rule of both short-run presets. Chosen on a validation split of digits-events
# (docs/dpap.md, "Presets": the runs, commands and numbers):
# * "calibrated": a unit unused at every decision is pruned after `prune_after_fraction` of the run's
#   decisions, whatever their number; the authors' R0 = 10 with tau = 12 epochs needs ~300 epochs
#   (in a 20-epoch per-epoch run no conv channel can ever be pruned).
# * one e-fold of the step size per `tau_fraction` of the run: the authors' shape (fast early, then
#   slowing down), on the scale of this run.
# * FC neurons judged with c = 1.0 (the authors' 1.5 removed 60-70 % of hidden neurons and cost
#   1.5-2.5 points on single seeds); usage over the survivors, so the bar rises as weak units leave.
# * conv channels with c = 1.0: about 40 % of channels go (0.65: about 25 %, accuracy as dense;
#   1.25: about 47 %, 3-4 points lost on validation).
_SHORT_RUN_RULE = {
    "reward_rule": "calibrated",
    "prune_after_fraction": 0.25,
    "tau_fraction": 0.25,
    "fc_neuron_c": 1.0,
    "conv_channel_c": 1.0,
    "usage_over": "alive",
}

DPAP_PRESETS: Mapping[str, Mapping[str, object]] = MappingProxyType({
    # The authors' constants and schedule (TPAMI 2024, their released code): DPAPConfig's defaults.
    "authors": MappingProxyType({}),
    # The built-in data (20 epochs of 23 batches): a decision every 5 batches, 92 schedule units; units unused
    # at every decision go after a fifth of them (0.25 before: docs/dpap.md, "When pruning starts", 5 seeds on
    # validation, MLP and conv: 0.2 the most accurate on both, and the earlier units go, the shorter the run).
    "builtin": MappingProxyType({"schedule_unit": "batches", "batches_per_unit": 5, **_SHORT_RUN_RULE,
                                 "prune_after_fraction": 0.2}),
    # Tonic datasets: the built-in run's 92 schedule units spread over the run, whatever the dataset's
    # size (5 batches per unit would make 3,750 decisions on N-MNIST). Not tuned on these datasets; pruning
    # starts where the built-in preset's did before the measurement above (0.25), as the N-MNIST runs did.
    "tonic": MappingProxyType({"schedule_unit": "run", "decisions_per_run": 92, **_SHORT_RUN_RULE}),
})
# Recurrent networks (`--model rmlp`): each short-run preset with its synapse rule changed. Chosen on validation,
# rmlp (128) on digits-seq, 15 epochs, seeds 0-2 (docs/dpap.md, "Recurrent networks"): the `builtin` rule
# (synapses by M_ij at c = 1.5) cuts a layer whose neurons see 8 inputs a step and their own sparse spikes to
# 24 % of its synapses and loses 49 points; synapses by N(M) N(|w|) at c = 0.5 lose 6 (at fc_neuron_c 1.0) or
# 2 (at 0.5).
RECURRENT_RULE = MappingProxyType({"synapse_score": "bcm*magnitude", "fc_synapse_c": 0.5})
DPAP_PRESETS = MappingProxyType({
    **DPAP_PRESETS,
    **{f"{name}-recurrent": MappingProxyType({**DPAP_PRESETS[name], **RECURRENT_RULE}) for name in ("builtin", "tonic")},
})
DEFAULT_PRESET = "authors"  # DPAPPruner() without a preset
