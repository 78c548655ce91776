"""When DPAP decides: per epoch (the authors' schedule) or per block of batches, after a warm-up."""

import pytest
import torch

from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import DPAPPruner
from hw_export.errors import UserError


class UnitRecordingDPAP(DPAPPruner):
    """DPAP that also notes the schedule-unit index each decision gets (it sets the rule's step size)."""

    def __init__(self, **options):
        super().__init__(**options)
        self.units = []

    def decide(self, unit):
        self.units.append(unit)
        super().decide(unit)


def decision_steps(pruner, steps_per_epoch, epochs, seed=0):
    """Call ``step`` after every batch as the trainer does; the steps at which a decision was made."""
    torch.manual_seed(seed)
    model = SpikingMLP(6, [5, 4], 3)
    pruner.attach(model, total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    made = []
    for step in range(1, epochs * steps_per_epoch + 1):
        spikes = (torch.rand(4, 3, 6, generator=generator) < 0.4).float()  # [T, B, n_in]
        before = pruner.decisions
        model(spikes)
        pruner.step(epoch_end=step % steps_per_epoch == 0)
        assert pruner.steps_taken == step
        assert pruner.decisions - before in (0, 1), "more than one decision in one step"
        if pruner.decisions > before:
            made.append(step)
    return made


@pytest.mark.parametrize("warmup", [0, 2])
def test_epoch_schedule_decides_once_per_epoch_end_after_the_warmup(warmup):
    steps_per_epoch, epochs = 3, 5
    pruner = UnitRecordingDPAP(warmup_units=warmup)
    made = decision_steps(pruner, steps_per_epoch, epochs)
    # Epochs 1..warmup (1-based) are the warm-up; the first decision ends epoch warmup + 1,
    # then one at the last batch of every later epoch, never at a batch in the middle of one.
    expected = [epoch * steps_per_epoch for epoch in range(warmup + 1, epochs + 1)]
    assert made == expected
    assert pruner.units == list(range(warmup, epochs))  # 0-based epoch index


def test_epoch_is_the_default_schedule_with_five_warmup_epochs():
    made = decision_steps(DPAPPruner(), steps_per_epoch=2, epochs=7)
    assert made == [12, 14]  # ends of epochs 6 and 7


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_batch_schedule_decides_every_k_batches_after_the_warmup(warmup):
    k, steps_per_epoch, epochs = 2, 3, 4  # units of 2 batches do not line up with epochs of 3
    pruner = UnitRecordingDPAP(schedule_unit="batches", batches_per_unit=k, warmup_units=warmup)
    made = decision_steps(pruner, steps_per_epoch, epochs)
    # Unit u (0-based) ends at batch k * (u + 1); units 0 .. warmup - 1 are the warm-up.
    # Epoch ends (batches 3, 9) that are not unit ends trigger nothing.
    n_units = steps_per_epoch * epochs // k
    assert made == [k * (unit + 1) for unit in range(warmup, n_units)]
    assert pruner.units == list(range(warmup, n_units))


@pytest.mark.parametrize("stop_fraction, last_unit", [(1.0, 12), (0.75, 9), (0.5, 6)])
def test_no_decision_after_the_stop_fraction_and_the_rule_counts_only_the_decisions_made(stop_fraction, last_unit):
    k, steps_per_epoch, epochs = 2, 3, 8  # 12 units of 2 batches
    pruner = UnitRecordingDPAP(schedule_unit="batches", batches_per_unit=k, warmup_units=2, stop_fraction=stop_fraction,
                               reward_rule="calibrated")
    made = decision_steps(pruner, steps_per_epoch, epochs)
    assert pruner.units == list(range(2, last_unit))  # units last_unit .. 11: the network recovers, unpruned
    assert made == [k * (unit + 1) for unit in pruner.units]
    assert pruner.n_decisions == last_unit - 2 == pruner.decisions  # what the calibrated rule is scaled to


def test_a_stop_fraction_outside_the_run_is_refused():
    for bad in (0.0, 1.5):
        with pytest.raises(UserError, match="stop_fraction must be in"):
            DPAPPruner(stop_fraction=bad)


@pytest.mark.parametrize("steps_per_epoch, epochs", [(5, 4), (50, 2)])
def test_run_schedule_makes_the_same_number_of_decisions_whatever_the_run_length(steps_per_epoch, epochs):
    pruner = UnitRecordingDPAP(schedule_unit="run", decisions_per_run=4, warmup_units=1)
    made = decision_steps(pruner, steps_per_epoch, epochs)
    per_unit = steps_per_epoch * epochs // 4  # 5 or 25 batches
    assert pruner.batches_per_unit == per_unit
    assert made == [per_unit * unit for unit in (2, 3, 4)]  # unit 0 is the warm-up
    assert pruner.units == [1, 2, 3]


def test_disabled_pruner_never_decides():
    made = decision_steps(DPAPPruner(schedule_unit="batches", batches_per_unit=1, warmup_units=0, enabled=False),
                          steps_per_epoch=2, epochs=2)
    assert made == []


@pytest.mark.parametrize("options", [
    {"schedule_unit": "weeks"},
    {"schedule_unit": "batches"},  # needs batches_per_unit >= 1
    {"schedule_unit": "run"},  # needs decisions_per_run >= 1
    {"warmup_units": -1},
    {"trace_decay": 1.0},
    {"r_init": 0.0},
    {"r_decay": 0.0},
    {"conv_channel_tau": 0.0},
])
def test_bad_schedule_options_are_refused(options):
    with pytest.raises(UserError):
        DPAPPruner(**options)


@pytest.mark.parametrize("options, n_units, n_decisions", [
    ({}, 20, 15),  # the authors': 20 epochs, 5 of them warm-up
    ({"schedule_unit": "batches", "batches_per_unit": 5}, 92, 87),  # 460 batches in units of 5
    ({"schedule_unit": "run", "decisions_per_run": 92}, 92, 87),
    ({"schedule_unit": "batches", "batches_per_unit": 100}, 4, 0),
])
def test_attach_counts_the_runs_schedule_units_and_decisions(options, n_units, n_decisions):
    pruner = DPAPPruner(**options)
    pruner.attach(SpikingMLP(6, [5, 4], 3), total_steps=20 * 23, steps_per_epoch=23)
    assert (pruner.n_units, pruner.n_decisions) == (n_units, n_decisions)


def test_the_calibrated_rule_prunes_an_unused_unit_at_the_chosen_share_of_the_run():
    """Through the pruner: a silent hidden neuron (usage 0 at every decision) goes at decision ceil(0.3 * 30) = 9."""
    torch.manual_seed(0)
    model = SpikingMLP(6, [5, 4], 3, weight_init_gain=8.0)
    with torch.no_grad():
        model[1].weight[2] = -1.0  # neuron 2 of the first hidden layer never fires
    pruner = UnitRecordingDPAP(schedule_unit="batches", batches_per_unit=2, warmup_units=3, reward_rule="calibrated",
                               prune_after_fraction=0.3, prune_synapses=False)
    pruner.attach(model, total_steps=66)  # 33 units, 30 decisions
    generator = torch.Generator().manual_seed(0)
    gone_at = None
    for step in range(1, 67):
        model((torch.rand(4, 3, 6, generator=generator) < 0.5).float())
        pruner.step()
        if gone_at is None and not pruner.records[0].verdict.unit_alive[2]:
            gone_at = pruner.decisions
    assert gone_at == 9
