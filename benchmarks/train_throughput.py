"""Training throughput: dense and DPAP, one process against two data-parallel processes.

Each process uses one thread (so 2 processes on 2 cores compare with 1
process on 1 core); 2 processes join a gloo group (nccl on GPUs) exactly as
under ``torchrun``, each training on half of every global batch. Same data,
seed, model and global batch everywhere; samples/s counts the whole
training set once per epoch, whatever the number of processes.

    python benchmarks/train_throughput.py [--dataset digits-events] [--epochs 2] [--device cpu]

Prints samples/s per configuration, DPAP's overhead over dense training
(1 process), and last ``ddp_scaling_2proc: X`` (DPAP, 2 processes over 1).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import warnings
from pathlib import Path


def worker(rank: int, world: int, port: int, job: dict, out: str) -> None:
    warnings.filterwarnings("ignore")
    import torch
    import torch.distributed as dist

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import N_CLASSES, load_dataset
    from dpap_neuro.distributed import resolve_device
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import make_pruner
    from dpap_neuro.train import Recipe, train

    torch.set_num_threads(1)
    device = resolve_device(job["device"])
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if device.type == "cuda":
            device = torch.device("cuda", rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    config = RunConfig(dataset=job["dataset"], epochs=job["epochs"])
    train_data, _ = load_dataset(config.dataset, config.timesteps, config.seed)
    torch.manual_seed(config.seed)
    model = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
    options = config.resolved_pruner_options() if job["pruner"] == "dpap" else {}
    history = train(model, train_data, make_pruner(job["pruner"], **options), Recipe.from_config(config),
                    progress=False, device=device)
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps({"samples_per_s": len(train_data) * config.epochs / history.wall_time_s}))


def measure(job: dict, world: int) -> float:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        mp.spawn(worker, args=(world, port, job, out), nprocs=world, join=True)
        return json.loads(Path(out).read_text())["samples_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits-events")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (2 processes need 2 GPUs on CUDA)")
    args = parser.parse_args(argv)
    rates = {}
    for pruner in ("none", "dpap"):
        for world in (1, 2):
            job = {"dataset": args.dataset, "epochs": args.epochs, "device": args.device, "pruner": pruner}
            rates[pruner, world] = measure(job, world)
            print(f"{'dense' if pruner == 'none' else 'dpap':>5}, {world} process(es): "
                  f"{rates[pruner, world]:8.1f} samples/s", flush=True)
    print(f"dpap_overhead_1proc: {rates['none', 1] / rates['dpap', 1]:.3f}")
    print(f"dense_scaling_2proc: {rates['none', 2] / rates['none', 1]:.3f}")
    print(f"ddp_scaling_2proc: {rates['dpap', 2] / rates['dpap', 1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
