"""Built-in data: scikit-learn's bundled 8x8 handwritten digits as spikes.

Nothing is downloaded: the 1,797 real samples ship inside scikit-learn.
Two encodings, both returning time-first spike tensors:

* ``digits``: rate coding. Each pixel emits a spike at each step with
  probability equal to its intensity (0..16 scaled to 0..1). Shape
  ``[T, N, 64]``.
* ``digits-events``: a neuromorphic event stream made the way N-MNIST was
  recorded from MNIST: the image is moved along three saccades (a triangle)
  in front of a simulated dynamic-vision sensor, and each pixel emits an ON
  (OFF) event when its log intensity has risen (fallen) by more than a
  contrast threshold since its last event. Shape ``[T, N, 2, 8, 8]``
  (channel 0 = ON, 1 = OFF).
* ``digits-seq``: sequential digits, after the classic memory task. The
  image is shown one column at a time, left to right, each column for
  ``T / 8`` steps, its 8 pixels rate coded as in ``digits``. Shape
  ``[T, N, 8]``. No step shows the whole digit; whether a recurrent network
  (``--model rmlp``) gains from holding the earlier columns is measured by
  ``benchmarks/recurrent.py`` (docs/datasets.md: so far it does not beat the
  feed-forward one by much).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

from hw_export.errors import UserError

N_CLASSES = 10
IMAGE_SIDE = 8
MAX_INTENSITY = 16.0


class SpikeDataset(NamedTuple):
    """A spike-encoded split. ``spikes`` is ``[T, N, *input_shape]`` float32 of 0/1."""

    spikes: torch.Tensor
    labels: torch.Tensor  # [N] int64

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spikes.shape[2:])

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_digit_images(test_fraction: float, seed: int):
    """The scikit-learn digits, split stratified and seeded.

    Returns ``(x_train, y_train, x_test, y_test)`` with images as float arrays
    ``[N, 8, 8]`` in 0..1.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / MAX_INTENSITY
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return x_train, y_train, x_test, y_test


def rate_encode(images: np.ndarray, timesteps: int, seed: int) -> torch.Tensor:
    """Bernoulli rate code: ``P(spike at t) = intensity``.

    ``images``: ``[N, 8, 8]`` in 0..1. Returns ``[T, N, 64]`` float32.
    """
    rng = np.random.default_rng(seed)
    flat = images.reshape(len(images), -1)  # [N, 64]
    spikes = np.empty((timesteps, *flat.shape), dtype=np.float32)  # [T, N, 64]
    # The draws come in blocks of steps through one reused buffer: the same stream as one [T, N, 64] draw
    # (a generator fills consecutive calls from consecutive numbers) without its float64 copy of the whole
    # code, which at thousands of steps is gigabytes and most of the time.
    steps_per_block = max(1, (1 << 22) // max(1, flat.size))
    draws = np.empty((steps_per_block, *flat.shape))
    for start in range(0, timesteps, steps_per_block):
        block = draws[:min(steps_per_block, timesteps - start)]
        rng.random(out=block)
        np.less(block, flat[None], out=spikes[start:start + len(block)], casting="unsafe")
    return torch.from_numpy(spikes)


def column_sequence(images: np.ndarray, timesteps: int, seed: int) -> torch.Tensor:
    """Columns left to right, each for ``timesteps / 8`` steps, rate coded: ``P(spike of row r at t) =
    intensity of (r, column of t)``.

    ``images``: ``[N, 8, 8]`` in 0..1. Returns ``[T, N, 8]`` float32.
    """
    if timesteps % IMAGE_SIDE:
        raise UserError(f"digits-seq shows {IMAGE_SIDE} columns for the same number of steps each: timesteps must "
                        f"be a multiple of {IMAGE_SIDE}, got {timesteps}")
    steps_per_column = timesteps // IMAGE_SIDE
    columns = np.repeat(images.transpose(2, 0, 1), steps_per_column, axis=0)  # [T, N, 8]: column c at its steps
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random(columns.shape) < columns).astype(np.float32))


def saccade_path(timesteps: int, amplitude_px: float) -> np.ndarray:
    """Positions ``[T+1, 2]`` (dy, dx) along three saccades forming a triangle.

    N-MNIST used three saccades of the sensor, up-right, left and down-right,
    returning to the start; we do the same with a sub-pixel amplitude scaled
    to an 8x8 image. One extra position is the resting point before step 0.
    """
    vertices = np.array(
        [[0.0, 0.0], [-amplitude_px, amplitude_px / 2], [0.0, amplitude_px], [0.0, 0.0]]
    )
    progress = np.linspace(0.0, 3.0, timesteps + 1)
    segment = np.minimum(progress.astype(int), 2)
    frac = (progress - segment)[:, None]
    return vertices[segment] * (1 - frac) + vertices[segment + 1] * frac


def saccade_events(
    images: np.ndarray,
    timesteps: int,
    amplitude_px: float = 1.5,
    contrast_threshold: float = 0.25,
    log_eps: float = 0.1,
) -> torch.Tensor:
    """Simulated DVS recording of images moved along three saccades.

    Each pixel keeps the log intensity at its last event (as a DVS pixel
    does); an ON/OFF event fires when the current log intensity differs from
    that reference by more than ``contrast_threshold``, and the reference
    moves by whole thresholds. At most one event per pixel, polarity and
    step (the time bin), so the output is binary.

    ``images``: ``[N, 8, 8]`` in 0..1. Returns ``[T, N, 2, 8, 8]`` float32.
    """
    if contrast_threshold <= 0:
        raise UserError("contrast_threshold must be positive")
    path = saccade_path(timesteps, amplitude_px)  # [T+1, 2]
    n = len(images)
    frames = np.empty((timesteps + 1, n, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float64)
    for t, (dy, dx) in enumerate(path):
        # Bilinear sub-pixel shift of every image at once (axis 0 is the sample).
        frames[t] = ndimage.shift(images, (0.0, dy, dx), order=1, mode="constant", cval=0.0)
    crossings = dvs_crossings(np.log(np.clip(frames, 0.0, None) + log_eps), contrast_threshold)
    events = np.zeros((timesteps, n, 2, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    events[:, :, 0] = crossings > 0
    events[:, :, 1] = crossings < 0
    return torch.from_numpy(events)


def dvs_crossings(log_frames: np.ndarray, contrast_threshold: float) -> np.ndarray:
    """The DVS pixel model: signed whole contrast thresholds crossed at each step.

    ``log_frames``: ``[S+1, ...]`` log intensities (index 0: the resting
    frame before step 0). Each pixel keeps the log intensity of its last
    event as its reference; step s crosses ``trunc((log_frames[s+1] -
    reference) / contrast_threshold)`` thresholds (positive: ON, negative:
    OFF), and the reference moves by that many whole thresholds. Returns
    ``float64 [S, ...]`` of whole numbers.
    """
    reference = log_frames[0].astype(np.float64)
    crossings = np.empty((len(log_frames) - 1, *log_frames.shape[1:]), dtype=np.float64)
    for s in range(len(crossings)):
        crossings[s] = np.trunc((log_frames[s + 1] - reference) / contrast_threshold)
        reference += crossings[s] * contrast_threshold
    return crossings


DATASETS = ("digits", "digits-events", "digits-seq")
# Run settings a built-in dataset implies beyond the common ones (``dpap_neuro.data.dataset_defaults``).
RUN_DEFAULTS = {"digits-seq": {"timesteps": 64, "model": "rmlp"}}


def load_dataset(
    name: str, timesteps: int, seed: int, test_fraction: float = 0.2, train: bool = True
) -> tuple[SpikeDataset | None, SpikeDataset]:
    """Train and test splits of a built-in dataset, spike encoded.

    The split and the encoding depend only on ``seed``, so a dense and a pruned
    model trained with the same seed see identical spikes. ``train=False``
    encodes the test split alone (train is None): what a simulation of a
    trained network needs, four times less work.
    """
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if timesteps < 1:
        raise UserError(f"timesteps must be >= 1, got {timesteps}")
    x_train, y_train, x_test, y_test = load_digit_images(test_fraction, seed)
    encode = {"digits": lambda x, s: rate_encode(x, timesteps, s),
              "digits-events": lambda x, s: saccade_events(x, timesteps),
              "digits-seq": lambda x, s: column_sequence(x, timesteps, s)}[name]
    train_data = SpikeDataset(encode(x_train, seed), torch.from_numpy(y_train)) if train else None
    return train_data, SpikeDataset(encode(x_test, seed + 1), torch.from_numpy(y_test))


def split_validation(data, fraction: float, seed: int):
    """Hold out a stratified, seeded ``fraction`` of a training split for validation.

    Returns ``(train, validation)`` of the same kind as ``data`` (in memory,
    or streamed: see ``batches.subset``); ``fraction == 0`` gives ``(data,
    None)``. Settings are chosen on the validation split, never on the test
    split, so the test accuracy is an unbiased figure reported once.
    """
    from sklearn.model_selection import train_test_split

    from dpap_neuro.data.batches import subset

    if not 0.0 <= fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return data, None
    labels = data.labels.numpy()
    try:
        train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed,
                                              stratify=labels)
    except ValueError:  # a class too small to stratify (tiny datasets): a plain seeded split
        train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed)
    return subset(data, np.sort(train_idx)), subset(data, np.sort(val_idx))
