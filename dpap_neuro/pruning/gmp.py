"""Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune", 2017).

The target sparsity follows their cubic schedule

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * dt))^3,   t_0 <= t <= t_0 + n * dt

and every ``dt`` steps each layer keeps its largest-magnitude surviving
weights. Steps are optimiser steps; ``t_0`` and the end are given as
fractions of the run so one config works for any run length.
"""

from __future__ import annotations

import torch

from dpap_neuro.pruning.base import Pruner, alive_inputs, check_type, units_alive
from hw_export.errors import UserError


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


class GMPPruner(Pruner):
    """Layer-wise gradual magnitude pruning to ``target_sparsity``."""

    name = "gmp"

    def __init__(
        self,
        target_sparsity: float = 0.8,
        start_fraction: float = 0.1,
        end_fraction: float = 0.7,
        update_every_steps: int = 10,
    ) -> None:
        super().__init__()
        for name, kind in (("target_sparsity", float), ("start_fraction", float), ("end_fraction", float),
                           ("update_every_steps", int)):
            check_type("gmp", name, locals()[name], kind)
        if not 0.0 <= target_sparsity < 1.0:
            raise UserError(f"target_sparsity must be in [0, 1), got {target_sparsity}")
        if not 0.0 <= start_fraction < end_fraction <= 1.0:
            raise UserError("need 0 <= start_fraction < end_fraction <= 1")
        if update_every_steps < 1:
            raise UserError("update_every_steps must be >= 1")
        self.target_sparsity = target_sparsity
        self.start_fraction = start_fraction
        self.end_fraction = end_fraction
        self.update_every_steps = update_every_steps

    def target_at(self, step: int) -> float:
        start = int(self.start_fraction * self.total_steps)
        end = max(start + 1, int(self.end_fraction * self.total_steps))
        return cubic_sparsity(step, start, end, self.target_sparsity)

    def compute_mask(self, layer_index, weight, mask, step):
        is_last_step = step >= self.total_steps
        if step % self.update_every_steps and not is_last_step:
            return mask
        return magnitude_mask(weight, mask, self.target_at(step))


class StructuredPruner(GMPPruner):
    """Structured magnitude pruning: whole neurons / conv channels with the smallest L1 weight norm.

    The baseline that removes what DPAP's neuron and channel rules remove, by
    magnitude alone. Each prunable layer loses ``target_sparsity`` of its
    output units (rows of a ``Linear``, output channels of a ``Conv2d``) on
    GMP's cubic schedule, chosen by ``torch.nn.utils.prune.LnStructured``
    (L1 norm of each unit's surviving incoming weights); the next prunable
    layer loses the synapses from removed units as well, so the export drops
    them as dead neurons.
    """

    name = "structured"

    def compute_mask(self, layer_index, weight, mask, step):
        from torch.nn.utils import prune

        if layer_index > 0:
            # Units removed in the previous layer take their outgoing synapses with them.
            previous = units_alive(self.built_mask(layer_index - 1))
            mask = mask * alive_inputs(previous, weight.shape).to(mask.dtype)
        is_last_step = step >= self.total_steps
        if step % self.update_every_steps and not is_last_step:
            return mask
        n_units = weight.shape[0]
        n_prune = int(round(self.target_at(step) * n_units))
        if n_prune == 0:
            return mask
        # Pruned units have norm 0, so they are among the n_prune smallest: the mask only shrinks.
        return prune.LnStructured(amount=n_prune, n=1, dim=0).compute_mask(weight * mask, mask)
