"""Pruning methods behind one interface (see ``base.Pruner``).

``make_pruner(name, **options)`` builds one by its registered name;
``resolve_pruner_options(name, options)`` gives every option it will use,
defaults and the DPAP preset included (what ``report.json`` records).
"""

from __future__ import annotations

import inspect

from dpap_neuro.pruning.base import Pruner, effective_weight, ensure_mask, prunable_layers
from dpap_neuro.pruning.baselines import MagnitudePruner, RandomPruner
from dpap_neuro.pruning.compaction import compact
from dpap_neuro.pruning.dpap import DPAPConfig, DPAPPlusPruner, DPAPPruner
from dpap_neuro.pruning.gmp import GMPPruner, StructuredPruner
from dpap_neuro.pruning.presets import DPAP_PRESETS
from hw_export.errors import UserError

PRUNERS: dict[str, type[Pruner]] = {
    Pruner.name: Pruner,
    DPAPPruner.name: DPAPPruner,
    DPAPPlusPruner.name: DPAPPlusPruner,
    GMPPruner.name: GMPPruner,
    MagnitudePruner.name: MagnitudePruner,
    RandomPruner.name: RandomPruner,
    StructuredPruner.name: StructuredPruner,
}


def _pruner_class(name: str) -> type[Pruner]:
    try:
        return PRUNERS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}") from None


def _accepted_options(cls: type[Pruner]) -> dict:
    """Option name -> default (``inspect.Parameter.empty`` if none) of a pruner class."""
    if issubclass(cls, DPAPPruner):
        return {"preset": None, **{f.name: f.default for f in DPAPConfig.__dataclass_fields__.values()}}
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


def make_pruner(name: str, **options) -> Pruner:
    """A pruner by its registered name; ``options`` go to its constructor (DPAP's may name a ``preset``)."""
    cls = _pruner_class(name)
    accepted = _accepted_options(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"pruner {name!r} has no option {', '.join(unknown)}; "
                        f"its options are: {', '.join(sorted(accepted)) or 'none'}")
    missing = sorted(option for option, default in accepted.items()
                     if default is inspect.Parameter.empty and option not in options)
    if missing:
        raise UserError(f"pruner {name!r} needs option {', '.join(missing)}")
    # Each pruner checks its values (UserError); anything else its constructor raises is a bug, with its traceback.
    return cls(**options)


def resolve_pruner_options(name: str, options: dict | None = None) -> dict:
    """Every option ``make_pruner(name, ...)`` will use: ``make_pruner(name, **result)`` builds the same pruner.

    For the DPAP family the preset's values come first, then ``options``,
    and the result names the preset (``"preset": "authors"`` when none was
    given). Pruners without presets ignore a ``"preset"`` key, so one
    setting can serve every pruner of a run. Bad names and values:
    ``UserError``.
    """
    cls = _pruner_class(name)
    options = dict(options or {})
    if not issubclass(cls, DPAPPruner):
        options.pop("preset", None)
    pruner = make_pruner(name, **options)
    if isinstance(pruner, DPAPPruner):
        return pruner.options()
    defaults = {k: v for k, v in _accepted_options(cls).items() if v is not inspect.Parameter.empty}
    return {**defaults, **options}


__all__ = ["compact", "PRUNERS", "DPAP_PRESETS", "Pruner", "DPAPConfig", "DPAPPruner", "DPAPPlusPruner", "GMPPruner",
           "MagnitudePruner", "RandomPruner", "StructuredPruner", "make_pruner", "resolve_pruner_options",
           "effective_weight", "ensure_mask", "prunable_layers"]
