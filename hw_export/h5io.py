"""SparseNet <-> HDF5 (h5py). Schema: docs/sparsenet_hdf5.md.

Writing is atomic (``hw_export.files.atomic_write``). Reading validates
structure, shapes, dtypes, index bounds and finiteness and raises
``ArtifactError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy import sparse

from hw_export.files import MALFORMED_HDF5, ArtifactError, atomic_write, first_line
from hw_export.sparsenet import NeuronParams, SparseLayer, SparseNet, SparseNetError

FORMAT_NAME = "dpap-neuro.sparsenet"
SCHEMA_VERSION = 3  # 3: optional recurrent weights; 2: no bias dataset (1 held an always-zero one)
READABLE_VERSIONS = (2, 3)  # a version 2 file is a version 3 file without recurrent weights


def write_sparsenet(net: SparseNet, path: str | os.PathLike) -> None:
    import h5py

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["input_shape"] = np.asarray(net.input_shape, dtype=np.int64)
            f.attrs["metadata_json"] = json.dumps(net.metadata, sort_keys=True)
            layers = f.create_group("layers")
            for index, layer in enumerate(net.layers):
                g = layers.create_group(str(index))
                g.attrs["name"] = layer.name
                g.attrs["shape"] = np.asarray(layer.weight.shape, dtype=np.int64)
                g.attrs["n_original"] = layer.n_original
                if layer.fixed_point_scale is not None:
                    g.attrs["fixed_point_scale"] = float(layer.fixed_point_scale)
                for key, value in layer.neuron.to_dict().items():
                    g.attrs[f"neuron_{key}"] = value
                _write_csr(g, "weight", layer.weight)
                if layer.recurrent_weight is not None:
                    _write_csr(g, "recurrent", layer.recurrent_weight)
                g.create_dataset("kept", data=layer.kept.astype(np.int64))

    atomic_write(path, write, suffix=".h5")


def _write_csr(g, prefix: str, matrix: sparse.csr_matrix) -> None:
    g.create_dataset(f"{prefix}_data", data=matrix.data.astype(np.float64))
    g.create_dataset(f"{prefix}_indices", data=matrix.indices.astype(np.int64))
    g.create_dataset(f"{prefix}_indptr", data=matrix.indptr.astype(np.int64))


def _dataset(path, g, key: str, dtype_kind: str, ndim: int = 1) -> np.ndarray:
    if key not in g:
        raise ArtifactError(path, f"{g.name}/{key} is missing")
    data = g[key][()]
    if not isinstance(data, np.ndarray) or data.ndim != ndim or data.dtype.kind not in dtype_kind:
        raise ArtifactError(path, f"{g.name}/{key} must be a {ndim}-D array of kind {dtype_kind!r}")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ArtifactError(path, f"{g.name}/{key} contains NaN or Inf")
    return data


def _attr(path, g, key: str):
    if key not in g.attrs:
        raise ArtifactError(path, f"attribute {key!r} of {g.name} is missing")
    return g.attrs[key]


def read_sparsenet(path: str | os.PathLike) -> SparseNet:
    """Read and validate a SparseNet HDF5 file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ArtifactError(path, f"not a readable HDF5 file ({exc.__class__.__name__})") from None
    try:
        with f:
            input_shape, metadata, layers = _read_sparsenet_file(path, f)
    except ArtifactError:
        raise
    except MALFORMED_HDF5 as exc:  # h5py's errors, and file values of another kind, while reading the file only
        raise ArtifactError(path, f"damaged or malformed SparseNet file ({first_line(exc)})") from None
    # Built outside that catch: our constructors refuse with SparseNetError; anything else they raise is a bug.
    built = [_build_layer(path, layer) for layer in layers]
    try:
        return SparseNet(input_shape, tuple(built), metadata)
    except SparseNetError as exc:
        raise ArtifactError(path, str(exc)) from None


def _read_sparsenet_file(path: Path, f) -> tuple[tuple[int, ...], dict, list[dict]]:
    """The header and each layer's values of an open file, as plain Python and numpy; ArtifactError for what our
    checks find, h5py's errors (or a conversion's) otherwise."""
    if f.attrs.get("format") != FORMAT_NAME:
        raise ArtifactError(path, f"not a SparseNet file (format attribute is {f.attrs.get('format')!r})")
    version = int(_attr(path, f, "schema_version"))
    if version not in READABLE_VERSIONS:
        raise ArtifactError(path, f"schema_version {version} is not supported (this reader knows "
                                  f"{', '.join(map(str, READABLE_VERSIONS))}; export the checkpoint again with "
                                  "`dpap export`)")
    input_shape = tuple(int(d) for d in np.atleast_1d(_attr(path, f, "input_shape")))
    if not input_shape or min(input_shape) < 1:
        raise ArtifactError(path, f"input_shape {input_shape} is not a positive shape")
    try:
        metadata = json.loads(str(f.attrs.get("metadata_json", "{}")))
    except json.JSONDecodeError:
        raise ArtifactError(path, "metadata_json is not valid JSON") from None
    if "layers" not in f or not len(f["layers"]):
        raise ArtifactError(path, "group /layers is missing or empty")
    group = f["layers"]
    expected = [str(i) for i in range(len(group))]
    if sorted(group.keys(), key=lambda k: (len(k), k)) != expected:
        raise ArtifactError(path, f"/layers must hold groups 0..{len(group) - 1}, found {sorted(group.keys())}")
    return input_shape, metadata, [_read_layer(path, group[key]) for key in expected]


def _read_layer(path: Path, g) -> dict:
    """One layer group's values, converted to the kinds the SparseNet classes take."""
    neuron = {k[len("neuron_"):]: v for k, v in g.attrs.items() if k.startswith("neuron_")}
    shape = tuple(int(d) for d in np.atleast_1d(_attr(path, g, "shape")))
    return {
        "where": g.name,
        "name": str(_attr(path, g, "name")),
        "shape": shape,
        "weight": _read_csr(path, g, "weight"),
        "recurrent": _read_csr(path, g, "recurrent") if "recurrent_data" in g else None,
        "neuron": {k: (str(v) if k == "kind" else float(v)) for k, v in neuron.items()},
        "kept": _dataset(path, g, "kept", "iu").astype(np.int64),
        "n_original": int(_attr(path, g, "n_original")),
        "fixed_point_scale": float(g.attrs["fixed_point_scale"]) if "fixed_point_scale" in g.attrs else None,
    }


def _read_csr(path: Path, g, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (_dataset(path, g, f"{prefix}_data", "f"), _dataset(path, g, f"{prefix}_indices", "iu"),
            _dataset(path, g, f"{prefix}_indptr", "iu"))


def _csr(path: Path, where: str, prefix: str, arrays: tuple, shape: tuple[int, int]) -> sparse.csr_matrix:
    """A CSR matrix from its three datasets, their structure checked against ``shape``."""
    data, indices, indptr = arrays
    if len(indptr) != shape[0] + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(data):
        raise ArtifactError(path, f"{where}/{prefix}_indptr is inconsistent with shape {shape} and {len(data)} weights")
    if len(indices) != len(data):
        raise ArtifactError(path, f"{where}: {prefix}_indices and {prefix}_data differ in length")
    if len(indices) and (indices.min() < 0 or indices.max() >= shape[1]):
        raise ArtifactError(path, f"{where}/{prefix}_indices out of range 0..{shape[1] - 1}")
    return sparse.csr_matrix((data, indices, indptr), shape=shape)


def _build_layer(path: Path, raw: dict) -> SparseLayer:
    """A layer from its values read: the CSR structure checked here, the rest by SparseLayer (SparseNetError)."""
    where, shape = raw["where"], raw["shape"]
    if len(shape) != 2 or min(shape) < 0:
        raise ArtifactError(path, f"{where}: shape {shape} is not a 2-D matrix shape")
    if shape[0] == 0:
        raise ArtifactError(path, f"{where}: layer has no neurons left")
    weight = _csr(path, where, "weight", raw["weight"], shape)
    recurrent = None if raw["recurrent"] is None else _csr(path, where, "recurrent", raw["recurrent"],
                                                           (shape[0], shape[0]))
    try:
        return SparseLayer(name=raw["name"], weight=weight, neuron=NeuronParams.from_dict(raw["neuron"]),
                           kept=raw["kept"], n_original=raw["n_original"],
                           fixed_point_scale=raw["fixed_point_scale"], recurrent_weight=recurrent)
    except SparseNetError as exc:
        raise ArtifactError(path, f"{where}: {exc}") from None
