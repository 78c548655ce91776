"""The pruning interface shared by DPAP and the baselines.

Masks follow ``torch.nn.utils.prune``'s reparametrisation: each prunable layer
gets ``weight_orig`` (the trained parameter, identity kept) and a
``weight_mask`` buffer, and ``weight = weight_orig * weight_mask`` is
recomputed before every forward. So masked entries get zero gradient and stay
zero in the effective weight, and there is no separate fine-tuning phase:
masks change *during* the one training run.

One protocol for every training loop, ``dpap_neuro.train`` and yours::

    pruner.attach(model, total_steps, steps_per_epoch)   # once, before training
    for warning in pruner.diagnose(): print(warning)     # optional: a rule that cannot prune, ...
    ...
    optimizer.step()
    pruner.step()                                         # after every optimiser step

``step(epoch_end=None)`` counts optimiser steps itself (``steps_taken``)
and runs the pruner's schedule: it calls ``update(step, epoch_end)``, the
hook a subclass overrides (as ``nn.Module.forward`` is to ``__call__``):
DPAP gathers the batch's spike statistics there and decides, the baselines
recompute their masks. ``compute_mask`` gives a new mask per layer; pruning
is permanent (a new mask is multiplied into the current one), and every
change of a mask is appended to ``pruning_log``.

Only hidden layers are pruned (all synaptic layers but the one that feeds the
readout): the output layer stays dense, as in DPAP. A recurrent layer (Norse
``LIFRecurrentCell``) is two of them to a pruner, its input weights and its
recurrent weights (``SynapseView``), masked the same way
(``input_weights_orig`` / ``input_weights_mask``, ...).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import prune

from hw_export.errors import UserError
from hw_export.norse.compaction import from_built, part_map, to_built
from hw_export.norse.layers import RECURRENT_CELLS


def check_type(owner: str, name: str, value, kind: type):
    """``value`` if it is of ``kind`` (float: a finite int or float; never a bool for numbers), else UserError.

    Pruner options come from the command line as JSON values, so "abc" or
    "high" must be refused before training, with the option's name.
    """
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
        raise UserError(f"{owner}: option {name} must be {wanted}, got {value!r}")
    return value


class SynapseView:
    """A recurrent cell's ``input_weights`` or ``recurrent_weights`` as a pruner sees a layer: ``weight_orig``,
    ``weight_mask`` and ``weight`` are the parameter's (``<name>_orig``, ``<name>_mask``, ``<name>``)."""

    def __init__(self, module: nn.Module, name: str) -> None:
        self.module, self.name = module, name

    @property
    def weight_orig(self) -> torch.Tensor:
        return getattr(self.module, f"{self.name}_orig")

    @property
    def weight_mask(self) -> torch.Tensor:
        return getattr(self.module, f"{self.name}_mask")

    @property
    def weight(self) -> torch.Tensor:
        return getattr(self.module, self.name)

    @property
    def is_recurrent(self) -> bool:
        return self.name == "recurrent_weights"

    # The map back to the cell's build once compaction shrank it (``hw_export.norse.compaction.part_map``;
    # AttributeError before: not compacted), so that ``to_built`` and the rest read a view as a layer.
    built_shape = property(lambda self: part_map(self.module, "recurrent" if self.is_recurrent else "input")[0])
    kept_out = property(lambda self: part_map(self.module, "recurrent" if self.is_recurrent else "input")[1])
    kept_in = property(lambda self: part_map(self.module, "recurrent" if self.is_recurrent else "input")[2])


def synaptic_groups(model: nn.Module) -> list:
    """Every synaptic layer in forward order, the readout's last; a recurrent cell gives two (``SynapseView``
    of its input, then of its recurrent weights)."""
    groups: list = []
    for module in model.modules():
        if isinstance(module, RECURRENT_CELLS):
            groups += [SynapseView(module, "input_weights"), SynapseView(module, "recurrent_weights")]
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            groups.append(module)
    return groups


def prunable_layers(model: nn.Module) -> list:
    """Synaptic layers a pruner may mask (``synaptic_groups``): every one but the readout's."""
    return synaptic_groups(model)[:-1]


def ensure_mask(layer, name: str = "weight") -> None:
    """Give ``layer``'s parameter ``name`` (a ``SynapseView``: its own) the ``<name>_orig`` / ``<name>_mask``
    reparametrisation. A recurrent cell without autapses starts with its diagonal masked: no synapse there."""
    if isinstance(layer, SynapseView):
        layer, name = layer.module, layer.name
    if not hasattr(layer, f"{name}_mask"):
        prune.identity(layer, name)
        if name == "recurrent_weights" and not getattr(layer, "autapses", True):
            with torch.no_grad():
                getattr(layer, f"{name}_mask").fill_diagonal_(0.0)


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """``weight_orig * weight_mask`` if masked, else ``weight`` (never stale)."""
    if hasattr(layer, "weight_mask"):
        return layer.weight_orig * layer.weight_mask
    return layer.weight


def units_alive(mask: torch.Tensor) -> torch.Tensor:
    """Output units (rows of a ``Linear``, output channels of a ``Conv2d``) with an input left: ``[n_out]`` bool."""
    return mask.flatten(1).sum(dim=1) > 0


def alive_inputs(previous_alive: torch.Tensor, weight_shape: torch.Size | tuple) -> torch.Tensor:
    """The fan-in rule: inputs from pruned units of the previous layer are gone.

    ``previous_alive``: ``[n_prev]`` bool, the previous prunable layer's
    units (neurons or channels). ``weight_shape``: this layer's weight,
    ``[C_out, C_in, kh, kw]`` (conv: ``C_in == n_prev``) or ``[n_out, n_in]``
    (``Linear``; after a flattened conv output ``n_in = n_prev * H * W``,
    each channel's positions contiguous, as ``nn.Flatten`` lays them out).
    Returns a bool tensor that broadcasts against the weight: ``[1, C_in,
    1, 1]`` or ``[1, n_in]``; ``True`` where the input's unit is alive.
    """
    n_inputs = weight_shape[1]
    if n_inputs % previous_alive.numel():
        raise UserError(f"{n_inputs} inputs cannot come from {previous_alive.numel()} units of the layer before: "
                        "a pruned model's layers must follow each other (Linear/Conv2d, population, pooling, Flatten)")
    per_unit = n_inputs // previous_alive.numel()  # > 1 when a conv output is flattened into a Linear
    expanded = previous_alive.repeat_interleave(per_unit)
    return expanded.view(1, -1, *([1] * (len(weight_shape) - 2)))


class Pruner:
    """Base strategy: keeps every synapse (the ``none`` pruner)."""

    name: ClassVar[str] = "none"

    def __init__(self) -> None:
        self.layers: list[nn.Module] = []
        self.total_steps = 0
        self.steps_per_epoch = 1
        self.steps_taken = 0
        self.mask_changes = 0  # mask changes so far: a loop compacts (``compaction.compact``) when it grows
        self.pruning_log: list[dict] = []

    def attach(self, model: nn.Module, total_steps: int, steps_per_epoch: int = 1) -> None:
        """Mask ``model``'s hidden layers for a run of ``total_steps`` optimiser steps."""
        if total_steps < 1 or steps_per_epoch < 1:
            raise UserError("total_steps and steps_per_epoch must be >= 1")
        self.layers = prunable_layers(model)
        for layer in self.layers:
            ensure_mask(layer)
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.steps_taken = 0  # optimiser steps counted by ``step``
        self.pruning_log = []

    def diagnose(self) -> list[str]:
        """After ``attach``: one-line warnings about this run (e.g. a rule that can never prune); none here."""
        return []

    def step(self, epoch_end: bool | None = None) -> None:
        """The one call per batch, after each ``optimizer.step()``, in every training loop.

        Counts optimiser steps itself and runs the schedule (``update``).
        ``epoch_end`` defaults to every ``steps_per_epoch`` steps; a loop
        whose last batch of an epoch falls elsewhere says so.
        """
        self.steps_taken += 1
        if epoch_end is None:
            epoch_end = self.steps_taken % self.steps_per_epoch == 0
        self.update(self.steps_taken, epoch_end=epoch_end)

    def update(self, step: int, epoch_end: bool = False) -> None:
        """The schedule after optimiser step ``step`` (``step`` calls it; override this, call ``step``)."""
        self.apply_masks(step)

    def compute_mask(
        self, layer_index: int, weight: torch.Tensor, mask: torch.Tensor, step: int
    ) -> torch.Tensor:
        """New mask for one layer (1 keeps a synapse). Default: unchanged."""
        return mask

    def built_mask(self, index: int) -> torch.Tensor:
        """Prunable layer ``index``'s mask at the layer's built shape (removed units: zeros), compacted or not."""
        layer = self.layers[index]
        return to_built(layer.weight_mask, layer)

    def population_alive(self, index: int) -> torch.Tensor:
        """``[n]`` bool: the units of the population prunable group ``index`` feeds that have an input left (a
        recurrent cell's: from below or from its own layer)."""
        layer = self.layers[index]
        if isinstance(layer, SynapseView):
            first = index - 1 if layer.is_recurrent else index
            return units_alive(torch.cat([self.built_mask(first), self.built_mask(first + 1)], dim=1))
        return units_alive(self.built_mask(index))

    def built_weight(self, index: int) -> torch.Tensor:
        """Prunable layer ``index``'s trained parameter ``weight_orig`` at its built shape (removed units: zeros)."""
        layer = self.layers[index]
        return to_built(layer.weight_orig, layer)

    @torch.no_grad()
    def apply_masks(self, step: int) -> None:
        """Multiply ``compute_mask``'s result into every prunable layer's mask; log the step if any changed.

        ``compute_mask`` sees every layer at its built shape, so a compacted
        model (``dpap_neuro.pruning.compaction``) is pruned exactly as its
        masked twin.
        """
        changed = False
        for index, layer in enumerate(self.layers):
            mask = self.built_mask(index)
            new_mask = self.compute_mask(index, self.built_weight(index), mask, step)
            if new_mask is mask:  # unchanged masks cost nothing
                continue
            new_mask = from_built(new_mask.to(layer.weight_mask.dtype), layer)
            changed = changed or bool(((new_mask == 0) & (layer.weight_mask != 0)).any())
            layer.weight_mask.mul_(new_mask)
        if changed:
            self.mask_changes += 1
            self.pruning_log.append(self.log_entry(step))

    def log_entry(self, step: int) -> dict:
        """``{"step", "units_alive", "synapses_alive"}``: each prunable layer's survivors after step ``step``."""
        return {"step": int(step),
                "units_alive": [int(units_alive(layer.weight_mask).sum()) for layer in self.layers],
                "synapses_alive": [int(layer.weight_mask.count_nonzero()) for layer in self.layers]}

    def state_dict(self) -> dict:
        """What a resumed run needs to continue exactly (tensors and plain data; masks live in the model)."""
        return {"steps_taken": self.steps_taken, "pruning_log": [dict(entry) for entry in self.pruning_log]}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s result, after ``attach``."""
        if "steps_taken" not in state:
            raise UserError("this pruner state has no step count (written by an older dpap-neuro); "
                            "start the run again")
        self.steps_taken = int(state["steps_taken"])
        self.pruning_log = [dict(entry) for entry in state.get("pruning_log", [])]

    def masks(self) -> list[torch.Tensor]:
        """Every prunable layer's mask at its built shape (a compacted model's removed units: zeros)."""
        return [self.built_mask(index).detach().clone() for index in range(len(self.layers))]

    def neuron_sparsity(self, conv_only: bool = False) -> float:
        """Fraction of the prunable layers' output units (neurons, channels, as built) with no input left;
        ``conv_only``: of the conv layers' output channels alone (0 without conv layers)."""
        masks = [mask for mask in self.masks() if not conv_only or mask.dim() == 4]
        total = sum(mask.shape[0] for mask in masks)
        dead = sum(int((~units_alive(mask)).sum()) for mask in masks)
        return dead / total if total else 0.0

    def sparsity(self) -> float:
        """Fraction of prunable synapses (as built) removed so far (0..1); a recurrent cell's diagonal without
        autapses is no synapse (masked from the start), so a model nothing pruned is at 0."""
        masks = self.masks()
        no_synapse = sum(mask.shape[0] for layer, mask in zip(self.layers, masks) if isinstance(layer, SynapseView)
                         and layer.is_recurrent and not getattr(layer.module, "autapses", True))
        total = sum(mask.numel() for mask in masks) - no_synapse
        kept = sum(int(mask.sum()) for mask in masks)
        return 1.0 - kept / total if total else 0.0
