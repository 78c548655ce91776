"""Lava simulation throughput: the fast engine against Lava's per-layer processes and Norse on the CPU.

Networks:

* the demo MLP, dense and pruned, from a `dpap run` directory (default
  runs/demo, made by `make demo`: digits-events, 30 steps), on its test split
  repeated to ``--samples`` samples;
* an N-MNIST-shaped conv network, ``build_model((2, 34, 34), (256,), 10,
  "conv")`` (seeded, untrained, N-MNIST's initial gain 8: 6.94 M synapses
  after export), on the N-MNIST stand-in's test recordings
  (``dpap_neuro/data/nmnist_standin.py``: realistic event activity, binned
  into ``--timesteps`` (30) frames as ``dpap run`` bins N-MNIST), or with
  ``--conv-input generated`` on random spikes of ``--density`` (5 %).

Each is simulated in float and in Loihi fixed point by the fast engine (one
Lava run for all samples, up to its memory bound) and by the per-layer engine
(fewer samples: it is slow), and run by Norse (float32, the trained
checkpoint or the conv model, batches of 256, ``--norse-threads``). Both
engines are checked to give identical spikes on the samples both simulate.
Throughput is samples per second of wall-clock time and per CPU-second (the
process and every Lava process it started: samples/s on one core, what a
shared machine can measure honestly). Then: the ratio of pruned to dense
simulation time next to the ratio of their synaptic operations; the fast
engine's synaptic kernels alone (events, dense BLAS on active inputs, auto);
and one conv chunk through ``dpap run``'s path (a Lava subprocess), with the
peak memory of all its processes together (per worker).

    python benchmarks/lava_throughput.py [--run runs/demo] [--samples 7200] [--conv-samples 512]

Last lines: ``fast_vs_norse_pruned_mlp: X`` (fast float over Norse, pruned
MLP, per CPU-second) and ``nmnist_conv_fast_samples_per_s: Y`` (the slower
precision, per CPU-second, i.e. on one core).
"""

from __future__ import annotations

import lava.magma.core.process.process  # noqa: F401  (Lava must set up multiprocessing first)

import argparse
import json
import os
import resource
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

PRECISIONS = ("float", "fixed")


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has reaped (Lava's processes are joined on stop)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn):
    """``(result, wall seconds, CPU seconds)`` of ``fn()`` (at least a microsecond each)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, max(1e-6, time.perf_counter() - wall), max(1e-6, cpu_seconds() - cpu)


def norse_rate(model, inputs, threads: int, batch: int = 256) -> tuple[float, float]:
    """Norse (float32, no gradients) on ``inputs`` ``[T, N, ...]``: samples per wall second and per CPU-second."""
    import torch

    torch.set_num_threads(threads)
    model = model.float().eval()
    spikes = torch.as_tensor(inputs, dtype=torch.float32)

    def run():
        with torch.no_grad():
            for start in range(0, spikes.shape[1], batch):
                model(spikes[:, start: start + batch])

    _, wall, cpu = timed(run)
    return spikes.shape[1] / wall, spikes.shape[1] / cpu


def lava_rates(net, inputs: np.ndarray, engine: str, precision: str, batch: int | None = None):
    """``(result, samples per wall second, per CPU-second)`` of one engine on ``inputs`` ``[T, N, n_inputs]``."""
    from hw_export.lava_sim import SimOptions, simulate

    result, wall, cpu = timed(lambda: simulate(net, inputs, SimOptions(engine, precision, batch), progress=False))
    return result, inputs.shape[1] / wall, inputs.shape[1] / cpu


def measure_network(name: str, net, model, inputs: np.ndarray, args, n_processes: int, norse_inputs) -> list[dict]:
    """One row per precision: synapses, synops, Norse, processes and fast engine rates; spikes checked equal."""
    from hw_export.counting import count_operations

    norse_wall, norse_cpu = norse_rate(model, norse_inputs, args.norse_threads)
    rows = []
    for precision in PRECISIONS:
        fast, fast_wall, fast_cpu = lava_rates(net, inputs, "fast", precision)
        few = inputs[:, :n_processes]
        per_layer, proc_wall, proc_cpu = lava_rates(net, few, "processes", precision)
        for a, b in zip(fast.layer_spikes, per_layer.layer_spikes):
            assert np.array_equal(a[:, :n_processes], b), f"{name} {precision}: the engines' spikes differ"
        synops = float(sum(c.synops.mean() for c in count_operations(net, inputs, fast.layer_spikes)))
        rows.append(dict(network=name, precision=precision, synapses=net.n_synapses, synops=synops,
                         samples=inputs.shape[1], processes_samples=n_processes, norse_wall=norse_wall,
                         norse_cpu=norse_cpu, processes_wall=proc_wall, processes_cpu=proc_cpu, fast_wall=fast_wall,
                         fast_cpu=fast_cpu))
        print(f"  {name} {precision}: fast {fast_cpu:.1f} samples per CPU-s ({fast_wall:.1f}/s wall)", flush=True)
    return rows


def demo_networks(run: Path, n_samples: int):
    """(name, SparseNet, Norse model, inputs [T, N, n] uint8, Norse inputs [T, N, ...]) of a dpap run's models."""
    from dpap_neuro.checkpoint import load_checkpoint
    from dpap_neuro.data import load_dataset
    from hw_export.h5io import read_sparsenet

    report = json.loads((run / "report.json").read_text())
    dataset = report["dataset"]
    for name in (report["comparison"]["baseline"], report["comparison"]["pruned"]):
        files = report["models"][name]["files"]
        net = read_sparsenet(run / files["network"])
        _, test = load_dataset(dataset["name"], dataset["timesteps"], int(net.metadata.get("seed", 0)), train=False)
        repeats = -(-n_samples // test.spikes.shape[1])
        spikes = np.concatenate([test.spikes.numpy()] * repeats, axis=1)[:, :n_samples]
        model, _ = load_checkpoint(run / files["checkpoint"])
        yield f"mlp-{'dense' if name == report['comparison']['baseline'] else 'pruned'}", net, model, \
            spikes.reshape(*spikes.shape[:2], -1).astype(np.uint8), spikes


def conv_network(args):
    """The N-MNIST-shaped conv net (seeded, untrained, N-MNIST's initial gain) and its input spikes
    ``[T, N, 2, 34, 34]``: the N-MNIST stand-in's test recordings binned as ``dpap run`` bins N-MNIST
    (``--conv-input standin``), or generated spikes of ``--density``."""
    import torch

    from dpap_neuro.data import dataset_defaults
    from dpap_neuro.models import build_model
    from hw_export.norse import export_model

    torch.manual_seed(0)
    model = build_model((2, 34, 34), (256,), 10, "conv", weight_init_gain=dataset_defaults("nmnist")["weight_init_gain"])
    net = export_model(model, (2, 34, 34))
    if args.conv_input == "standin":
        return model, net, standin_spikes(args.conv_samples, args.timesteps)
    rng = np.random.default_rng(0)
    spikes = (rng.random((args.timesteps, args.conv_samples, 2, 34, 34)) < args.density).astype(np.uint8)
    return model, net, spikes


def standin_spikes(n_samples: int, timesteps: int) -> np.ndarray:
    """The first ``n_samples`` test recordings of the N-MNIST stand-in (written to a temporary folder, read
    through tonic as ``dpap run --dataset nmnist`` reads them), ``[T, N, 2, 34, 34]`` uint8."""
    import tempfile

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import batches, sequential_batches
    from dpap_neuro.data.nmnist_standin import StandinSettings, write_nmnist_standin
    from dpap_neuro.experiment import load_splits

    with tempfile.TemporaryDirectory(prefix="dpap-standin-") as folder:
        per_class = -(-n_samples // 10)
        write_nmnist_standin(Path(folder) / "data", StandinSettings(train_per_class=1, test_per_class=per_class))
        config = RunConfig(dataset="nmnist", data_dir=f"{folder}/data", cache_dir=f"{folder}/cache",
                           timesteps=timesteps, val_fraction=0.0)
        test = load_splits(config).test
        frames = [x.numpy() for x, _ in batches(test, sequential_batches(len(test), 64))]
    spikes = np.concatenate(frames, axis=1)[:, :n_samples]
    repeats = -(-n_samples // spikes.shape[1])  # fewer recordings than asked: repeat them
    return np.tile(spikes, (1, repeats, 1, 1, 1))[:, :n_samples].astype(np.uint8)


def kernel_rows(networks) -> list[tuple]:
    """CPU-seconds per sample of the fast engine's stepping alone (no Lava, one BLAS thread as in its Lava process),
    per synaptic-input kernel: ``networks`` holds (name, SparseNet, inputs [T, N, n])."""
    from threadpoolctl import threadpool_limits

    from hw_export.lava_params import lava_network
    from hw_export.lava_procs.stepping import KERNELS, NetworkStepper

    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for name, net, inputs in networks:
            for precision in PRECISIONS:
                network, few = lava_network(net, precision), inputs.astype(bool)
                costs = []
                for kernel in KERNELS:
                    stepper = NetworkStepper(network, few.shape[1], kernel)
                    started = time.process_time()
                    for t in range(few.shape[0]):
                        stepper.step(few[t])
                    costs.append((time.process_time() - started) / few.shape[1])
                rows.append((name, precision, few.shape[1], *costs))
    return rows


def rss_sampler(token: str, peak: list, stop: threading.Event) -> None:
    """Peak sum of resident memory of every process carrying ``token`` (shared pages counted in each: a bound)."""
    needle = f"DPAP_TEST_TOKEN={token}".encode()
    while not stop.is_set():
        total = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    status = Path(f"/proc/{pid}/status").read_text()
                    total += int(status.split("VmRSS:")[1].split()[0]) * 1024 if "VmRSS:" in status else 0
            except OSError:
                continue
        peak[0] = max(peak[0], total)
        time.sleep(0.05)


def worker_run(net, inputs: np.ndarray, precision: str) -> tuple[float, float]:
    """One chunk through `dpap run`'s path (a Lava subprocess): (samples/s wall, peak memory of its processes, GB)."""
    import tempfile

    from hw_export.h5io import write_sparsenet
    from hw_export.lava_sim import SimOptions
    from hw_export.lava_subprocess import simulate_in_subprocess

    token, peak, stop = uuid.uuid4().hex, [0], threading.Event()
    with tempfile.TemporaryDirectory(prefix="lava-throughput-") as tmp:
        write_sparsenet(net, Path(tmp) / "net.h5")
        os.environ["DPAP_TEST_TOKEN"] = token
        sampler = threading.Thread(target=rss_sampler, args=(token, peak, stop), daemon=True)
        sampler.start()
        try:
            started = time.perf_counter()
            simulate_in_subprocess(Path(tmp) / "net.h5", inputs, SimOptions("fast", precision), progress=False)
            wall = time.perf_counter() - started
        finally:
            stop.set()
            sampler.join()
            del os.environ["DPAP_TEST_TOKEN"]
    return inputs.shape[1] / wall, peak[0] / 2**30


def print_table(rows: list[dict]) -> None:
    print(f"\n{'network':<12} {'prec':<5} {'synapses':>9} {'synops/sample':>13} | samples per CPU-second (one core): "
          f"{'Norse':>8} {'processes':>9} {'fast':>8} {'fast/Norse':>10} | wall samples/s: Norse, processes, fast")
    for r in rows:
        print(f"{r['network']:<12} {r['precision']:<5} {r['synapses']:9d} {r['synops']:13.0f} | {'':34}"
              f"{r['norse_cpu']:8.1f} {r['processes_cpu']:9.2f} {r['fast_cpu']:8.1f} {r['fast_cpu'] / r['norse_cpu']:10.2f}"
              f" | {r['norse_wall']:.1f}, {r['processes_wall']:.2f}, {r['fast_wall']:.1f}")
    print(f"(fast: {rows[0]['samples']} MLP samples in one Lava run; processes: {rows[0]['processes_samples']}; "
          f"conv: {rows[-1]['samples']} and {rows[-1]['processes_samples']})")


def print_ratios(rows: list[dict]) -> None:
    by = {(r["network"], r["precision"]): r for r in rows}
    for precision in PRECISIONS:
        dense, pruned = by["mlp-dense", precision], by["mlp-pruned", precision]
        time_ratio = dense["fast_cpu"] / pruned["fast_cpu"]  # pruned time / dense time, per sample
        synops_ratio = pruned["synops"] / dense["synops"]
        print(f"pruned/dense (fast, {precision}): simulation time {time_ratio:.3f}, synaptic operations "
              f"{synops_ratio:.3f}, time/synops {time_ratio / synops_ratio:.2f} (goal <= 1.5)")


def main() -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/demo", help="a `dpap run` output directory (the demo MLP)")
    parser.add_argument("--samples", type=int, default=7200, help="MLP samples for the fast engine and Norse")
    parser.add_argument("--processes-samples", type=int, default=360, help="MLP samples for the per-layer engine")
    parser.add_argument("--conv-samples", type=int, default=512, help="conv samples for the fast engine and Norse")
    parser.add_argument("--conv-processes-samples", type=int, default=7, help="conv samples for the per-layer engine")
    parser.add_argument("--timesteps", type=int, default=30, help="conv steps per sample")
    parser.add_argument("--conv-input", choices=("standin", "generated"), default="standin",
                        help="conv inputs: the N-MNIST stand-in's test recordings (realistic activity), or "
                             "generated spikes of --density")
    parser.add_argument("--density", type=float, default=0.05, help="conv input spike density (--conv-input generated)")
    parser.add_argument("--kernel-samples", type=int, default=32,
                        help="conv samples for the kernel comparison (the MLPs take up to 2048)")
    parser.add_argument("--norse-threads", type=int, default=1, help="torch threads for Norse")
    parser.add_argument("--networks", nargs="+", choices=("mlp", "conv"), default=["mlp", "conv"],
                        help="which networks to measure (default both)")
    args = parser.parse_args()
    run = Path(args.run)
    if "mlp" in args.networks and not (run / "report.json").is_file():
        print(f"error: {run}/report.json not found; run `make demo` first", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, kernel_nets = [], []
    for name, net, model, flat, spikes in demo_networks(run, args.samples) if "mlp" in args.networks else ():
        rows += measure_network(name, net, model, flat, args, args.processes_samples, spikes)
        kernel_nets.append((name, net, flat[:, :2048]))
    if "conv" in args.networks:
        model, net, spikes = conv_network(args)
        flat = spikes.reshape(*spikes.shape[:2], -1)
        print(f"conv inputs ({args.conv_input}): {spikes.mean():.4f} of the frame entries spike", flush=True)
        rows += measure_network("nmnist-conv", net, model, flat, args, args.conv_processes_samples, spikes)
        kernel_nets.append(("nmnist-conv", net, flat[:, :args.kernel_samples]))
    print_table(rows)
    if "mlp" in args.networks:
        print_ratios(rows)
    print("\nfast engine's stepping alone (no Lava), CPU-ms per sample by synaptic-input kernel "
          "(dense: BLAS where a layer keeps a dense copy, the events kernel in the others):")
    print(f"{'network':<12} {'prec':<5} {'samples':>7} {'auto':>8} {'events':>8} {'dense':>8}")
    for name, precision, n, auto, events, dense in kernel_rows(kernel_nets):
        print(f"{name:<12} {precision:<5} {n:7d} {auto * 1e3:8.3f} {events * 1e3:8.3f} {dense * 1e3:8.3f}")
    by = {(r["network"], r["precision"]): r for r in rows}
    if "conv" in args.networks:
        for precision in PRECISIONS:
            rate, memory = worker_run(net, flat, precision)
            print(f"one conv chunk of {flat.shape[1]} samples as `dpap run` simulates it ({precision}, a Lava "
                  f"subprocess, start included): {rate:.1f} samples/s wall, peak memory of its processes {memory:.2f} GB")
    if "mlp" in args.networks:
        pruned = by["mlp-pruned", "float"]
        print(f"fast_vs_norse_pruned_mlp: {pruned['fast_cpu'] / pruned['norse_cpu']:.2f}")
    if "conv" in args.networks:
        print(f"nmnist_conv_fast_samples_per_s: {min(by['nmnist-conv', p]['fast_cpu'] for p in PRECISIONS):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
