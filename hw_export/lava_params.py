"""What Lava's ``Sparse`` and ``LIF`` processes are given, per layer, in float or Loihi fixed point.

The first step of the one Lava builder (``hw_export/lava_sim.py``):
``lava_network(net, precision)`` -> an engine builds and runs it -> results
read back. Every engine (Lava's own per-layer processes, the fast
whole-network process) and the netx reader start from a ``LavaNetwork``.

Float mapping (docs/DESIGN.md, section 3; Norse and Lava agree spike for
spike): ``du = dt * tau_syn_inv``, ``dv = dt * tau_mem_inv`` (the very float32
products Norse multiplies by), Lava weight ``= dv * W_norse`` (``lava_weight``,
the one place this fold is written), ``vth = v_th``; Lava's ``u`` is ``dv``
times Norse's current, ``v`` is Norse's voltage. Fixed point:
``hw_export/quantize.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from hw_export.errors import UserError
from hw_export.sparsenet import SparseLayer, SparseNet, SparseNetError

PRECISIONS = ("float", "fixed")
# Lava's LIF fires when v > vth; the float readout must never fire.
NEVER_FIRE_VTH = float(np.finfo(np.float64).max)


@dataclass(frozen=True, eq=False)
class LavaLayer:
    """One synaptic connection and the LIF population it feeds, as Lava's processes take them."""

    name: str
    weight: sparse.csr_matrix  # [n_out, n_in]; float: dv * W_norse (float64); fixed: int32 mantissas (even, -256..254)
    du: float  # current decay; fixed: 12-bit integer (Lava adds 1)
    dv: float  # voltage decay; fixed: 12-bit integer
    vth: float  # threshold; fixed: mantissa (Lava compares v with vth << 6); the readout's is out of reach
    spiking: bool  # False for the readout (its voltage is read, it never fires)
    voltage_scale: float  # Lava voltage per Norse voltage: 1 in float, 64 * K in fixed point
    recurrent_weight: sparse.csr_matrix | None = None  # [n_out, n_out] from its own s_out, as ``weight``; or None

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class LavaNetwork:
    """A SparseNet's layers as Lava parameters, in one precision."""

    precision: str  # "float" (Lava's floating_pt models) or "fixed" (bit-accurate Loihi, fixed_pt)
    n_inputs: int
    layers: tuple[LavaLayer, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def n_synapses(self) -> int:
        return sum(int(layer.weight.nnz) + (0 if layer.recurrent_weight is None else int(layer.recurrent_weight.nnz))
                   for layer in self.layers)


def lava_weight(layer: SparseLayer, recurrent: bool = False) -> sparse.csr_matrix | None:
    """Lava float weights ``dv * W_norse`` ``[n_out, n_in]`` (float64): the current Lava's ``u`` receives; with
    ``recurrent``, those of the layer's recurrent synapses ``[n_out, n_out]`` (None where it has none)."""
    matrix = layer.recurrent_weight if recurrent else layer.weight
    return None if matrix is None else (matrix * layer.neuron.dv).tocsr()


def check_lava_compatible(net: SparseNet) -> None:
    """Refuse what Lava's LIF cannot express (it has no leak potential and resets to 0)."""
    for layer in net.layers:
        if layer.neuron.v_leak != 0 or layer.neuron.v_reset != 0:
            raise SparseNetError(f"layer {layer.name}: Lava's LIF needs v_leak = v_reset = 0")


def lava_network(net: SparseNet, precision: str) -> LavaNetwork:
    """The Lava parameters of ``net`` in ``precision`` ("float" or "fixed")."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    check_lava_compatible(net)
    if precision == "fixed":
        from hw_export.quantize import quantize

        return quantize(net)
    layers = tuple(LavaLayer(layer.name, lava_weight(layer), layer.neuron.du, layer.neuron.dv,
                             layer.neuron.v_th if layer.neuron.kind == "lif" else NEVER_FIRE_VTH,
                             layer.neuron.kind == "lif", 1.0, lava_weight(layer, recurrent=True))
                   for layer in net.layers)
    return LavaNetwork("float", net.n_inputs, layers)
