"""Build script: pure-Python package plus the optional CUDA extension `pan_kernels._C` from `csrc/`.

Environment:
  PAN_SKIP_CUDA_BUILD=1   never build the extension
  PAN_FORCE_CUDA_BUILD=1  fail loudly if it cannot be built
  TORCH_CUDA_ARCH_LIST    target architectures (default "9.0")
  MAX_JOBS                parallel nvcc jobs (ninja)
  DEBUG=1                 -O0 -g -lineinfo
The decision never uses torch.cuda.is_available(): build machines often have no GPU.
"""

import glob
import os
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _sources() -> list[str]:
    """csrc/**/*.cpp and *.cu, relative to the project root, sorted; csrc/emu/ (the CPU emulator harness) excluded."""
    found = []
    for ext in ("cpp", "cu"):
        found += glob.glob(os.path.join("csrc", "**", f"*.{ext}"), root_dir=ROOT, recursive=True)
    return sorted(p for p in found if not p.startswith(os.path.join("csrc", "emu", "")))


def _cuda_extension():
    """Return ([ext], cmdclass) when the extension can and should be built, else ([], {})."""
    if _flag("PAN_SKIP_CUDA_BUILD"):
        return [], {}
    force = _flag("PAN_FORCE_CUDA_BUILD")
    sources = _sources()
    reason = None
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        reason = "torch is not importable in the build environment (use --no-build-isolation)"
    else:
        if not sources:
            reason = "no sources under csrc/"
        elif CUDA_HOME is None:
            reason = "CUDA_HOME not found (no nvcc)"
        elif not os.path.isfile(os.path.join(CUDA_HOME, "include", "cuda_runtime.h")):
            # torch guesses CUDA_HOME from `which nvcc`; a wrapper script outside the toolkit gives a wrong root
            reason = f"CUDA_HOME={CUDA_HOME} is not a CUDA toolkit root (no include/cuda_runtime.h); set CUDA_HOME"
        elif torch.version.cuda is None:
            reason = "torch is a CPU-only build"
    if reason is not None:
        if force:
            raise RuntimeError(f"PAN_FORCE_CUDA_BUILD=1 but the CUDA extension cannot be built: {reason}")
        print(f"[pan-kernels] skipping the CUDA extension: {reason}", file=sys.stderr)
        return [], {}

    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    debug = _flag("DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # no -std flag: torch.utils.cpp_extension adds the standard its headers need (torch 2.14 requires C++20)
    nvcc = opt + ["-lineinfo", "--expt-relaxed-constexpr"]
    ext = CUDAExtension(
        name="pan_kernels._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": opt, "nvcc": nvcc},
        py_limited_api=False,
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


def main() -> None:
    ext_modules, cmdclass = _cuda_extension()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)


# setuptools' PEP 517 backend and `python setup.py ...` both run this file as __main__; importing it (tests) only
# defines the helpers.
if __name__ == "__main__":
    main()
