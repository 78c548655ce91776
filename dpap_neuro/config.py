"""One dataclass holds every setting of a run (saved with the run and its checkpoints).

Each field's comment is its documentation: the ``dpap`` command line takes
its options, defaults and help texts from these fields (``dpap_neuro/cli.py``),
so an option is declared once. A field whose default is ``None`` and whose
comment says "the dataset's default" is filled in from the dataset
(``dpap_neuro.data.dataset_defaults``) when the config is made, so Python and
the command line get the same run.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass

from dpap_neuro.data import BUILTIN_DATASETS, DATASETS, NEUROMORPHIC, dataset_defaults
from dpap_neuro.models import ARCHITECTURES
from hw_export.errors import UserError
from hw_export.lava_sim import ENGINES, SimOptions

OPTIMIZERS = ("adam", "adamw")
TRAIN_PRECISIONS = ("float", "loihi")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class RunConfig:
    # --- data -------------------------------------------------------------
    dataset: str = "digits-events"  # built-in digits (rate code) or digits-events (saccades); read through tonic from --data-dir: nmnist, dvs-gesture, shd, poker-dvs
    timesteps: int | None = None  # simulation steps per sample (tonic datasets: time bins); None: the dataset's
    data_dir: str | None = None  # folder holding a tonic dataset's files, in tonic's layout (nothing is downloaded)
    downsample: int | None = None  # tonic datasets: spatial downsampling factor (34x34 with 2 -> 17x17; shd: channels); None: the dataset's
    denoise_us: float | None = None  # tonic camera datasets: drop events with no neighbour event within this many microseconds (tonic's Denoise); None: off
    cache: bool = True  # tonic datasets: cache binned frames on disk (--no-cache: bin every sample again, each time)
    cache_dir: str | None = None  # tonic datasets: frame cache folder; None: $DPAP_CACHE_DIR or ~/.cache/dpap-neuro
    workers: int = 0  # DataLoader worker processes reading a tonic dataset (0: this process)
    test_fraction: float = 0.2  # stratified held-out test share of the built-in digits
    val_fraction: float = 0.0  # stratified share of the training split held out as validation (the report gives each model's validation accuracy; 0: none)
    # --- model ------------------------------------------------------------
    model: str | None = None  # mlp (Linear/LIF layers), conv (Conv2d/LIF/AvgPool blocks, then Linear), or their ReLU twins ann-mlp, ann-conv (no Lava export); None: the dataset's
    conv_channels: tuple[int, ...] = (16, 32)  # output channels per conv block (model conv)
    hidden_sizes: tuple[int, ...] = (256, 256)  # LIF neurons per hidden layer
    dt_s: float = 1e-3  # integration step, seconds (Norse's default)
    tau_syn_inv_per_s: float = 200.0  # synaptic current decay rate, 1/s (Norse's default)
    tau_mem_inv_per_s: float = 100.0  # membrane decay rate, 1/s (Norse's default)
    v_th: float = 1.0  # firing threshold, Norse voltage units
    weight_init_gain: float | None = None  # factor on PyTorch's default initialisation so that every layer spikes from the start; None: the dataset's, else mlp 4, conv 10
    # --- training ---------------------------------------------------------
    epochs: int | None = None  # passes over the training split; None: the dataset's
    batch_size: int = 64  # samples per optimiser step (the global batch under torchrun)
    learning_rate: float | None = None  # peak step size of the optimiser; None: the dataset's
    optimizer: str = "adam"  # adam, or adamw (decoupled weight decay)
    weight_decay: float = 0.0  # adamw's decoupled weight decay (0 with adam)
    lr_schedule: str = "constant"  # constant, or cosine (decays to 0 by the last step, after the warm-up)
    warmup_epochs: float = 0.0  # epochs of linear learning-rate warm-up from 0 (cosine schedule)
    train_precision: str = "float"  # float (Norse's LIFCell), or loihi: Loihi-exact training, the forward pass in Lava's bit-accurate fixed point (8-bit weights, integer state), so Lava's fixed-point run and the chip reproduce the trained model
    loihi_finetune_epochs: int = 0  # after float training, this many epochs of Loihi-exact fine-tuning (masks kept, a tenth of the learning rate, cosine); 0: none
    seed: int = 0  # seeds the split, the encoding, initialisation and batch order
    device: str = "auto"  # training device: auto (CUDA when available), cpu, cuda or cuda:N; export and Lava run on the CPU
    # --- pruning ----------------------------------------------------------
    pruner: str = "dpap"  # pruning method of the pruned model (the dense model is always trained too)
    pruner_preset: str | None = None  # named defaults of the dpap family (authors, builtin, tonic); None: builtin for the built-in data, tonic for tonic datasets
    pruner_options: dict | None = None  # options of the pruner over its preset, e.g. fc_neuron_c=1.5 for dpap or target_sparsity=0.9 for gmp
    # --- hardware side ----------------------------------------------------
    lava_engine: str = "processes"  # Lava engine: processes (Lava's Sparse and LIF per layer) or fast (one process steps the network)
    lava_batch_size: int = 128  # test samples simulated at once in one Lava runtime
    lava_timeout_s: float = 3600.0  # wall-clock limit of each Lava simulation (one chunk, one precision), seconds
    lava_samples: int | None = None  # simulate a seeded subset of this many test samples in Lava; None: all
    lava_chunk_size: int = 512  # test samples per Lava subprocess (the test set is streamed through Lava in chunks)
    energy_profile: str = "loihi"  # energy profile of the report's ratios: loihi, cmos45, or a JSON/TOML file with EnergyProfile's fields

    def __post_init__(self) -> None:
        self._fill_dataset_defaults()
        for ok, message in self._checks():
            if not ok:
                raise UserError(message)
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))

    def _fill_dataset_defaults(self) -> None:
        if self.dataset not in DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.dataset in BUILTIN_DATASETS:
            tonic_only = {"data_dir": self.data_dir, "downsample": self.downsample, "denoise_us": self.denoise_us,
                          "cache_dir": self.cache_dir, "cache": None if self.cache else False,
                          "workers": self.workers or None}
            given = [name.replace("_", "-") for name, value in tonic_only.items() if value is not None]
            if given:
                raise UserError(f"--{', --'.join(given)}: for the tonic datasets ({', '.join(NEUROMORPHIC)}); "
                                f"{self.dataset} is built in")
        for name, value in dataset_defaults(self.dataset).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def _checks(self) -> list[tuple[bool, str]]:
        return [
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
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.weight_decay >= 0 and (self.weight_decay == 0 or self.optimizer == "adamw"),
             "weight_decay must be >= 0, and needs optimizer adamw"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (self.train_precision in TRAIN_PRECISIONS, f"train_precision must be one of {', '.join(TRAIN_PRECISIONS)}"),
            (self.loihi_finetune_epochs >= 0 and (self.loihi_finetune_epochs == 0 or self.train_precision == "float"),
             "loihi_finetune_epochs must be >= 0, and fine-tunes a float-trained model (train_precision float)"),
            (0 <= self.warmup_epochs < self.epochs, "warmup_epochs must be in [0, epochs)"),
            (self.model in ARCHITECTURES, f"model must be one of {', '.join(ARCHITECTURES)}, got {self.model!r}"),
            (len(self.conv_channels) >= 1 and min(self.conv_channels) >= 1, "conv_channels must be positive"),
            (self.dataset not in NEUROMORPHIC or self.data_dir is not None,
             f"--dataset {self.dataset} is read from your files: give --data-dir DIR"),
            (self.downsample is None or self.downsample >= 1, "downsample must be >= 1"),
            (self.denoise_us is None or self.denoise_us > 0, "denoise_us must be positive"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.lava_engine in ENGINES, f"lava_engine must be one of {', '.join(ENGINES)}"),
            (self.lava_batch_size >= 1, "lava_batch_size must be >= 1"),
            (self.lava_timeout_s > 0, "lava_timeout_s must be positive"),
            (self.lava_samples is None or self.lava_samples >= 1, "lava_samples must be >= 1"),
            (self.lava_chunk_size >= 1, "lava_chunk_size must be >= 1"),
        ]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def resolved_pruner_options(self) -> dict:
        """Every option the pruner uses: its preset (for the dpap family) with ``pruner_options`` over it."""
        from dpap_neuro import pruning

        options = dict(self.pruner_options or {})
        if self.pruner_preset is not None or self.pruner.startswith("dpap"):
            options.setdefault("preset", self.pruner_preset or ("tonic" if self.dataset in NEUROMORPHIC
                                                                 else "builtin"))
        return pruning.resolve_pruner_options(self.pruner, options)

    def model_kwargs(self) -> dict:
        """Everything ``build_model`` needs besides shapes."""
        return dict(architecture=self.model, conv_channels=self.conv_channels, dt_s=self.dt_s,
                    tau_syn_inv_per_s=self.tau_syn_inv_per_s, tau_mem_inv_per_s=self.tau_mem_inv_per_s,
                    v_th=self.v_th, **({} if self.weight_init_gain is None else
                                       {"weight_init_gain": self.weight_init_gain}))

    @property
    def loihi_exact(self) -> bool:
        """Whether the trained model computes as Loihi (trained or fine-tuned Loihi-exact)."""
        return self.train_precision == "loihi" or self.loihi_finetune_epochs > 0

    def sim_options(self, precision: str = "float") -> SimOptions:
        """How this run simulates in Lava."""
        return SimOptions(engine=self.lava_engine, precision=precision, batch_size=self.lava_batch_size,
                          timeout_s=self.lava_timeout_s)


def field_help() -> dict[str, str]:
    """Each RunConfig field's comment: its documentation, and the command line's help text."""
    source = inspect.getsource(RunConfig)
    return dict(re.findall(r"^    (\w+): [^#\n]+#\s*(.+)$", source, re.M))
