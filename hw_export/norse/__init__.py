"""The Norse side of ``hw_export``: the one place in it that imports torch or norse.

* ``loop``: the one Norse time loop over ``[T, B, ...]`` (training,
  evaluation and the hardware side all step models with it) and the float64
  Norse reference a Lava run is compared with;
* ``layers``: a model's layers in forward order and their shapes, read from
  the model itself (an ``nn.Flatten`` or ``nn.Unflatten`` is a real layer,
  never a guess);
* ``export``: any supported feed-forward Norse model as a ``SparseNet``.

Everything else in ``hw_export`` works on plain arrays, so it runs where
neither PyTorch nor Norse is installed (``tests/test_layering.py``).
"""

from hw_export.norse.export import export_model
from hw_export.norse.layers import SUPPORTED_LAYERS, named_layers
from hw_export.norse.loop import SNNOutput, norse_reference, run_over_time

__all__ = ["SNNOutput", "SUPPORTED_LAYERS", "export_model", "named_layers", "norse_reference",
           "run_over_time"]
