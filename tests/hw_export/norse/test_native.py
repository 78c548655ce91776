"""The compiled loops (hw_export/norse/native.py) are the Python loops of fused.py: the same spikes and
voltages to the bit, the same gradients to float rounding; built once per machine, atomically, and where no
compiler works the Python loops run instead."""

import os

import pytest
import torch
from norse.torch import LICell, LIFCell, LIFParameters

from hw_export.norse import native
from hw_export.norse.fused import _lif_steps, li_sequence, lif_sequence


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """The loader as in a new process, with its cache in ``tmp_path``; the usual loader again afterwards."""
    monkeypatch.setenv("DPAP_CACHE_DIR", str(tmp_path))
    native._library.cache_clear()
    yield tmp_path
    native._library.cache_clear()


def python_loops(monkeypatch):
    monkeypatch.setattr(native, "applies_to", lambda inputs: False)


def needs_compiler():
    if native._compiler() is None:
        pytest.skip("no C compiler on this machine")


def run_both(monkeypatch, sequence, cell, inputs):
    """``(outputs, input gradient)`` of ``sequence(cell, inputs)`` with the compiled loops, then the Python ones."""
    results = []
    weights = torch.randn(inputs.shape, generator=torch.Generator().manual_seed(3))
    for use_python in (False, True):
        if use_python:
            python_loops(monkeypatch)
        x = inputs.clone().requires_grad_()
        out = sequence(cell, x)
        (out * weights).sum().backward()
        results.append((out.detach(), x.grad))
    return results


def test_the_compiled_lif_loop_gives_the_python_loops_spikes_and_voltages_to_the_bit_and_their_gradients(
        monkeypatch):
    needs_compiler()
    assert native.available()
    torch.manual_seed(0)
    cell = LIFCell(LIFParameters(method="super", alpha=torch.as_tensor(100.0), v_reset=torch.as_tensor(0.1)))
    inputs = torch.randn(40, 8, 3, 7) * 3  # [T, B, ...]
    spiked, decayed = native.lif_forward(inputs, float(cell.dt * cell.p.tau_mem_inv),
                                         float(-cell.dt * cell.p.tau_syn_inv), 0.0, 1.0, 0.1)
    expected_spiked, expected_decayed = _lif_steps(inputs, cell.p, cell.dt * cell.p.tau_mem_inv,
                                                   -cell.dt * cell.p.tau_syn_inv)
    assert torch.equal(spiked, expected_spiked.float()) and torch.equal(decayed, expected_decayed)
    assert 100 < int(spiked.sum()) < spiked.numel() - 100
    (compiled, compiled_grad), (python, python_grad) = run_both(monkeypatch, lif_sequence, cell, inputs)
    assert torch.equal(compiled, python)
    torch.testing.assert_close(compiled_grad, python_grad, rtol=0, atol=1e-6 * float(python_grad.abs().max()))


def test_the_compiled_readout_loop_gives_the_python_loops_voltages_to_the_bit_and_their_gradients(monkeypatch):
    needs_compiler()
    torch.manual_seed(1)
    (compiled, compiled_grad), (python, python_grad) = run_both(monkeypatch, li_sequence, LICell(),
                                                                torch.randn(30, 5, 11))
    assert torch.equal(compiled, python)
    torch.testing.assert_close(compiled_grad, python_grad, rtol=0, atol=1e-6 * float(python_grad.abs().max()))


def test_float64_and_other_devices_take_the_python_loops():
    assert not native.applies_to(torch.zeros(2, 3, dtype=torch.float64))
    assert native.applies_to(torch.zeros(2, 3)) == native.available()


def test_the_library_is_built_once_into_the_cache_and_nothing_else_is_left_there(fresh_library):
    needs_compiler()
    assert native.available()
    built = native.library_path()
    assert built.parent == fresh_library / "kernels" and built.is_file()
    assert os.listdir(built.parent) == [built.name]  # no temporary file beside it
    stamp = built.stat().st_mtime_ns
    native._library.cache_clear()
    assert native.available() and built.stat().st_mtime_ns == stamp  # found, not rebuilt


def test_without_a_compiler_the_python_loops_run_and_say_so_once(fresh_library, monkeypatch, capsys):
    monkeypatch.setenv("CC", str(fresh_library / "no-such-compiler"))
    assert not native.available() and not native.available()
    assert capsys.readouterr().err.count("no working C compiler") == 1
    assert not (fresh_library / "kernels").exists() or os.listdir(fresh_library / "kernels") == []
    cell = LIFCell(LIFParameters(method="super"))
    inputs = (torch.randn(10, 2, 4) * 3).requires_grad_()
    lif_sequence(cell, inputs).sum().backward()  # the Python loops, with their gradient
    assert inputs.grad is not None


def test_switched_off_the_python_loops_run(fresh_library, monkeypatch):
    monkeypatch.setenv("DPAP_NATIVE_KERNELS", "0")
    assert not native.available()
