"""Atomic writes and ArtifactError: the guarantees every output file relies on."""

import os

import pytest

from hw_export.files import ArtifactError, atomic_write, atomic_write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_text(target, "old\n")

    def half_then_fail(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["report.json"]


def test_an_interrupted_write_leaves_no_file_at_all(tmp_path):
    target = tmp_path / "sub" / "net.h5"

    def interrupted(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted, suffix=".h5")
    assert not target.exists()
    assert os.listdir(tmp_path / "sub") == []


def test_a_write_creates_folders_and_replaces_the_file_whole(tmp_path):
    target = tmp_path / "a" / "b" / "x.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["x.txt"]


def test_artifact_error_is_one_line_naming_file_and_problem(tmp_path):
    error = ArtifactError(tmp_path / "net.h5", "schema_version 9 is not supported")
    assert str(error) == f"{tmp_path / 'net.h5'}: schema_version 9 is not supported"
    assert "\n" not in str(error)
    assert error.path == str(tmp_path / "net.h5") and isinstance(error, ValueError)
