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
