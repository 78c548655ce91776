"""The pruning interface shared by DPAP and the baselines.

Masks follow ``torch.nn.utils.prune``'s reparametrisation: each prunable layer
gets ``weight_orig`` (the trained parameter, identity kept) and a
``weight_mask`` buffer, and ``weight = weight_orig * weight_mask`` is
recomputed before every forward. So masked entries get zero gradient and stay
zero in the effective weight, and there is no separate fine-tuning phase:
masks change *during* the one training run.

A pruner is a strategy object. In your own loop: ``pruner.attach(model,
total_steps, steps_per_epoch)`` once, then ``pruner.step()`` after every
``optimizer.step()``. ``dpap_neuro.train`` calls, in this order:

* ``attach(model, total_steps, steps_per_epoch)`` once, before training;
* ``observe(inputs, output)`` after each training forward pass (DPAP gathers
  its spike statistics here; baselines ignore it);
* ``update(step, epoch_end)`` after each optimiser step; it asks
  ``compute_mask`` for a new mask per layer and applies it. Pruning is
  permanent: a new mask can only remove synapses (it is multiplied into the
  current one).

Only hidden layers are pruned (all synaptic layers but the one that feeds the
readout): the output layer stays dense, as in DPAP.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import prune

from dpap_neuro.models import SNNOutput, weight_layers


def check_type(owner: str, name: str, value, kind: type):
    """``value`` if it is of ``kind`` (float: a finite int or float; never a bool for numbers), else ValueError.

    Pruner options come from the command line as JSON values, so "abc" or
    "high" must be refused before training, with the option's name.
    """
    import math

    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        wanted = "a finite number"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        wanted = "an integer"
    else:
        ok = isinstance(value, kind)
        wanted = {bool: "true or false", str: "a string"}.get(kind, kind.__name__)
    if not ok:
        raise ValueError(f"{owner}: option {name} must be {wanted}, got {value!r}")
    return value


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """Synaptic layers a pruner may mask: every one but the readout's."""
    return weight_layers(model)[:-1]


def ensure_mask(layer: nn.Module) -> None:
    """Give ``layer`` the ``weight_orig`` / ``weight_mask`` reparametrisation."""
    if not prune.is_pruned(layer):
        prune.identity(layer, "weight")


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """``weight_orig * weight_mask`` if masked, else ``weight`` (never stale)."""
    if hasattr(layer, "weight_mask"):
        return layer.weight_orig * layer.weight_mask
    return layer.weight


class Pruner:
    """Base strategy: keeps every synapse (the ``none`` pruner)."""

    name: ClassVar[str] = "none"

    def __init__(self) -> None:
        self.layers: list[nn.Module] = []
        self.total_steps = 0
        self.steps_per_epoch = 1
        self.steps_taken = 0

    def attach(self, model: nn.Module, total_steps: int, steps_per_epoch: int = 1) -> None:
        if total_steps < 1 or steps_per_epoch < 1:
            raise ValueError("total_steps and steps_per_epoch must be >= 1")
        self.layers = prunable_layers(model)
        for layer in self.layers:
            ensure_mask(layer)
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.steps_taken = 0  # optimiser steps counted by ``step``

    def observe(self, inputs: torch.Tensor | None = None, output: SNNOutput | None = None) -> None:
        """Statistics from a training forward pass; no-op for most pruners."""

    def step(self, epoch_end: bool | None = None) -> None:
        """For your own training loop: call once after each ``optimizer.step()``.

        Counts optimiser steps itself, gathers what the batch's forward pass
        recorded (``observe``) and applies the masks' schedule (``update``).
        ``epoch_end`` defaults to every ``steps_per_epoch`` steps.
        """
        self.steps_taken += 1
        self.observe()
        if epoch_end is None:
            epoch_end = self.steps_taken % self.steps_per_epoch == 0
        self.update(self.steps_taken, epoch_end=epoch_end)

    def compute_mask(
        self, layer_index: int, weight: torch.Tensor, mask: torch.Tensor, step: int
    ) -> torch.Tensor:
        """New mask for one layer (1 keeps a synapse). Default: unchanged."""
        return mask

    @torch.no_grad()
    def update(self, step: int, epoch_end: bool = False) -> None:
        """Apply ``compute_mask`` to every prunable layer (after optimiser step ``step``)."""
        for index, layer in enumerate(self.layers):
            new_mask = self.compute_mask(index, layer.weight_orig, layer.weight_mask, step)
            if new_mask is not layer.weight_mask:  # unchanged masks cost nothing
                layer.weight_mask.mul_(new_mask.to(layer.weight_mask.dtype))

    def state_dict(self) -> dict:
        """What a resumed run needs to continue exactly (tensors and plain data; masks live in the model)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s result, after ``attach``."""

    def masks(self) -> list[torch.Tensor]:
        return [layer.weight_mask.detach().clone() for layer in self.layers]

    def neuron_sparsity(self) -> float:
        """Fraction of the prunable layers' output units (neurons, channels) with no input left."""
        total = dead = 0
        for layer in self.layers:
            rows = layer.weight_mask.flatten(1).sum(dim=1)
            total += rows.numel()
            dead += int((rows == 0).sum())
        return dead / total if total else 0.0

    def sparsity(self) -> float:
        """Fraction of prunable synapses removed so far (0..1)."""
        total = sum(layer.weight_mask.numel() for layer in self.layers)
        kept = sum(int(layer.weight_mask.sum()) for layer in self.layers)
        return 1.0 - kept / total if total else 0.0
