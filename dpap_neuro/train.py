"""Surrogate-gradient training through time, with a pruner masking weights as it goes."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from dpap_neuro.data import batches, sequential_batches
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
    data,
    pruner: Pruner,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = True,
    description: str = "train",
    device: torch.device | str = "cpu",
    state_path: str | Path | None = None,
    resume_from: dict | None = None,
    workers: int = 0,
) -> TrainHistory:
    """Train ``model`` on ``data`` for ``epochs``; ``pruner`` masks weights during the run.

    ``data``: an in-memory ``SpikeDataset`` or a streamed split (a torch
    ``Dataset`` of ``(frames [T, ...], label)`` with ``labels``), read by a
    ``DataLoader`` with ``workers`` processes.

    Loss: cross-entropy of the readout voltage's maximum over time, the
    quantity ``predict`` takes the argmax of. ``device``: where the model,
    the batches and the pruner's statistics live (the model stays there).

    Data parallel (under ``torchrun``, see ``dpap_neuro.distributed``): every
    rank draws the same batch order, takes its share of each global batch of
    ``batch_size`` and scales its summed loss so that DDP's gradient average
    equals the gradient of the global batch's mean loss, as in one process.

    ``state_path``: after every epoch the whole training state (model with
    masks, optimiser, pruner, batch-order RNG, history) is written there
    atomically by rank 0; ``resume_from`` (``load_training_state``'s result)
    continues such a run exactly where that epoch ended.
    """
    import time

    from dpap_neuro.distributed import all_reduce_sum, is_distributed, local_share, rank, world_size

    device = torch.device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    n_samples = len(data)
    steps_per_epoch = (n_samples + batch_size - 1) // batch_size
    pruner.attach(model, total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    for warning in pruner.diagnose() if rank() == 0 else []:
        print(f"warning: {warning}", file=sys.stderr)
    net = model
    if is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history = TrainHistory()
    first_epoch = 0
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        pruner.load_state_dict(resume_from["pruner"])
        generator.set_state(resume_from["batch_order_rng"])
        history = TrainHistory(**resume_from["history"])
        first_epoch = int(resume_from["epoch"])
    step = first_epoch * steps_per_epoch
    started = time.perf_counter() - history.wall_time_s
    bar = tqdm(total=epochs * steps_per_epoch, initial=step, desc=description,
               disable=not progress or rank() != 0, leave=False, unit="batch")
    model.train()
    for epoch in range(first_epoch, epochs):
        order = torch.randperm(n_samples, generator=generator)
        totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, correct predictions
        global_batches = [order[i * batch_size: (i + 1) * batch_size] for i in range(steps_per_epoch)]
        local_batches = [local_share(idx) for idx in global_batches]
        for batch_index, (spikes, labels) in enumerate(batches(data, local_batches, workers)):
            global_idx = global_batches[batch_index]
            spikes = spikes.to(device, non_blocking=True)  # [T, B_local, ...]
            labels = labels.to(device, non_blocking=True)
            output = net(spikes)
            summed = nn.functional.cross_entropy(output.readout_v.max(dim=0).values, labels, reduction="sum")
            # DDP averages gradients over ranks: sum / global batch * world gives the global mean.
            loss = summed * (world_size() / len(global_idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            pruner.step(epoch_end=batch_index == steps_per_epoch - 1)
            totals[0] += summed.detach()
            totals[1] += (predict(output.readout_v.detach()) == labels).sum()
            bar.update(1)
        loss_sum, correct = all_reduce_sum(totals).tolist()  # one host sync per epoch
        history.loss.append(loss_sum / n_samples)
        history.train_accuracy.append(correct / n_samples)
        history.sparsity.append(pruner.sparsity())
        history.neuron_sparsity.append(pruner.neuron_sparsity())
        history.layer_sparsity.append([1.0 - float(m.mean()) for m in pruner.masks()])
        history.wall_time_s = time.perf_counter() - started
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.train_accuracy[-1]:.3f}",
                        sparsity=f"{history.sparsity[-1]:.2f}", neurons_pruned=f"{history.neuron_sparsity[-1]:.2f}")
        if state_path is not None and rank() == 0:
            save_training_state(state_path, model, optimizer, pruner, generator, history, epoch + 1)
    bar.close()
    history.wall_time_s = time.perf_counter() - started
    return history


TRAIN_STATE_FORMAT = "dpap-neuro.training-state"


def save_training_state(path, model, optimizer, pruner, generator, history: TrainHistory, epoch: int) -> None:
    """The whole training state after ``epoch`` epochs; tensors and plain data (``weights_only`` loads it)."""
    from hw_export.files import atomic_write

    def cpu(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu()
        if isinstance(value, dict):
            return {k: cpu(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [cpu(v) for v in value]
        return value

    payload = {"format": TRAIN_STATE_FORMAT, "epoch": epoch, "model": cpu(model.state_dict()),
               "optimizer": cpu(optimizer.state_dict()), "pruner": cpu(pruner.state_dict()),
               "batch_order_rng": generator.get_state(), "history": dataclasses.asdict(history)}
    atomic_write(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def load_training_state(path) -> dict:
    """A state written by ``save_training_state``; ValueError (one line) for anything else."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds for foreign or damaged files
        raise ValueError(f"{path}: not a readable training state") from None
    if not isinstance(payload, dict) or payload.get("format") != TRAIN_STATE_FORMAT:
        raise ValueError(f"{path}: not a dpap-neuro training state")
    return payload


class Evaluation(NamedTuple):
    readout_v: torch.Tensor  # [T, N, C] float64
    layer_spikes: list[torch.Tensor]  # per LIF population [T, N, n] bool
    predictions: torch.Tensor  # [N]
    accuracy: float  # 0..1


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 256, keep_spikes: bool = True, workers: int = 0) -> Evaluation:
    """Run ``model`` on ``data`` (in memory or streamed) in float64.

    Float64 is the reference precision for the Norse-vs-Lava comparison:
    Lava's float models compute in float64, so evaluating in float32 would
    let rounding (not the network) decide spikes that sit at threshold.
    The model is returned to its original dtype afterwards. Without
    ``keep_spikes`` (accuracy of a large split), ``layer_spikes`` is empty
    and only the readout is kept.
    """
    dtype = next(model.parameters()).dtype
    model.eval()
    model.double()
    try:
        readouts, spikes = [], None
        for inputs, _ in batches(data, sequential_batches(len(data), batch_size), workers):
            out = model(inputs.double())
            readouts.append(out.readout_v)
            if keep_spikes:
                layer = [s.bool() for s in out.layer_spikes]
                spikes = layer if spikes is None else [torch.cat([a, b], dim=1) for a, b in zip(spikes, layer)]
        readout_v = torch.cat(readouts, dim=1)
    finally:
        model.to(dtype)
    predictions = predict(readout_v)
    accuracy = float((predictions == data.labels).double().mean())
    return Evaluation(readout_v, spikes or [], predictions, accuracy)
