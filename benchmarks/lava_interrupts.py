"""Interrupt `dpap simulate` many times, at random moments of its Lava runtime's start and run; count what leaks.

Each try starts ``dpap simulate`` on a long simulation (a digits MLP with
3,000 steps per sample) in a private TMPDIR and with a token in its
environment, waits until a random number of processes carry the token (dpap,
its Lava child, then Lava's own processes as the runtime starts) plus a random
delay, and sends SIGINT to its process group (Ctrl-C) or SIGTERM to dpap
(alternately). Then it checks what the issue asks: the command ends within
5 s, with exit status 130/143 and the one line ``dpap: interrupted``, and
leaves no process, no file in TMPDIR, none of the /dev/shm files its processes
used (noted every few milliseconds while they live, also while frozen for the
stop: other users of the machine may leave files there meanwhile, which are
counted apart), and no "leaked shared_memory" warning.

    python benchmarks/lava_interrupts.py [--tries 20] [--seed 0]

Last line: ``leaks_in_20_interrupts: N`` (tries that left anything behind or broke a rule).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DPAP = [sys.executable, "-m", "dpap_neuro.cli"]


def processes_with_env(token: str) -> list[int]:
    needle = f"DPAP_TEST_TOKEN={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                if Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def watch_shared_memory(token: str, seen: set, stop: threading.Event) -> None:
    """Note every /dev/shm file that processes carrying the token map or open (also while frozen for a stop):
    the files a try's own processes used, told apart from other users' (who may leave some meanwhile)."""
    from hw_export.process_group import shared_memory_of

    while not stop.is_set():
        seen |= shared_memory_of(processes_with_env(token))
        stop.wait(0.002)


def long_artifact(folder: Path) -> Path:
    import torch

    from dpap_neuro.models import SpikingMLP
    from hw_export.h5io import write_sparsenet
    from hw_export.norse import export_model

    torch.manual_seed(0)
    meta = {"dataset": "digits", "timesteps": 3000, "seed": 0, "test_fraction": 0.2, "model": "m"}
    path = folder / "net.h5"
    write_sparsenet(export_model(list(SpikingMLP(64, [64], 10)), (64,), meta), path)
    return path


def one_try(artifact: Path, folder: Path, processes: int, delay_s: float, sigint: bool) -> dict:
    """Start, interrupt at the moment given, and inspect what is left."""
    from hw_export.process_group import shared_memory_of

    token, temp = uuid.uuid4().hex, Path(tempfile.mkdtemp(dir=folder))
    shm_before, seen, stop = set(os.listdir("/dev/shm")), set(), threading.Event()
    watcher = threading.Thread(target=watch_shared_memory, args=(token, seen, stop), daemon=True)
    watcher.start()
    proc = subprocess.Popen([*DPAP, "simulate", str(artifact), "--dataset", "digits", "--quiet",
                             "--out", str(folder / "out.json")],
                            env={**os.environ, "DPAP_TEST_TOKEN": token, "TMPDIR": str(temp)}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(processes_with_env(token)) < processes and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(delay_s)
    seen_processes = len(processes_with_env(token))
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT) if sigint else os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    stop_s = time.monotonic() - sent
    stop.set()
    watcher.join()
    unmapped = (set(os.listdir("/dev/shm")) - shm_before) - shared_memory_of(
        [int(p) for p in os.listdir("/proc") if p.isdigit()])
    ours = {name for name in seen if os.path.exists(f"/dev/shm/{name}")}
    row = {"signal": "SIGINT" if sigint else "SIGTERM", "processes_seen": seen_processes, "stop_s": stop_s,
           "status": proc.returncode, "lines": stderr.strip().splitlines(), "left_processes": processes_with_env(token),
           "left_files": os.listdir(temp), "left_shm": sorted(ours), "shm_used": len(seen),
           "others_left_shm": len(unmapped - seen), "warned": "leaked" in stderr}
    row["ok"] = (stop_s < 5.0 and proc.returncode == (130 if sigint else 143) and row["lines"] == ["dpap: interrupted"]
                 and not row["left_processes"] and not row["left_files"] and not ours and not row["warned"])
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # dpap must start with SIGINT's default action, also where this script was started with SIGINT ignored
    # (a background job of a shell without job control), which exec'd children inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="lava-interrupts-") as tmp:
        folder = Path(tmp)
        artifact = long_artifact(folder)
        rows = []
        print(f"{'try':>3} {'signal':<7} {'procs':>5} {'stop_s':>6} {'status':>6} {'shm used':>8}  result")
        for index in range(args.tries):
            # 2: the child importing; 3-7: Lava's processes being forked (the runtime starting); 7: running.
            row = one_try(artifact, folder, rng.randint(2, 7), rng.choice([0.0, 0.0, 0.02, 0.1, 0.5]), index % 2 == 0)
            rows.append(row)
            problems = [f"{k}={row[k]}" for k in ("left_processes", "left_files", "left_shm") if row[k]]
            others = f" (other users left {row['others_left_shm']} meanwhile)" if row["others_left_shm"] else ""
            print(f"{index:3d} {row['signal']:<7} {row['processes_seen']:5d} {row['stop_s']:6.2f} {row['status']:6d} "
                  f"{row['shm_used']:8d}  {'ok' if row['ok'] else 'LEAK/RULE BROKEN: ' + ' '.join(problems) + ' '}"
                  f"{'' if row['ok'] else repr(row['lines'])}{others}", flush=True)
    print(f"slowest stop: {max(r['stop_s'] for r in rows):.2f} s; mean {sum(r['stop_s'] for r in rows) / len(rows):.2f} s")
    print(f"leaks_in_{args.tries}_interrupts: {sum(not r['ok'] for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
