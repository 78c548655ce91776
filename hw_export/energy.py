"""Energy estimates from operation counts, for named hardware profiles.

Energy per sample = synops x e_synop + dense MACs x e_dense_mac
+ active / inactive neuron updates x their energies + spikes x e_spike.
An event-driven chip (Loihi) pays per synaptic operation; a conventional
chip doing dense arithmetic (cmos45) pays a multiply-accumulate for every
remaining synapse at every step, spikes or not. Every constant cites its
source. Users can bring their own profile as a JSON or TOML file with the
same fields (``load_profile``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from hw_export.counting import LayerCounts
from hw_export.errors import UserError
from hw_export.files import first_line


@dataclass(frozen=True)
class EnergyProfile:
    """Energy per operation, in picojoules."""

    name: str
    source: str  # where the constants come from
    e_synop_pj: float  # per synaptic operation (one spike reaching one synapse), event-driven
    e_dense_mac_pj: float  # per synapse per step when every synapse is computed every step
    e_neuron_update_active_pj: float  # per neuron-step in which the neuron spikes
    e_neuron_update_inactive_pj: float  # per neuron-step without a spike
    e_spike_pj: float  # per emitted spike (routing it within a tile)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise UserError("an energy profile needs a non-empty name")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("e_") and not (isinstance(value, (int, float)) and math.isfinite(value)
                                                and value >= 0):
                raise UserError(f"profile {self.name}: {f.name} must be a non-negative number, got {value!r}")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


LOIHI = EnergyProfile(
    name="loihi",
    # Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
    # Learning", IEEE Micro 38(1), 2018, Table 2: energy per synaptic spike op
    # 23.6 pJ (minimum); per neuron update 81 pJ active / 52 pJ inactive;
    # within-tile spike energy 1.7 pJ.
    source="Davies et al., IEEE Micro 38(1), 2018, Table 2",
    e_synop_pj=23.6,
    e_dense_mac_pj=0.0,
    e_neuron_update_active_pj=81.0,
    e_neuron_update_inactive_pj=52.0,
    e_spike_pj=1.7,
)

CMOS45 = EnergyProfile(
    name="cmos45",
    # Horowitz, "Computing's energy problem (and what we can do about it)",
    # ISSCC 2014, 45 nm: 32-bit float add 0.9 pJ, multiply 3.7 pJ, so a
    # multiply-accumulate 4.6 pJ. Dense arithmetic: one MAC per remaining
    # synapse per step; a neuron update is two MACs (current and voltage
    # decay) and one add (threshold compare): 2 x 4.6 + 0.9 = 10.1 pJ.
    source="Horowitz, ISSCC 2014 (45 nm): 0.9 pJ add, 4.6 pJ multiply-accumulate",
    e_synop_pj=0.0,
    e_dense_mac_pj=4.6,
    e_neuron_update_active_pj=10.1,
    e_neuron_update_inactive_pj=10.1,
    e_spike_pj=0.0,
)

# Loihi 2 (Intel, 2021): Intel has published chip-level figures but no
# per-operation energies comparable to Davies et al. 2018, so there is no
# `loihi2` profile; bring one as a file if you have measured constants.
PROFILES: dict[str, EnergyProfile] = {LOIHI.name: LOIHI, CMOS45.name: CMOS45}


def _toml():
    """The TOML parser: the standard library's from Python 3.11, the ``tomli`` package (a dependency) before."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib


def load_profile(path: str | Path) -> EnergyProfile:
    """A profile from a JSON or TOML file with EnergyProfile's fields (``source`` optional)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such energy profile file")
    toml = path.suffix.lower() == ".toml"
    parser = _toml() if toml else json
    try:
        data = parser.loads(path.read_text())
    except (parser.TOMLDecodeError if toml else json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid {'TOML' if toml else 'JSON'} ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a table of profile fields")
    names = [f.name for f in fields(EnergyProfile)]
    data.setdefault("source", f"user file {path.name}")
    unknown = sorted(set(data) - set(names))
    missing = sorted(set(names) - set(data))
    if unknown or missing:
        raise UserError(f"{path}: " + "; ".join(
            part for part in (f"unknown fields {', '.join(unknown)}" if unknown else "",
                              f"missing fields {', '.join(missing)}" if missing else "") if part))
    try:
        return EnergyProfile(**data)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def resolve_profiles(name_or_file: str) -> dict[str, EnergyProfile]:
    """The built-in energy profiles, plus one from a JSON/TOML file if ``name_or_file`` names one."""
    profiles = dict(PROFILES)
    if name_or_file not in PROFILES:
        if not Path(name_or_file).suffix:
            raise UserError(f"unknown energy profile {name_or_file!r}; choose one of {', '.join(PROFILES)} "
                            "or give a .json/.toml file")
        custom = load_profile(name_or_file)
        if custom.name in PROFILES:
            raise UserError(f"{name_or_file}: profile name {custom.name!r} is a built-in profile's; "
                            "give yours another name")
        profiles[custom.name] = custom
    return profiles


def chosen_profile(name_or_file: str, profiles: dict) -> str:
    """The name of the profile that ``name_or_file`` (as given to ``resolve_profiles``: a built-in's name or a
    profile file) selects among ``profiles`` (what ``resolve_profiles`` returned): the built-in named, or the
    one profile the file brought."""
    if name_or_file in profiles:
        return name_or_file
    brought = [name for name in profiles if name not in PROFILES]
    if name_or_file not in PROFILES and len(brought) == 1:
        return brought[0]
    raise UserError(f"energy profile {name_or_file!r} is not among the profiles measured "
                    f"({', '.join(profiles)}); name one of them")


def energy_breakdown_j(counts: list[LayerCounts], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Per-sample energy in joules by operation kind, summed over layers."""
    pj = 1e-12
    active = sum(c.active_updates for c in counts)
    inactive = sum(c.neuron_updates - c.active_updates for c in counts)
    return {
        "synops": sum(c.synops for c in counts) * profile.e_synop_pj * pj,
        "dense_macs": sum(c.dense_macs for c in counts) * profile.e_dense_mac_pj * pj,
        "neuron_updates": (active * profile.e_neuron_update_active_pj
                           + inactive * profile.e_neuron_update_inactive_pj) * pj,
        "spikes": sum(c.spikes for c in counts) * profile.e_spike_pj * pj,
    }


def energy_j(counts: list[LayerCounts], profile: EnergyProfile) -> np.ndarray:
    """Per-sample total energy in joules, ``[N]``."""
    return sum(energy_breakdown_j(counts, profile).values())
