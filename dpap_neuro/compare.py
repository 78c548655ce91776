"""``dpap compare``: one report over run directories and/or exported networks."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from dpap_neuro.reporting import write_reports
from hw_export.energy import PROFILES
from hw_export.errors import UserError
from hw_export.files import atomic_write_text
from hw_export.h5io import read_sparsenet
from hw_export.report import SCHEMA_VERSION, ModelReport, RunReport, check, ratios, strict_json


class Collection:
    """The models, dataset and energy profiles gathered from the sources, refusing clashes."""

    def __init__(self) -> None:
        self.models: dict[str, ModelReport] = {}
        self.dataset: dict | None = None
        self._dataset_source: Path | None = None
        self.profile: str | None = None  # the first run's energy_profile (artifacts have none)
        self.profiles = {name: p.to_dict() for name, p in PROFILES.items()}
        self._seen_profiles: dict = {}

    def add_model(self, key: str, model: ModelReport, source: Path) -> None:
        if key in self.models:
            raise UserError(f"{source}: a model named {key!r} came already from an earlier source; "
                            "give the run directories (or artifacts) distinct names")
        self.models[key] = model

    def add_dataset(self, dataset: dict, source: Path) -> None:
        """The first source's dataset; a source on another dataset is refused (its models are not comparable)."""
        self.refuse_other_dataset(dataset["name"], source)
        if self.dataset is None:
            self.dataset, self._dataset_source = dataset, source

    def refuse_other_dataset(self, name: str, source: Path) -> None:
        if self.dataset is not None and name != self.dataset["name"]:
            raise UserError(f"{source}: dataset {name!r}, but {self._dataset_source} is on "
                            f"{self.dataset['name']!r}; compare models of one dataset")

    def choose_profile(self) -> str:
        """The energy profile of the ratios: the first run's (loihi for artifacts), if every model was measured
        with it; else loihi, else the first shared one in name order, saying so on stderr; refused if none."""
        common = set.intersection(*(set(m["per_sample"]["energy_j"]) for m in self.models.values()))
        if not common:
            raise UserError("the models share no energy profile, so their energies cannot be compared")
        wanted = self.profile or "loihi"
        if wanted in common:
            return wanted
        chosen = "loihi" if "loihi" in common else sorted(common)[0]
        print(f"warning: not every model was measured with energy profile {wanted!r}; the energy ratio uses "
              f"{chosen!r} (shared by all: {', '.join(sorted(common))})", file=sys.stderr)
        return chosen

    def add_profiles(self, profiles: dict, source: Path) -> None:
        for name, values in profiles.items():
            if self._seen_profiles.setdefault(name, values) != values:
                raise UserError(f"{source}: energy profile {name!r} has other constants than in an earlier source")
            self.profiles[name] = values


def read_run_report(source: Path) -> RunReport:
    """A finished run's report.json, validated against the schema (one line naming what is wrong)."""
    report_file = source / "report.json"
    if not report_file.is_file():
        raise UserError(f"{source}: no report.json (not a finished `dpap run` directory)")
    try:
        report = json.loads(report_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{report_file}: not valid JSON") from None
    check(report, source=str(report_file))
    return report


def add_run(found: Collection, source: Path, out_dir: Path, several: bool) -> None:
    report = read_run_report(source)
    found.add_dataset(report["dataset"], source)
    named = report.get("energy_profile")
    if found.profile and named and named != found.profile:
        print(f"warning: {source} names energy profile {named!r}, an earlier run {found.profile!r}; the energy "
              f"ratio uses the first run's", file=sys.stderr)
    found.profile = found.profile or named
    found.add_profiles(report.get("energy_profiles", {}), source)
    for name, model in report["models"].items():
        key = f"{source.name}/{name}" if several else name
        found.add_model(key, model, source)
        raster = source / f"{name}-raster.npz"
        if raster.is_file():
            (out_dir / f"{key}-raster.npz").parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raster, out_dir / f"{key}-raster.npz")


def add_artifact(found: Collection, source: Path, out_dir: Path, progress: bool, **lava) -> None:
    from dpap_neuro.simulate import simulate_artifact

    meta = read_sparsenet(source).metadata
    if "dataset" not in meta:
        raise UserError(f"{source}: the artifact does not name its dataset; use `dpap simulate --dataset`")
    found.refuse_other_dataset(meta["dataset"], source)  # before simulating it
    simulated = simulate_artifact(source, meta["dataset"], progress=progress, raster_dir=out_dir, **lava)
    found.add_dataset({"name": meta["dataset"], "n_train": None, **simulated["dataset"]}, source)
    found.add_model(simulated["model"], simulated["result"], source)


def compare_runs(sources: list[str | Path], out_dir: str | Path, progress: bool = True, **lava) -> RunReport:
    """One report over ``sources``: run directories (their report.json's models, named ``<dir>/<model>``
    when several are given) and SparseNet artifacts (simulated in Lava, float, on their run's test split).
    The first model is the comparison's baseline, the last the pruned one. ``lava``: RunConfig fields for the
    simulation of artifacts (``lava_engine``, ``lava_workers``, ``lava_timeout_s``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = Collection()
    for source in map(Path, sources):
        if source.is_dir():
            add_run(found, source, out_dir, several=len(sources) > 1)
        elif source.is_file():
            add_artifact(found, source, out_dir, progress, **lava)
        else:
            raise UserError(f"{source}: no such run directory or artifact")
    if len(found.models) < 2:
        raise UserError("compare needs at least two models (one run directory holds two)")
    profile = found.choose_profile()  # only profiles every model was measured with can be compared
    common = set.intersection(*(set(m["per_sample"]["energy_j"]) for m in found.models.values()))
    names = list(found.models)
    report = RunReport(schema_version=SCHEMA_VERSION, dataset={"n_train": None, **found.dataset},
                       models=found.models,
                       comparison={"baseline": names[0], "pruned": names[-1],
                                   "ratios": ratios(found.models[names[0]], found.models[names[-1]], profile)},
                       energy_profile=profile,
                       energy_profiles={n: p for n, p in found.profiles.items() if n in common},
                       sources=[str(s) for s in sources])
    check(report, source="compare report (as produced)")
    write_reports(report, out_dir, progress)
    atomic_write_text(out_dir / "report.json", strict_json(report))
    return report
