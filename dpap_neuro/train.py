"""Surrogate-gradient training through time, with a pruner masking weights as it goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from dpap_neuro.data import SpikeDataset
from dpap_neuro.models import predict
from dpap_neuro.pruning import Pruner


@dataclass
class TrainHistory:
    loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    train_accuracy: list[float] = field(default_factory=list)  # 0..1 per epoch
    sparsity: list[float] = field(default_factory=list)  # pruned share of prunable synapses per epoch
    neuron_sparsity: list[float] = field(default_factory=list)  # pruned share of hidden neurons/channels per epoch
    layer_sparsity: list[list[float]] = field(default_factory=list)  # per epoch: pruned share of each prunable layer
    wall_time_s: float = 0.0


def train(
    model: nn.Module,
    data: SpikeDataset,
    pruner: Pruner,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = True,
    description: str = "train",
) -> TrainHistory:
    """Train ``model`` on ``data`` for ``epochs``; ``pruner`` masks weights during the run.

    Loss: cross-entropy of the readout voltage's maximum over time, the
    quantity ``predict`` takes the argmax of.
    """
    import time

    generator = torch.Generator().manual_seed(seed)
    n_samples = len(data)
    steps_per_epoch = (n_samples + batch_size - 1) // batch_size
    pruner.attach(model, total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history = TrainHistory()
    step = 0
    started = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, desc=description, disable=not progress, leave=False, unit="batch")
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n_samples, generator=generator)
        loss_sum, correct = 0.0, 0
        for batch_index in range(steps_per_epoch):
            idx = order[batch_index * batch_size : (batch_index + 1) * batch_size]
            spikes = data.spikes[:, idx]  # [T, B, ...]
            labels = data.labels[idx]
            output = model(spikes)
            loss = nn.functional.cross_entropy(output.readout_v.max(dim=0).values, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            pruner.observe(spikes, output)
            pruner.update(step, epoch_end=batch_index == steps_per_epoch - 1)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((predict(output.readout_v.detach()) == labels).sum())
            bar.update(1)
        history.loss.append(loss_sum / n_samples)
        history.train_accuracy.append(correct / n_samples)
        history.sparsity.append(pruner.sparsity())
        history.neuron_sparsity.append(pruner.neuron_sparsity())
        history.layer_sparsity.append([1.0 - float(m.mean()) for m in pruner.masks()])
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}",
                        sparsity=f"{history.sparsity[-1]:.2f}", neurons_pruned=f"{history.neuron_sparsity[-1]:.2f}")
    bar.close()
    history.wall_time_s = time.perf_counter() - started
    return history


class Evaluation(NamedTuple):
    readout_v: torch.Tensor  # [T, N, C] float64
    layer_spikes: list[torch.Tensor]  # per LIF population [T, N, n] bool
    predictions: torch.Tensor  # [N]
    accuracy: float  # 0..1


@torch.no_grad()
def evaluate(model: nn.Module, data: SpikeDataset, batch_size: int = 256) -> Evaluation:
    """Run ``model`` on ``data`` in float64 and keep every spike.

    Float64 is the reference precision for the Norse-vs-Lava comparison:
    Lava's float models compute in float64, so evaluating in float32 would
    let rounding (not the network) decide spikes that sit at threshold.
    The model is returned to its original dtype afterwards.
    """
    dtype = next(model.parameters()).dtype
    model.eval()
    model.double()
    try:
        readouts, spikes = [], None
        for start in range(0, len(data), batch_size):
            out = model(data.spikes[:, start : start + batch_size].double())
            readouts.append(out.readout_v)
            layer = [s.bool() for s in out.layer_spikes]
            spikes = layer if spikes is None else [torch.cat([a, b], dim=1) for a, b in zip(spikes, layer)]
        readout_v = torch.cat(readouts, dim=1)
    finally:
        model.to(dtype)
    predictions = predict(readout_v)
    accuracy = float((predictions == data.labels).double().mean())
    return Evaluation(readout_v, spikes or [], predictions, accuracy)
