"""One training run as a library call: the splits and ``fit``, writing nothing unless asked.

``dpap run`` (``dpap_neuro/run.py``), ``dpap tune``'s trials
(``dpap_neuro/tune.py``: ``run_trial`` adds the evaluation on the validation
split, and on the test split for the benchmarks, the export, and the hardware
counts of the Norse model's own spikes, which Lava's float run reproduces
spike for spike) and the benchmarks all train models through ``fit``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch

from dpap_neuro.config import RunConfig
from dpap_neuro.data import NEUROMORPHIC, FrameSettings, load_dataset, n_classes, split_validation
from dpap_neuro.models import build_model
from dpap_neuro.pruning import Pruner, make_pruner
from dpap_neuro.train import Recipe, TrainHistory, load_training_state, train
from hw_export.metrics import hidden_sparsity
from hw_export.norse.loihi import loihi_exact
from hw_export.sparsenet import SparseNet


class Splits(NamedTuple):
    train: object  # SpikeDataset (in memory) or a streamed torch Dataset
    validation: object | None  # held out of the training split (val_fraction), or None
    test: object


def load_splits(config: RunConfig, train: bool = True) -> Splits:
    """The run's splits: built-in data in memory, or a tonic dataset's official splits, streamed; validation
    carved out of the training split (stratified, seeded). Missing files: one line, before anything is written.
    ``train=False``: the test split alone (train and validation None), for simulating a trained network."""
    if config.dataset in NEUROMORPHIC:
        from dpap_neuro.data.neuromorphic import default_cache_dir, load_neuromorphic

        cache = (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.cache else None
        settings = FrameSettings(config.timesteps, config.downsample, config.denoise_us)
        train_data, test_data = load_neuromorphic(config.dataset, config.data_dir, settings, cache)
    else:
        train_data, test_data = load_dataset(config.dataset, config.timesteps, config.seed, config.test_fraction,
                                             train=train)
    if not train:
        return Splits(None, None, test_data)
    train_data, validation = split_validation(train_data, config.val_fraction, config.seed)
    return Splits(train_data, validation, test_data)


def pruner_warnings(config: RunConfig, pruner_name: str, pruner_options: dict, train_data) -> list[str]:
    """The pruner's one-line warnings about this run (``Pruner.diagnose``: a rule that can never prune in a run
    this long, ...), from the run's model and length, without training: say them before any training starts."""
    model = build_model(train_data.input_shape, config.hidden_sizes, n_classes(config.dataset), **config.model_kwargs())
    pruner = make_pruner(pruner_name, **pruner_options)
    steps_per_epoch = (len(train_data) + config.batch_size - 1) // config.batch_size
    pruner.attach(model, total_steps=config.epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    return pruner.diagnose()


def fit(config: RunConfig, pruner_name: str, pruner_options: dict, train_data, device="cpu", progress: bool = False,
        description: str = "train", state_path: Path | None = None,
        resume: bool = False, warn: bool = True) -> tuple[torch.nn.Module, TrainHistory, Pruner]:
    """Build the run's model (seeded: every model of a run starts from the same weights) and train it.

    ``state_path``: the training state is saved there after every epoch;
    ``resume`` continues from it when it exists. ``warn``: print the pruner's
    warnings when training starts (False: the caller said them already,
    ``pruner_warnings``). The model ends on the CPU.
    """
    torch.manual_seed(config.seed)
    model = build_model(train_data.input_shape, config.hidden_sizes, n_classes(config.dataset),
                        **config.model_kwargs())
    if config.train_precision == "loihi":
        loihi_exact(model)
    pruner = make_pruner(pruner_name, **pruner_options)
    common = dict(progress=progress, device=device, workers=config.workers, compact=config.compact)
    history = train(model, train_data, pruner, Recipe.from_config(config), description=description,
                    state_path=state_path, resume_from=_saved_state(state_path, resume), warn=warn, **common)
    if config.loihi_finetune_epochs:
        loihi_exact(model)
        path = None if state_path is None else state_path.with_suffix(".finetune.pt")
        tuned = train(model, train_data, Pruner(), finetune_recipe(config), description=f"{description} (Loihi)",
                      state_path=path, resume_from=_saved_state(path, resume), **common)
        history = _joined(history, tuned)
    return model.cpu(), history, pruner


def finetune_recipe(config: RunConfig) -> Recipe:
    """Loihi-exact fine-tuning: ``loihi_finetune_epochs`` at a tenth of the learning rate, cosine down to 0."""
    return replace(Recipe.from_config(config), epochs=config.loihi_finetune_epochs,
                   learning_rate=config.learning_rate / 10, lr_schedule="cosine", warmup_epochs=0.0)


def _saved_state(path: Path | None, resume: bool) -> dict | None:
    return load_training_state(path) if resume and path is not None and path.is_file() else None


def _joined(first: TrainHistory, then: TrainHistory) -> TrainHistory:
    """One history of two phases (float training, then Loihi-exact fine-tuning): epochs in order, times added."""
    joined = TrainHistory(**{key: list(value) for key, value in vars(first).items() if isinstance(value, list)},
                          wall_time_s=first.wall_time_s + then.wall_time_s)
    for key in ("loss", "train_accuracy", "sparsity", "neuron_sparsity", "layer_sparsity", "epoch_time_s",
                "epoch_forward_macs"):
        getattr(joined, key).extend(getattr(then, key))
    return joined


def hidden_kept(net: SparseNet) -> tuple[float, float]:
    """(share of hidden synapses kept, share of hidden neurons kept) of an export, against the trained widths."""
    synapse_sparsity, neuron_sparsity = hidden_sparsity(net)
    return 1.0 - synapse_sparsity, 1.0 - neuron_sparsity
