"""DPAP's presets (one dict, the same values from Python and the command line), resolve_pruner_options, diagnose."""

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from dpap_neuro.models import SpikingConvNet, SpikingMLP
from dpap_neuro.pruning import (
    DPAP_PRESETS,
    PRUNERS,
    DPAPConfig,
    DPAPPlusPruner,
    DPAPPruner,
    make_pruner,
    resolve_pruner_options,
)
from dpap_neuro.pruning.dpap import presets_table
from hw_export.errors import UserError


def test_the_presets_are_authors_builtin_and_tonic_and_authors_is_the_default():
    assert list(DPAP_PRESETS) == ["authors", "builtin", "tonic", "builtin-recurrent", "tonic-recurrent"]
    for name in ("builtin", "tonic"):  # the recurrent ones: the same, but for the synapse rule
        assert dict(DPAP_PRESETS[f"{name}-recurrent"]) == {**DPAP_PRESETS[name], "synapse_score": "bcm*magnitude",
                                                          "fc_synapse_c": 0.5}
    assert dict(DPAP_PRESETS["authors"]) == {}  # DPAPConfig's defaults are the authors' constants
    assert DPAPPruner().preset == "authors" and DPAPPruner().config == DPAPConfig()
    with pytest.raises(TypeError):
        DPAP_PRESETS["builtin"]["fc_neuron_c"] = 3.0  # read-only: nobody changes a preset behind the others


def test_a_preset_with_options_over_it_from_python():
    pruner = DPAPPruner(preset="builtin", fc_neuron_c=1.2)
    assert pruner.config == DPAPConfig(**{**DPAP_PRESETS["builtin"], "fc_neuron_c": 1.2})
    assert pruner.options()["preset"] == "builtin" and pruner.options()["fc_neuron_c"] == 1.2
    assert make_pruner("dpap", preset="builtin", fc_neuron_c=1.2).options() == pruner.options()


@pytest.mark.parametrize("preset", list(DPAP_PRESETS))
def test_resolve_gives_every_option_and_the_preset_and_builds_the_same_pruner(preset):
    options = resolve_pruner_options("dpap", {"preset": preset})
    assert options == {"preset": preset, **asdict(DPAPConfig(**DPAP_PRESETS[preset]))}
    assert make_pruner("dpap", **options).options() == options  # the full dict round-trips
    assert DPAPPruner(preset=preset).options() == options  # the same values by either route


def test_resolve_without_a_preset_names_authors_and_given_options_win():
    assert resolve_pruner_options("dpap")["preset"] == "authors"
    options = resolve_pruner_options("dpap", {"preset": "tonic", "decisions_per_run": 40})
    assert options["decisions_per_run"] == 40 and options["schedule_unit"] == "run"


@pytest.mark.parametrize("name", [n for n in PRUNERS if n not in ("dpap", "dpap+")])
def test_resolve_gives_the_baselines_defaults_and_ignores_a_preset(name):
    options = resolve_pruner_options(name, {"preset": "builtin"})
    assert "preset" not in options
    rebuilt = make_pruner(name, **options)
    assert type(rebuilt) is PRUNERS[name]
    with pytest.raises(UserError, match="has no option preset"):
        make_pruner(name, preset="builtin")  # directly, a preset is an unknown option


def test_resolve_refuses_bad_names_and_values_with_user_errors():
    with pytest.raises(UserError, match="unknown pruner 'lottery'"):
        resolve_pruner_options("lottery", {})
    with pytest.raises(UserError, match="unknown DPAP preset 'cifar'"):
        resolve_pruner_options("dpap", {"preset": "cifar"})
    with pytest.raises(UserError, match="has no option fc_neuron_k"):
        resolve_pruner_options("dpap+", {"fc_neuron_k": 1.0})


def test_dpap_plus_keeps_its_synapse_score_over_every_preset():
    for preset in DPAP_PRESETS:
        assert DPAPPlusPruner(preset=preset).config.synapse_score == "bcm*magnitude"
        assert resolve_pruner_options("dpap+", {"preset": preset})["preset"] == preset


def test_docs_show_the_presets_table_of_the_code():
    doc = (Path(__file__).parents[2] / "docs" / "dpap.md").read_text()
    assert presets_table() in doc, "docs/dpap.md's presets table differs from presets_table(): paste it again"


# --- diagnose -----------------------------------------------------------------------------------------


def conv_model():
    torch.manual_seed(0)
    return SpikingConvNet((2, 8, 8), (4, 8), (16,), 3)


def test_diagnose_warns_that_the_authors_channel_rule_cannot_prune_in_20_epochs_per_epoch():
    pruner = DPAPPruner()  # the authors' per-epoch schedule
    pruner.attach(conv_model(), total_steps=20 * 23, steps_per_epoch=23)
    warnings = pruner.diagnose()
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("dpap: conv channels cannot be pruned in this run: one unused at all 15 decisions "
                                  "ends at R = 1.40 > 0")
    # The FC rules (c = 1.5) can prune in the same run, so they get no warning.


@pytest.mark.parametrize("preset, steps_per_epoch", [("builtin", 23), ("tonic", 23), ("tonic", 940)])
def test_diagnose_is_silent_for_the_calibrated_presets(preset, steps_per_epoch):
    pruner = DPAPPruner(preset=preset)
    pruner.attach(conv_model(), total_steps=20 * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    assert pruner.diagnose() == []


def test_diagnose_names_only_the_rules_that_apply():
    mlp = SpikingMLP(6, [5, 4], 3)
    pruner = DPAPPruner(warmup_units=18, prune_synapses=False)  # 2 decisions: no rule can prune
    pruner.attach(mlp, total_steps=20, steps_per_epoch=1)
    assert [w.split(" cannot")[0] for w in pruner.diagnose()] == ["dpap: FC neurons"]  # no conv, no synapses
    off = DPAPPruner(warmup_units=18, enabled=False)
    off.attach(SpikingMLP(6, [5, 4], 3), total_steps=20, steps_per_epoch=1)
    assert off.diagnose() == []
