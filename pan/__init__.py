"""PAN: models, data, training, evaluation and the `pan` command, built on `pan_kernels`."""

__version__ = "0.1.0"
