"""Devices and data-parallel training (``torch.distributed``), kept out of the training maths.

One command scales from a laptop to several GPUs or machines:

    dpap run --out runs/x                                         # one process
    torchrun --nproc-per-node 2 -m dpap_neuro run --out runs/x    # two, data parallel

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; ``init_from_env``
then joins the process group with ``nccl`` on GPUs and ``gloo`` on CPUs.
Every rank holds the whole model; each takes its share of every global batch
(the same order on every rank, as ``DistributedSampler`` would give), DDP
averages the gradients, and the pruners' statistics are summed over ranks
(``all_reduce_sum``) so every rank makes the same pruning decision. Only rank
0 writes files.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from hw_export.errors import UserError


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ValueError if unusable."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"--device {spec}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise UserError(f"--device {spec}: only cpu and cuda are supported")
    if not torch.cuda.is_available():
        why = "this PyTorch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise UserError(f"--device {spec}: CUDA is not available here ({why}); use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; unchanged in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group that ``torchrun`` describes; returns this rank's device.

    On CUDA each local rank takes its own GPU (``cuda:LOCAL_RANK``).
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_share(indices: torch.Tensor) -> torch.Tensor:
    """This rank's samples of a global batch: every ``world_size``-th, starting at ``rank``."""
    return indices[rank()::world_size()]


def gather_to_rank0(value):
    """Every rank's ``value`` (any picklable object) as a list on rank 0, in rank order; None on the others.

    In a single process: ``[value]``. Objects travel over a gloo group (CPU),
    also when training used nccl.
    """
    if not is_distributed():
        return [value]
    group = dist.new_group(backend="gloo")
    gathered = [None] * world_size() if rank() == 0 else None
    dist.gather_object(value, gathered, dst=0, group=group)
    dist.destroy_process_group(group)
    return gathered


def all_gather(value) -> list:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank; ``[value]`` in a single
    process. Over a gloo group (CPU), also when training used nccl."""
    if not is_distributed():
        return [value]
    group = dist.new_group(backend="gloo")
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value, group=group)
    dist.destroy_process_group(group)
    return gathered


def barrier() -> None:
    """Wait until every rank is here (no-op in a single process)."""
    if is_distributed():
        dist.barrier()
