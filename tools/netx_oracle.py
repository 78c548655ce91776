"""Run a netx HDF5 file in lava-dl, as a lava-dl user would; the oracle for our netx export.

Runs in the lava-dl venv (`make netx-env` builds `.venv-netx`), never in the
project's: it imports only numpy, h5py and lava / lava-dl, not dpap-neuro.

    .venv-netx/bin/python tools/netx_oracle.py NET.h5 INPUTS.npz OUT.npz

INPUTS.npz holds ``spikes``: ``[T, N, n_inputs]`` 0/1. The samples run one
after another in one Lava run: a RingBuffer sends them to ``net.inp`` with
``depth`` empty steps between samples, and netx's ``reset_interval`` resets
every layer's neurons between samples (each layer one step after the one
before, as netx schedules it). A Monitor records the last layer's voltage
``v`` (the readout never fires: its threshold is out of reach, so its
voltage is what a netx user reads). OUT.npz gets ``voltage``: ``[T, N,
n_out]`` integers, aligned with the input steps (step ``t`` holds the
readout's voltage after the input of step ``t`` has passed every layer).

A network with recurrent blocks (``dense_rec``) runs each sample in a fresh
network of its own instead. Measured with netx's reset between samples: the
first sample equal to our fixed point bit for bit, later ones of the same
run differing from their third to seventh step (netx resets the neurons;
presumably the recurrent synapse's buffered sum, or activity the loop keeps
up through the gap, crosses into the next sample).
"""

from __future__ import annotations

import sys

import numpy as np


def is_recurrent(net_path: str) -> bool:
    import h5py

    with h5py.File(net_path, "r") as f:
        return any(bytes(group["type"][0]) == b"dense_rec" for group in f["layer"].values())


def run(net_path: str, spikes: np.ndarray) -> np.ndarray:
    """The readout voltage ``[T, N, n_out]`` of every sample; one run for all, or one each if recurrent."""
    if is_recurrent(net_path):
        return np.concatenate([run_together(net_path, spikes[:, n:n + 1]) for n in range(spikes.shape[1])], axis=1)
    return run_together(net_path, spikes)


def run_together(net_path: str, spikes: np.ndarray) -> np.ndarray:
    """The samples one after another in one Lava run, netx resetting the neurons between them."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    n_steps_in, n_samples, n_inputs = spikes.shape
    probe = netx.hdf5.Network(net_config=net_path, reset_interval=1)  # read once for the depth
    depth = len(probe.layers)
    interval = n_steps_in + depth + 1  # each sample's steps, then room for it to pass every layer
    net = netx.hdf5.Network(net_config=net_path, reset_interval=interval)
    if net.inp.shape != (n_inputs,):
        raise SystemExit(f"netx_oracle: the network takes {net.inp.shape} inputs, the spikes have {n_inputs}")
    total = interval * n_samples
    data = np.zeros((n_inputs, total), dtype=np.int32)
    for sample in range(n_samples):
        data[:, sample * interval : sample * interval + n_steps_in] = spikes[:, sample].T
    source = RingBuffer(data=data)
    source.s_out.connect(net.inp)
    monitor = Monitor()
    readout = net.layers[-1].neuron
    monitor.probe(readout.v, total)
    try:
        net.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        recorded = monitor.get_data()[readout.name]["v"]  # [total, n_out]
    finally:
        net.stop()
    # The input of step t reaches the readout's voltage `depth` steps later (one per layer).
    per_sample = recorded.reshape(n_samples, interval, -1)[:, depth : depth + n_steps_in]
    return np.ascontiguousarray(per_sample.transpose(1, 0, 2)).astype(np.int64)  # [T, N, n_out]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    net_path, inputs_path, out_path = argv
    spikes = np.load(inputs_path)["spikes"]
    np.savez(out_path, voltage=run(net_path, spikes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
