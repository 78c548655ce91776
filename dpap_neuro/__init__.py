"""dpap-neuro, PyTorch/Norse side: data, spiking models, DPAP and baseline pruners, training, runs."""

__version__ = "0.1.0"
