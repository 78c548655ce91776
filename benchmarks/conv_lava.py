"""Lava's Conv process against a convolution unrolled into Sparse weights.

One conv layer (2 -> 16 channels, 3x3, padding 1, on 8x8 event frames of
``digits-events``) feeding LIF neurons, simulated three ways on the same
inputs:

* Lava ``Conv`` process, one sample per run (it convolves one image; layout
  W x H x C);
* our unrolled ``Sparse`` matrix, one sample per run;
* the unrolled ``Sparse`` matrix, ``--batch`` samples per run as independent
  copies (block-diagonal), which is what ``hw_export`` does.

Prints the spike agreement between the three and samples/s. (Lava's Conv
float model computes with torch in float32 when torch is installed, so it
may differ from the float64 paths in spikes that sit at threshold.)

    python benchmarks/conv_lava.py [--samples 16] [--batch 128]
"""

from __future__ import annotations

import lava.magma.core.process.process  # noqa: F401  (Lava must set up multiprocessing first)

import argparse
import sys
import tempfile
import time
import warnings

import numpy as np


def run_lava_conv(weight_torch: np.ndarray, frames: np.ndarray, du: float, dv: float) -> np.ndarray:
    """Lava Conv -> LIF for one sample. ``frames``: [T, C, H, W] -> spikes [T, C_out, H, W]."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    from hw_export.lava_procs.process import SpikeRecorder

    n_steps_in, channels, height, width = frames.shape
    c_out = weight_torch.shape[0]
    steps = n_steps_in + 1
    data = np.zeros((width, height, channels, steps))
    data[..., :n_steps_in] = frames.transpose(3, 2, 1, 0)  # [W, H, C, T]
    with tempfile.TemporaryDirectory() as tmp:
        source = RingBuffer(data=data)
        # Lava's Conv is a true convolution (it flips the kernel) in W x H layout:
        # hand it PyTorch's correlation kernel pre-flipped, as [C_out, W, H, C_in].
        kernel = (dv * weight_torch).transpose(0, 3, 2, 1)[:, ::-1, ::-1].copy()
        conv = Conv(weight=kernel, input_shape=(width, height, channels),
                    padding=1, stride=1)
        lif = LIF(shape=(width, height, c_out), du=du, dv=dv, vth=1.0)
        recorder = SpikeRecorder(shape=(width, height, c_out), num_steps=steps, path=f"{tmp}/s.npy")
        source.s_out.connect(conv.s_in)
        conv.a_out.connect(lif.a_in)
        lif.s_out.connect(recorder.a_in)
        try:
            source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        finally:
            source.stop()
        spikes = np.load(f"{tmp}/s.npy")  # [steps, W, H, C]
    return spikes[1:].transpose(0, 3, 2, 1)  # [T, C, H, W], one-step delay removed


def main() -> int:
    warnings.filterwarnings("ignore")
    import torch
    from norse.torch import LICell, LIFCell
    from torch import nn

    from dpap_neuro.data import load_dataset
    from hw_export.lava_sim import SimOptions, simulate
    from hw_export.norse import export_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()

    torch.manual_seed(0)
    conv = nn.Conv2d(2, 16, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.mul_(10.0)
    readout = nn.Linear(16 * 64, 1, bias=False)
    net = export_model([conv, LIFCell(), nn.Flatten(), readout, LICell()], (2, 8, 8))
    _, test = load_dataset("digits-events", 30, 0, train=False)
    frames = test.spikes[:, : args.batch].numpy()  # [T, N, 2, 8, 8]
    du, dv = net.layers[0].neuron.du, net.layers[0].neuron.dv
    weight = conv.weight.detach().double().numpy()

    started = time.perf_counter()
    lava_conv = [run_lava_conv(weight, frames[:, n], du, dv) for n in range(args.samples)]
    conv_rate = args.samples / (time.perf_counter() - started)

    flat = frames.reshape(frames.shape[0], frames.shape[1], -1)
    started = time.perf_counter()
    single = simulate(net, flat[:, : args.samples], SimOptions("processes", batch_size=1), progress=False)
    single_rate = args.samples / (time.perf_counter() - started)
    started = time.perf_counter()
    batched = simulate(net, flat, SimOptions("processes", batch_size=args.batch), progress=False)
    batched_rate = flat.shape[1] / (time.perf_counter() - started)

    unrolled = single.layer_spikes[0]  # [T, N, 16*64] in (C, H, W) order
    lava_flat = np.stack([spikes.reshape(len(spikes), -1) for spikes in lava_conv], axis=1)  # [T, n, neurons]
    agreement = float((lava_flat == unrolled).mean())
    same_batched = np.array_equal(batched.layer_spikes[0][:, : args.samples], unrolled)
    total_spikes = int(unrolled.sum())
    print(f"spikes in the first {args.samples} samples: {total_spikes}; Lava Conv vs unrolled Sparse spike "
          f"agreement: {agreement:.6f}; batched == one at a time: {same_batched}")
    print(f"Lava Conv, one sample per run:        {conv_rate:8.1f} samples/s")
    print(f"unrolled Sparse, one sample per run:  {single_rate:8.1f} samples/s")
    print(f"unrolled Sparse, {args.batch} per run:         {batched_rate:8.1f} samples/s")
    print(f"unrolled_batched_over_lava_conv: {batched_rate / conv_rate:.1f}")
    return 0 if same_batched else 1


if __name__ == "__main__":
    sys.exit(main())
