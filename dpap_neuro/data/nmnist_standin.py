"""An N-MNIST stand-in: the scikit-learn digits recorded as saccade events, written as N-MNIST's own files.

**What it is.** Not N-MNIST. The 1,797 handwritten digits that ship with
scikit-learn (8 x 8 pixels, 0..16; nothing is downloaded) are split into
train and test as the built-in data are (``digits.load_digit_images``:
stratified, seeded, 20 % test), zoomed to 28 x 28 (bilinear) and placed on a
34 x 34 canvas, then moved along N-MNIST's three saccades in front of the
same simulated dynamic-vision sensor as the built-in ``digits-events``
(``digits.dvs_crossings``: log intensity, contrast threshold 0.25). The
events are written in N-MNIST's binary format (``fixtures.encode_nmnist_events``:
40-bit records, microsecond timestamps) as ``NMNIST/Train/<digit>/<id>.bin``
and ``NMNIST/Test/...``, so tonic's ``NMNIST`` reader and ``dpap run
--dataset nmnist --data-dir DIR`` read them exactly as they read a user's
N-MNIST.

**The recording.** The path is ``fixtures.nmnist_saccade_offset`` (N-MNIST's
triangle (0, 0) -> (3.5, 7) -> (7, 0) -> (0, 0), 105 ms per saccade, 315 ms
in all) scaled from its 7 px excursion to ``amplitude_px`` (4 px): a
28-pixel digit moved by 7 px would leave the 34-pixel sensor, so tonic's
``stabilize`` (which undoes 7 px) does not apply to these files. The sensor
samples the moving image every ``step_us`` (1 ms, bilinear shifts); a pixel
whose log intensity crossed k whole thresholds in a step emits k events,
each timed where the linearly interpolated log intensity crossed its level.

**Augmentation** (``augment`` > 0, off by default): each *training* image
also gives ``augment`` more recordings, each of a copy rotated by up to
+-``max_rotation_deg`` and shifted by up to +-``max_shift_px`` (uniform,
seeded per image and copy). Test images are never augmented.

Ids: the original of the i-th image of a split is ``<i+1>.bin`` (5 digits),
augmented copy k of it ``<k * n_split + i + 1>.bin``. Everything follows
from the settings; the whole ``NMNIST`` folder is written into a hidden
staging folder beside it and renamed into place at the end, so an
interrupted run leaves nothing that tonic would read. ``NMNIST/standin.json``
records what was written (tonic reads only the ``.bin`` files).

    python -m dpap_neuro.data.nmnist_standin DIR [--augment N] [--seed S]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from dpap_neuro.data.digits import dvs_crossings, load_digit_images
from dpap_neuro.data.fixtures import EVENT_DTYPES, NMNIST_SACCADE_US, encode_nmnist_events, nmnist_saccade_offset
from dpap_neuro.data.neuromorphic import SPECS
from hw_export.errors import UserError

SENSOR_PX = SPECS["nmnist"].sensor_size[0]  # 34 (square sensor)
NMNIST_EXCURSION_PX = 7.0  # the largest displacement along nmnist_saccade_offset's path
RECORDING_US = 3 * NMNIST_SACCADE_US  # three saccades: 315 ms
MAX_FILE_ID = 99_999  # 5-digit file names
WHAT = ("N-MNIST stand-in made from the scikit-learn digits (not N-MNIST): 8x8 images zoomed to 28x28 on a 34x34 "
        "canvas, moved along N-MNIST's three saccades in front of a simulated DVS")


@dataclass(frozen=True)
class StandinSettings:
    """Everything the stand-in depends on (recorded in ``standin.json``)."""

    seed: int = 0  # the train/test split (as the built-in data) and the augmentation draws
    test_fraction: float = 0.2  # stratified share of the 1,797 digits in Test/
    augment: int = 0  # extra recordings per *training* image (rotated and shifted copies); 0: none
    train_per_class: int | None = None  # keep only the first N images of each digit in Train/ (None: all)
    test_per_class: int | None = None  # the same for Test/
    image_px: int = 28  # side of the zoomed digit
    margin_px: int = 1  # canvas rows/columns above and left of the digit (the saccades move it right and down)
    amplitude_px: float = 4.0  # largest displacement along the saccade path
    contrast_threshold: float = 0.25  # DVS threshold on the change of log intensity (as digits-events)
    log_eps: float = 0.1  # log(intensity + log_eps): a black pixel stays finite (as digits-events)
    step_us: int = 1000  # the simulated sensor looks at the moving image every step_us microseconds
    max_rotation_deg: float = 10.0  # augmentation: rotation drawn uniformly in +-this
    max_shift_px: float = 1.0  # augmentation: shift per axis drawn uniformly in +-this

    def check(self) -> None:
        """Raise ``UserError`` (one line) for settings that cannot be written."""
        ints = ("seed", "augment", "image_px", "margin_px", "step_us")
        for name in ints + ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            if (value is not None or name in ints) and (not isinstance(value, int) or isinstance(value, bool)):
                raise UserError(f"{name} must be an integer, got {value!r}")
        problems = [
            (self.seed < 0, f"seed must be >= 0, got {self.seed}"),
            (not 0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {self.test_fraction}"),
            (self.augment < 0, f"augment must be >= 0, got {self.augment}"),
            (any(n is not None and n < 1 for n in (self.train_per_class, self.test_per_class)),
             "train_per_class and test_per_class must be >= 1"),
            (self.image_px < 1 or self.margin_px < 0 or self.margin_px + self.image_px > SENSOR_PX,
             f"the digit ({self.image_px} px at margin {self.margin_px}) must fit the {SENSOR_PX} px sensor"),
            (not 0.0 <= self.amplitude_px <= SENSOR_PX, f"amplitude_px must be in 0..{SENSOR_PX}"),
            (not self.contrast_threshold > 0 or not self.log_eps > 0, "contrast_threshold and log_eps must be > 0"),
            (not 1 <= self.step_us <= NMNIST_SACCADE_US, f"step_us must be in 1..{NMNIST_SACCADE_US}"),
            (self.max_rotation_deg < 0 or self.max_shift_px < 0, "max_rotation_deg and max_shift_px must be >= 0"),
        ]
        for bad, message in problems:
            if bad:
                raise UserError(message)


class StandinSample(NamedTuple):
    """One recording of the stand-in and where it goes."""

    split: str  # "train" or "test"
    file: str  # below NMNIST/: "Train/<digit>/<id>.bin"
    label: int
    image: int  # index of the source image within its split
    copy: int  # 0: the image itself; k >= 1: its k-th augmented copy (training only)


# --- images ------------------------------------------------------------------------------------


def digit_canvas(image: np.ndarray, settings: StandinSettings) -> np.ndarray:
    """An 8 x 8 digit (0..1) zoomed to ``image_px`` and placed on the sensor: ``float64 [34, 34]`` in 0..1."""
    zoomed = ndimage.zoom(np.asarray(image, dtype=np.float64), settings.image_px / image.shape[0], order=1)
    canvas = np.zeros((SENSOR_PX, SENSOR_PX))
    m, side = settings.margin_px, settings.image_px
    canvas[m:m + side, m:m + side] = np.clip(zoomed[:side, :side], 0.0, 1.0)
    return canvas


def augmented_canvas(canvas: np.ndarray, settings: StandinSettings, image: int, copy: int) -> np.ndarray:
    """``canvas`` ``[34, 34]`` rotated about the digit's centre and shifted, drawn from (seed, image, copy)."""
    rng = np.random.default_rng([settings.seed, image, copy])
    angle = np.deg2rad(rng.uniform(-settings.max_rotation_deg, settings.max_rotation_deg))
    shift = rng.uniform(-settings.max_shift_px, settings.max_shift_px, 2)  # (rows, columns)
    centre = np.full(2, settings.margin_px + (settings.image_px - 1) / 2)
    # affine_transform maps each output coordinate o to the input coordinate R^-1 (o - centre - shift) + centre.
    inverse = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    moved = ndimage.affine_transform(canvas, inverse, offset=centre - inverse @ (centre + shift), order=1,
                                     mode="constant", cval=0.0)
    return np.clip(moved, 0.0, 1.0)


# --- the recording -----------------------------------------------------------------------------


def saccade_frames(canvas: np.ndarray, settings: StandinSettings) -> tuple[np.ndarray, np.ndarray]:
    """What the sensor sees: ``(t_us int64 [S+1], frames float64 [S+1, 34, 34])``, S = 315 ms / step_us.

    Frame s is ``canvas`` moved (bilinear, black outside) to where
    ``nmnist_saccade_offset`` puts it at ``t_us[s] = s * step_us``, scaled to
    ``amplitude_px``.
    """
    n_steps = math.ceil(RECORDING_US / settings.step_us)
    t_us = np.arange(n_steps + 1, dtype=np.int64) * settings.step_us
    dx, dy = (nmnist_saccade_offset(t_us) * (settings.amplitude_px / NMNIST_EXCURSION_PX)).T  # [S+1] each
    rows, cols = np.mgrid[0:SENSOR_PX, 0:SENSOR_PX].astype(np.float64)
    coords = np.stack([rows[None] - dy[:, None, None], cols[None] - dx[:, None, None]])  # [2, S+1, 34, 34]
    frames = ndimage.map_coordinates(canvas, coords.reshape(2, -1), order=1, mode="constant", cval=0.0)
    return t_us, frames.reshape(n_steps + 1, SENSOR_PX, SENSOR_PX)


def crossing_events(log_frames: np.ndarray, crossings: np.ndarray, t_us: np.ndarray,
                    contrast_threshold: float) -> np.ndarray:
    """One event per threshold crossed, timed where the log intensity crossed it.

    ``log_frames`` ``[S+1, H, W]``, ``crossings`` ``[S, H, W]`` (``dvs_crossings``),
    ``t_us`` ``[S+1]``. Between frames the log intensity is taken as linear,
    so the j-th crossing of step s (at level reference + j thresholds) comes
    at the fraction of the step where that line meets the level. Returns
    events with tonic's N-MNIST dtype (``fixtures.EVENT_DTYPES``), sorted by
    t, then x, y, p; p = 1 ON, 0 OFF.
    """
    before = np.concatenate([np.zeros_like(crossings[:1]), np.cumsum(crossings, axis=0)[:-1]])
    step, y, x = np.nonzero(crossings)
    signed = crossings[step, y, x]
    count = np.abs(signed).astype(np.int64)
    which = np.repeat(np.arange(len(step)), count)  # the (step, pixel) of each event
    j = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count) + 1  # 1..count within it
    reference = log_frames[0, y, x] + before[step, y, x] * contrast_threshold  # at the start of the step
    level = reference[which] + np.sign(signed)[which] * j * contrast_threshold
    start, end = log_frames[step, y, x][which], log_frames[step + 1, y, x][which]
    frac = np.clip((level - start) / np.where(end == start, 1.0, end - start), 0.0, 1.0)
    s = step[which]
    t = t_us[s] + np.rint(frac * (t_us[s + 1] - t_us[s])).astype(np.int64)
    columns = {"x": x[which], "y": y[which], "t": t, "p": (signed[which] > 0).astype(np.int64)}
    order = np.lexsort((columns["p"], columns["y"], columns["x"], columns["t"]))  # last key first
    events = np.empty(len(order), dtype=EVENT_DTYPES["nmnist"])
    for field in events.dtype.names:
        events[field] = columns[field][order]
    return events


def dvs_recording(canvas: np.ndarray, settings: StandinSettings) -> np.ndarray:
    """The events of ``canvas`` ``[34, 34]`` moved along the three saccades (``crossing_events``' dtype)."""
    t_us, frames = saccade_frames(canvas, settings)
    log_frames = np.log(np.clip(frames, 0.0, None) + settings.log_eps)
    crossings = dvs_crossings(log_frames, settings.contrast_threshold)
    return crossing_events(log_frames, crossings, t_us, settings.contrast_threshold)


# --- which recordings --------------------------------------------------------------------------


def _kept(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    """Indices of the first ``per_class`` images of each label, in split order (all when None)."""
    if per_class is None:
        return np.arange(len(labels))
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(labels.tolist()):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= per_class:
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def standin_plan(train_labels: Sequence[int], test_labels: Sequence[int],
                 settings: StandinSettings) -> list[StandinSample]:
    """Every recording to write, training split first, in split order (originals before copies)."""
    plan = []
    for split, labels, per_class, copies in (("train", np.asarray(train_labels), settings.train_per_class,
                                              settings.augment + 1),
                                             ("test", np.asarray(test_labels), settings.test_per_class, 1)):
        if len(labels) * copies > MAX_FILE_ID:
            raise UserError(f"N-MNIST file ids have 5 digits: {len(labels)} {split} images x {copies} recordings "
                            f"each exceed {MAX_FILE_ID}; use a smaller --augment")
        folder = "Train" if split == "train" else "Test"
        for copy in range(copies):
            for i in _kept(labels, per_class):
                file_id = copy * len(labels) + int(i) + 1
                plan.append(StandinSample(split, f"{folder}/{labels[i]}/{file_id:05d}.bin", int(labels[i]),
                                          int(i), copy))
    return plan


def standin_images(settings: StandinSettings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images [N, 8, 8] in 0..1, labels [N]), "test": ...}``: the built-in data's split."""
    x_train, y_train, x_test, y_test = load_digit_images(settings.test_fraction, settings.seed)
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def sample_events(sample: StandinSample, images: dict, settings: StandinSettings) -> np.ndarray:
    """The events of one planned recording (``crossing_events``' dtype)."""
    canvas = digit_canvas(images[sample.split][0][sample.image], settings)
    if sample.copy > 0:
        canvas = augmented_canvas(canvas, settings, sample.image, sample.copy)
    return dvs_recording(canvas, settings)


# --- writing -----------------------------------------------------------------------------------


def _check_target(root: Path) -> Path:
    target = root / "NMNIST"
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file, not a folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} already exists and is not empty: write the stand-in into a new folder "
                        "(tonic reads every .bin file below it)")
    return target


def write_nmnist_standin(root: str | os.PathLike, settings: StandinSettings = StandinSettings(),
                         progress: bool = False) -> dict:
    """Write ``root/NMNIST/{Train,Test}/<digit>/<id>.bin`` and ``standin.json``; return that manifest.

    Raises ``UserError`` for bad settings or an ``NMNIST`` folder that is
    already there and not empty. ``progress``: a tqdm bar over recordings.
    """
    from tqdm.auto import tqdm

    settings.check()
    root = Path(root)
    target = _check_target(root)
    images = standin_images(settings)
    plan = standin_plan(images["train"][1], images["test"][1], settings)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".NMNIST-standin-", dir=root))
    try:
        counts = {"train": [], "test": []}
        for sample in tqdm(plan, desc="nmnist stand-in", unit="recording", disable=not progress):
            events = sample_events(sample, images, settings)
            path = staging / "NMNIST" / sample.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_nmnist_events(events["x"], events["y"], events["t"], events["p"]))
            counts[sample.split].append(len(events))
        manifest = standin_manifest(settings, plan, counts)
        (staging / "NMNIST" / "standin.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(staging / "NMNIST", target)  # one step: tonic never sees a half-written dataset
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def standin_manifest(settings: StandinSettings, plan: list[StandinSample], counts: dict[str, list[int]]) -> dict:
    """What ``standin.json`` says: what this is, the settings, recordings and events per split."""
    splits = {}
    for split, per_sample in counts.items():
        mine = [s for s in plan if s.split == split]
        splits[split] = {"recordings": len(mine), "augmented": sum(s.copy > 0 for s in mine),
                         "events_per_recording": {"mean": float(np.mean(per_sample)) if per_sample else 0.0,
                                                  "min": int(min(per_sample, default=0)),
                                                  "max": int(max(per_sample, default=0))}}
    return {"what": WHAT, "settings": dataclasses.asdict(settings), "splits": splits}


def parse_args(argv: list[str] | None) -> tuple[Path, StandinSettings, bool]:
    parser = argparse.ArgumentParser(prog="python -m dpap_neuro.data.nmnist_standin",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="folder to write into: DIR/NMNIST/{Train,Test}/<digit>/<id>.bin")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="N more recordings of each TRAINING image, rotated (+-10 deg) and shifted (+-1 px); "
                             "test images never (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="the train/test split and the augmentation (default: 0)")
    parser.add_argument("--train-per-class", type=int, default=None, metavar="N",
                        help="only the first N training images of each digit (default: all)")
    parser.add_argument("--test-per-class", type=int, default=None, metavar="N",
                        help="only the first N test images of each digit (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    settings = StandinSettings(seed=args.seed, augment=args.augment, train_per_class=args.train_per_class,
                               test_per_class=args.test_per_class)
    return Path(args.dir), settings, not args.quiet


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 written, 2 bad input (one ``nmnist-standin: error:`` line), 130 interrupted."""
    root, settings, progress = parse_args(argv)
    try:
        manifest = write_nmnist_standin(root, settings, progress)
    except (UserError, OSError) as exc:
        print(f"nmnist-standin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nmnist-standin: interrupted (nothing written)", file=sys.stderr)
        return 130
    train, test = manifest["splits"]["train"], manifest["splits"]["test"]
    events = manifest["splits"]["test"]["events_per_recording"]["mean"]
    print(f"wrote {root / 'NMNIST'}: {train['recordings']} training recordings ({train['augmented']} of them "
          f"augmented copies of training images), {test['recordings']} test recordings; {events:.0f} events per "
          f"test recording on average. {WHAT}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
