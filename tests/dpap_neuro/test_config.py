"""RunConfig: validation, the JSON round trip, pruner options and model keyword arguments."""

import json

import pytest
import torch

from dpap_neuro.config import RunConfig
from dpap_neuro.models import build_model
from hw_export.errors import UserError


def test_defaults_are_valid():
    config = RunConfig()
    assert config.hidden_sizes == (256, 256)
    assert config.model == "mlp" and config.pruner == "dpap"


@pytest.mark.parametrize("field, value, message", [
    ("timesteps", 0, "timesteps"),
    ("test_fraction", 1.0, "test_fraction"),
    ("test_fraction", 0.0, "test_fraction"),
    ("hidden_sizes", (), "hidden_sizes"),
    ("hidden_sizes", (8, 0), "hidden_sizes"),
    ("dt_s", 0.0, "dt_s"),
    ("dt_s", 0.02, "dt_s \\* tau_inv"),  # 0.02 s * 100 /s = 2 > 1: unstable Euler step
    ("tau_syn_inv_per_s", 2000.0, "dt_s \\* tau_inv"),  # 1e-3 * 2000 = 2
    ("tau_mem_inv_per_s", -1.0, "tau_mem_inv_per_s must be > 0, got -1.0"),
    ("loihi_finetune_epochs", -1, "loihi_finetune_epochs must be >= 0"),
    ("seed", -1, "seed must be >= 0"),  # numpy's generators refuse a negative seed
    ("epochs", 0, "epochs"),
    ("batch_size", 0, "batch_size"),
    ("learning_rate", 0.0, "learning_rate"),
    ("lava_batch_size", 0, "lava_batch_size"),
    ("model", "rnn", "model must be one of mlp, conv, rmlp, ann-mlp, ann-conv"),
    ("conv_channels", (), "conv_channels"),
    ("conv_channels", (4, 0), "conv_channels"),
])
def test_invalid_field_is_refused_by_name(field, value, message):
    with pytest.raises(UserError, match=message):
        RunConfig(**{field: value})


def test_a_stable_euler_step_at_the_limit_is_accepted():
    RunConfig(dt_s=0.005, tau_syn_inv_per_s=200.0, tau_mem_inv_per_s=100.0)  # 0.005 * 200 = 1


def test_dict_round_trip_through_json_restores_tuples():
    config = RunConfig(hidden_sizes=(32, 16), conv_channels=(8,), model="conv", epochs=3, seed=7,
                       pruner="gmp", pruner_options={"target_sparsity": 0.5}, weight_init_gain=2.5)
    data = json.loads(json.dumps(config.to_dict()))  # as saved with a run: tuples become lists
    assert data["hidden_sizes"] == [32, 16]
    restored = RunConfig.from_dict(data)
    assert restored == config
    assert isinstance(restored.hidden_sizes, tuple) and isinstance(restored.conv_channels, tuple)


def test_from_dict_refuses_unknown_keys():
    data = RunConfig().to_dict()
    data["hiden_sizes"] = [8]
    with pytest.raises(UserError, match="unknown config keys: hiden_sizes"):
        RunConfig.from_dict(data)


def test_dpap_gets_the_builtin_preset_when_none_is_given():
    from dpap_neuro.pruning import DPAP_PRESETS, resolve_pruner_options

    options = RunConfig(pruner="dpap").resolved_pruner_options()
    # docs/dpap.md, "Presets": every option, the preset's values over the authors' defaults, the preset named.
    assert options == resolve_pruner_options("dpap", {"preset": "builtin"})
    assert options["preset"] == "builtin" and options.items() >= DPAP_PRESETS["builtin"].items()
    options["fc_neuron_c"] = 99.0  # a copy: changing it changes nothing for the next caller
    assert RunConfig().resolved_pruner_options()["fc_neuron_c"] == DPAP_PRESETS["builtin"]["fc_neuron_c"]
    assert RunConfig(pruner_preset="authors").resolved_pruner_options() == resolve_pruner_options("dpap")


@pytest.mark.parametrize("dataset, model, preset", [("digits-seq", "rmlp", "builtin-recurrent"),
                                                     ("digits-seq", "mlp", "builtin"),
                                                     ("shd", "rmlp", "tonic-recurrent"), ("nmnist", "conv", "tonic")])
def test_a_recurrent_model_gets_its_datasets_recurrent_preset(dataset, model, preset, tmp_path):
    files = {} if dataset == "digits-seq" else {"data_dir": str(tmp_path)}  # the tonic datasets need a folder
    assert RunConfig(dataset=dataset, model=model, **files).resolved_pruner_options()["preset"] == preset
    assert RunConfig(dataset=dataset, model=model, pruner_preset="builtin", **files).resolved_pruner_options()[
        "preset"] == "builtin"  # a preset given wins


def test_other_pruners_get_their_defaults_and_refuse_a_preset():
    from hw_export.errors import UserError

    assert RunConfig(pruner="gmp").resolved_pruner_options() == {
        "target_sparsity": 0.8, "start_fraction": 0.1, "end_fraction": 0.7, "update_every_steps": 10,
        "allocation": "uniform"}
    with pytest.raises(UserError, match="--pruner-preset is for the dpap family"):
        RunConfig(pruner="random", pruner_preset="authors").resolved_pruner_options()
    assert RunConfig(pruner="dpap+").resolved_pruner_options()["preset"] == "builtin"  # the DPAP family


def test_given_options_override_only_their_own_preset_values():
    from dpap_neuro.pruning import resolve_pruner_options

    config = RunConfig(pruner="dpap", pruner_options={"warmup_units": 2, "fc_neuron_c": 1.5})
    assert config.resolved_pruner_options() == resolve_pruner_options(
        "dpap", {"preset": "builtin", "warmup_units": 2, "fc_neuron_c": 1.5})
    assert RunConfig(pruner="dpap", pruner_options={}).resolved_pruner_options() == \
        RunConfig(pruner="dpap").resolved_pruner_options()
    # The authors' per-epoch schedule stays reachable.
    authors = RunConfig(pruner="dpap", pruner_options={"schedule_unit": "epoch"}).resolved_pruner_options()
    assert authors["schedule_unit"] == "epoch"


def test_model_kwargs_pass_weight_init_gain_only_when_set():
    assert "weight_init_gain" not in RunConfig().model_kwargs()
    config = RunConfig(weight_init_gain=2.0, hidden_sizes=(8,))
    kwargs = config.model_kwargs()
    assert kwargs["weight_init_gain"] == 2.0
    assert kwargs["architecture"] == "mlp"
    # Unset, the model's own default (4 for the MLP) applies; set, it replaces it.
    torch.manual_seed(0)
    default = build_model((10,), config.hidden_sizes, 3, **RunConfig(hidden_sizes=(8,)).model_kwargs())
    torch.manual_seed(0)
    halved = build_model((10,), config.hidden_sizes, 3, **kwargs)
    torch.testing.assert_close(halved[1].weight, default[1].weight / 2)


def test_model_kwargs_carry_the_neuron_settings():
    config = RunConfig(model="conv", conv_channels=(3,), dt_s=5e-4, tau_syn_inv_per_s=300.0,
                       tau_mem_inv_per_s=150.0, v_th=0.5)
    kwargs = config.model_kwargs()
    assert kwargs == {"architecture": "conv", "conv_channels": (3,), "dt_s": 5e-4, "tau_syn_inv_per_s": 300.0,
                      "tau_mem_inv_per_s": 150.0, "v_th": 0.5}
    model = build_model((2, 8, 8), [4], 3, **kwargs)
    assert model[0].out_channels == 3
    assert float(model[1].p.v_th) == 0.5 and model[1].dt == 5e-4


def test_tonic_datasets_pace_dpap_by_decisions_per_run_and_built_in_data_by_batches():
    tonic = RunConfig(dataset="nmnist", data_dir="/data", pruner_options={"fc_neuron_c": 1.5})
    options = tonic.resolved_pruner_options()
    assert options["preset"] == "tonic" and options["schedule_unit"] == "run" and options["fc_neuron_c"] == 1.5
    builtin = RunConfig().resolved_pruner_options()
    assert builtin["schedule_unit"] == "batches"
    # The same pacing: the built-in run (20 epochs of 23 batches, one decision every 5) has 92 decisions.
    assert 20 * 23 // builtin["batches_per_unit"] == options["decisions_per_run"]
