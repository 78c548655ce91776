import h5py
import numpy as np
import pytest
import torch

from conftest import a_bug_in, assert_bug_keeps_its_traceback, recurrent_mlp
from dpap_neuro.models import SpikingMLP
from dpap_neuro.pruning import GMPPruner
from hw_export.files import ArtifactError
from hw_export.h5io import read_sparsenet, write_sparsenet
from hw_export.norse import export_model


def pruned_net():
    torch.manual_seed(1)
    model = SpikingMLP(12, [10, 8], 3)
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=10)
    pruner.update(10)
    return export_model(model, (2, 6), metadata={"model": "t"})


def assert_same(a, b):
    assert a.input_shape == b.input_shape and a.metadata == b.metadata
    for la, lb in zip(a.layers, b.layers):
        assert la.name == lb.name and la.neuron == lb.neuron and la.n_original == lb.n_original
        assert (la.weight != lb.weight).nnz == 0 and la.weight.nnz == lb.weight.nnz
        np.testing.assert_array_equal(la.kept, lb.kept)
        assert (la.recurrent_weight is None) == (lb.recurrent_weight is None)
        if la.recurrent_weight is not None:
            assert (la.recurrent_weight != lb.recurrent_weight).nnz == 0
            assert la.recurrent_weight.nnz == lb.recurrent_weight.nnz


def test_round_trip_is_identical(tmp_path):
    net = pruned_net()
    path = tmp_path / "net.h5"
    write_sparsenet(net, path)
    assert_same(net, read_sparsenet(path))
    assert [p.name for p in tmp_path.iterdir()] == ["net.h5"], "no temporary file left behind"


def test_recurrent_weights_round_trip_and_a_version_2_file_still_reads(tmp_path):
    net = export_model(recurrent_mlp(), (10,), metadata={"model": "rmlp"})
    assert net.is_recurrent and all(layer.n_recurrent_synapses > 0 for layer in net.layers[:-1])
    write_sparsenet(net, tmp_path / "rnn.h5")
    assert_same(net, read_sparsenet(tmp_path / "rnn.h5"))
    write_sparsenet(pruned_net(), tmp_path / "old.h5")
    corrupt(tmp_path / "old.h5", lambda f: f.attrs.__setitem__("schema_version", 2))  # version 2: no recurrence
    assert_same(pruned_net(), read_sparsenet(tmp_path / "old.h5"))


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["layers/0/recurrent_indices"].__setitem__(0, 99), "recurrent_indices out of range"),
    (lambda f: f["layers/0/recurrent_data"].__setitem__(0, np.nan), "recurrent_data contains NaN or Inf"),
    (lambda f: f["layers/0"].__delitem__("recurrent_indptr"), "recurrent_indptr is missing"),
])
def test_a_damaged_recurrent_matrix_is_named(tmp_path, edit, message):
    path = tmp_path / "rnn.h5"
    write_sparsenet(export_model(recurrent_mlp(), (10,)), path)
    corrupt(path, edit)
    with pytest.raises(ArtifactError, match=message):
        read_sparsenet(path)


def corrupt(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.attrs.__setitem__("schema_version", 99), "schema_version 99"),
    (lambda f: f.attrs.__setitem__("format", "other"), "not a SparseNet"),
    (lambda f: f["layers/0/weight_data"].__setitem__(0, np.nan), "NaN or Inf"),
    (lambda f: f["layers/1/weight_indices"].__setitem__(0, 10_000), "out of range"),
    (lambda f: f["layers/0"].__delitem__("kept"), "kept is missing"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, edit, message):
    path = tmp_path / "net.h5"
    write_sparsenet(pruned_net(), path)
    corrupt(path, edit)
    with pytest.raises(ArtifactError, match=message) as info:
        read_sparsenet(path)
    assert str(path) in str(info.value)


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(ArtifactError, match="no such file"):
        read_sparsenet(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(ArtifactError, match="not a readable HDF5"):
        read_sparsenet(junk)
    truncated = tmp_path / "cut.h5"
    write_sparsenet(pruned_net(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ArtifactError):
        read_sparsenet(truncated)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["layers/1"].attrs.__setitem__("shape", np.array([8, 99])), "expects 99 inputs"),
    (lambda f: (f["layers/0"].__delitem__("weight_indptr"),
                f["layers/0"].create_dataset("weight_indptr", data=np.zeros(3, dtype=np.int64))), "weight_indptr"),
    (lambda f: f["layers/0"].attrs.__setitem__("shape", np.array([0, 12])), "no neurons left"),
    (lambda f: f["layers/0/weight_data"].__setitem__(0, np.inf), "NaN or Inf"),
])
def test_inconsistent_shapes_and_empty_layers_are_named(tmp_path, edit, message):
    path = tmp_path / "net.h5"
    write_sparsenet(pruned_net(), path)
    corrupt(path, edit)
    with pytest.raises(ArtifactError, match=message):
        read_sparsenet(path)


@pytest.mark.parametrize("where, bug", [("SparseLayer", RuntimeError), ("SparseNet", AttributeError),
                                        ("NeuronParams", TypeError)])
def test_a_bug_in_our_own_classes_is_not_reported_as_a_damaged_file(tmp_path, monkeypatch, where, bug):
    import hw_export.h5io as h5io

    path = tmp_path / "net.h5"
    write_sparsenet(pruned_net(), path)
    broken = a_bug_in(where, bug)
    target = broken if where != "NeuronParams" else type("Broken", (), {"from_dict": staticmethod(broken)})
    monkeypatch.setattr(h5io, where, target)
    assert_bug_keeps_its_traceback(lambda: read_sparsenet(path), where, bug, ArtifactError)
