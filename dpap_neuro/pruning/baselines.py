"""Baseline pruners behind the same interface: random and one-shot global magnitude."""

from __future__ import annotations

from typing import Sequence

import torch

from dpap_neuro.pruning.base import Pruner, check_type
from dpap_neuro.pruning.gmp import global_magnitude_masks
from hw_export.errors import UserError


class RandomPruner(Pruner):
    """Removes a random share of each layer's synapses, once, at ``at_fraction`` of the run.

    ``sparsity``: one share for every prunable layer, or one per layer (for
    matching another method's per-layer sparsity). Seeded, so reproducible.
    """

    name = "random"

    def __init__(self, sparsity: float | Sequence[float] = 0.8, at_fraction: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(sparsity, (list, tuple)):
            sparsity = check_type("random", "sparsity", sparsity, float)
        values = [sparsity] if isinstance(sparsity, (int, float)) else list(sparsity)
        for value in values:
            check_type("random", "sparsity", value, float)
        check_type("random", "at_fraction", at_fraction, float)
        check_type("random", "seed", seed, int)
        if not values or any(not 0.0 <= s < 1.0 for s in values):
            raise UserError(f"sparsity must be in [0, 1), got {sparsity}")
        if not 0.0 <= at_fraction < 1.0:
            raise UserError("at_fraction must be in [0, 1)")
        self.layer_sparsity = values
        self.at_fraction = at_fraction
        self.seed = seed

    def attach(self, model, total_steps, steps_per_epoch=1):
        super().attach(model, total_steps, steps_per_epoch)
        if len(self.layer_sparsity) == 1:
            self.layer_sparsity = self.layer_sparsity * len(self.layers)
        if len(self.layer_sparsity) != len(self.layers):
            raise UserError(f"random: {len(self.layer_sparsity)} sparsities for {len(self.layers)} prunable layers")
        self.prune_step = max(1, int(self.at_fraction * total_steps))
        self.generator = torch.Generator().manual_seed(self.seed)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])

    def compute_mask(self, layer_index, weight, mask, step):
        if step != self.prune_step:
            return mask
        n_total = mask.numel()
        n_prune = int(round(self.layer_sparsity[layer_index] * n_total))
        order = torch.randperm(n_total, generator=self.generator)
        new_mask = torch.ones(n_total, dtype=mask.dtype)
        new_mask[order[:n_prune]] = 0
        return new_mask.view_as(mask).to(mask.device)


class MagnitudePruner(Pruner):
    """Global L1 magnitude pruning, one shot after ``at_epoch`` epochs (0: first step), then kept masked.

    One threshold over all prunable layers: the ``sparsity`` smallest |w| go.
    """

    name = "magnitude"

    def __init__(self, sparsity: float = 0.8, at_epoch: int = 5) -> None:
        super().__init__()
        check_type("magnitude", "sparsity", sparsity, float)
        check_type("magnitude", "at_epoch", at_epoch, int)
        if not 0.0 <= sparsity < 1.0:
            raise UserError(f"sparsity must be in [0, 1), got {sparsity}")
        if at_epoch < 0:
            raise UserError("at_epoch must be >= 0")
        self.target_sparsity = sparsity
        self.at_epoch = at_epoch
        self._global_masks: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, step, epoch_end=False):
        due = (step == 1) if self.at_epoch == 0 else (epoch_end and step // self.steps_per_epoch == self.at_epoch)
        if due:
            self._global_masks = global_magnitude_masks([self.built_weight(i) for i in range(len(self.layers))],
                                                        [self.built_mask(i) for i in range(len(self.layers))],
                                                        self.target_sparsity)
            super().update(step, epoch_end)
            self._global_masks = None

    def compute_mask(self, layer_index, weight, mask, step):
        return mask if self._global_masks is None else self._global_masks[layer_index]
