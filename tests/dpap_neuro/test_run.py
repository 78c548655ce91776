"""dpap_neuro/run.py and simulate.py called directly: the run, its report, interrupts, refusals."""

import json

import pytest

from conftest import needs_lava
from dpap_neuro.config import RunConfig
from dpap_neuro.run import DENSE, run
from dpap_neuro.simulate import simulate_artifact
from hw_export.errors import UserError
from hw_export.report import RunReport, check


def test_the_dense_model_is_always_trained_so_pruner_none_is_refused(tmp_path):
    with pytest.raises(UserError, match="choose a pruner other than 'none'"):
        run(RunConfig(pruner="none"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_simulate_refuses_a_dataset_the_network_does_not_take(tmp_path):
    from hw_export.h5io import write_sparsenet
    from hw_export.norse import export_model
    from dpap_neuro.models import SpikingMLP

    path = tmp_path / "net.h5"
    write_sparsenet(export_model(list(SpikingMLP(64, [8], 10)), (64,), {"timesteps": 4, "seed": 0}), path)
    with pytest.raises(UserError, match=r"takes inputs of shape \(64,\), dataset digits-events gives \(2, 8, 8\)"):
        simulate_artifact(path, "digits-events", progress=False)


@needs_lava
def test_run_returns_and_writes_the_same_report(tmp_path):
    config = RunConfig(dataset="digits", epochs=2, timesteps=5, hidden_sizes=(12,), pruner="random",
                       pruner_options={"sparsity": 0.5})
    report = run(config, tmp_path, progress=False)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written == json.loads(json.dumps(report))
    check(written, RunReport)  # what is read back passes the same schema it was produced under
    assert RunConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == config
    assert list(report["models"]) == [DENSE, "random"]
    dense, pruned = report["models"][DENSE], report["models"]["random"]
    assert dense["pruner"] == "none" and pruned["pruner_options"]["sparsity"] == 0.5
    for model in (dense, pruned):
        assert len(model["training"]["loss"]) == config.epochs
        assert all((tmp_path / name).is_file() for name in model["files"].values())
        assert {"agreement", "fixed", "neurobench", "samples"} <= set(model)
        assert model["pruner_options"] == ({} if model is dense else {"sparsity": 0.5, "at_fraction": 0.0, "seed": 0})
    assert dense["training"]["sparsity"][-1] == 0.0
    assert pruned["training"]["sparsity"][-1] == pytest.approx(0.5, abs=0.01)
    # Hidden synapses halved; the readout layer stays dense.
    assert pruned["layers"][0]["synapses"] <= 0.5 * dense["layers"][0]["synapses"] + 1
    assert report["comparison"]["ratios"]["synapses"] == pytest.approx(pruned["synapses"] / dense["synapses"])


def test_an_interrupted_run_leaves_no_report_even_where_an_earlier_run_left_one(tmp_path, monkeypatch):
    import dpap_neuro.run as run_module

    for name in ("report.json", "report.md", "report.html"):
        (tmp_path / name).write_text("from an earlier run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "train_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(dataset="digits", epochs=1, hidden_sizes=(8,)), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


class _Samples:
    """A stand-in split: its length and one sample's shape are all run_report reads."""

    def __init__(self, n: int) -> None:
        self.n, self.input_shape = n, (10,)

    def __len__(self) -> int:
        return self.n


def _measured_models(profiles) -> dict:
    from conftest import small_report

    models = small_report()["models"]
    for index, model in enumerate(models.values()):
        model["per_sample"]["energy_j"] = {name: (index + 1) * (k + 1) * 1e-6 for k, name in enumerate(profiles)}
    return models


def test_the_report_ratios_use_the_runs_configured_profile_whatever_order_the_profiles_come_in(tmp_path):
    from dpap_neuro.experiment import Splits
    from dpap_neuro.run import run_report
    from hw_export.energy import LOIHI, PROFILES, load_profile, resolve_profiles

    splits = Splits(_Samples(20), None, _Samples(5))
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({**LOIHI.to_dict(), "name": "mine", "e_synop_pj": 1.0}))
    # The profile file's, also where it does not come last.
    profiles = {"mine": load_profile(own), **PROFILES}
    report = run_report(RunConfig(energy_profile=str(own)), splits, _measured_models(profiles), profiles)
    assert report["energy_profile"] == "mine"
    check(report)
    # Nothing named: RunConfig's default, loihi (not the last profile measured).
    profiles = resolve_profiles("loihi")
    assert list(profiles)[-1] != "loihi"
    report = run_report(RunConfig(), splits, _measured_models(profiles), profiles)
    assert report["energy_profile"] == "loihi"
    # A profile that was not measured is refused in one line, not a KeyError.
    with pytest.raises(UserError, match="'cmos45' is not among the profiles measured"):
        run_report(RunConfig(energy_profile="cmos45"), splits, _measured_models({"loihi": 0}),
                   {"loihi": LOIHI})


def test_a_pruner_that_cannot_prune_in_this_run_is_said_before_any_training(tmp_path, monkeypatch, capsys):
    import dpap_neuro.run as run_module

    class TrainingStarted(Exception):
        pass

    def first_training(*args, **kwargs):
        raise TrainingStarted

    monkeypatch.setattr(run_module, "train_one", first_training)
    # The authors' schedule: a decision per epoch after 5 warm-up epochs, so 3 epochs decide nothing.
    with pytest.raises(TrainingStarted):
        run(RunConfig(epochs=3, pruner_preset="authors"), tmp_path / "run", progress=False)
    assert "warning: dpap: no pruning decision in this run: 3 schedule units (epoch)" in capsys.readouterr().err
