"""Surrogate-gradient training through time, with a pruner masking weights as it goes; evaluation.

The optimiser and its schedule are a ``Recipe`` (Adam or AdamW, constant or
cosine learning rate with linear warm-up). After every optimiser step the
pruner takes its one call, ``pruner.step()`` (``dpap_neuro.pruning``), as it
does in a user's own loop.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dpap_neuro.data import batches, sequential_batches
from dpap_neuro.models import is_spiking, predict
from dpap_neuro.pruning import Pruner
from hw_export.errors import UserError
from dpap_neuro.pruning.compaction import compact
from hw_export.norse.compaction import population_sources, restore_shapes, spikes_to_built
from hw_export.norse.layers import forward_macs, named_layers
from hw_export.norse.loop import norse_reference


@dataclass(frozen=True)
class Recipe:
    """How a model is trained (RunConfig's training fields)."""

    epochs: int = 20  # passes over the training split
    batch_size: int = 64  # samples per optimiser step (the global batch under torchrun)
    learning_rate: float = 5e-3  # peak step size
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 0.0  # adamw's decoupled weight decay
    lr_schedule: str = "constant"  # "constant" or "cosine" (to 0 by the last step)
    warmup_epochs: float = 0.0  # linear warm-up from 0, epochs
    seed: int = 0  # batch order

    @classmethod
    def from_config(cls, config) -> "Recipe":
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    Linear warm-up over ``warmup_steps`` (step 0 gets ``1 / warmup_steps``),
    then constant or half a cosine down to 0 at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, recipe: Recipe, steps_per_epoch: int):
    """The optimiser and its per-step learning-rate schedule (``torch.optim.lr_scheduler.LambdaLR``)."""
    if recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    elif recipe.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    else:
        raise UserError(f"optimizer must be adam or adamw, got {recipe.optimizer!r}")
    total, warmup = recipe.epochs * steps_per_epoch, int(round(recipe.warmup_epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, recipe.lr_schedule))
    return optimizer, schedule


@dataclass
class TrainHistory:
    loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    train_accuracy: list[float] = field(default_factory=list)  # 0..1 per epoch
    sparsity: list[float] = field(default_factory=list)  # pruned share of prunable synapses per epoch
    neuron_sparsity: list[float] = field(default_factory=list)  # pruned share of hidden neurons/channels per epoch
    layer_sparsity: list[list[float]] = field(default_factory=list)  # per epoch: pruned share of each prunable layer
    wall_time_s: float = 0.0
    epoch_time_s: list[float] = field(default_factory=list)  # wall time of each epoch, seconds
    epoch_forward_macs: list[float] = field(default_factory=list)  # per epoch: multiply-accumulates of the PyTorch forward passes (every weight entry of the layers as they are, masked or not: dense-equivalent)
    pruning_log: list[dict] = field(default_factory=list)  # the pruner's mask changes (PruningEvent)


@dataclass
class _Run:
    """What one training run carries from epoch to epoch."""

    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper (rebuilt when compaction changes shapes)
    optimizer: torch.optim.Optimizer
    schedule: object
    generator: torch.Generator  # batch order
    steps_per_epoch: int
    device: torch.device
    compact: bool  # remove units as the pruner's masks free them (``compaction.compact``)
    mask_changes: int = -1  # the pruner's ``mask_changes`` when the model was last compacted
    macs_per_sample_step: int = 0  # forward multiply-accumulates of one sample and time step, as the model is now

    def compact_if_changed(self, pruner: Pruner) -> None:
        """After a pruning change, take the units it freed out of the model (and re-wrap it for DDP)."""
        if self.compact and pruner.mask_changes != self.mask_changes:
            self.mask_changes = pruner.mask_changes
            if compact(self.model, self.optimizer):
                self.net = _wrap(self.model, self.device)
                self.macs_per_sample_step = forward_macs(self.model, self.input_shape)

    input_shape: tuple[int, ...] = ()  # one sample per step, as the model's first layer takes it


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model, or under ``torchrun`` its ``DistributedDataParallel`` wrapper (every rank has the same shapes)."""
    from dpap_neuro.distributed import is_distributed

    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def train(model: nn.Module, data, pruner: Pruner, recipe: Recipe, progress: bool = True,
          description: str = "train", device: torch.device | str = "cpu", state_path: str | Path | None = None,
          resume_from: dict | None = None, workers: int = 0, compact: bool = True, warn: bool = True) -> TrainHistory:
    """Train ``model`` on ``data`` with ``recipe``; ``pruner`` masks weights during the run.

    ``data``: an in-memory ``SpikeDataset`` or a streamed split (a torch
    ``Dataset`` of ``(frames [T, ...], label)`` with ``labels``), read by a
    ``DataLoader`` with ``workers`` processes. Loss: cross-entropy of the
    readout voltage's maximum over time, the quantity ``predict`` takes the
    argmax of. The model, batches and the pruner's statistics live on
    ``device``. Data parallel (under ``torchrun``, ``dpap_neuro.distributed``):
    every rank draws the same batch order and takes its share of each global
    batch. ``state_path``: the whole training state is written there after
    every epoch (rank 0); ``resume_from`` (``load_training_state``) continues
    such a run where that epoch ended. ``compact``: units the pruner frees
    leave the model after each pruning change (``dpap_neuro.pruning.compaction``;
    exact, so False gives the same run, masked, only slower). ``warn``:
    print the pruner's ``diagnose`` warnings before the first step.
    """
    from dpap_neuro.distributed import rank

    device = torch.device(device)
    model.to(device)
    steps_per_epoch = (len(data) + recipe.batch_size - 1) // recipe.batch_size
    pruner.attach(model, total_steps=recipe.epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    if warn and rank() == 0 and resume_from is None:
        for warning in getattr(pruner, "diagnose", lambda: [])():
            print(f"warning: {warning}", file=sys.stderr)
    if resume_from is not None:  # a state saved after compaction: the small shapes, before the optimiser holds any
        restore_shapes(named_layers(model), resume_from["model"])
    optimizer, schedule = make_optimizer(model, recipe, steps_per_epoch)
    input_shape = tuple(int(d) for d in data.input_shape)
    run = _Run(model, model, optimizer, schedule, torch.Generator().manual_seed(recipe.seed), steps_per_epoch,
               device, compact, input_shape=input_shape)
    history, first_epoch = TrainHistory(), 0
    if resume_from is not None:
        history, first_epoch = _restore(model, pruner, run, resume_from)
    run.compact_if_changed(pruner)  # a state saved without compaction: its freed units go now
    run.net = _wrap(model, device)  # after a restore, which may have compacted the model
    run.macs_per_sample_step = forward_macs(model, input_shape)
    started = time.perf_counter() - history.wall_time_s
    bar = tqdm(total=recipe.epochs * steps_per_epoch, initial=first_epoch * steps_per_epoch, desc=description,
               disable=not progress or rank() != 0, leave=False, unit="batch")
    model.train()
    for epoch in range(first_epoch, recipe.epochs):
        epoch_started = time.perf_counter()
        _train_epoch(run, data, pruner, recipe.batch_size, device, workers, history, bar)
        history.epoch_time_s.append(time.perf_counter() - epoch_started)
        history.wall_time_s = time.perf_counter() - started
        history.pruning_log = list(getattr(pruner, "pruning_log", []))
        if state_path is not None and rank() == 0:
            save_training_state(state_path, model, run, pruner, history, epoch + 1)
    bar.close()
    history.wall_time_s = time.perf_counter() - started
    return history


def _train_epoch(run: _Run, data, pruner: Pruner, batch_size: int, device, workers: int,
                 history: TrainHistory, bar) -> None:
    """One pass over ``data`` in this epoch's seeded order; appends the epoch's figures to ``history``."""
    from dpap_neuro.distributed import all_reduce_sum, local_share, world_size

    n_samples = len(data)
    order = torch.randperm(n_samples, generator=run.generator)
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, correct predictions
    macs = 0
    global_batches = [order[i * batch_size: (i + 1) * batch_size] for i in range(run.steps_per_epoch)]
    local_batches = [local_share(idx) for idx in global_batches]
    for batch_index, (spikes, labels) in enumerate(batches(data, local_batches, workers)):
        spikes = spikes.to(device, non_blocking=True)  # [T, B_local, ...]
        labels = labels.to(device, non_blocking=True)
        output = run.net(spikes)
        summed = nn.functional.cross_entropy(output.readout_v.max(dim=0).values, labels, reduction="sum")
        # DDP averages gradients over ranks: sum / global batch * world gives the global mean.
        loss = summed * (world_size() / len(global_batches[batch_index]))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.schedule.step()
        # [T, B] steps and global samples of this batch, as the model was for its forward pass
        macs += run.macs_per_sample_step * output.readout_v.shape[0] * len(global_batches[batch_index])
        pruner.step(epoch_end=batch_index == run.steps_per_epoch - 1)
        run.compact_if_changed(pruner)
        totals[0] += summed.detach()
        totals[1] += (predict(output.readout_v.detach()) == labels).sum()
        bar.update(1)
    loss_sum, correct = all_reduce_sum(totals).tolist()  # one host sync per epoch
    history.loss.append(loss_sum / n_samples)
    history.train_accuracy.append(correct / n_samples)
    history.sparsity.append(pruner.sparsity())
    history.neuron_sparsity.append(pruner.neuron_sparsity())
    history.layer_sparsity.append([1.0 - float(m.mean()) for m in pruner.masks()])
    history.epoch_forward_macs.append(float(macs))
    bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}",
                    sparsity=f"{history.sparsity[-1]:.2f}", neurons_pruned=f"{history.neuron_sparsity[-1]:.2f}")


TRAIN_STATE_FORMAT = "dpap-neuro.training-state"


def _cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cpu(v) for v in value]
    return value


def save_training_state(path, model: nn.Module, run: _Run, pruner: Pruner, history: TrainHistory, epoch: int) -> None:
    """The whole training state after ``epoch`` epochs; tensors and plain data (``weights_only`` loads it)."""
    from hw_export.files import atomic_write

    payload = {"format": TRAIN_STATE_FORMAT, "epoch": epoch, "model": _cpu(model.state_dict()),
               "optimizer": _cpu(run.optimizer.state_dict()), "schedule": run.schedule.state_dict(),
               "pruner": _cpu(pruner.state_dict()), "batch_order_rng": run.generator.get_state(),
               "history": dataclasses.asdict(history)}
    atomic_write(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def _restore(model: nn.Module, pruner: Pruner, run: _Run, state: dict) -> tuple[TrainHistory, int]:
    """Load a saved training state into a freshly attached run; returns (history, epochs done)."""
    model.load_state_dict(state["model"])  # shapes restored by ``train`` before the optimiser was made
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    pruner.load_state_dict(state["pruner"])
    run.generator.set_state(state["batch_order_rng"])
    return TrainHistory(**state["history"]), int(state["epoch"])


def load_training_state(path) -> dict:
    """A state written by ``save_training_state``; UserError (one line) for anything else."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds for foreign or damaged files
        raise UserError(f"{path}: not a readable training state") from None
    if not isinstance(payload, dict) or payload.get("format") != TRAIN_STATE_FORMAT:
        raise UserError(f"{path}: not a dpap-neuro training state")
    return payload


def _ann_outputs(model: nn.Module, inputs: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """An ANN twin's logits ``[1, N, C]`` and ReLU activations in float64 (its own forward: rates in, one step)."""
    dtype, training = next(model.parameters()).dtype, model.training
    try:
        output = model.double().eval()(inputs.double())
    finally:
        model.to(dtype).train(training)
    built = [spikes_to_built(a, source) for a, source in
             zip(output.layer_spikes, population_sources(named_layers(model), (nn.ReLU,)))]
    return output.readout_v.numpy(), [a.flatten(2).numpy() for a in built]


class Evaluation(NamedTuple):
    readout_v: torch.Tensor  # [T, N, C] float64
    layer_spikes: list[torch.Tensor]  # per LIF population [T, N, n] bool (flattened per sample)
    predictions: torch.Tensor  # [N]
    accuracy: float  # 0..1


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 256, keep_spikes: bool = True, workers: int = 0) -> Evaluation:
    """The model's Norse reference (``hw_export.norse.norse_reference``, float64) on ``data``, batch by batch.

    Without ``keep_spikes`` (accuracy of a large split) ``layer_spikes`` is
    empty and only the readout is kept.
    """
    readouts, spikes = [], []
    for inputs, _ in batches(data, sequential_batches(len(data), batch_size), workers):
        readout_v, layer_spikes = norse_reference(model, inputs) if is_spiking(model) else _ann_outputs(model, inputs)
        readouts.append(readout_v)
        if keep_spikes:
            spikes.append(layer_spikes)
    readout_v = torch.from_numpy(np.concatenate(readouts, axis=1))
    layer_spikes = [torch.from_numpy(np.concatenate(parts, axis=1)) for parts in zip(*spikes)] if spikes else []
    predictions = predict(readout_v)
    return Evaluation(readout_v, layer_spikes, predictions, float((predictions == data.labels).double().mean()))
