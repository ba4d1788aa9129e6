"""pytest configuration of the pytest-benchmark suite (`pytest benchmarks/`; not part of the default test run).

Without a GPU, Triton kernels run in the interpreter, which must be switched on before triton is imported.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
