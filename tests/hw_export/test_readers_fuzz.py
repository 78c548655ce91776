"""Property-based: whatever bytes or structure a file holds, the SparseNet and netx readers give a
valid network or one ArtifactError line, never another exception."""

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import pruned_mlp
from hw_export.files import ArtifactError
from hw_export.h5io import read_sparsenet, write_sparsenet
from hw_export.netx import NetxNetwork, read_netx, write_netx
from hw_export.norse import export_model
from hw_export.sparsenet import SparseNet

# Derandomized, so CI runs the same examples every time; DPAP_FUZZ_EXAMPLES=1000 searches wider.
FUZZ = settings(max_examples=int(os.environ.get("DPAP_FUZZ_EXAMPLES", 40)), deadline=None,
                derandomize="DPAP_FUZZ_EXAMPLES" not in os.environ, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def valid_bytes(kind: str) -> bytes:
    net = export_model(list(pruned_mlp(0)), (10,), {"dataset": "digits"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.h5"
        (write_sparsenet if kind == "sparsenet" else write_netx)(net, path)
        return path.read_bytes()


VALID = {kind: valid_bytes(kind) for kind in ("sparsenet", "netx")}
READERS = {"sparsenet": (read_sparsenet, SparseNet), "netx": (read_netx, NetxNetwork)}


def read_outcome(kind: str, data: bytes = None, mutate=None):
    """Write ``data`` (or the valid file, then ``mutate(h5 file)``) and read it; return what happened."""
    reader, valid_type = READERS[kind]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        path.write_bytes(VALID[kind] if data is None else data)
        if mutate is not None:
            with h5py.File(path, "r+") as f:
                mutate(f)
        try:
            result = reader(path)
        except ArtifactError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(path)), message
            return "error"
        assert isinstance(result, valid_type)
        return "valid"


@FUZZ
@given(kind=st.sampled_from(sorted(READERS)), data=st.binary(max_size=2048))
def test_random_bytes(kind, data):
    assert read_outcome(kind, data) == "error"


@FUZZ
@given(kind=st.sampled_from(sorted(READERS)), data=st.data())
def test_flipped_bytes_and_truncation(kind, data):
    blob = bytearray(VALID[kind])
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    read_outcome(kind, bytes(blob))


def all_paths(f) -> list[str]:
    paths = []
    f.visit(paths.append)
    return sorted(paths)


REPLACEMENTS = st.one_of(
    st.integers(-2**40, 2**40), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(),
    st.lists(st.integers(-5, 5), max_size=6).map(np.array),
    st.lists(st.floats(allow_nan=True, width=32), max_size=6).map(lambda v: np.array(v, dtype=np.float32)),
)


@FUZZ
@given(kind=st.sampled_from(sorted(READERS)), data=st.data())
def test_missing_or_replaced_datasets_and_attributes(kind, data):
    def mutate(f):
        for _ in range(data.draw(st.integers(1, 3))):
            paths = all_paths(f)
            action = data.draw(st.sampled_from(["delete", "replace", "attribute"]))
            if action == "attribute":
                holders = ["/"] + paths
                holder = f[data.draw(st.sampled_from(holders))]
                names = sorted(holder.attrs.keys()) + ["extra"]
                name = data.draw(st.sampled_from(names))
                if data.draw(st.booleans()) and name in holder.attrs:
                    del holder.attrs[name]
                else:
                    holder.attrs[name] = data.draw(REPLACEMENTS)
            elif paths:
                target = data.draw(st.sampled_from(paths))
                if target not in f:
                    continue
                del f[target]
                if action == "replace":
                    f[target] = data.draw(REPLACEMENTS)

    read_outcome(kind, mutate=mutate)


def test_the_untouched_files_are_valid():
    assert read_outcome("sparsenet") == "valid" and read_outcome("netx") == "valid"
