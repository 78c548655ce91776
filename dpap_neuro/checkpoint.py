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
        raise CheckpointError(f"{path}: checkpoint version {version!r} is not supported (this reader knows "
                              f"{FORMAT_VERSION})")
    try:
        if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state_dict"), dict):
            raise ValueError("config and state_dict must be tables")
        config = RunConfig.from_dict(payload["config"])
        model = build_model(payload["input_shape"], config.hidden_sizes, payload["n_classes"], **config.model_kwargs())
        if config.loihi_exact:
            loihi_exact(model)
        state = payload["state_dict"]
        for name, module in model.named_modules():
            if f"{name}.weight_mask" in state:
                ensure_mask(module)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError, OverflowError) as exc:
        # Whatever a damaged payload makes torch or our constructors raise, the user gets one line.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line})") from None
    model.eval()
    return model, payload
