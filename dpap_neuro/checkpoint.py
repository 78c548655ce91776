"""Checkpoints: tensors and plain data only, loaded with ``weights_only=True``.

A checkpoint carries what is needed to rebuild and export the model: the run
config, the input shape, the class count, and the state dict with masks
(``weight_orig`` / ``weight_mask`` for pruned layers).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from dpap_neuro.config import RunConfig
from dpap_neuro.models import build_model
from dpap_neuro.pruning import ensure_mask
from hw_export.errors import UserError
from hw_export.files import first_line
from hw_export.norse.compaction import restore_shapes
from hw_export.norse.layers import named_layers
from hw_export.norse.loihi import loihi_exact

FORMAT_NAME = "dpap-neuro.checkpoint"
FORMAT_VERSION = 2  # 2: input reshaping as layers (nn.Flatten / nn.Unflatten), so layer indices moved


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded; one line naming the file and the problem."""


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: RunConfig, model_name: str,
                    pruner: str, input_shape, n_classes: int, history: dict | None = None) -> None:
    from hw_export.files import atomic_write

    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "pruner": pruner,
        "config": config.to_dict(),
        "input_shape": [int(d) for d in input_shape],
        "n_classes": int(n_classes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history or {},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model (masks included) and return it with the checkpoint's metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many kinds for bad or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint (not a PyTorch file, truncated, "
                              "or holding objects other than tensors and plain data)") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str) \
            or payload["format"] != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a dpap-neuro checkpoint")
    version = payload.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {_brief(version)} is not supported (this reader knows "
                              f"{FORMAT_VERSION})")
    config, input_shape, n_classes, state = checkpoint_contents(path, payload)
    try:  # only the refusals of our constructors are the file's fault; anything else they raise is a bug
        model = build_model(input_shape, config.hidden_sizes, n_classes, **config.model_kwargs())
        if config.loihi_exact:
            loihi_exact(model)
    except UserError as exc:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(exc)})") from None
    for name, module in model.named_modules():
        for parameter in ("weight", "input_weights", "recurrent_weights"):  # a recurrent cell's two as well
            if f"{name}.{parameter}_mask" in state:
                ensure_mask(module, parameter)
    try:
        restore_shapes(named_layers(model), state)  # written after compaction: the small shapes
        model.load_state_dict(state)
    except (UserError, RuntimeError, ValueError, IndexError) as exc:  # torch: tensors that do not fit the model
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(exc)})") from None
    model.eval()
    return model, payload


def _brief(value) -> str:
    """A value of the file on one short line (a tensor's repr spans several)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value) -> bool:
    """JSON-like data only (what ``RunConfig.to_dict`` writes): no tensors, which RunConfig cannot check."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def checkpoint_contents(path: Path, payload: dict) -> tuple[RunConfig, list[int], int, dict]:
    """The run config, input shape, class count and state dict of a payload, each checked: CheckpointError."""
    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: inconsistent checkpoint (config and state_dict must be tables)")
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise CheckpointError(f"{path}: inconsistent checkpoint (state_dict must map names to tensors)")
    if not _plain(config):
        raise CheckpointError(f"{path}: inconsistent checkpoint (config must hold plain data, not tensors)")
    input_shape, n_classes = payload.get("input_shape"), payload.get("n_classes")
    counts = [*input_shape, n_classes] if isinstance(input_shape, list) and input_shape else [None]
    if not all(type(n) is int and n > 0 for n in counts):
        raise CheckpointError(f"{path}: inconsistent checkpoint (input_shape must be a list of positive integers "
                              f"and n_classes a positive integer, got {_brief(input_shape)} and {_brief(n_classes)})")
    try:
        return RunConfig.from_dict(config), input_shape, n_classes, state
    except (UserError, TypeError, ValueError, OverflowError) as exc:  # its checks, or values they cannot compare
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(exc)})") from None
