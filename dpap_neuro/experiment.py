"""One training run as a library call: train -> evaluate -> export -> measure, writing nothing unless asked.

``dpap run`` (``dpap_neuro/run.py``) and the benchmarks (``benchmarks/pareto.py``,
``ann_dpap.py``) all train models through ``fit``; ``train_and_measure``
adds the evaluation on the validation and test splits, the export, and the
hardware counts of the Norse model's own spikes (which Lava's float run
reproduces spike for spike), with no Lava run and no file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from dpap_neuro.config import RunConfig
from dpap_neuro.data import NEUROMORPHIC, FrameSettings, load_dataset, n_classes, split_validation
from dpap_neuro.models import build_model, is_spiking
from dpap_neuro.pruning import Pruner, make_pruner
from dpap_neuro.train import Evaluation, Recipe, TrainHistory, evaluate, load_training_state, train
from hw_export.energy import PROFILES
from hw_export.metrics import hidden_sparsity, measure
from hw_export.norse import export_model
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


class Outcome(NamedTuple):
    """A trained model and what was measured of it."""

    model: torch.nn.Module
    history: TrainHistory
    pruner: Pruner
    validation_accuracy: float | None  # None without a validation split
    test: Evaluation  # Norse (float64) on the test split, spikes kept
    net: SparseNet | None  # the export (None for an ANN twin: nothing spikes)
    metrics: dict | None  # hw_export.metrics.measure of the Norse spikes (Loihi and cmos45 energies)


def norse_metrics(net: SparseNet, inputs: np.ndarray, test: Evaluation) -> dict:
    """Counts and energy of the test split from the Norse spikes of the neurons the export kept."""
    spikes = [s.flatten(2)[:, :, torch.from_numpy(layer.kept)].numpy() for s, layer in zip(test.layer_spikes, net.layers)]
    return measure(net, inputs.reshape(*inputs.shape[:2], -1), spikes, PROFILES)


def train_and_measure(config: RunConfig, pruner_name: str, pruner_options: dict, splits: Splits,
                      device="cpu", progress: bool = False) -> Outcome:
    """``fit``, then the validation and test accuracy, the export and its hardware counts; writes nothing."""
    model, history, pruner = fit(config, pruner_name, pruner_options, splits.train, device, progress)
    validation = evaluate(model, splits.validation, keep_spikes=False).accuracy if splits.validation else None
    test = evaluate(model, splits.test, workers=config.workers)
    if not is_spiking(model):
        return Outcome(model, history, pruner, validation, test, None, None)
    net = export_model(model, splits.train.input_shape)
    return Outcome(model, history, pruner, validation, test, net, norse_metrics(net, splits.test.spikes.numpy(), test))


def hidden_kept(net: SparseNet) -> tuple[float, float]:
    """(share of hidden synapses kept, share of hidden neurons kept) of an export, against the trained widths."""
    synapse_sparsity, neuron_sparsity = hidden_sparsity(net)
    return 1.0 - synapse_sparsity, 1.0 - neuron_sparsity
