"""Pruning methods behind one interface (see ``base.Pruner``)."""

from __future__ import annotations

from hw_export.errors import UserError
from dpap_neuro.pruning.base import Pruner, effective_weight, ensure_mask, prunable_layers
from dpap_neuro.pruning.baselines import MagnitudePruner, RandomPruner
from dpap_neuro.pruning.dpap import DPAPConfig, DPAPPlusConfig, DPAPPlusPruner, DPAPPruner
from dpap_neuro.pruning.gmp import GMPPruner, StructuredPruner

PRUNERS: dict[str, type[Pruner]] = {
    Pruner.name: Pruner,
    DPAPPruner.name: DPAPPruner,
    DPAPPlusPruner.name: DPAPPlusPruner,
    GMPPruner.name: GMPPruner,
    MagnitudePruner.name: MagnitudePruner,
    RandomPruner.name: RandomPruner,
    StructuredPruner.name: StructuredPruner,
}


def make_pruner(name: str, **options) -> Pruner:
    """A pruner by its registered name; ``options`` go to its constructor."""
    try:
        cls = PRUNERS[name]
    except KeyError:
        raise UserError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}") from None
    import dataclasses
    import inspect

    if hasattr(cls, "config_cls"):
        accepted = {f.name for f in dataclasses.fields(cls.config_cls)}
    else:
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UserError(f"pruner {name!r} has no option {', '.join(unknown)}; "
                         f"its options are: {', '.join(sorted(accepted)) or 'none'}")
    try:
        return cls(**options)
    except TypeError as exc:  # a value of the wrong kind that slipped past the pruner's own checks
        raise UserError(f"pruner {name!r}: bad option value ({exc})") from None
    except ValueError as exc:  # the pruner's own check of an option the user gave
        raise UserError(str(exc)) from None


__all__ = ["PRUNERS", "Pruner", "DPAPConfig", "DPAPPruner", "DPAPPlusConfig", "DPAPPlusPruner", "GMPPruner", "MagnitudePruner", "RandomPruner", "StructuredPruner", "make_pruner", "effective_weight", "ensure_mask", "prunable_layers"]
