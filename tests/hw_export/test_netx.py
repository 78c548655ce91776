"""netx HDF5: written by our writer, read by our independent reader, run in Lava fixed point."""

import h5py
import numpy as np
import pytest

from conftest import a_bug_in, assert_bug_keeps_its_traceback, needs_lava, pruned_mlp, recurrent_mlp
from hw_export.files import ArtifactError
from hw_export.netx import netx_lava_network, read_netx, write_netx
from hw_export.norse import export_model


def pruned_net(seed=0):
    return export_model(list(pruned_mlp(seed)), (10,))


def test_layout_is_what_netx_reads(tmp_path):
    net = pruned_net()
    path = tmp_path / "net.h5"
    write_netx(net, path)
    with h5py.File(path) as f:
        assert sorted(f["layer"].keys()) == ["0", "1", "2", "3"]
        assert f["layer/0/type"][0] == b"input"
        assert f["layer/1/type"][0] == b"dense"
        assert f["layer/1/weight"].dtype.kind == "i"
        assert f["layer/1/weight"].shape == (net.layers[0].n_out, 10)
        neuron = f["layer/1/neuron"]
        assert neuron["type"][0] == b"CUBA"
        assert set(neuron.keys()) == {"type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"}
        # netx's decays are 12-bit fractions of 4096 (docs/DESIGN.md, section 3): the current decay
        # dt * tau_syn_inv and the voltage decay dt * tau_mem_inv of the trained layer.
        lif = net.layers[0].neuron
        assert int(neuron["iDecay"][()]) == round(lif.du * 4096) and int(neuron["vDecay"][()]) == round(lif.dv * 4096)
        # Pruned synapses are zeros of the dense matrix.
        assert int((f["layer/1/weight"][()] != 0).sum()) <= net.layers[0].n_synapses


def test_the_reader_takes_8_bit_weights_and_names_wider_ones():
    from hw_export.netx import NetxLayer, NetxNetwork

    def network(weight):
        return NetxNetwork(2, [NetxLayer(np.array(weight), 1024, 410, 100), NetxLayer(np.array([[2, -4]]), 1, 1, 9)])

    lava = netx_lava_network(network([[254, -256], [0, 2]]))
    assert lava.layers[0].weight.toarray().tolist() == [[254, -256], [0, 2]]
    assert (lava.layers[0].du, lava.layers[0].dv, lava.layers[0].vth) == (1023, 410, 100)  # du = iDecay - 1
    assert lava.layers[0].spiking and not lava.layers[1].spiking
    assert netx_lava_network(network([[255, 3], [0, 1]])).layers[0].weight.max() == 255  # one sign: all 8 bits
    for wide in ([[512, -1024], [0, 256]], [[3, -4], [0, 2]]):  # beyond 8 bits; odd with mixed signs
        with pytest.raises(ArtifactError, match="beyond 8-bit mantissas"):
            netx_lava_network(network(wide))


@needs_lava
def test_netx_file_runs_exactly_like_the_fixed_point_path(tmp_path):
    from hw_export.lava_sim import SimOptions, simulate
    from hw_export.netx import simulate_netx
    from hw_export.quantize import quantize

    net = pruned_net(seed=1)
    path = tmp_path / "net.h5"
    write_netx(net, path)
    inputs = (np.random.default_rng(0).random((15, 8, 10)) < 0.4).astype(float)
    voltage = simulate_netx(read_netx(path), inputs)
    fixed = simulate(net, inputs, SimOptions(batch_size=8, precision="fixed"), progress=False)
    np.testing.assert_array_equal(voltage / quantize(net).layers[-1].voltage_scale, fixed.readout_v)
    assert np.abs(voltage).max() > 0


def test_a_recurrent_layer_is_a_dense_rec_block_with_its_recurrent_mantissas(tmp_path):
    from hw_export.quantize import quantize

    net = export_model(recurrent_mlp(), (10,))
    write_netx(net, tmp_path / "rnn.h5")
    fixed = quantize(net).layers
    with h5py.File(tmp_path / "rnn.h5") as f:
        assert [f[f"layer/{i}/type"][0] for i in (1, 2, 3)] == [b"dense_rec", b"dense_rec", b"dense"]
        np.testing.assert_array_equal(f["layer/1/weight_rec"][()], fixed[0].recurrent_weight.toarray())
        assert "weight_rec" not in f["layer/3"]
    network = read_netx(tmp_path / "rnn.h5")
    assert network.layers[1].weight_rec.shape == (net.layers[1].n_out,) * 2 and network.layers[2].weight_rec is None


@needs_lava
def test_a_recurrent_netx_file_runs_exactly_like_the_fixed_point_path(tmp_path):
    from hw_export.lava_sim import SimOptions, simulate
    from hw_export.netx import simulate_netx
    from hw_export.quantize import quantize

    net = export_model(recurrent_mlp(2), (10,))
    write_netx(net, tmp_path / "rnn.h5")
    inputs = (np.random.default_rng(0).random((15, 6, 10)) < 0.4).astype(float)
    voltage = simulate_netx(read_netx(tmp_path / "rnn.h5"), inputs)
    fixed = simulate(net, inputs, SimOptions(batch_size=6, precision="fixed"), progress=False)
    np.testing.assert_array_equal(voltage / quantize(net).layers[-1].voltage_scale, fixed.readout_v)
    assert all(s.sum() > 10 for s in fixed.layer_spikes) and np.abs(voltage).max() > 0


def test_bad_netx_files_are_named(tmp_path):
    path = tmp_path / "net.h5"
    write_netx(pruned_net(), path)
    with h5py.File(path, "r+") as f:
        del f["layer/2/weight"]
        f["layer/2"].create_dataset("weight", data=np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ArtifactError, match="weight must be integer"):
        read_netx(path)
    junk = tmp_path / "junk.h5"
    junk.write_text("nope")
    with pytest.raises(ArtifactError, match="not a readable HDF5"):
        read_netx(junk)


@pytest.mark.parametrize("bug", [RuntimeError, AttributeError, TypeError])
def test_a_bug_in_our_own_classes_is_not_reported_as_a_malformed_netx_file(tmp_path, monkeypatch, bug):
    import hw_export.netx as netx

    path = tmp_path / "net.h5"
    write_netx(pruned_net(), path)
    monkeypatch.setattr(netx, "NetxLayer", a_bug_in("NetxLayer", bug))
    assert_bug_keeps_its_traceback(lambda: read_netx(path), "NetxLayer", bug, ArtifactError)
