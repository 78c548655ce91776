"""Data-parallel training (2 CPU processes, gloo) equals one process with the same global batch;
a killed run resumed from its training state ends exactly like an uninterrupted one; devices."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

from conftest import free_port, needs_lava, tiny_data
from dpap_neuro.distributed import resolve_device
from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import DPAPPruner
from dpap_neuro.train import Recipe, evaluate, train
from hw_export.errors import UserError

EPOCHS, BATCH = 4, 16
DPAP_OPTIONS = dict(schedule_unit="batches", batches_per_unit=1, warmup_units=1, fc_neuron_c=1.0, r_init=2.0)


class MaskLoggingDPAP(DPAPPruner):
    """DPAP that notes a digest of every mask after each decision."""

    def __init__(self, **options):
        super().__init__(**options)
        self.digests = []

    def update(self, step, epoch_end=False):
        before = self.decisions
        super().update(step, epoch_end)
        if self.decisions > before:
            self.digests.append(hashlib.sha1(b"".join(m.cpu().numpy().tobytes() for m in self.masks())).hexdigest())


def train_tiny():
    torch.manual_seed(0)
    model = SpikingMLP(10, [16, 12], 3)
    pruner = MaskLoggingDPAP(**DPAP_OPTIONS)
    train(model, tiny_data(n=96), pruner, Recipe(epochs=EPOCHS, batch_size=BATCH, learning_rate=5e-3, seed=0),
          progress=False)
    return {"digests": pruner.digests, "masks": [m.tolist() for m in pruner.masks()],
            "accuracy": evaluate(model, tiny_data(n=96, seed=1)).accuracy}


def worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = train_tiny()
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump(result, fh)


def test_two_gloo_processes_decide_like_one_process_with_the_same_global_batch(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]["digests"]) == EPOCHS * (96 // BATCH) - 1  # one per batch after a one-batch warm-up
    assert ranks[0]["digests"] == ranks[1]["digests"], "the ranks' masks diverged at some decision"
    single = train_tiny()
    # Same masks after every decision; float sums in another order may only nudge the accuracy.
    assert ranks[0]["digests"] == single["digests"]
    assert ranks[0]["masks"] == single["masks"]
    assert any(0 in row for mask in single["masks"] for row in mask), "DPAP pruned nothing: the test proves little"
    assert abs(ranks[0]["accuracy"] - single["accuracy"]) <= 1 / 96


def test_devices_are_resolved_or_refused_with_one_line():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu please")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available here"):
            resolve_device("cuda:0")


DPAP = [sys.executable, "-m", "dpap_neuro"]
RUN_ARGS = ["--quiet", "--epochs", "8", "--timesteps", "10", "--hidden", "64", "--dataset", "digits",
            "--pruner", "dpap", "--pruner-option", "batches_per_unit=4", "--pruner-option", "warmup_units=1"]


def epoch_of(state_file):
    try:
        return torch.load(state_file, weights_only=True)["epoch"]
    except Exception:  # not there yet, or being replaced this instant
        return 0


@needs_lava
def test_a_killed_run_resumes_to_the_same_end(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen([*DPAP, "run", "--out", str(killed), *RUN_ARGS], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while epoch_of(killed / "dpap.train.pt") < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert (killed / "dense.pt").is_file() and not (killed / "report.json").exists()
    resumed = subprocess.run([*DPAP, "run", "--resume", str(killed), "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not (killed / "dpap.train.pt").exists()
    complete = subprocess.run([*DPAP, "run", "--out", str(whole), *RUN_ARGS], capture_output=True, text=True)
    assert complete.returncode == 0, complete.stderr
    for name in ("dense", "dpap"):
        a = torch.load(killed / f"{name}.pt", weights_only=True)["state_dict"]
        b = torch.load(whole / f"{name}.pt", weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    reports = [json.loads((d / "report.json").read_text())["models"]["dpap"] for d in (killed, whole)]
    assert reports[0]["accuracy"] == reports[1]["accuracy"]
    assert reports[0]["synapses"] == reports[1]["synapses"] < reports[0]["layers"][0]["original_synapses"] + 10**6


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_run_on_cuda_without_cuda_is_one_line_before_any_work(tmp_path):
    result = subprocess.run([*DPAP, "run", "--out", str(tmp_path / "run"), "--device", "cuda"],
                            capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--device cuda: CUDA is not available here" in lines[0]
    assert not (tmp_path / "run").exists()
