"""Shared test helpers (no module-scoped fixtures holding state)."""

import importlib.util
import multiprocessing
import os
import signal
import socket
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")

HAVE_LAVA = importlib.util.find_spec("lava") is not None
if HAVE_LAVA and multiprocessing.current_process().name == "MainProcess":
    # Lava insists on choosing the multiprocessing start method at import, so it
    # must be imported before anything else touches multiprocessing. (Not in
    # workers that tests spawn: their start method is already chosen.)
    import lava.magma.core.process.process  # noqa: F401

# Tests that run Lava carry the `lava` marker (pyproject.toml); they are skipped where Lava is absent.
needs_lava = pytest.mark.lava

# lava-dl lives in its own venv (`make netx-env`); DPAP_NETX_PYTHON points elsewhere if wanted.
NETX_PYTHON = Path(os.environ.get("DPAP_NETX_PYTHON", Path(__file__).parents[1] / ".venv-netx" / "bin" / "python"))
HAVE_NETX = NETX_PYTHON.is_file()

# NIR consumers (docs/nir.md): snntorch and NeuroBench in .venv (the dev extra), sinabs in its own venv
# (`make sinabs-env`; DPAP_SINABS_PYTHON points elsewhere if wanted), driven through tools/nir_oracle.py.
SINABS_PYTHON = Path(os.environ.get("DPAP_SINABS_PYTHON",
                                    Path(__file__).parents[1] / ".venv-sinabs" / "bin" / "python"))
HAVE_SINABS = SINABS_PYTHON.is_file()
HAVE_SNNTORCH = importlib.util.find_spec("snntorch") is not None
HAVE_NEUROBENCH = importlib.util.find_spec("neurobench") is not None


def pytest_collection_modifyitems(config, items):
    skip_lava = pytest.mark.skip(reason="lava-nc is not installed (it needs Python 3.10)")
    skip_netx = pytest.mark.skip(reason=f"lava-dl's venv {NETX_PYTHON} is absent: build it with `make netx-env`")
    skips = {
        "sinabs": (HAVE_SINABS, f"sinabs' venv {SINABS_PYTHON} is absent: build it with `make sinabs-env`"),
        "snntorch": (HAVE_SNNTORCH, "snntorch is not installed in this venv: `make venv` installs the dev extra"),
        "neurobench": (HAVE_NEUROBENCH, "neurobench is not installed in this venv: `make venv` installs the dev extra"),
    }
    for item in items:
        if "lava" in item.keywords and not HAVE_LAVA:
            item.add_marker(skip_lava)
        if "netx" in item.keywords and not HAVE_NETX:
            item.add_marker(skip_netx)
        for marker, (present, reason) in skips.items():
            if marker in item.keywords and not present:
                item.add_marker(pytest.mark.skip(reason=reason))


def pruned_mlp(seed=0, n_inputs=10, hidden=(12, 8), n_classes=3, sparsity=0.4, gain=6.0):
    """A small SpikingMLP with GMP masks applied (40 % of hidden synapses gone), for export tests."""
    import torch

    from dpap_neuro.models import SpikingMLP
    from dpap_neuro.pruning import GMPPruner

    torch.manual_seed(seed)
    model = SpikingMLP(n_inputs, list(hidden), n_classes, weight_init_gain=gain)
    pruner = GMPPruner(target_sparsity=sparsity, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(10)
    return model


# The hand-computed recurrent case: neuron 0 fed by the one input (weight 12), neuron 1 by neuron 0's spikes
# only (recurrent weight 20), one input spike at step 0; du 0.2, dv 0.1, v_th 1 (Norse's defaults at dt 1 ms).
# Neuron 0: i 12 -> v 1.2 fires; i 9.6 -> v 0.96; i 7.68 -> v 0.96 + 0.1 (7.68 - 0.96) = 1.632 fires; ...
# Neuron 1 sees neuron 0's spike of step t at step t + 1: i 20 -> v 2 fires at step 1; i 16 -> v 1.6 fires at 2;
# i 12.8 + 20 -> fires at 3; from then on its own current keeps it above threshold.
TWO_NEURON_SPIKES = [[1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 1, 1]]  # [neuron][step]


def two_neuron_recurrent_model():
    """``(model, inputs [6, 1, 1])``: a ``LIFRecurrentCell`` of two neurons and a one-class readout, the case of
    ``TWO_NEURON_SPIKES``."""
    import torch
    from norse.torch import LICell, LIFParameters, LIFRecurrentCell
    from torch import nn

    cell = LIFRecurrentCell(1, 2, p=LIFParameters(method="super"), dt=1e-3)
    readout = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        cell.input_weights.copy_(torch.tensor([[12.0], [0.0]]))
        cell.recurrent_weights.copy_(torch.tensor([[0.0, 0.0], [20.0, 0.0]]))
        readout.weight.copy_(torch.tensor([[0.5, -0.25]]))
    inputs = torch.zeros(6, 1, 1)
    inputs[0] = 1
    return nn.Sequential(cell, readout, LICell(dt=1e-3)), inputs


def recurrent_mlp(seed=0, n_inputs=10, hidden=(12, 8), n_classes=3, sparsity=0.4, gain=3.0):
    """A user's own recurrent model: ``LIFRecurrentCell`` layers (no autapses) and a ``Linear`` -> ``LICell``
    readout, ``sparsity`` of the input and recurrent weights of each cell masked at random
    (``torch.nn.utils.prune``)."""
    import torch
    from norse.torch import LICell, LIFParameters, LIFRecurrentCell
    from torch import nn
    from torch.nn.utils import prune

    torch.manual_seed(seed)
    layers, n_in = [], n_inputs
    for n in hidden:
        cell = LIFRecurrentCell(n_in, n, p=LIFParameters(method="super"), dt=1e-3)
        with torch.no_grad():
            cell.input_weights.mul_(gain)
            cell.recurrent_weights.mul_(gain)
        for name in ("input_weights", "recurrent_weights"):
            prune.random_unstructured(cell, name, amount=sparsity)
        layers.append(cell)
        n_in = n
    return nn.Sequential(*layers, nn.Linear(n_in, n_classes, bias=False), LICell(dt=1e-3))


def assert_same_lava_result(a, b):
    """Two LavaResults are identical: every layer's spikes and the readout voltage, bit for bit."""
    import numpy as np

    assert len(a.layer_spikes) == len(b.layer_spikes)
    for x, y in zip(a.layer_spikes, b.layer_spikes):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.readout_v, b.readout_v)


def tiny_data(n=48, n_in=10, steps=8, seed=0):
    """Learnable toy task: the class is the input group (of three) that fires most."""
    import torch

    from dpap_neuro.data import SpikeDataset

    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    rates = torch.full((n, n_in), 0.1)
    for k in range(3):
        rates[labels == k, 3 * k: 3 * k + 3] = 0.6
    spikes = (torch.rand(steps, n, n_in, generator=generator) < rates).float()
    return SpikeDataset(spikes, labels)


def processes_with_env(token: str) -> list[int]:
    """PIDs of live processes whose environment holds ``DPAP_TEST_TOKEN=<token>``.

    A test gives a command this variable; every process it starts (the Lava
    subprocess, Lava's workers, multiprocessing's resource tracker) inherits
    it, so after the command has ended none of them may be left.
    """
    import os

    needle = f"DPAP_TEST_TOKEN={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ and state != b"Z":
            found.append(int(entry))
    return found


def interrupt_and_wait(proc, sigint: bool, timeout_s: float) -> float:
    """Ctrl-C to ``proc``'s process group (as a terminal sends it) or SIGTERM to ``proc`` alone (as ``kill``
    does); the seconds until it ended."""
    import os
    import signal
    import time

    sent = time.monotonic()
    if sigint:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=timeout_s)
    return time.monotonic() - sent


def what_it_is_doing(pid: int) -> str:
    """One line on a live process from /proc: its state (R running, S sleeping, D waiting on the disk), where the
    kernel holds it (wchan: e.g. ``pipe_write``, a full pipe nobody reads), CPU seconds and bytes read so far."""
    import os

    def read(name: str) -> str:
        try:
            with open(f"/proc/{pid}/{name}") as fh:
                return fh.read()
        except OSError:
            return ""

    fields = read("stat").rsplit(")", 1)[-1].split()
    if not fields:
        return f"process {pid} is gone"
    ticks = os.sysconf("SC_CLK_TCK")
    read_bytes = next((line.split()[1] for line in read("io").splitlines() if line.startswith("read_bytes")), "?")
    return (f"process {pid}: state {fields[0]}, wchan {read('wchan') or '?'}, "
            f"{int(fields[11]) / ticks:.1f} s user + {int(fields[12]) / ticks:.1f} s system CPU, "
            f"{read_bytes} bytes read from disk")


def wait_for_processes(token: str, count: int, proc, timeout_s: float, stderr_path) -> None:
    """Return once ``count`` processes carry the token (``proc``, the command a test started with it, and those
    it started); else stop ``proc``'s process group and fail with what it was doing and what it printed."""
    import os
    import signal
    import time

    start = time.monotonic()
    while len(processes_with_env(token)) < count:
        if proc.poll() is not None or time.monotonic() - start > timeout_s:
            found, doing = len(processes_with_env(token)), what_it_is_doing(proc.pid)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            printed = Path(stderr_path).read_text(errors="replace")[-4000:]
            pytest.fail(f"{found} of {count} processes after "
                        f"{time.monotonic() - start:.0f} s (exit status {proc.returncode}); {doing}; "
                        f"it printed:\n{printed}")
        time.sleep(0.002)


class SharedMemoryWatch:
    """Every /dev/shm file mapped or opened by a process carrying ``DPAP_TEST_TOKEN=<token>``, noted every few
    milliseconds while the block runs (also while those processes are frozen for a stop): the files a test's
    own commands used, told apart from those other users of the machine create, and sometimes leave, meanwhile.

        with SharedMemoryWatch(token) as watch:
            ...
        assert watch.left() == set()
    """

    def __init__(self, token: str) -> None:
        import threading

        self.token, self.seen, self._stop = token, set(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        from hw_export.process_group import shared_memory_of

        while not self._stop.is_set():
            self.seen |= shared_memory_of(processes_with_env(self.token))
            self._stop.wait(0.002)

    def __enter__(self) -> "SharedMemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def left(self) -> set[str]:
        """The files noted that still exist."""
        import os

        return {name for name in self.seen if os.path.exists(f"/dev/shm/{name}")}


def small_report(models=("dense", "dpap")):
    """A complete report (it passes hw_export.report.check) of two small models."""
    breakdown = {"loihi": {"synops": 1.5e-6, "dense_macs": 0.0, "neuron_updates": 0.5e-6, "spikes": 0.0}}
    per_sample = {"spikes": 10.0, "input_spikes": 30.0, "synops": 500.0, "neuron_updates": 80.0,
                  "energy_j": {"loihi": 2e-6}, "energy_breakdown_j": breakdown}
    neurobench = {"connection_sparsity": 0.0, "activation_sparsity": 0.875, "memory_footprint_bytes": 888,
                  "synaptic_operations": {"effective_acs": 500.0, "effective_macs": 0.0, "dense": 400.0},
                  "neuron_updates": 80.0}
    agreement = {"spikes": 1.0, "predictions": 1.0, "samples_identical": 1.0}
    model = {
        "pruner": "none", "accuracy": {"norse": 0.9, "lava": 0.9}, "agreement": agreement,
        "fixed": {"accuracy": 0.89, "agreement": {**agreement, "predictions": 0.99}, "per_sample": per_sample,
                  "neurobench": neurobench},
        "synapses": 100, "neurons": 20, "per_sample": per_sample, "neurobench": neurobench,
        "layers": [{"name": "fc1", "neurons": 10, "original_neurons": 10, "synapses": 80, "original_synapses": 80,
                    "spikes": 10.0, "synops": 400.0, "neuron_updates": 40.0},
                   {"name": "readout", "neurons": 10, "original_neurons": 10, "synapses": 20,
                    "original_synapses": 20, "spikes": 0.0, "synops": 100.0, "neuron_updates": 40.0}],
        "training": {"layer_sparsity": [[0.0], [0.5], [0.6]]},
    }
    return {"schema_version": 2, "dataset": {"name": "digits", "n_train": 10, "n_test": 5, "timesteps": 4},
            "models": {m: __import__("copy").deepcopy(model) for m in models}, "energy_profile": "loihi",
            "energy_profiles": {"loihi": {"source": "Davies et al. 2018"}},
            "comparison": {"baseline": models[0], "pruned": models[-1],
                           "ratios": {k: 1.0 for k in ("synapses", "neurons", "spikes", "synops", "energy")}}}


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt here, and children start with its default action, also where pytest was
    started with SIGINT ignored (a background job of a shell without job control): the interrupts tested are
    Ctrl-C's."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_timings(value):
    """A report without what may differ between two runs of one command: wall times and the --out given."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if k not in ("wall_time_s", "epoch_time_s", "command")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def a_bug_in(what: str, bug: type):
    """A stand-in for the function or class ``what`` that raises ``bug`` when called: a bug in our own code."""
    def broken(*args, **kwargs):
        raise bug(f"a bug in {what}")
    return broken


def assert_bug_keeps_its_traceback(read, what: str, bug: type, user_error: type) -> None:
    """``read()`` lets the bug planted in ``what`` (``a_bug_in``) through as itself, not as ``user_error``: the
    CLI then shows its traceback instead of blaming the user's file."""
    import pytest

    with pytest.raises(bug, match=f"a bug in {what}") as error:
        read()
    assert not isinstance(error.value, user_error)
