"""The tonic datasets, read from fixture files written in each dataset's own format (data/fixtures.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import needs_lava
from dpap_neuro.config import RunConfig
from dpap_neuro.data import NEUROMORPHIC, DatasetFilesMissing, FrameSettings, batches, sequential_batches
from dpap_neuro.data.fixtures import WRITERS
from dpap_neuro.data.neuromorphic import EventFrames, EventsToFrames, check_files, load_neuromorphic
from hw_export.errors import UserError

DPAP = [sys.executable, "-m", "dpap_neuro.cli"]


def settings_of(name, timesteps=None):
    spec = NEUROMORPHIC[name]
    return FrameSettings(timesteps or spec.default_timesteps, spec.default_downsample)


@pytest.mark.parametrize("name", sorted(NEUROMORPHIC))
def test_missing_files_say_what_to_place_where(tmp_path, name):
    spec = NEUROMORPHIC[name]
    with pytest.raises(DatasetFilesMissing) as missing:
        EventFrames(name, tmp_path, True, settings_of(name))
    message = str(missing.value)
    assert "\n" not in message
    assert f"{tmp_path}/{spec.tonic_class}/{spec.split_folders[0]}" in message  # the place, with the user's folder
    assert spec.published_at in message and "nothing is downloaded" in message


def test_a_half_present_dataset_is_refused_without_any_download(tmp_path, monkeypatch):
    import tonic.download_utils

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tonic.download_utils, "download_url", no_network)
    WRITERS["nmnist"](tmp_path, n_per_class=1, classes=[0, 1])
    for path in sorted((tmp_path / "NMNIST" / "Test").rglob("*.bin")):
        path.unlink()
    check_files(NEUROMORPHIC["nmnist"], tmp_path, train=True)
    with pytest.raises(DatasetFilesMissing, match=r"no \*\.bin files below .*NMNIST/Test"):
        load_neuromorphic("nmnist", tmp_path, settings_of("nmnist"))


def test_the_cli_prints_one_line_for_absent_files_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([*DPAP, "run", "--dataset", "nmnist", "--data-dir", "/nonexistent", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("dpap: error: N-MNIST not found in /nonexistent")
    assert "/nonexistent/NMNIST/Train/<digit>/<id>.bin" in lines[0]
    assert not out.exists()


def events(dtype_fields, **columns):
    dtype = np.dtype([(field, int) for field in dtype_fields])
    array = np.zeros(len(next(iter(columns.values()))), dtype=dtype)
    for key, value in columns.items():
        array[key] = value
    return array


def test_binning_by_hand():
    spec = NEUROMORPHIC["nmnist"]
    # tonic's ToFrame(n_time_bins=3): windows of floor((301 - 0) / 3) = 100 us from the first event,
    # [0, 100), [100, 200), [200, 300); the last event (t = 301) falls after them and is dropped (tonic's rule).
    sample = events("xytp", x=[1, 1, 33, 5, 9], y=[2, 2, 33, 6, 9], t=[0, 10, 150, 200, 301], p=[1, 1, 0, 1, 1])
    frames = EventsToFrames(spec, FrameSettings(3))(sample)  # [T, 2, H, W]
    assert frames.shape == (3, 2, 34, 34) and frames.dtype == np.uint8
    # Two events of one pixel in one bin are one spike: inputs are binary.
    assert frames.sum() == 3 and frames[0, 1, 2, 1] == 1 and frames[1, 0, 33, 33] == 1 and frames[2, 1, 6, 5] == 1
    halved = EventsToFrames(spec, FrameSettings(3, downsample=2))(sample)
    assert halved.shape == (3, 2, 17, 17) and halved[1, 0, 16, 16] == 1 and halved[0, 1, 1, 0] == 1
    silent = EventsToFrames(spec, FrameSettings(3))(sample[:0])
    assert silent.shape == (3, 2, 34, 34) and silent.sum() == 0


def test_shd_bins_channels_time_first():
    spec = NEUROMORPHIC["shd"]
    sample = events("txp", t=[0, 500, 1001], x=[0, 699, 350], p=[1, 1, 1])  # the last event is dropped (above)
    frames = EventsToFrames(spec, FrameSettings(2))(sample)
    assert frames.shape == (2, 700) and frames[0, 0] == 1 and frames[1, 699] == 1 and frames.sum() == 2
    assert EventsToFrames(spec, FrameSettings(2, downsample=2))(sample).shape == (2, 350)
    with pytest.raises(UserError, match="has none"):
        FrameSettings(2, denoise_us=1000.0).check(spec)


@pytest.mark.parametrize("name", sorted(NEUROMORPHIC))
def test_every_dataset_streams_time_first_batches_with_official_splits(tmp_path, name):
    WRITERS[name](tmp_path, n_per_class=2)
    train, test = load_neuromorphic(name, tmp_path, settings_of(name, timesteps=8))
    assert len(train) == len(test) == 2 * len(set(train.labels.tolist()))
    spikes, labels = next(batches(train, [torch.tensor([0, 1, 2])]))
    assert spikes.shape == (8, 3, *NEUROMORPHIC[name].input_shape(NEUROMORPHIC[name].default_downsample))
    assert spikes.dtype == torch.float32 and set(spikes.unique().tolist()) <= {0.0, 1.0} and spikes.sum() > 0
    assert labels.tolist() == train.labels[:3].tolist()


def test_workers_and_the_cache_give_the_same_frames_and_the_cache_outlives_the_files(tmp_path):
    WRITERS["nmnist"](tmp_path / "data", n_per_class=1)
    settings = settings_of("nmnist", timesteps=6)
    plain = EventFrames("nmnist", tmp_path / "data", True, settings)
    cached = EventFrames("nmnist", tmp_path / "data", True, settings, cache_dir=tmp_path / "cache")
    order = sequential_batches(len(plain), 3)
    reference = [b for b in batches(plain, order)]
    for (a, la), (b, lb) in zip(reference, batches(cached, order, workers=2)):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert len(list((tmp_path / "cache").rglob("*.hdf5"))) == len(plain)
    # Binned once, read from the cache afterwards: the event files are not read again.
    for path in (tmp_path / "data").rglob("*.bin"):
        path.write_bytes(b"damaged")
    import pickle

    again = pickle.loads(pickle.dumps(cached))  # as a DataLoader worker receives it: no open reader
    for (a, _), (b, _) in zip(reference, batches(again, order)):
        assert torch.equal(a, b)
    # Another binning setting is another cache folder, never a stale one.
    other = EventFrames("nmnist", tmp_path / "data", True, settings_of("nmnist", timesteps=4),
                        cache_dir=tmp_path / "cache")
    assert other.cache_dir != cached.cache_dir


def test_an_unreadable_sample_is_one_line_also_from_a_worker(tmp_path):
    WRITERS["dvs-gesture"](tmp_path, n_per_class=1)
    train = EventFrames("dvs-gesture", tmp_path, True, settings_of("dvs-gesture", timesteps=4))
    next(iter(sorted((tmp_path / "DVSGesture" / "ibmGestureTrain").rglob("*.npy")))).write_bytes(b"not numpy")
    for workers in (0, 1):
        with pytest.raises(UserError) as error:
            list(batches(train, sequential_batches(len(train), 2), workers=workers))
        assert "\n" not in str(error.value) and "DVS Gesture sample" in str(error.value), str(error.value)


def test_the_config_refuses_a_tonic_dataset_without_files_and_files_for_a_built_in_one():
    with pytest.raises(UserError, match="give --data-dir"):
        RunConfig(dataset="shd")
    with pytest.raises(UserError, match="--data-dir: for the tonic datasets"):
        RunConfig(dataset="digits", data_dir="/data")


SMALL = {"hidden_sizes": (16,), "conv_channels": (4,), "epochs": 1, "batch_size": 4, "lava_chunk_size": 3}


@needs_lava
@pytest.mark.parametrize("name", sorted(NEUROMORPHIC))
def test_the_whole_pipeline_runs_on_every_dataset(tmp_path, name):
    from dpap_neuro.run import run

    spec = NEUROMORPHIC[name]
    WRITERS[name](tmp_path / "data", n_per_class=2)
    config = RunConfig(dataset=name, data_dir=str(tmp_path / "data"), timesteps=8, model=spec.default_model,
                       downsample=spec.default_downsample, cache_dir=str(tmp_path / "cache"), lava_samples=5,
                       pruner="gmp", pruner_options={"target_sparsity": 0.5, "start_fraction": 0.0,
                                                     "end_fraction": 0.5, "update_every_steps": 1}, **SMALL)
    report = run(config, tmp_path / "run", progress=False)
    n_test = report["dataset"]["n_test"]
    assert report["dataset"]["n_lava"] == 5 < n_test
    for model in report["models"].values():
        assert model["samples"] == {"norse_test": n_test, "lava": 5}
        assert model["agreement"]["spikes"] == 1.0 and model["agreement"]["predictions"] == 1.0
    assert report["models"]["gmp"]["synapses"] < report["models"]["dense"]["synapses"]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["dataset"]["name"] == name
    assert "cover a seeded subset of 5" in (tmp_path / "run" / "report.md").read_text()


@needs_lava
def test_simulate_reads_the_tonic_test_split_of_an_artifact(tmp_path):
    from dpap_neuro.run import run

    WRITERS["shd"](tmp_path / "data", n_per_class=2)
    config = RunConfig(dataset="shd", data_dir=str(tmp_path / "data"), timesteps=6, pruner="random",
                       cache=False, **SMALL)
    run(config, tmp_path / "run", progress=False)
    env = {**os.environ, "DPAP_CACHE_DIR": str(tmp_path / "cache")}  # the default cache, kept in tmp_path
    result = subprocess.run([*DPAP, "simulate", str(tmp_path / "run" / "random.h5"), "--dataset", "shd",
                             "--data-dir", str(tmp_path / "data"), "--lava-samples", "3", "--quiet"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert "(3 samples)" in result.stdout and "spike agreement 1.0000" in result.stdout
    assert any((tmp_path / "cache").iterdir())
    missing = subprocess.run([*DPAP, "simulate", str(tmp_path / "run" / "random.h5"), "--dataset", "shd",
                              "--data-dir", str(tmp_path / "elsewhere")], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.startswith("dpap: error: Spiking Heidelberg Digits not found")
