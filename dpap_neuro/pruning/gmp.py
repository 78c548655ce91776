"""Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune", 2017).

The target sparsity follows their cubic schedule

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * dt))^3,   t_0 <= t <= t_0 + n * dt

and every ``dt`` steps the largest-magnitude surviving weights stay. Steps
are optimiser steps; ``t_0`` and the end are given as fractions of the run so
one config works for any run length.

How the target is spread over the layers is ``allocation`` (``ALLOCATIONS``):
``uniform``, Zhu & Gupta's, prunes every hidden layer to the same share;
``first-dense`` leaves the first hidden layer unpruned and prunes the others
to the target (a small first layer, such as a conv net's 2 x 16 x 3 x 3
kernels, loses whole input channels otherwise; a common practice in the
sparsity literature); ``global`` ranks the magnitudes of every hidden layer
together, one threshold for the whole network (as ``magnitude``, and as
Frankle & Carbin's lottery-ticket conv nets), so the target is the network's
share and each layer's follows from its weights.
"""

from __future__ import annotations

import torch

from dpap_neuro.pruning.base import Pruner, SynapseView, alive_inputs, check_type, units_alive
from hw_export.errors import UserError

ALLOCATIONS = ("uniform", "first-dense", "global")  # how gmp spreads its target over the hidden layers


def cubic_sparsity(step: int, start_step: int, end_step: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta's target sparsity at ``step`` (0..1)."""
    if step <= start_step:
        return initial
    if step >= end_step:
        return final
    remaining = 1.0 - (step - start_step) / (end_step - start_step)
    return final + (initial - final) * remaining**3


def magnitude_mask(weight: torch.Tensor, mask: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``1 - sparsity`` largest |weight| among the unmasked entries of a layer.

    Already-masked entries count as pruned, so the mask only ever shrinks.
    """
    n_total = weight.numel()
    n_keep = n_total - int(round(sparsity * n_total))
    scores = (weight.abs() * mask).flatten()
    scores[mask.flatten() == 0] = -1.0  # pruned entries can never win back a place
    new_mask = torch.zeros(n_total, dtype=mask.dtype, device=mask.device)
    if n_keep > 0:
        new_mask[torch.topk(scores, n_keep).indices] = 1.0
    return new_mask.view_as(mask) * mask


def global_magnitude_masks(weights: list[torch.Tensor], masks: list[torch.Tensor],
                           sparsity: float) -> list[torch.Tensor]:
    """Masks keeping the ``1 - sparsity`` largest |weight| of all layers together, among their unmasked entries.

    Exactly ``round(sparsity * total)`` entries go (masked ones first, then
    the smallest live ones; ties by position, a stable sort, where a
    threshold would take every weight tied with it); masks only shrink.
    """
    scores = torch.cat([torch.where(m != 0, w.abs(), torch.full_like(w, -1.0)).flatten()
                        for w, m in zip(weights, masks)])
    keep = torch.ones_like(scores)
    n_prune = int(round(sparsity * scores.numel()))
    if n_prune:
        keep[torch.argsort(scores, stable=True)[:n_prune]] = 0
    return [part.view_as(m).to(m.dtype) * m for part, m in zip(keep.split([m.numel() for m in masks]), masks)]


class GMPPruner(Pruner):
    """Gradual magnitude pruning to ``target_sparsity``, spread over the layers by ``allocation``."""

    name = "gmp"

    def __init__(
        self,
        target_sparsity: float = 0.8,
        start_fraction: float = 0.1,
        end_fraction: float = 0.7,
        update_every_steps: int = 10,
        allocation: str = "uniform",
    ) -> None:
        super().__init__()
        for name, kind in (("target_sparsity", float), ("start_fraction", float), ("end_fraction", float),
                           ("update_every_steps", int), ("allocation", str)):
            check_type(self.name, name, locals()[name], kind)
        if not 0.0 <= target_sparsity < 1.0:
            raise UserError(f"target_sparsity must be in [0, 1), got {target_sparsity}")
        if not 0.0 <= start_fraction < end_fraction <= 1.0:
            raise UserError("need 0 <= start_fraction < end_fraction <= 1")
        if update_every_steps < 1:
            raise UserError("update_every_steps must be >= 1")
        if allocation not in ALLOCATIONS:
            raise UserError(f"{self.name}: allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
        self.allocation = allocation
        self._global_masks: list[torch.Tensor] | None = None  # this update's masks, under allocation "global"
        self.target_sparsity = target_sparsity
        self.start_fraction = start_fraction
        self.end_fraction = end_fraction
        self.update_every_steps = update_every_steps

    def target_at(self, step: int) -> float:
        start = int(self.start_fraction * self.total_steps)
        end = max(start + 1, int(self.end_fraction * self.total_steps))
        return cubic_sparsity(step, start, end, self.target_sparsity)

    def due(self, step: int) -> bool:
        """Whether the masks are updated after optimiser step ``step`` (every ``update_every_steps``, and the last)."""
        return step % self.update_every_steps == 0 or step >= self.total_steps

    @torch.no_grad()
    def update(self, step: int, epoch_end: bool = False) -> None:
        if self.allocation == "global" and self.due(step):  # one ranking over every layer, then each its part
            self._global_masks = global_magnitude_masks([self.built_weight(i) for i in range(len(self.layers))],
                                                        [self.built_mask(i) for i in range(len(self.layers))],
                                                        self.target_at(step))
        try:
            super().update(step, epoch_end)
        finally:
            self._global_masks = None

    def compute_mask(self, layer_index, weight, mask, step):
        if not self.due(step) or (self.allocation == "first-dense" and layer_index == 0):
            return mask
        if self._global_masks is not None:
            return self._global_masks[layer_index]
        return magnitude_mask(weight, mask, self.target_at(step))


class StructuredPruner(GMPPruner):
    """Structured magnitude pruning: whole neurons / conv channels with the smallest L1 weight norm.

    A recurrent layer's neuron is judged by the norm of its input and
    recurrent weights together and leaves with both rows, its column of the
    recurrent weights and its column of the next layer.

    The baseline that removes what DPAP's neuron and channel rules remove, by
    magnitude alone. Each prunable layer loses ``target_sparsity`` of its
    output units (rows of a ``Linear``, output channels of a ``Conv2d``) on
    GMP's cubic schedule, chosen by ``torch.nn.utils.prune.LnStructured``
    (L1 norm of each unit's surviving incoming weights); the next prunable
    layer loses the synapses from removed units as well, so the export drops
    them as dead neurons.
    """

    name = "structured"

    def __init__(self, target_sparsity: float = 0.8, start_fraction: float = 0.1, end_fraction: float = 0.7,
                 update_every_steps: int = 10) -> None:  # gmp's options but its allocation: every layer alike
        super().__init__(target_sparsity, start_fraction, end_fraction, update_every_steps)
        self._recurrent_part = None  # a recurrent cell's recurrent rows, decided with its input weights

    def compute_mask(self, layer_index, weight, mask, step):
        from torch.nn.utils import prune

        layer = self.layers[layer_index]
        if isinstance(layer, SynapseView) and layer.is_recurrent:  # rows decided with the input part, just before
            joined = self._recurrent_part if self._recurrent_part is not None else mask
            self._recurrent_part = None
            alive = units_alive(torch.cat([self.built_mask(layer_index - 1), joined], dim=1))
            return mask * joined * alive[:, None] * alive[None, :]  # a removed unit's column goes as well
        if layer_index > 0:
            # Units removed in the previous layer take their outgoing synapses with them.
            previous = self.population_alive(layer_index - 1)
            mask = mask * alive_inputs(previous, weight.shape).to(mask.dtype)
        recurrent = isinstance(layer, SynapseView)  # a recurrent cell's input weights: a unit's row is both parts
        if recurrent:
            n_in = weight.shape[1]
            weight = torch.cat([weight, self.built_weight(layer_index + 1)], dim=1)
            mask = torch.cat([mask, self.built_mask(layer_index + 1)], dim=1)
        if self.due(step):
            n_prune = int(round(self.target_at(step) * weight.shape[0]))
            if n_prune:  # pruned units have norm 0, so they are among the n_prune smallest: the mask only shrinks
                mask = prune.LnStructured(amount=n_prune, n=1, dim=0).compute_mask(weight * mask, mask)
        if recurrent:
            self._recurrent_part, mask = mask[:, n_in:], mask[:, :n_in]
        return mask
