"""One dataclass holds every setting of a run (saved with the run and its checkpoints)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dpap_neuro.data import DATASETS, NEUROMORPHIC

# Model kinds of a run; "ann-*" are ReLU twins of the spiking models (DPAP on ANNs; no spiking export).
ARCHITECTURES = ("mlp", "conv", "ann-mlp", "ann-conv")


@dataclass(frozen=True)
class RunConfig:
    # --- data -------------------------------------------------------------
    dataset: str = "digits-events"  # built-in "digits" (rate code), "digits-events" (saccades); or through tonic from data_dir: "nmnist", "dvs-gesture", "shd", "poker-dvs"
    timesteps: int = 30  # simulation steps per sample (T); tonic datasets: time bins per sample
    data_dir: str | None = None  # folder holding a tonic dataset's files (tonic's layout; README, "Neuromorphic datasets through tonic")
    downsample: int = 1  # tonic datasets: spatial factor (34x34 with 2 -> 17x17; SHD: 700 channels -> 350)
    denoise_us: float | None = None  # tonic camera datasets: Denoise filter time, microseconds (None: off)
    cache: bool = True  # tonic datasets: cache binned frames on disk (cache_dir)
    cache_dir: str | None = None  # where; None: $DPAP_CACHE_DIR or ~/.cache/dpap-neuro
    workers: int = 0  # DataLoader worker processes reading a tonic dataset (0: the training process)
    test_fraction: float = 0.2  # stratified held-out share of the 1,797 digits
    val_fraction: float = 0.0  # stratified share of the training split held out for validation (benchmarks: 0.1)
    # --- model ------------------------------------------------------------
    model: str = "mlp"  # "mlp" (Linear/LIF layers), "conv" (Conv2d/LIF/AvgPool blocks, then Linear); "ann-mlp", "ann-conv": ReLU twins
    conv_channels: tuple[int, ...] = (16, 32)  # output channels per conv block (model "conv")
    hidden_sizes: tuple[int, ...] = (256, 256)  # LIF neurons per hidden layer
    dt_s: float = 1e-3  # integration step, seconds (Norse default)
    tau_syn_inv_per_s: float = 200.0  # synaptic current decay rate, 1/s (Norse default)
    tau_mem_inv_per_s: float = 100.0  # membrane decay rate, 1/s (Norse default)
    v_th: float = 1.0  # firing threshold, Norse voltage units
    weight_init_gain: float | None = None  # multiplies PyTorch's default init so all layers spike from the start; None: the model's default (mlp 4, conv 10)
    # --- training ---------------------------------------------------------
    epochs: int = 20  # passes over the training split
    batch_size: int = 64  # samples per optimiser step
    learning_rate: float = 5e-3  # Adam step size
    seed: int = 0  # seeds the split, the encoding, initialisation and batch order
    device: str = "auto"  # training device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
    # --- pruning ----------------------------------------------------------
    pruner: str = "dpap"  # pruning method for the pruned model (see dpap_neuro.pruning.PRUNERS)
    pruner_preset: str | None = None  # DPAP family: "authors", "builtin" or "tonic" (dpap_neuro.pruning.DPAP_PRESETS); None: "builtin" on the built-in data, "tonic" on tonic datasets; other pruners ignore it
    pruner_options: dict | None = None  # keyword arguments of that pruner, over its preset's values
    # --- hardware side ----------------------------------------------------
    lava_batch_size: int = 128  # samples simulated at once as independent network copies
    lava_timeout_s: float = 3600.0  # wall-clock limit of each Lava simulation (one chunk of test samples, one precision)
    lava_samples: int | None = None  # test samples simulated in Lava: a seeded subset of this size (None: all)
    lava_chunk_size: int = 512  # test samples per Lava subprocess: the test set is streamed through Lava in chunks
    energy_profile: str = "loihi"  # default profile for report.json's "energy"

    def resolved_pruner_options(self) -> dict:
        """Every option of the pruner: its preset's values (DPAP family), overridden by those given."""
        from dpap_neuro.pruning import resolve_pruner_options  # here: pruning imports models, which import this

        preset = self.pruner_preset or ("tonic" if self.dataset in NEUROMORPHIC else "builtin")
        return resolve_pruner_options(self.pruner, {"preset": preset, **(self.pruner_options or {})})

    def __post_init__(self) -> None:
        checks = [
            (self.timesteps >= 1, "timesteps must be >= 1"),
            (0.0 < self.test_fraction < 1.0, "test_fraction must be in (0, 1)"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1, "hidden_sizes must be positive"),
            (self.dt_s > 0, "dt_s must be positive"),
            (self.tau_syn_inv_per_s > 0 and self.tau_mem_inv_per_s > 0, "time constants must be positive"),
            (self.dt_s * self.tau_syn_inv_per_s <= 1 and self.dt_s * self.tau_mem_inv_per_s <= 1,
             "dt_s * tau_inv must be <= 1 for a stable Euler step"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.lava_batch_size >= 1, "lava_batch_size must be >= 1"),
            (self.lava_timeout_s > 0, "lava_timeout_s must be positive"),
            (self.model in ARCHITECTURES, f"model must be one of {', '.join(ARCHITECTURES)}, got {self.model!r}"),
            (len(self.conv_channels) >= 1 and min(self.conv_channels) >= 1, "conv_channels must be positive"),
            (self.dataset in DATASETS, f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}"),
            (self.dataset not in NEUROMORPHIC or self.data_dir is not None,
             f"dataset {self.dataset} is read from your files: give --data-dir DIR"),
            (self.dataset in NEUROMORPHIC or self.data_dir is None,
             f"--data-dir is for the tonic datasets ({', '.join(NEUROMORPHIC)}); {self.dataset} is built in"),
            (self.downsample >= 1, "downsample must be >= 1"),
            (self.denoise_us is None or self.denoise_us > 0, "denoise_us must be positive"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.lava_samples is None or self.lava_samples >= 1, "lava_samples must be >= 1"),
            (self.lava_chunk_size >= 1, "lava_chunk_size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def model_kwargs(self) -> dict:
        """Everything ``build_model`` needs besides shapes."""
        return dict(
            architecture=self.model,
            conv_channels=self.conv_channels,
            dt_s=self.dt_s,
            tau_syn_inv_per_s=self.tau_syn_inv_per_s,
            tau_mem_inv_per_s=self.tau_mem_inv_per_s,
            v_th=self.v_th,
            **({} if self.weight_init_gain is None else {"weight_init_gain": self.weight_init_gain}),
        )
