"""Neuromorphic datasets read through ``tonic``, from files the user already has.

Nothing is downloaded: tonic's dataset classes download what they miss, so
each one is used through a subclass whose ``download`` raises
``DatasetFilesMissing`` instead, and the files are checked before tonic is
asked to open them. The layout under ``--data-dir DIR`` is tonic's own
(``DIR/<tonic class name>/...``), so a folder prepared for tonic works here
and the other way round; ``DatasetSpec.layout`` says what goes where.

Events become time-first spike frames with tonic's transforms: optional
``Denoise``, optional ``Downsample`` (a spatial factor), then ``ToFrame``
into ``timesteps`` bins of equal duration per sample; a bin with one or more
events of a pixel (channel, for SHD) and polarity is one spike, so inputs
are binary as on Loihi. tonic's bins are ``floor((t_last - t_first) / T)``
microseconds wide from the first event, end-exclusive, so a recording's
last event (and any in the rounding remainder) falls outside them. One sample is ``[T, 2, H, W]`` for the cameras and
``[T, 700 / factor]`` for SHD; the ``DataLoader`` collates batches time-first
(``[T, B, ...]``, ``time_first_collate``). Binned frames are cached on disk
with ``tonic.DiskCachedDataset`` under a key holding every binning setting,
so a changed setting never reads a stale cache.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch

from hw_export.errors import UserError
from hw_export.files import cache_dir as default_cache_dir  # the frame cache: $DPAP_CACHE_DIR, ...


class DatasetFilesMissing(UserError):
    """The dataset's files are not where tonic reads them; the message says what to place where."""


def _rebuild_spec(cls, values: dict):
    return cls(**values)


@dataclass(frozen=True)
class DatasetSpec:
    """How one tonic dataset is laid out, read and binned by default."""

    name: str  # our name (the --dataset value)
    tonic_class: str  # class in tonic.datasets; also the folder under --data-dir tonic reads
    title: str  # the dataset's name in its paper
    n_classes: int
    sensor_size: tuple[int, int, int]  # tonic's (width, height, polarities); SHD: (700 channels, 1, 1)
    split_folders: tuple[str, str]  # (train, test) below DIR/<tonic_class>: folders, or HDF5 files for SHD
    file_pattern: str  # what tonic collects below a split folder
    layout: str  # one line: what to place where (DIR stands for --data-dir)
    published_at: str  # where the files are published
    default_timesteps: int  # bins per sample (--timesteps)
    default_downsample: int  # spatial factor (--downsample)
    default_model: str  # "conv" for cameras, "mlp" for SHD
    # Further RunConfig fields this dataset trains with unless the user says otherwise (field -> value), over
    # the built-in data's (``dpap_neuro.data.dataset_defaults``); chosen on a validation split (docs/datasets.md).
    # Read-only, left out of the hash.
    run_defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_defaults", MappingProxyType(dict(self.run_defaults)))
        own = {"timesteps", "downsample", "model"} & set(self.run_defaults)
        if own:
            raise ValueError(f"{self.name}: {', '.join(sorted(own))} have their own default_* fields")

    def __reduce__(self):
        # A mappingproxy does not pickle (DataLoader workers receive the spec): rebuild from a plain dict.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return _rebuild_spec, (type(self), {**values, "run_defaults": dict(self.run_defaults)})

    @property
    def is_audio(self) -> bool:
        return self.sensor_size[1] == 1 and self.sensor_size[2] == 1

    def input_shape(self, downsample: int) -> tuple[int, ...]:
        """One sample's shape per step after downsampling: ``(2, H, W)`` or ``(channels,)``."""
        width, height, polarities = self.sensor_size
        if self.is_audio:
            return (math.ceil(width / downsample),)
        return (polarities, math.ceil(height / downsample), math.ceil(width / downsample))


SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(
        name="nmnist", tonic_class="NMNIST", title="N-MNIST", n_classes=10, sensor_size=(34, 34, 2),
        split_folders=("Train", "Test"), file_pattern="*.bin",
        layout="DIR/NMNIST/Train/<digit>/<id>.bin and DIR/NMNIST/Test/<digit>/<id>.bin "
               "(the extracted train.zip and test.zip)",
        published_at="https://www.garrickorchard.com/datasets/n-mnist", default_timesteps=30,
        default_downsample=1, default_model="conv",
        # Chosen on the N-MNIST stand-in's validation split (docs/datasets.md): at the conv model's gain 10 the
        # readout saturates and 5e-3 learns slowly (33 % after 5 epochs); at gain 6 the deeper layers stay silent.
        run_defaults={"weight_init_gain": 8.0, "learning_rate": 2e-3, "epochs": 10}),
    DatasetSpec(
        name="dvs-gesture", tonic_class="DVSGesture", title="DVS Gesture", n_classes=11, sensor_size=(128, 128, 2),
        split_folders=("ibmGestureTrain", "ibmGestureTest"), file_pattern="*.npy",
        layout="DIR/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and DIR/DVSGesture/ibmGestureTest/... "
               "(tonic's preprocessed ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz, extracted)",
        published_at="https://research.ibm.com/interactive/dvsgesture/ (tonic's copy: "
                     "https://figshare.com/ndownloader/files/38022171 and 38020584)",
        default_timesteps=30, default_downsample=4, default_model="conv"),
    DatasetSpec(
        name="shd", tonic_class="SHD", title="Spiking Heidelberg Digits", n_classes=20, sensor_size=(700, 1, 1),
        split_folders=("shd_train.h5", "shd_test.h5"), file_pattern="",
        layout="DIR/SHD/shd_train.h5 and DIR/SHD/shd_test.h5 (unzipped shd_train.h5.zip and shd_test.h5.zip)",
        published_at="https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/", default_timesteps=50,
        default_downsample=1, default_model="rmlp"),
    DatasetSpec(
        name="poker-dvs", tonic_class="POKERDVS", title="POKER-DVS", n_classes=4, sensor_size=(35, 35, 2),
        split_folders=("pips_train", "pips_test"), file_pattern="*.npy",
        layout="DIR/POKERDVS/pips_train/<cl|he|di|sp>/<n>.npy and DIR/POKERDVS/pips_test/... "
               "(the extracted pips_train.tar.gz and pips_test.tar.gz)",
        published_at="http://www2.imse-cnm.csic.es/caviar/POKERDVS.html", default_timesteps=20,
        default_downsample=1, default_model="conv"),
)}


def missing_files_message(spec: DatasetSpec, data_dir: Path, what: str) -> str:
    return (f"{spec.title} not found in {data_dir} ({what}): place {spec.layout.replace('DIR', str(data_dir))}; "
            f"published at {spec.published_at}; nothing is downloaded")


def check_files(spec: DatasetSpec, data_dir: str | os.PathLike, train: bool) -> Path:
    """The split's folder (or HDF5 file), or ``DatasetFilesMissing`` saying what to place where."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetFilesMissing(missing_files_message(spec, data_dir, "no such directory"))
    split = data_dir / spec.tonic_class / spec.split_folders[0 if train else 1]
    if spec.is_audio:
        if not split.is_file():
            raise DatasetFilesMissing(missing_files_message(spec, data_dir, f"{split} is missing"))
    elif not split.is_dir() or next(split.rglob(spec.file_pattern), None) is None:
        raise DatasetFilesMissing(missing_files_message(
            spec, data_dir, f"no {spec.file_pattern} files below {split}"))
    return split


def offline_class(spec: DatasetSpec) -> type:
    """tonic's dataset class, made unable to download.

    tonic checks for the archive and for as many files as the full dataset
    has, and downloads otherwise; ``check_files`` has checked what the reader
    needs, so the subclass skips tonic's check, and ``download`` raises. The
    subclass keeps tonic's class name: tonic reads from ``DIR/<class name>``.
    """
    import tonic.datasets

    base = getattr(tonic.datasets, spec.tonic_class)
    message = f"{spec.title}: files missing and downloads are off; see `dpap run --help`"

    def refuse(self, *args, **kwargs):
        raise DatasetFilesMissing(message)

    return type(base.__name__, (base,), {"_check_exists": lambda self: True, "download": refuse,
                                         "_copy_and_extract_local_data": refuse, "__module__": __name__})


class FrameSettings(NamedTuple):
    """How events become frames; every field is part of the cache key."""

    timesteps: int  # bins per sample (ToFrame's n_time_bins), equal duration within a sample
    downsample: int = 1  # spatial factor: 34x34 with 2 -> 17x17 (SHD: 700 channels -> 350)
    denoise_us: float | None = None  # tonic Denoise filter time in microseconds (cameras); None: off

    def check(self, spec: DatasetSpec) -> None:
        if self.timesteps < 1:
            raise UserError(f"timesteps must be >= 1, got {self.timesteps}")
        if self.downsample < 1:
            raise UserError(f"downsample must be an integer >= 1, got {self.downsample}")
        if self.downsample > max(spec.sensor_size[:2]):
            raise UserError(f"downsample {self.downsample} leaves nothing of {spec.title}'s "
                             f"{spec.sensor_size[0]}x{spec.sensor_size[1]} sensor")
        if self.denoise_us is not None:
            if spec.is_audio:
                raise UserError(f"denoising filters camera pixels; {spec.title} has none (drop --denoise-us)")
            if not self.denoise_us > 0:
                raise UserError(f"denoise_us must be positive, got {self.denoise_us}")


class EventsToFrames:
    """tonic transforms from one sample's events to binary frames ``uint8 [T, *input_shape]``.

    A class (not a closure) so that ``DataLoader`` workers can pickle it.
    """

    def __init__(self, spec: DatasetSpec, settings: FrameSettings) -> None:
        import tonic.transforms as transforms

        width, height, _ = spec.sensor_size
        steps: list[Callable] = []
        if settings.denoise_us is not None:
            steps.append(transforms.Denoise(filter_time=settings.denoise_us))
        target = tuple(math.ceil(side / settings.downsample) for side in (width, height))
        if settings.downsample > 1:
            steps.append(transforms.Downsample(sensor_size=spec.sensor_size, target_size=target))
        steps.append(transforms.ToFrame(sensor_size=(*target, spec.sensor_size[2]), n_time_bins=settings.timesteps))
        self.transform = transforms.Compose(steps)
        self.input_shape = spec.input_shape(settings.downsample)
        self.timesteps = settings.timesteps

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if len(events) == 0:  # a silent recording (or one emptied by Denoise): no spikes, not an error
            return np.zeros((self.timesteps, *self.input_shape), dtype=np.uint8)
        counts = self.transform(events)  # [T, P, H, W] event counts ([T, 1, channels] for audio)
        return (counts > 0).astype(np.uint8).reshape(len(counts), *self.input_shape)


def cache_key(spec: DatasetSpec, data_dir: Path, train: bool, settings: FrameSettings) -> str:
    """A folder name unique to the files and every binning setting."""
    source = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
    denoise = "off" if settings.denoise_us is None else f"{settings.denoise_us:g}us"
    return (f"{spec.name}-{'train' if train else 'test'}-{source}-T{settings.timesteps}"
            f"-ds{settings.downsample}-denoise{denoise}")


class EventFrames(torch.utils.data.Dataset):
    """One split of a tonic dataset as binary spike frames: ``(uint8 [T, *input_shape], label)``.

    Samples are read (and binned, then cached) one at a time, so the split
    never sits in memory as one tensor. ``labels`` (``int64 [N]``) are read
    up front without binning anything. Picklable for ``DataLoader`` workers:
    each process opens tonic's reader itself.
    """

    def __init__(self, name: str, data_dir: str | os.PathLike, train: bool, settings: FrameSettings,
                 cache_dir: str | os.PathLike | None = None) -> None:
        if name not in SPECS:
            raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(SPECS)}")
        self.spec, self.settings, self.train = SPECS[name], settings, train
        self.data_dir = Path(data_dir)
        settings.check(self.spec)
        check_files(self.spec, self.data_dir, train)
        self.cache_dir = None if cache_dir is None else Path(cache_dir) / cache_key(self.spec, self.data_dir,
                                                                                        train, settings)
        self.input_shape = self.spec.input_shape(settings.downsample)
        self._reader = None
        self.labels = torch.as_tensor(np.asarray(self._read_labels(), dtype=np.int64))
        if len(self.labels) == 0:
            raise DatasetFilesMissing(missing_files_message(self.spec, self.data_dir, "no samples found"))
        bad = (self.labels < 0) | (self.labels >= self.spec.n_classes)
        if bool(bad.any()):
            raise UserError(f"{self.data_dir}: {self.spec.title} labels must be 0..{self.spec.n_classes - 1}, "
                             f"found {int(self.labels[bad][0])}")

    def _tonic(self):
        split = {"train": self.train}
        try:
            return offline_class(self.spec)(str(self.data_dir), transform=EventsToFrames(self.spec, self.settings),
                                            **split)
        except (OSError, KeyError, IndexError, ValueError) as exc:
            if isinstance(exc, DatasetFilesMissing):
                raise
            raise UserError(f"{self.data_dir}: tonic cannot read {self.spec.title} "
                             f"({type(exc).__name__}: {exc})") from None

    def _read_labels(self) -> list[int]:
        if self.spec.is_audio:
            import h5py

            path = check_files(self.spec, self.data_dir, self.train)
            try:
                with h5py.File(path, "r") as h5:
                    return [int(v) for v in h5["labels"][()]]
            except (OSError, KeyError) as exc:
                raise UserError(f"{path}: not an SHD file with a labels dataset ({exc})") from None
        return [int(v) for v in self._tonic().targets]

    def _source(self):
        if self._reader is None:
            reader = self._tonic()
            if self.cache_dir is not None:
                import tonic

                reader = tonic.DiskCachedDataset(reader, cache_path=str(self.cache_dir))
            self._reader = reader
        return self._reader

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_reader": None}  # workers open their own reader

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            frames, label = self._source()[int(index)]
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"{self.data_dir}: {self.spec.title} sample {index} is unreadable "
                             f"({type(exc).__name__}: {exc})") from None
        return torch.from_numpy(np.asarray(frames, dtype=np.uint8)), int(label)


def time_first_collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(frames [T, ...], label)] * B`` -> ``(spikes float32 [T, B, ...], labels int64 [B])``."""
    frames, labels = zip(*batch)
    return torch.stack(frames, dim=1).float(), torch.as_tensor(labels, dtype=torch.int64)


def load_neuromorphic(name: str, data_dir: str | os.PathLike, settings: FrameSettings,
                      cache_dir: str | os.PathLike | None = None) -> tuple[EventFrames, EventFrames]:
    """The official train and test splits of ``name``."""
    return (EventFrames(name, data_dir, True, settings, cache_dir),
            EventFrames(name, data_dir, False, settings, cache_dir))
