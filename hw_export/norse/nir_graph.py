"""A trained Norse model as a NIR graph with its structure kept (``Conv2d``, ``AvgPool2d``, ``Flatten`` nodes).

The other NIR writer, ``hw_export.nir_export.to_nir``, starts from the
``SparseNet`` (unrolled, dead neurons gone); this one keeps the model's layers
as NIR nodes, for consumers that map convolutions themselves. Shapes exclude
the batch. Conv and Linear weights are the effective (masked) weights; pruned
channels are zero kernels. Neuron nodes follow ``hw_export.nir_export``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from norse.torch import LIFCell
from torch import nn

from hw_export.nir_export import neuron_node
from hw_export.norse.export import _pair, check_layers, masked_weight, neuron_params_of
from hw_export.norse.layers import CELLS, named_layers, output_shape


def _node(layer: nn.Module, shape: tuple[int, ...]):
    """The NIR node of one synaptic, pooling or reshaping layer receiving per-sample ``shape``."""
    import nir

    if isinstance(layer, nn.Linear):
        weight, _ = masked_weight(layer)
        return "fc", nir.Affine(weight=weight, bias=np.zeros(weight.shape[0]))
    if isinstance(layer, nn.Conv2d):
        weight, _ = masked_weight(layer)
        return "conv", nir.Conv2d(input_shape=shape[1:], weight=weight, stride=_pair(layer.stride),
                                  padding=_pair(layer.padding), dilation=(1, 1), groups=1,
                                  bias=np.zeros(weight.shape[0]))
    if isinstance(layer, nn.AvgPool2d):
        kernel = _pair(layer.kernel_size)
        return "pool", nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(_pair(layer.stride or kernel)),
                                     padding=np.array([0, 0]))
    return "flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


def model_to_nir(model: nn.Module | Sequence[nn.Module], input_shape: Sequence[int]):
    """NIR graph of a trained Norse model, structure kept.

    A leading ``nn.Unflatten`` becomes the shape of the graph's input (NIR has
    no unflatten node); a ``Flatten`` flattens a whole sample (``start_dim=0``).
    """
    import nir

    layers = named_layers(model)
    check_layers(layers)
    shape = tuple(int(d) for d in input_shape)
    if layers and isinstance(layers[0][1], nn.Unflatten):
        shape = output_shape(layers[0][1], shape, layers[0][0])
        layers = layers[1:]
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges, previous, counts = [], "input", {}
    for name, layer in layers:
        if isinstance(layer, nn.Identity) or (isinstance(layer, nn.Flatten) and len(shape) == 1):
            continue  # nothing to do on activity that is flat already
        if isinstance(layer, CELLS):
            params = neuron_params_of(layer)
            kind, node, out_shape = ("lif" if isinstance(layer, LIFCell) else "readout"), neuron_node(params, shape), shape
        else:
            (kind, node), out_shape = _node(layer, shape), output_shape(layer, shape, name)
        counts[kind] = counts.get(kind, 0) + 1
        nodes[f"{kind}{counts[kind]}"] = node
        edges.append((previous, f"{kind}{counts[kind]}"))
        previous, shape = f"{kind}{counts[kind]}", out_shape
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((previous, "output"))
    dt = next(m.dt for _, m in named_layers(model) if isinstance(m, CELLS))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt_s": float(dt), "source": "dpap-neuro"})
