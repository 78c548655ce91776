"""dpap_neuro/pipeline.py called directly: the run, its report contract, comparisons, profiles."""

import json

import pytest

from conftest import needs_lava
from dpap_neuro.config import RunConfig
from dpap_neuro.pipeline import DENSE, compare, resolve_profiles, run, simulate_artifact
from hw_export.energy import PROFILES


def model_entry(synapses, neurons, spikes, synops, energy):
    return {"synapses": synapses, "neurons": neurons,
            "per_sample": {"spikes": spikes, "synops": synops, "energy_j": {"loihi": energy}}}


def test_compare_gives_pruned_over_dense_ratios():
    models = {"dense": model_entry(100, 20, 50.0, 400.0, 4e-6), "dpap": model_entry(25, 5, 40.0, 100.0, 1e-6)}
    result = compare(models, "dense", "dpap", "loihi")
    assert result["baseline"] == "dense" and result["pruned"] == "dpap"
    assert result["ratios"] == pytest.approx({"synapses": 0.25, "neurons": 0.25, "spikes": 0.8, "synops": 0.25,
                                              "energy": 0.25})


def test_compare_with_a_zero_baseline_is_undefined_rather_than_a_crash():
    models = {"dense": model_entry(100, 20, 0.0, 400.0, 4e-6), "dpap": model_entry(25, 5, 0.0, 100.0, 1e-6)}
    assert compare(models, "dense", "dpap", "loihi")["ratios"]["spikes"] is None  # JSON null, never NaN


def test_profiles_are_the_built_ins_plus_a_user_file(tmp_path):
    assert resolve_profiles("loihi") == PROFILES
    custom = tmp_path / "mychip.json"
    custom.write_text(json.dumps({**PROFILES["loihi"].to_dict(), "name": "mychip", "e_synop_pj": 1.0}))
    profiles = resolve_profiles(str(custom))
    assert set(profiles) == {*PROFILES, "mychip"} and profiles["mychip"].e_synop_pj == 1.0
    with pytest.raises(ValueError, match="unknown energy profile 'loihi3'"):
        resolve_profiles("loihi3")


def test_the_dense_model_is_always_trained_so_pruner_none_is_refused(tmp_path):
    with pytest.raises(ValueError, match="choose a pruner other than 'none'"):
        run(RunConfig(pruner="none"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_simulate_refuses_a_dataset_the_network_does_not_take(tmp_path):
    from hw_export.h5io import write_sparsenet
    from hw_export.norse_reader import from_norse
    from dpap_neuro.models import SpikingMLP

    path = tmp_path / "net.h5"
    write_sparsenet(from_norse(list(SpikingMLP(64, [8], 10)), (64,), {"timesteps": 4, "seed": 0}), path)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(64,\), dataset digits-events gives \(2, 8, 8\)"):
        simulate_artifact(path, "digits-events", progress=False)


@needs_lava
def test_run_returns_and_writes_the_same_report(tmp_path):
    config = RunConfig(dataset="digits", epochs=2, timesteps=5, hidden_sizes=(12,), pruner="random",
                       pruner_options={"sparsity": 0.5})
    report = run(config, tmp_path, progress=False)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    assert RunConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == config
    assert list(report["models"]) == [DENSE, "random"]
    dense, pruned = report["models"][DENSE], report["models"]["random"]
    assert dense["pruner"] == "none" and pruned["pruner_options"] == {"sparsity": 0.5}
    for model in (dense, pruned):
        assert len(model["training"]["loss"]) == config.epochs
        assert all((tmp_path / name).is_file() for name in model["files"].values())
        assert model["precision"] == "float" and "fixed" in model
    assert dense["training"]["sparsity"][-1] == 0.0
    assert pruned["training"]["sparsity"][-1] == pytest.approx(0.5, abs=0.01)
    # Hidden synapses halved; the readout layer stays dense.
    assert pruned["layers"][0]["synapses"] <= 0.5 * dense["layers"][0]["synapses"] + 1
    assert report["comparison"]["ratios"]["synapses"] == pytest.approx(pruned["synapses"] / dense["synapses"])


def test_an_interrupted_run_leaves_no_report_even_where_an_earlier_run_left_one(tmp_path, monkeypatch):
    import dpap_neuro.pipeline as pipeline

    for name in ("report.json", "report.md", "report.html"):
        (tmp_path / name).write_text("from an earlier run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(dataset="digits", epochs=1, hidden_sizes=(8,)), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_reports_are_strict_json_even_with_a_diverged_number():
    from dpap_neuro.pipeline import strict_json

    text = strict_json({"loss": [0.5, float("nan")], "ratio": float("inf"), "nested": {"x": (1.0, -float("inf"))}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "loss": [0.5, None], "ratio": None, "nested": {"x": [1.0, None]}}
