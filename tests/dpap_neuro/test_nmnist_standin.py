"""The N-MNIST stand-in (data/nmnist_standin.py), read back with tonic's own N-MNIST reader."""

import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dpap_neuro.data import nmnist_standin
from dpap_neuro.data.digits import load_digit_images
from dpap_neuro.data.fixtures import EVENT_DTYPES, encode_nmnist_events
from dpap_neuro.data.neuromorphic import SPECS, EventFrames, FrameSettings
from dpap_neuro.data.nmnist_standin import (
    StandinSettings,
    crossing_events,
    digit_canvas,
    dvs_recording,
    sample_events,
    standin_images,
    standin_plan,
    write_nmnist_standin,
)
from hw_export.errors import UserError

tonic = pytest.importorskip("tonic")

SMALL = StandinSettings(train_per_class=2, test_per_class=1)  # 20 + 10 recordings, about a second
WRITER = [sys.executable, "-m", "dpap_neuro.data.nmnist_standin"]


def tonic_nmnist(root, train):
    """tonic's own reader, accepting a folder with fewer files than N-MNIST has, never fetching anything."""
    def refuse(self):
        raise AssertionError("the test tried to fetch N-MNIST")

    cls = type("NMNIST", (tonic.datasets.NMNIST,), {"_check_exists": lambda self: True, "download": refuse})
    return cls(str(root), train=train)


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the DVS model and its timestamps ----------------------------------------------------------


def test_one_pixel_brightening_in_one_step_by_hand():
    # log(0.1) -> log(1.1): a rise of 2.398, i.e. 9 whole thresholds of 0.25, each an ON event timed where the
    # straight line from one log intensity to the next meets reference + j * 0.25 (j = 1..9).
    log_frames = np.log(np.array([0.0, 1.0]) + 0.1).reshape(2, 1, 1)
    crossings = np.array([[[9.0]]])
    events = crossing_events(log_frames, crossings, np.array([0, 1000]), 0.25)
    assert events.dtype == EVENT_DTYPES["nmnist"] and len(events) == 9
    assert set(events["p"].tolist()) == {1} and set(events["x"].tolist()) == {0} and set(events["y"].tolist()) == {0}
    rise = log_frames[1, 0, 0] - log_frames[0, 0, 0]
    np.testing.assert_array_equal(events["t"], np.rint(1000 * 0.25 * np.arange(1, 10) / rise).astype(np.int64))
    # Falling back: 9 OFF events, the reference now sits 9 thresholds above where it started.
    back = crossing_events(log_frames[[0, 1, 0]], np.array([[[9.0]], [[-9.0]]]), np.array([0, 1000, 2000]), 0.25)
    assert (back["p"] == 0).sum() == 9 and back["t"][9:].min() > 1000 and np.all(np.diff(back["t"]) >= 0)


def test_a_still_image_is_silent_and_a_moving_one_is_not():
    settings = StandinSettings()
    image = load_digit_images(0.2, 0)[0][0]
    assert len(dvs_recording(digit_canvas(image, settings), dataclasses.replace(settings, amplitude_px=0.0))) == 0
    events = dvs_recording(digit_canvas(image, settings), settings)
    assert 3_000 < len(events) < 10_000  # N-MNIST's recordings hold a few thousand events
    assert events["t"].min() >= 0 and events["t"].max() <= 315_000 and np.all(np.diff(events["t"]) >= 0)
    assert events["x"].max() < 34 and events["y"].max() < 34 and set(events["p"].tolist()) == {0, 1}


def test_the_canvas_holds_the_zoomed_digit_with_room_for_the_saccades():
    settings = StandinSettings()
    canvas = digit_canvas(np.ones((8, 8)), settings)
    assert canvas.shape == (34, 34)
    np.testing.assert_allclose(canvas[1:29, 1:29], 1.0)  # the digit: rows and columns 1..28
    assert canvas.sum() == pytest.approx(28 * 28)  # nothing outside it


# --- the files, through tonic ------------------------------------------------------------------


def test_the_files_read_back_by_tonic_are_the_built_in_split_recorded(tmp_path):
    manifest = write_nmnist_standin(tmp_path, SMALL)
    images = standin_images(SMALL)
    plan = standin_plan(images["train"][1], images["test"][1], SMALL)
    for train in (True, False):
        split = "train" if train else "test"
        ds = tonic_nmnist(tmp_path, train)
        mine = sorted((s for s in plan if s.split == split), key=lambda s: s.file)  # tonic walks sorted folders
        assert [Path(p).relative_to(tmp_path / "NMNIST").as_posix() for p in ds.data] == [s.file for s in mine]
        assert sorted(ds.targets) == sorted(s.label for s in mine) and set(ds.targets) == set(range(10))
        for i, sample in enumerate(mine):
            events, target = ds[i]
            assert target == sample.label == images[split][1][sample.image]
            np.testing.assert_array_equal(events, sample_events(sample, images, SMALL))  # every bit of 40
    assert manifest["splits"]["train"]["recordings"] == 20 and manifest["splits"]["test"]["recordings"] == 10
    assert json.loads((tmp_path / "NMNIST" / "standin.json").read_text()) == manifest
    assert "not N-MNIST" in manifest["what"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NMNIST"]  # no staging folder left behind


def test_files_hold_exactly_the_encoded_records_and_the_split_is_the_built_in_one(tmp_path):
    write_nmnist_standin(tmp_path, SMALL)
    images = standin_images(SMALL)
    x_train, y_train, x_test, y_test = load_digit_images(0.2, 0)
    np.testing.assert_array_equal(images["test"][0], x_test)
    assert len(y_train) == 1437 and len(y_test) == 360
    first = standin_plan(y_train, y_test, SMALL)[0]
    events = sample_events(first, images, SMALL)
    data = (tmp_path / "NMNIST" / first.file).read_bytes()
    assert data == encode_nmnist_events(events["x"], events["y"], events["t"], events["p"])
    assert first.file == f"Train/{y_train[0]}/00001.bin"


def test_augmentation_adds_training_recordings_only_and_the_test_split_is_untouched(tmp_path):
    plain = write_nmnist_standin(tmp_path / "plain", SMALL)
    more = write_nmnist_standin(tmp_path / "more", dataclasses.replace(SMALL, augment=2))
    assert more["splits"]["train"]["recordings"] == 3 * plain["splits"]["train"]["recordings"]
    assert more["splits"]["train"]["augmented"] == 2 * plain["splits"]["train"]["recordings"]
    assert more["splits"]["test"] == plain["splits"]["test"] and more["splits"]["test"]["augmented"] == 0
    assert files_under(tmp_path / "more" / "NMNIST" / "Test") == files_under(tmp_path / "plain" / "NMNIST" / "Test")
    plain_train = files_under(tmp_path / "plain" / "NMNIST" / "Train")
    more_train = files_under(tmp_path / "more" / "NMNIST" / "Train")
    assert {k: more_train[k] for k in plain_train} == plain_train  # originals unchanged, copies beside them
    copies = set(more_train) - set(plain_train)
    assert len(copies) == 40 and all(int(Path(f).stem) > 1437 for f in copies)
    assert not set(more_train[f] for f in copies) & set(plain_train.values())  # each copy is a new recording


def test_the_same_settings_write_the_same_bytes(tmp_path):
    settings = dataclasses.replace(SMALL, augment=1, train_per_class=1)
    write_nmnist_standin(tmp_path / "a", settings)
    write_nmnist_standin(tmp_path / "b", settings)
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")


def test_frames_are_as_dense_as_n_mnist_through_the_reader_dpap_uses(tmp_path):
    write_nmnist_standin(tmp_path, SMALL)
    frames = EventFrames("nmnist", tmp_path, False, FrameSettings(30))
    density = float(torch.stack([frames[i][0] for i in range(len(frames))]).float().mean())
    assert 0.04 < density < 0.10  # ~7 % of the 30 x 2 x 34 x 34 entries, as real N-MNIST


# --- refusals, one line each -------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"augment": -1}, {"seed": -1}, {"test_fraction": 1.0}, {"train_per_class": 0}, {"image_px": 40},
    {"step_us": 0}, {"contrast_threshold": 0.0}, {"augment": 1.5}, {"augment": 69},
])
def test_bad_settings_are_one_line_user_errors(tmp_path, change):
    with pytest.raises(UserError) as error:
        write_nmnist_standin(tmp_path, dataclasses.replace(StandinSettings(), **change))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "NMNIST").exists()


def test_an_existing_dataset_is_never_overwritten_or_mixed(tmp_path):
    (tmp_path / "NMNIST" / "Train" / "3").mkdir(parents=True)
    (tmp_path / "NMNIST" / "Train" / "3" / "00001.bin").write_bytes(b"theirs")
    with pytest.raises(UserError, match="already exists and is not empty"):
        write_nmnist_standin(tmp_path, SMALL)
    assert (tmp_path / "NMNIST" / "Train" / "3" / "00001.bin").read_bytes() == b"theirs"
    (tmp_path / "empty" / "NMNIST").mkdir(parents=True)
    write_nmnist_standin(tmp_path / "empty", SMALL)  # an empty NMNIST folder is filled


def test_an_interrupted_write_leaves_nothing_tonic_would_read(tmp_path, monkeypatch):
    calls = []

    def stop_after_three(*args):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return original(*args)

    original = nmnist_standin.sample_events
    monkeypatch.setattr(nmnist_standin, "sample_events", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        write_nmnist_standin(tmp_path, SMALL)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_writes_and_refuses_in_one_line(tmp_path, capsys):
    args = [str(tmp_path), "--train-per-class", "1", "--test-per-class", "1", "--augment", "1", "--quiet"]
    done = subprocess.run([*WRITER, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "20 training recordings (10 of them augmented" in done.stdout and "not N-MNIST" in done.stdout
    assert nmnist_standin.main(args) == 2
    refused = capsys.readouterr().err
    assert refused.count("\n") == 1 and refused.startswith("nmnist-standin: error:") and "already exists" in refused
    assert nmnist_standin.main([str(tmp_path / "other"), "--augment", "-2"]) == 2
    assert capsys.readouterr().err == "nmnist-standin: error: augment must be >= 0, got -2\n"
    assert not (tmp_path / "other").exists()


# --- it learns ---------------------------------------------------------------------------------


def test_n_mnist_runs_with_its_own_defaults_unless_told_otherwise():
    from dpap_neuro.config import RunConfig

    spec = SPECS["nmnist"]
    config = RunConfig(dataset="nmnist", data_dir="/data")
    assert config.model == "conv" and config.timesteps == spec.default_timesteps
    assert {name: getattr(config, name) for name in spec.run_defaults} == dict(spec.run_defaults)
    assert RunConfig(dataset="nmnist", data_dir="/data", learning_rate=1e-3).learning_rate == 1e-3
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for other in SPECS.values():
        assert set(other.run_defaults) <= fields
    with pytest.raises(TypeError):
        spec.run_defaults["epochs"] = 1  # read-only
    copy = pickle.loads(pickle.dumps(spec))  # DataLoader workers receive the spec
    assert copy == spec and dict(copy.run_defaults) == dict(spec.run_defaults)


def test_the_default_conv_learns_a_small_stand_in_well_above_chance(tmp_path):
    """CI-sized: N-MNIST's default model and training settings on 300 training and 100 test recordings, through
    the code `dpap run` trains with, but 15 bins instead of 30 and 3 epochs; about 30 s on one idle core."""
    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import fit, load_splits
    from dpap_neuro.train import evaluate

    write_nmnist_standin(tmp_path / "data", StandinSettings(train_per_class=30, test_per_class=10))
    config = RunConfig(dataset="nmnist", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"),
                       timesteps=15, epochs=3, batch_size=32)
    splits = load_splits(config)
    assert len(splits.train) == 300 and len(splits.test) == 100
    model, _, _ = fit(config, "none", {}, splits.train)
    accuracy = evaluate(model, splits.test, keep_spikes=False).accuracy
    assert accuracy >= 0.6, accuracy  # chance is 0.1; seeds 0, 1, 2 gave 0.89, 0.83, 0.94
