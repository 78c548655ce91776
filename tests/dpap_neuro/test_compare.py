"""dpap compare called directly: run directories merged into one report, what is not a run refused."""

import json

import pytest

from dpap_neuro.compare import compare_runs
from hw_export.errors import UserError
from conftest import small_report


def test_compare_merges_run_directories_into_one_report(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "report.json").write_text(json.dumps(small_report()))
    report = compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "out", progress=False)
    assert list(report["models"]) == ["a/dense", "a/dpap", "b/dense", "b/dpap"]
    assert report["comparison"]["baseline"] == "a/dense" and report["comparison"]["pruned"] == "b/dpap"
    assert (tmp_path / "out" / "report.html").is_file()
    assert "| b/dpap |" in (tmp_path / "out" / "report.md").read_text()


def test_compare_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="no report.json"):
        compare_runs([tmp_path], tmp_path / "out", progress=False)


def write_run(directory, report):
    directory.mkdir()
    (directory / "report.json").write_text(json.dumps(report))


def measured_with(report, profiles, named):
    """``report`` with every model measured under ``profiles`` and ``named`` as the run's profile."""
    for model in report["models"].values():
        model["per_sample"]["energy_j"] = {p: 1e-6 * (k + 1) for k, p in enumerate(profiles)}
        model["per_sample"]["energy_breakdown_j"] = {p: model["per_sample"]["energy_breakdown_j"]["loihi"]
                                                     for p in profiles}
    report["energy_profiles"] = {p: {"source": f"constants of {p}"} for p in profiles}
    report["energy_profile"] = named
    return report


def test_compare_refuses_runs_on_different_datasets_naming_both(tmp_path):
    other = small_report()
    other["dataset"]["name"] = "shd"
    write_run(tmp_path / "a", small_report())
    write_run(tmp_path / "b", other)
    with pytest.raises(UserError, match=r"b: dataset 'shd', but .*a is on 'digits'; compare models of one"):
        compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "report.json").exists()


def test_compare_uses_the_runs_profile_or_loihi_never_the_alphabetically_first_and_says_so(tmp_path, capsys):
    # Run "own" named its own profile, which run "plain" was not measured with.
    write_run(tmp_path / "own", measured_with(small_report(), ["loihi", "cmos45", "mine"], "mine"))
    write_run(tmp_path / "plain", measured_with(small_report(), ["loihi", "cmos45"], "loihi"))
    report = compare_runs([tmp_path / "plain", tmp_path / "own"], tmp_path / "out1", progress=False)
    assert report["energy_profile"] == "loihi" and set(report["energy_profiles"]) == {"loihi", "cmos45"}
    report = compare_runs([tmp_path / "own", tmp_path / "plain"], tmp_path / "out2", progress=False)
    assert report["energy_profile"] == "loihi"
    assert "not every model was measured with energy profile 'mine'; the energy ratio uses 'loihi'" in (
        capsys.readouterr().err)
    assert json.loads((tmp_path / "out2" / "report.json").read_text())["energy_profile"] == "loihi"


def test_compare_refuses_models_that_share_no_energy_profile(tmp_path):
    write_run(tmp_path / "a", measured_with(small_report(), ["loihi"], "loihi"))
    write_run(tmp_path / "b", measured_with(small_report(), ["cmos45"], "cmos45"))
    with pytest.raises(UserError, match="share no energy profile"):
        compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "out", progress=False)
