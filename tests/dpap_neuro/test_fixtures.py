"""The dataset fixtures, read back with tonic's own readers (never with our code)."""

import io
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from dpap_neuro.data import fixtures
from dpap_neuro.data.fixtures import (
    SENSOR_SIZES,
    WRITERS,
    encode_nmnist_events,
    fixture_samples,
    write_dvs_gesture,
    write_nmnist,
    write_poker_dvs,
    write_shd,
)

tonic = pytest.importorskip("tonic")
from tonic.io import read_mnist_file  # noqa: E402
from hw_export.errors import UserError


def offline(cls):
    """tonic's dataset class, made to accept a folder with a few files and never to fetch anything.

    Same class name: tonic keeps a dataset under ``save_to/<class name>``.
    """

    def refuse(self):
        raise AssertionError(f"{cls.__name__}: the test tried to fetch the real dataset")

    members = {"_check_exists": lambda self: True, "download": refuse, "_copy_and_extract_local_data": refuse}
    return type(cls.__name__, (cls,), members)


READERS = {
    "nmnist": tonic.datasets.NMNIST,
    "shd": tonic.datasets.SHD,
    "dvs-gesture": tonic.datasets.DVSGesture,
    "poker-dvs": tonic.datasets.POKERDVS,
}


def read(name, root, split):
    return offline(READERS[name])(str(root), train=split == "train")


def check_within_sensor(name, events):
    width, height, polarities = SENSOR_SIZES[name]
    assert events["x"].min() >= 0 and events["x"].max() < width
    if "y" in events.dtype.names:
        assert events["y"].min() >= 0 and events["y"].max() < height
    assert set(np.unique(events["p"]).astype(int).tolist()) <= set(range(max(polarities, 2)))
    assert events["t"].min() >= 0 and np.all(np.diff(events["t"]) >= 0)


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- N-MNIST's 40-bit records ------------------------------------------------------------------


def test_nmnist_record_layout_by_hand():
    # x=1, y=2, ON, t=0x012345 us: byte 2 = polarity bit 7 | t bits 22..16.
    assert encode_nmnist_events([1], [2], [0x012345], [1]) == bytes([1, 2, 0x81, 0x23, 0x45])
    assert encode_nmnist_events([33], [0], [2**23 - 1], [0]) == bytes([33, 0, 0x7F, 0xFF, 0xFF])
    assert encode_nmnist_events([], [], [], []) == b""


def test_nmnist_records_round_trip_through_tonic(tmp_path):
    x = np.array([0, 33, 5, 17, 255])
    y = np.array([0, 33, 12, 3, 241])  # 241: the byte is free, only 240 is reserved
    t = np.array([0, 65_535, 2**16 + 1234, 2**22 + 7, 2**23 - 1])
    p = np.array([1, 0, 1, 0, 1])
    path = tmp_path / "00001.bin"
    path.write_bytes(encode_nmnist_events(x, y, t, p))
    for events in (
        read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype),
        read_mnist_file(io.BytesIO(path.read_bytes()), dtype=tonic.datasets.NMNIST.dtype, is_stream=True),
    ):
        for field, expected in zip("xytp", (x, y, t, p)):
            np.testing.assert_array_equal(events[field], expected)


@pytest.mark.parametrize(
    "x, y, t, p",
    [
        ([1], [240], [0], [0]),  # overflow marker
        ([256], [0], [0], [0]),
        ([-1], [0], [0], [0]),
        ([0], [0], [2**23], [0]),
        ([0], [0], [-1], [0]),
        ([0], [0], [0], [2]),
        ([0, 1], [0], [0], [0]),  # lengths differ
        ([0.5], [0], [0], [0]),  # not integers
    ],
)
def test_nmnist_records_refuse_what_40_bits_cannot_hold(x, y, t, p):
    with pytest.raises(UserError):
        encode_nmnist_events(np.array(x), np.array(y), np.array(t), np.array(p))


# --- each writer, read back by tonic ----------------------------------------------------------


def test_nmnist_files_read_back_by_tonic(tmp_path):
    folder = write_nmnist(tmp_path, n_per_class=2, classes=[7, 3, 0], seed=5)
    assert folder == tmp_path / "NMNIST"
    expected = fixture_samples("nmnist", 2, [7, 3, 0], 5)
    for split in ("train", "test"):
        ds = read("nmnist", tmp_path, split)
        mine = [s for s in expected if s.split == split]
        # tonic walks sorted folders and files, so the order is ours: digit, then id.
        assert [Path(p).relative_to(folder).as_posix() for p in ds.data] == [s.file for s in mine]
        assert ds.targets == [0, 0, 3, 3, 7, 7]
        for i, sample in enumerate(mine):
            events, target = ds[i]
            assert target == sample.label
            assert events.dtype == tonic.datasets.NMNIST.dtype
            np.testing.assert_array_equal(events, sample.events)
            check_within_sensor("nmnist", events)
            assert 150_000 < events["t"].max() < 315_000  # three saccades of 105 ms
            assert set(np.unique(events["p"]).tolist()) == {0, 1}
    assert [Path(p).name for p in read("nmnist", tmp_path, "test").data] == [f"{i:05d}.bin" for i in range(1, 7)]


def test_shd_files_read_back_by_tonic(tmp_path):
    folder = write_shd(tmp_path, n_per_class=2, classes=[12, 1], seed=5)
    assert sorted(p.name for p in folder.iterdir()) == ["shd_test.h5", "shd_train.h5"]
    expected = fixture_samples("shd", 2, [12, 1], 5)
    for split in ("train", "test"):
        ds = read("shd", tmp_path, split)
        mine = [s for s in expected if s.split == split]
        assert len(ds) == 4
        assert list(ds.classes) == list(fixtures.SHD_KEYS) and len(ds.classes) == 20
        assert ds.speaker.tolist() == [s.subject for s in mine]
        assert set(ds.speaker.tolist()) <= ({4, 5} if split == "test" else set(range(12)) - {4, 5})
        for i, sample in enumerate(mine):
            events, target = ds[i]
            assert int(target) == sample.label
            np.testing.assert_array_equal(events, sample.events)  # t exact to the microsecond
            check_within_sensor("shd", events)
            assert 600_000 < events["t"].max() <= 1_000_000
        with h5py.File(folder / f"shd_{split}.h5", "r") as f:
            assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float32
            assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
            assert f["labels"].dtype == np.uint16 and f["extra/speaker"].dtype == np.uint16
            assert f["labels"][()].tolist() == [1, 1, 12, 12]


def test_dvs_gesture_files_read_back_by_tonic(tmp_path):
    folder = write_dvs_gesture(tmp_path, n_per_class=3, classes=[10, 4], seed=5)
    expected = {s.file: s for s in fixture_samples("dvs-gesture", 3, [10, 4], 5)}
    for split, users in (("train", range(1, 24)), ("test", range(24, 30))):
        ds = read("dvs-gesture", tmp_path, split)
        assert len(ds) == 6
        assert Counter(ds.targets) == {4: 3, 10: 3}
        # tonic leaves the order of user folders and files to the file system: match by path.
        for i, path in enumerate(ds.data):
            sample = expected.pop(Path(path).relative_to(folder).as_posix())
            assert sample.split == split and ds.users[i] == sample.subject and ds.lighting[i] == sample.lighting
            assert ds.users[i] in users and ds.lighting[i] in fixtures.DVS_GESTURE_LIGHTINGS
            raw = np.load(path)
            assert raw.dtype == np.int64 and raw.ndim == 2 and raw.shape[1] == 4
            events, target = ds[i]
            assert target == sample.label
            assert events.dtype == tonic.datasets.DVSGesture.dtype
            np.testing.assert_array_equal(events, sample.events)
            check_within_sensor("dvs-gesture", events)
            assert 800_000 < events["t"].max() < 1_100_000 and np.all(events["t"] % 1000 == 0)
        assert "fluorescent_led" in ds.lighting  # a lighting with "_" survives the split at the first one
    assert not expected


def test_poker_dvs_files_read_back_by_tonic(tmp_path):
    folder = write_poker_dvs(tmp_path, n_per_class=2, seed=5)
    expected = fixture_samples("poker-dvs", 2, None, 5)
    for split in ("train", "test"):
        ds = read("poker-dvs", tmp_path, split)
        mine = [s for s in expected if s.split == split]
        assert len(ds) == 8 and Counter(ds.targets) == {0: 2, 1: 2, 2: 2, 3: 2}
        assert sorted(p.relative_to(folder).as_posix() for p in (folder / f"pips_{split}").rglob("*.npy")) == sorted(
            s.file for s in mine
        )
        # tonic keeps arrays, not paths, in an order the file system picks: match by content.
        for i in range(len(ds)):
            events, target = ds[i]
            assert events.dtype == tonic.datasets.POKERDVS.dtype
            matches = [s for s in mine if s.label == target and np.array_equal(s.events, events)]
            assert len(matches) == 1
            mine.remove(matches[0])
            check_within_sensor("poker-dvs", events)
        assert not mine


# --- determinism, arguments, learnability ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_same_seed_same_bytes(name, tmp_path):
    first = files_under(WRITERS[name](tmp_path / "a", n_per_class=1, seed=3))
    assert files_under(WRITERS[name](tmp_path / "b", n_per_class=1, seed=3)) == first
    other = files_under(WRITERS[name](tmp_path / "c", n_per_class=1, seed=4))
    assert other.keys() == first.keys() and other != first
    assert not [f for f in first if Path(f).name.startswith(".")]  # no temporary file left behind


BAD_ARGUMENTS = [
    dict(n_per_class=0),
    dict(n_per_class=-2),
    dict(n_per_class=1.5),
    dict(n_per_class=True),
    dict(classes=[]),
    dict(classes=[-1]),
    dict(classes=[0, 0]),
    dict(classes=[0.0]),
    dict(classes="01"),
    dict(classes=3),
    dict(seed=-1),
    dict(seed=1.0),
]
LABEL_COUNTS = {"nmnist": 10, "shd": 20, "dvs-gesture": 11, "poker-dvs": 4}


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS + [dict(classes=[1, "past"])], ids=str)
def test_bad_arguments_raise_before_writing(name, kwargs, tmp_path):
    if kwargs.get("classes") == [1, "past"]:
        kwargs = dict(classes=[1, LABEL_COUNTS[name]])  # one past the last label
    with pytest.raises(UserError) as err:
        WRITERS[name](tmp_path, **kwargs)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_dvs_gesture_has_only_thirty_test_user_folders(tmp_path):
    with pytest.raises(UserError, match="<= 30"):
        write_dvs_gesture(tmp_path, n_per_class=31)
    with pytest.raises(UserError, match="unknown fixture dataset"):
        fixture_samples("mnist")


def features(name, events):
    """Where a sample's events are: mean position (SHD: mean channel)."""
    if name == "shd":
        return np.array([events["x"].mean()])
    return np.array([events["x"].mean(), events["y"].mean()], dtype=np.float64)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_nearest_class_mean_tells_classes_apart(name):
    samples = fixture_samples(name, n_per_class=3)
    labels = sorted({s.label for s in samples})
    means = {c: np.mean([features(name, s.events) for s in samples if s.split == "train" and s.label == c], axis=0) for c in labels}
    for s in samples:
        if s.split == "test":
            guess = min(labels, key=lambda c: np.linalg.norm(features(name, s.events) - means[c]))
            assert guess == s.label
