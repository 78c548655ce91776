"""Energy estimates from operation counts, for named hardware profiles.

Energy = sum over operation kinds of (count x energy per operation). Every
constant cites its source.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from hw_export.counting import LayerCounts


@dataclass(frozen=True)
class EnergyProfile:
    """Energy per operation, in picojoules."""

    name: str
    source: str  # where the constants come from
    e_synop_pj: float  # per synaptic operation (one spike reaching one synapse)
    e_neuron_update_active_pj: float  # per neuron-step in which the neuron spikes
    e_neuron_update_inactive_pj: float  # per neuron-step without a spike
    e_spike_pj: float  # per emitted spike (routing it within a tile)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.startswith("e_") and not (getattr(self, f.name) >= 0):
                raise ValueError(f"profile {self.name}: {f.name} must be a non-negative number")


LOIHI = EnergyProfile(
    name="loihi",
    # Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
    # Learning", IEEE Micro 38(1), 2018, Table 2: energy per synaptic spike op
    # 23.6 pJ (minimum); per neuron update 81 pJ active / 52 pJ inactive;
    # within-tile spike energy 1.7 pJ.
    source="Davies et al., IEEE Micro 38(1), 2018, Table 2",
    e_synop_pj=23.6,
    e_neuron_update_active_pj=81.0,
    e_neuron_update_inactive_pj=52.0,
    e_spike_pj=1.7,
)

PROFILES: dict[str, EnergyProfile] = {LOIHI.name: LOIHI}


def energy_breakdown_j(counts: list[LayerCounts], profile: EnergyProfile) -> dict[str, np.ndarray]:
    """Per-sample energy in joules by operation kind, summed over layers."""
    synops = sum(c.synops for c in counts)
    active = sum(c.active_updates for c in counts)
    inactive = sum(c.neuron_updates - c.active_updates for c in counts)
    spikes = sum(c.spikes for c in counts)
    pj = 1e-12
    return {
        "synops": synops * profile.e_synop_pj * pj,
        "neuron_updates": (active * profile.e_neuron_update_active_pj
                           + inactive * profile.e_neuron_update_inactive_pj) * pj,
        "spikes": spikes * profile.e_spike_pj * pj,
    }


def energy_j(counts: list[LayerCounts], profile: EnergyProfile) -> np.ndarray:
    """Per-sample total energy in joules, ``[N]``."""
    return sum(energy_breakdown_j(counts, profile).values())
