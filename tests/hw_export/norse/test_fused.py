"""The fused LIF sequence (hw_export/norse/fused.py) is Norse's LIFCell stepped T times: spikes to the bit,
gradients as autograd's; the layer-at-a-time loop (hw_export/norse/loop.py) gives the step-by-step values."""

import pytest
import torch
from norse.torch import LICell, LIFCell, LIFParameters
from torch import nn

from hw_export.norse.fused import can_fuse, can_fuse_li, li_sequence, lif_sequence
from hw_export.norse.loop import run_over_time, whole_sequence_steps
from hw_export.norse.loihi import LoihiLIFCell


def stepped(cell, inputs):
    """Norse's own way: the cell called once per step, autograd recording every operation."""
    outputs, state = [], None
    for x_t in inputs:
        z, state = cell(x_t, state)
        outputs.append(z)
    return torch.stack(outputs)


def assert_fused_is_stepped(fused_sequence, cell, inputs) -> torch.Tensor:
    """``fused_sequence(cell, inputs)`` equals Norse's stepped cell to the bit, its input gradient autograd's to
    rounding (relative to the largest entry); returns the stepped outputs."""
    reference = stepped(cell, inputs)
    weights = torch.randn_like(reference)
    (reference * weights).sum().backward()
    expected, inputs.grad = inputs.grad.clone(), None
    fused = fused_sequence(cell, inputs)
    (fused * weights).sum().backward()
    assert torch.equal(fused, reference)
    tolerance = 1e-6 if inputs.dtype == torch.float32 else 1e-13
    torch.testing.assert_close(inputs.grad, expected, rtol=0, atol=tolerance * float(expected.abs().max()))
    return reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_sequence_is_norses_cell_spike_for_spike_with_autograds_gradient(dtype):
    torch.manual_seed(0)
    cell = LIFCell(LIFParameters(method="super", alpha=torch.as_tensor(100.0)))
    inputs = (torch.randn(30, 6, 4, 5, dtype=dtype) * 3).requires_grad_()  # [T, B, ...]: a conv population too
    reference = assert_fused_is_stepped(lif_sequence, cell, inputs)
    assert 50 < int(reference.sum()) < reference.numel() - 50  # spikes, not silence or saturation


def test_only_plain_lif_cells_with_scalar_parameters_and_superspike_are_fused():
    assert can_fuse(LIFCell())
    assert not can_fuse(LIFCell(LIFParameters(method="tanh")))
    assert not can_fuse(LIFCell(LIFParameters(v_th=torch.ones(4))))
    assert not can_fuse(LoihiLIFCell(LIFParameters()))  # a subclass: stepped one step at a time


def test_the_layer_at_a_time_loop_gives_the_step_by_step_values_and_hooks_see_whole_sequences():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 12, bias=False), LIFCell(), nn.Linear(12, 3, bias=False),
                          LIFCell(LIFParameters(method="tanh")))  # the second cell takes the step-by-step path
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(6)
    inputs = (torch.rand(20, 5, 8) < 0.4).float()
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(("fused", tuple(o[0].shape), whole_sequence_steps())))
    model[3].register_forward_hook(lambda m, i, o: seen.append(("stepped", tuple(o[0].shape), whole_sequence_steps())))
    output = run_over_time(model, inputs)
    assert seen[0] == ("fused", (20, 5, 12), 20)  # once, the whole sequence
    assert seen[1:] == [("stepped", (5, 3), None)] * 20  # once per step
    hidden = stepped(model[1], torch.stack([model[0](x) for x in inputs]))
    assert torch.equal(output.layer_spikes[0], hidden) and hidden.sum() > 0
    torch.testing.assert_close(output.readout_v, stepped(model[3], torch.stack([model[2](h) for h in hidden])),
                               rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_readout_is_norses_licell_to_the_bit_with_autograds_gradient(dtype):
    torch.manual_seed(2)
    cell = LICell()
    inputs = torch.randn(25, 4, 10, dtype=dtype, requires_grad=True)
    assert_fused_is_stepped(li_sequence, cell, inputs)
    assert can_fuse_li(cell) and not can_fuse_li(LIFCell())
