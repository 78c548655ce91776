"""Tiny stand-ins for four public neuromorphic datasets, written in their real on-disk format.

Each writer lays out the train and the test split exactly where tonic 1.7's
dataset classes look for them, in the file format the real download has, so
code that reads the real dataset through tonic runs unchanged on a few dozen
generated samples (tonic's own existence check counts files and would refuse
so few: a caller overrides ``_check_exists``). Nothing here imports tonic: the
formats are written from their published descriptions, and the tests read the
files back with tonic's readers.

Formats (t is always time from the start of the recording):

* **N-MNIST** (Orchard et al. 2015, https://www.garrickorchard.com/datasets/n-mnist):
  ``NMNIST/Train/<digit>/<5-digit id>.bin`` and ``NMNIST/Test/...``. A file is
  a run of 40-bit (5-byte) event records, most significant bit first: byte 0
  = x (pixel, 0..33), byte 1 = y (pixel, 0..33), bit 7 of byte 2 = polarity
  (1 = ON, 0 = OFF), the remaining 23 bits (byte 2 bits 6..0, byte 3, byte 4)
  = t in microseconds. A record with y = 240 is a timestamp-overflow marker
  and never written here. Sensor 34 x 34 x 2 (ATIS); a recording is three
  saccades of about 105 ms each. Classes: the digits 0..9.
* **SHD**, Spiking Heidelberg Digits (Cramer et al. 2020,
  https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/):
  ``SHD/shd_train.h5`` and ``SHD/shd_test.h5``, one HDF5 file per split:
  ``spikes/times`` (variable-length float32 per sample, spike times in
  seconds), ``spikes/units`` (variable-length uint16 per sample, cochlea
  channel 0..699 of each spike), ``labels`` (uint16 [N]), ``extra/speaker``
  (uint16 [N], speaker id 0..11) and ``extra/keys`` (byte strings, the name
  of each of the 20 classes: English "zero".."nine" = 0..9, German
  "null".."neun" = 10..19). The real files also hold ``extra/meta_info``
  (speaker gender, age, height), which tonic never reads; it is not written.
  Recordings last about 0.7-1 s.
* **DVS Gesture** (Amir et al. 2017, https://research.ibm.com/interactive/dvsgesture/),
  in tonic's preprocessed copy on figshare (recordings already cut into one
  file per gesture): ``DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy``
  and ``DVSGesture/ibmGestureTest/...``. The folder name splits at its first
  "_" into the subject (user01..user23 train, user24..user29 test) and the
  lighting (fluorescent, fluorescent_led, lab, led, natural); the file name
  is the label 0..10. Each file is a ``np.save``'d 2-D int64 array
  ``[n_events, 4]`` with columns x (0..127), y (0..127), p (0/1), t in
  milliseconds (tonic multiplies it by 1000). Sensor 128 x 128 x 2 (DVS128).
* **POKER-DVS** (Serrano-Gotarredona and Linares-Barranco 2015,
  http://www2.imse-cnm.csic.es/caviar/POKERDVS.html):
  ``POKERDVS/pips_train/<cl|he|di|sp>/<n>.npy`` and ``POKERDVS/pips_test/...``;
  the folder (clubs, hearts, diamonds, spades) is the label 0..3. Each file
  is a ``np.save``'d 2-D int64 array ``[n_events, 4]`` with columns t in
  microseconds, x (0..34), y (0..34), p (0/1). Sensor 35 x 35 x 2.

The samples are learnable: every class is a blob of events at its own place
on the sensor (for SHD a band of channels), plus uniform noise events, with
a little jitter from sample to sample; times are sorted. Everything follows
from ``seed``: each sample draws from its own generator seeded by (seed,
dataset, split, label, index), so a sample does not change when others are
added. Every file is written atomically (a temporary file in the same
folder, then ``os.replace``). Files already under the dataset folder are
left alone, and tonic would read them too: write into an empty ``root``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from dpap_neuro.data.neuromorphic import SPECS
from hw_export.errors import UserError
from hw_export.files import atomic_write

# Sensor sizes (x, y, polarities) and class counts, from the reader's registry so the two never disagree.
SENSOR_SIZES = {name: spec.sensor_size for name, spec in SPECS.items()}
N_CLASSES = {name: spec.n_classes for name, spec in SPECS.items()}
DEFAULT_CLASSES = {"nmnist": range(10), "shd": range(4), "dvs-gesture": range(3), "poker-dvs": range(4)}
SPLITS = ("train", "test")

# The structured dtypes tonic 1.7's readers return (field order included): what
# `FixtureSample.events` holds, so a read-back compares with `np.array_equal`.
EVENT_DTYPES = {
    "nmnist": np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)]),
    "shd": np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)]),
    "dvs-gesture": np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)]),
    "poker-dvs": np.dtype([("t", np.int64), ("x", np.int64), ("y", np.int64), ("p", np.int64)]),
}

NMNIST_MAX_T_US = 2**23 - 1  # 23-bit timestamp field
NMNIST_OVERFLOW_Y = 240  # y value that marks a timestamp-overflow record, not an event
NMNIST_SACCADE_US = 105_000

SHD_KEYS = tuple(
    f"english {w}".encode()
    for w in ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
) + tuple(
    f"german {w}".encode()
    for w in ("null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun")
)
# SHD's split: speakers 4 and 5 are heard only in the test set.
SHD_SPEAKERS = {"train": (0, 1, 2, 3, 6, 7, 8, 9, 10, 11), "test": (4, 5)}

DVS_GESTURE_USERS = {"train": tuple(range(1, 24)), "test": tuple(range(24, 30))}
DVS_GESTURE_LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
POKER_DVS_CLASSES = ("cl", "he", "di", "sp")  # tonic's order: clubs, hearts, diamonds, spades

_DATASET_IDS = {"nmnist": 0, "shd": 1, "dvs-gesture": 2, "poker-dvs": 3}  # seed-stream separators


class FixtureSample(NamedTuple):
    """One generated sample and where its writer puts it.

    ``events`` has tonic's dtype for the dataset (``EVENT_DTYPES``) and tonic's
    units (t in microseconds), i.e. exactly what tonic's reader returns for it.
    """

    split: str  # "train" or "test"
    file: str  # path relative to the dataset folder, "/"-separated
    row: int  # row within `file`: SHD keeps a whole split in one HDF5 file; 0 otherwise
    label: int
    events: np.ndarray
    subject: int | None = None  # SHD speaker, DVS Gesture user
    lighting: str | None = None  # DVS Gesture


# --- argument checks ---------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _checked_args(name: str, n_per_class, classes, seed) -> tuple[int, tuple[int, ...], int]:
    if name not in N_CLASSES:
        raise UserError(f"unknown fixture dataset {name!r}; known: {', '.join(N_CLASSES)}")
    if not _is_int(n_per_class) or n_per_class < 1:
        raise UserError(f"n_per_class must be an integer >= 1, got {n_per_class!r}")
    if name == "dvs-gesture":
        # One file per label per user folder, and the test split has 6 users x 5 lightings.
        limit = len(DVS_GESTURE_USERS["test"]) * len(DVS_GESTURE_LIGHTINGS)
        if n_per_class > limit:
            raise UserError(f"n_per_class must be <= {limit} for dvs-gesture (user folders of the test split), got {n_per_class}")
    if not _is_int(seed) or seed < 0:
        raise UserError(f"seed must be an integer >= 0, got {seed!r}")
    if classes is None:
        classes = DEFAULT_CLASSES[name]
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise UserError(f"classes must be a sequence of integers, got {classes!r}")
    chosen = list(classes)
    n_classes = N_CLASSES[name]
    bad = [c for c in chosen if not _is_int(c) or not 0 <= c < n_classes]
    if not chosen or bad:
        raise UserError(f"classes must be a non-empty sequence of labels in 0..{n_classes - 1} for {name}, got {chosen!r}")
    if len(set(chosen)) != len(chosen):
        raise UserError(f"classes must not repeat a label, got {chosen!r}")
    if name == "nmnist" and n_per_class * len(chosen) > 99_999:
        raise UserError(f"nmnist file ids have 5 digits: n_per_class * len(classes) must be <= 99999, got {n_per_class * len(chosen)}")
    # Sorted, so the same set of classes gives the same files whatever order it came in.
    return int(n_per_class), tuple(sorted(int(c) for c in chosen)), int(seed)


# --- event generation --------------------------------------------------------------------------


def _sample_rng(name: str, seed: int, split: str, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _DATASET_IDS[name], SPLITS.index(split), label, index])


def _blob(rng, n: int, centre: np.ndarray, sigma: float, limits: tuple[int, ...]) -> list[np.ndarray]:
    """``n`` integer coordinates around ``centre`` (one column per axis), clipped into ``0..limit-1``."""
    points = np.rint(rng.normal(centre, sigma, size=(n, len(limits)))).astype(np.int64)
    return [np.clip(points[:, i], 0, limit - 1) for i, limit in enumerate(limits)]


def _structured(name: str, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Events sorted by time (ties by the other fields, so the order is reproducible)."""
    dtype = EVENT_DTYPES[name]
    keys = [columns[f] for f in reversed(dtype.names) if f != "t"] + [columns["t"]]
    order = np.lexsort(keys)  # last key is the primary one
    events = np.empty(len(order), dtype=dtype)
    for field in dtype.names:
        events[field] = columns[field][order]
    return events


def nmnist_saccade_offset(t_us: np.ndarray) -> np.ndarray:
    """Where the image sits at ``t_us`` (microseconds) along N-MNIST's three saccades: ``[n, 2]`` (dx, dy) pixels.

    The sensor moved so that the digit travelled (0, 0) -> (3.5, 7) -> (7, 0)
    -> (0, 0), each leg 105 ms: the path tonic's ``stabilize`` undoes.
    """
    vertices = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])
    progress = np.clip(np.asarray(t_us, dtype=np.float64) / NMNIST_SACCADE_US, 0.0, 3.0)
    leg = np.minimum(progress.astype(np.int64), 2)
    frac = (progress - leg)[:, None]
    return vertices[leg] * (1 - frac) + vertices[leg + 1] * frac


def _nmnist_sample(rng, label: int) -> np.ndarray:
    width, height, _ = SENSOR_SIZES["nmnist"]
    # A 5 x 2 grid of class positions, kept 7 px clear of the right and bottom
    # edges so the saccades never push a blob off the sensor.
    centre = np.array([4.0 + 5.0 * (label % 5), 6.0 + 12.0 * (label // 5)]) + rng.uniform(-0.7, 0.7, 2)
    n_signal, n_noise = int(rng.integers(240, 300)), int(rng.integers(20, 40))
    duration = 3 * NMNIST_SACCADE_US
    t_signal = rng.integers(0, duration, n_signal)
    position = centre + nmnist_saccade_offset(t_signal) + rng.normal(0.0, 1.3, (n_signal, 2))
    position = np.clip(np.rint(position).astype(np.int64), 0, [width - 1, height - 1])
    columns = {
        "x": np.concatenate([position[:, 0], rng.integers(0, width, n_noise)]),
        "y": np.concatenate([position[:, 1], rng.integers(0, height, n_noise)]),
        "t": np.concatenate([t_signal, rng.integers(0, duration, n_noise)]),
        "p": rng.integers(0, 2, n_signal + n_noise),
    }
    return _structured("nmnist", columns)


def shd_seconds(t_us: np.ndarray) -> np.ndarray:
    """Spike times for SHD's float32 ``times``, in seconds, from whole microseconds.

    tonic converts back with ``int(float64(t) * 1e6)``, which truncates: a
    time stored as t_us * 1e-6 could come back 1 us early after float32
    rounding. Storing the middle of the microsecond, (t_us + 0.5) * 1e-6,
    keeps float32's rounding error (at most 0.06 us below 2 s) inside it, so tonic
    reads back exactly ``t_us``.
    """
    return ((np.asarray(t_us, dtype=np.float64) + 0.5) * 1e-6).astype(np.float32)


def _shd_sample(rng, label: int) -> np.ndarray:
    n_channels = SENSOR_SIZES["shd"][0]
    duration = int(rng.integers(700_000, 1_000_001))  # us
    n_signal, n_noise = int(rng.integers(300, 400)), int(rng.integers(30, 50))
    # 20 bands of 35 channels, one per class; the spikes of a sample sit in its band.
    centre = 17.0 + 35.0 * label + rng.uniform(-2.0, 2.0)
    (units,) = _blob(rng, n_signal, np.array([centre]), 5.0, (n_channels,))
    columns = {
        "x": np.concatenate([units, rng.integers(0, n_channels, n_noise)]),
        "t": np.concatenate([rng.integers(duration // 20, duration - duration // 20, n_signal), rng.integers(0, duration, n_noise)]),
    }
    columns["p"] = np.ones_like(columns["x"])  # tonic adds polarity 1 to every spike
    return _structured("shd", columns)


def _dvs_gesture_sample(rng, label: int) -> np.ndarray:
    width, height, _ = SENSOR_SIZES["dvs-gesture"]
    duration_ms = int(rng.integers(900, 1_100))
    n_signal, n_noise = int(rng.integers(600, 900)), int(rng.integers(60, 100))
    # The 11 classes on a ring of radius 40 around the centre; each blob also
    # circles (radius 6 px, once per recording) like a hand in motion.
    angle = 2 * np.pi * label / N_CLASSES["dvs-gesture"]
    centre = np.array([64.0 + 40.0 * np.cos(angle), 64.0 + 40.0 * np.sin(angle)]) + rng.uniform(-2.0, 2.0, 2)
    t_ms = rng.integers(0, duration_ms, n_signal)
    phase = 2 * np.pi * t_ms / duration_ms
    position = centre + 6.0 * np.stack([np.cos(phase), np.sin(phase)], axis=1) + rng.normal(0.0, 3.0, (n_signal, 2))
    position = np.clip(np.rint(position).astype(np.int64), 0, [width - 1, height - 1])
    columns = {
        "x": np.concatenate([position[:, 0], rng.integers(0, width, n_noise)]).astype(np.int16),
        "y": np.concatenate([position[:, 1], rng.integers(0, height, n_noise)]).astype(np.int16),
        "p": rng.integers(0, 2, n_signal + n_noise).astype(bool),
        # The preprocessed files keep milliseconds only; tonic reports microseconds.
        "t": np.concatenate([t_ms, rng.integers(0, duration_ms, n_noise)]) * 1000,
    }
    return _structured("dvs-gesture", columns)


def _poker_dvs_sample(rng, label: int) -> np.ndarray:
    width, height, _ = SENSOR_SIZES["poker-dvs"]
    duration = int(rng.integers(20_000, 30_000))  # us: a pip crosses the field of view quickly
    n_signal, n_noise = int(rng.integers(250, 350)), int(rng.integers(20, 40))
    # One quadrant per suit.
    centre = np.array([9.0 + 16.0 * (label % 2), 9.0 + 16.0 * (label // 2)]) + rng.uniform(-1.0, 1.0, 2)
    x, y = _blob(rng, n_signal, centre, 2.5, (width, height))
    columns = {
        "t": np.concatenate([rng.integers(0, duration, n_signal), rng.integers(0, duration, n_noise)]),
        "x": np.concatenate([x, rng.integers(0, width, n_noise)]),
        "y": np.concatenate([y, rng.integers(0, height, n_noise)]),
        "p": rng.integers(0, 2, n_signal + n_noise),
    }
    return _structured("poker-dvs", columns)


_GENERATORS = {
    "nmnist": _nmnist_sample,
    "shd": _shd_sample,
    "dvs-gesture": _dvs_gesture_sample,
    "poker-dvs": _poker_dvs_sample,
}


def fixture_samples(name: str, n_per_class: int = 2, classes: Sequence[int] | None = None, seed: int = 0) -> list[FixtureSample]:
    """Every sample the writer of dataset ``name`` writes, train split first, in file order.

    ``name`` is a key of ``WRITERS``. Arguments as for the writers; raises
    ``ValueError`` on bad ones.
    """
    n_per_class, classes, seed = _checked_args(name, n_per_class, classes, seed)
    samples = []
    for split in SPLITS:
        row = 0
        for label in classes:
            for index in range(n_per_class):
                events = _GENERATORS[name](_sample_rng(name, seed, split, label, index), label)
                subject = lighting = None
                if name == "nmnist":
                    # Ids run through the split like MNIST's image indices (from 1).
                    file = f"{'Train' if split == 'train' else 'Test'}/{label}/{row + 1:05d}.bin"
                elif name == "shd":
                    file = f"shd_{split}.h5"
                    speakers = SHD_SPEAKERS[split]
                    subject = speakers[row % len(speakers)]
                elif name == "dvs-gesture":
                    # Folder `index` holds this label's index-th sample; 23 (6) users and 5
                    # lightings are coprime, so folders 0..114 (0..29) are distinct pairs.
                    users = DVS_GESTURE_USERS[split]
                    subject, lighting = users[index % len(users)], DVS_GESTURE_LIGHTINGS[index % len(DVS_GESTURE_LIGHTINGS)]
                    folder = "ibmGestureTrain" if split == "train" else "ibmGestureTest"
                    file = f"{folder}/user{subject:02d}_{lighting}/{label}.npy"
                else:
                    file = f"pips_{split}/{POKER_DVS_CLASSES[label]}/{index}.npy"
                samples.append(FixtureSample(split, file, row if name == "shd" else 0, label, events, subject, lighting))
                row += 1
    return samples


# --- file formats ------------------------------------------------------------------------------


def encode_nmnist_events(x, y, t_us, p) -> bytes:
    """N-MNIST's binary records for events ``x``, ``y`` (pixels), ``t_us`` (microseconds), ``p`` (0 = OFF, 1 = ON).

    Four equal-length 1-D integer arrays; 5 bytes per event, in the given
    order. Raises ``ValueError`` for values the 40-bit record cannot hold:
    x, y outside 0..255, y = 240 (reserved for overflow records), t outside
    0..2**23-1, p other than 0/1.
    """
    columns = [np.asarray(v) for v in (x, y, t_us, p)]
    if any(c.ndim != 1 for c in columns) or len({len(c) for c in columns}) != 1:
        raise UserError(f"x, y, t_us and p must be 1-D arrays of one length, got shapes {[c.shape for c in columns]}")
    if any(c.size and not np.issubdtype(c.dtype, np.integer) and c.dtype != bool for c in columns):
        raise UserError("x, y, t_us and p must be integer arrays")
    x, y, t, p = (c.astype(np.int64) for c in columns)
    for label, values, low, high in (("x", x, 0, 255), ("y", y, 0, 255), ("t_us", t, 0, NMNIST_MAX_T_US), ("p", p, 0, 1)):
        if values.size and (values.min() < low or values.max() > high):
            raise UserError(f"{label} must lie in {low}..{high}, got {values.min()}..{values.max()}")
    if np.any(y == NMNIST_OVERFLOW_Y):
        raise UserError(f"y = {NMNIST_OVERFLOW_Y} marks an overflow record in N-MNIST files; it cannot be an event")
    records = np.empty((len(x), 5), dtype=np.uint8)
    records[:, 0] = x
    records[:, 1] = y
    records[:, 2] = (p << 7) | (t >> 16)  # polarity, then timestamp bits 22..16
    records[:, 3] = (t >> 8) & 0xFF
    records[:, 4] = t & 0xFF
    return records.tobytes()


def _write_bytes(path: Path, data: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, write)


def _write_npy(path: Path, array: np.ndarray) -> None:
    # Through a file object: np.save would append ".npy" to the temporary name,
    # and a leftover ending in .npy would be read by tonic as a sample.
    def write(tmp):
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    atomic_write(path, write)


def _write_shd_split(path: Path, samples: list[FixtureSample]) -> None:
    def write(tmp):
        with h5py.File(tmp, "w") as f:
            times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
            units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
            for i, sample in enumerate(samples):
                times[i] = shd_seconds(sample.events["t"])
                units[i] = sample.events["x"].astype(np.uint16)
            f.create_dataset("labels", data=np.array([s.label for s in samples], dtype=np.uint16))
            # All 20 keys whatever classes were written: labels index into them.
            f.create_dataset("extra/keys", data=np.array(SHD_KEYS, dtype="S"))
            f.create_dataset("extra/speaker", data=np.array([s.subject for s in samples], dtype=np.uint16))

    atomic_write(path, write)


def write_nmnist(root: str | Path, n_per_class: int = 2, classes: Sequence[int] | None = None, seed: int = 0) -> Path:
    """Write ``root/NMNIST/{Train,Test}/<digit>/<id>.bin``; return ``root/NMNIST``.

    ``n_per_class`` recordings of each digit in ``classes`` (default 0..9) per
    split, each about 300 events over 315 ms on the 34 x 34 sensor.
    """
    folder = Path(root) / "NMNIST"
    for sample in fixture_samples("nmnist", n_per_class, classes, seed):
        ev = sample.events
        _write_bytes(folder / sample.file, encode_nmnist_events(ev["x"], ev["y"], ev["t"], ev["p"]))
    return folder


def write_shd(root: str | Path, n_per_class: int = 2, classes: Sequence[int] | None = None, seed: int = 0) -> Path:
    """Write ``root/SHD/shd_train.h5`` and ``shd_test.h5``; return ``root/SHD``.

    ``n_per_class`` recordings of each class in ``classes`` (default 0..3 of
    0..19) per split, each about 350-450 spikes over 0.7-1 s on 700 channels.
    """
    folder = Path(root) / "SHD"
    samples = fixture_samples("shd", n_per_class, classes, seed)
    for split in SPLITS:
        _write_shd_split(folder / f"shd_{split}.h5", [s for s in samples if s.split == split])
    return folder


def write_dvs_gesture(root: str | Path, n_per_class: int = 2, classes: Sequence[int] | None = None, seed: int = 0) -> Path:
    """Write ``root/DVSGesture/{ibmGestureTrain,ibmGestureTest}/user<NN>_<lighting>/<label>.npy``; return ``root/DVSGesture``.

    ``n_per_class`` (at most 30) user folders per split, each with one
    recording of every label in ``classes`` (default 0..2 of 0..10): about
    700-1000 events over about 1 s on the 128 x 128 sensor.
    """
    folder = Path(root) / "DVSGesture"
    for sample in fixture_samples("dvs-gesture", n_per_class, classes, seed):
        ev = sample.events
        columns = [ev["x"], ev["y"], ev["p"], ev["t"] // 1000]  # t back to milliseconds
        _write_npy(folder / sample.file, np.stack([c.astype(np.int64) for c in columns], axis=1))
    return folder


def write_poker_dvs(root: str | Path, n_per_class: int = 2, classes: Sequence[int] | None = None, seed: int = 0) -> Path:
    """Write ``root/POKERDVS/{pips_train,pips_test}/<cl|he|di|sp>/<n>.npy``; return ``root/POKERDVS``.

    ``n_per_class`` recordings of each suit in ``classes`` (default all 4) per
    split, each about 300 events over 20-30 ms on the 35 x 35 sensor.
    """
    folder = Path(root) / "POKERDVS"
    for sample in fixture_samples("poker-dvs", n_per_class, classes, seed):
        ev = sample.events
        _write_npy(folder / sample.file, np.stack([ev[f].astype(np.int64) for f in ("t", "x", "y", "p")], axis=1))
    return folder


WRITERS = {
    "nmnist": write_nmnist,
    "shd": write_shd,
    "dvs-gesture": write_dvs_gesture,
    "poker-dvs": write_poker_dvs,
}
