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
from dpap_neuro.models import ARCHITECTURES, RECURRENT_MODELS
from hw_export.errors import UserError
from hw_export.lava_sim import ENGINES, SimOptions

OPTIMIZERS = ("adam", "adamw")
TRAIN_PRECISIONS = ("float", "loihi")
LR_SCHEDULES = ("constant", "cosine")
# The values each number field allows (every entry of a tuple field; None passes where the field may be None),
# in one table that RunConfig checks and the command line checks option by option, so the two cannot disagree.
# Spellings: ">= 1", "> 0", "in [0, 1)" (brackets include the bound, parentheses exclude it).
RANGES = {
    "timesteps": ">= 1", "downsample": ">= 1", "denoise_us": "> 0", "workers": ">= 0",
    "test_fraction": "in (0, 1)", "val_fraction": "in [0, 1)", "conv_channels": ">= 1", "hidden_sizes": ">= 1",
    "dt_s": "> 0", "tau_syn_inv_per_s": "> 0", "tau_mem_inv_per_s": "> 0", "v_th": "> 0", "weight_init_gain": "> 0",
    "epochs": ">= 1", "batch_size": ">= 1", "learning_rate": "> 0", "weight_decay": ">= 0", "warmup_epochs": ">= 0",
    "loihi_finetune_epochs": ">= 0", "seed": ">= 0", "lava_batch_size": ">= 1", "lava_timeout_s": "> 0",
    "lava_samples": ">= 1", "lava_chunk_size": ">= 1", "lava_workers": ">= 1", "lava_check_samples": ">= 0",
}


def in_range(value: float, allowed: str) -> bool:
    """Whether ``value`` is one of the values ``allowed`` (a RANGES entry) admits; NaN never is."""
    if allowed.startswith("in "):
        low, high = (float(bound) for bound in allowed[4:-1].split(","))
        above = low <= value if allowed[3] == "[" else low < value
        return above and (value <= high if allowed[-1] == "]" else value < high)
    relation, bound = allowed.split()
    return value >= float(bound) if relation == ">=" else value > float(bound)


def range_problem(name: str, value) -> str | None:
    """What is wrong with ``value`` for the field ``name`` by RANGES (None: nothing)."""
    allowed = RANGES.get(name)
    several = isinstance(value, (tuple, list))
    values = tuple(value) if several else () if value is None else (value,)
    if allowed is None or (values and all(in_range(v, allowed) for v in values)) or value is None:
        return None
    return f"{name} must be {'one or more values, each ' if several else ''}{allowed}, got {value}"


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
    portable_kernels: bool = False  # pin the CPU kernels of PyTorch, MKL and numpy's OpenBLAS (portable code paths, one thread) so that the same run gives the same report.json on any x86 CPU; about 1.9x the training time (docs/demo.md); off: each library picks its fastest code for this machine, and the numbers move between CPUs
    # --- pruning ----------------------------------------------------------
    pruner: str = "dpap"  # pruning method of the pruned model (the dense model is always trained too)
    pruner_preset: str | None = None  # named defaults of the dpap family (authors, builtin, tonic); None: builtin for the built-in data, tonic for tonic datasets
    compact: bool = True  # remove pruned neurons and conv channels from the PyTorch model during training, so later steps are smaller (exact: docs/DESIGN.md, section 4.1); --no-compact keeps them, masked (the reference)
    pruner_options: dict | None = None  # options of the pruner over its preset, e.g. fc_neuron_c=1.5 for dpap or target_sparsity=0.9 for gmp
    # --- hardware side ----------------------------------------------------
    lava_engine: str = "fast"  # Lava engine: fast (one Lava process steps the whole network, cost follows the spikes) or processes (Lava's own Sparse and LIF per layer, what maps to Loihi; slow)
    lava_batch_size: int | None = None  # test samples simulated at once in one Lava runtime; None: the engine's (processes 128; fast as many as fit in 2 GiB)
    lava_timeout_s: float = 3600.0  # wall-clock limit of each Lava simulation (one chunk, one precision), seconds
    lava_samples: int | None = None  # simulate a seeded subset of this many test samples in Lava; None: all
    lava_chunk_size: int = 512  # test samples per Lava subprocess (the test set is streamed through Lava in chunks)
    lava_workers: int = 1  # Lava subprocesses running at once (chunks in parallel, one core each); each holds one chunk: its inputs and spikes, and with the fast engine at most 2 GiB per Lava run
    lava_check_samples: int = 16  # seeded test samples simulated by both engines to check the fast one against Lava's per-layer processes (report: engine_check); 0: no check
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
        ranges = [(False, problem) for problem in (range_problem(name, getattr(self, name)) for name in RANGES)
                  if problem is not None]
        return ranges + [  # what one field's range cannot say
            (self.dt_s * self.tau_syn_inv_per_s <= 1 and self.dt_s * self.tau_mem_inv_per_s <= 1,
             "dt_s * tau_inv must be <= 1 for a stable Euler step"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.weight_decay == 0 or self.optimizer == "adamw", "weight_decay needs optimizer adamw"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (self.train_precision in TRAIN_PRECISIONS, f"train_precision must be one of {', '.join(TRAIN_PRECISIONS)}"),
            (self.loihi_finetune_epochs == 0 or self.train_precision == "float",
             "loihi_finetune_epochs fine-tunes a float-trained model (train_precision float)"),
            (self.warmup_epochs < self.epochs, "warmup_epochs must be in [0, epochs)"),
            (self.model in ARCHITECTURES, f"model must be one of {', '.join(ARCHITECTURES)}, got {self.model!r}"),
            (self.dataset not in NEUROMORPHIC or self.data_dir is not None,
             f"--dataset {self.dataset} is read from your files: give --data-dir DIR"),
            (self.lava_engine in ENGINES, f"lava_engine must be one of {', '.join(ENGINES)}"),
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

        takes_presets = issubclass(pruning.PRUNERS.get(self.pruner, pruning.Pruner), pruning.DPAPPruner)
        if self.pruner_preset is not None and not takes_presets:
            raise UserError(f"--pruner-preset is for the dpap family (dpap, dpap+), not {self.pruner}")
        options = dict(self.pruner_options or {})
        if takes_presets:
            default = ("tonic" if self.dataset in NEUROMORPHIC else "builtin") + (
                "-recurrent" if self.model in RECURRENT_MODELS else "")
            options.setdefault("preset", self.pruner_preset or default)
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
