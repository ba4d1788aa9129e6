"""Every benchmarked op described once: input factory, shapes, providers, modes and dtypes (STYLE.md practice 11).

Providers:
  eager    the public op with backend="torch" (pan_kernels.reference behind the public validation)
  compile  torch.compile(pan_kernels.reference.<op>_ref)
  triton   the public op with backend="triton"
  cuda     the public op with backend="cuda" (the compiled extension pan_kernels._C)
A provider that cannot run here (no extension, no GPU, Triton on CPU tensors without TRITON_INTERPRET=1) raises
`Unavailable` with the library's own reason; the runner reports it as skipped.

Shapes: the GPU defaults are the paper's layers (docs/design.md, The model family and Floors):
MREF (B=256, C=32, Hd=32, k=3 at 49x49, 23x23
and 10x10; the final 4x4 layer scores with k=1 and feeds the heads with A=5) and VGG (B=32, Hd=C, k=5: C=256 at
56x56, C=512 at 28x28 and 14x14; the marginal with C=512, 14x14, A=749). `scale="small"` gives CPU-sized versions of
the same layers (same names) so a CPU run finishes in seconds.

`h_policy` is what the bytes/FLOPs model assumes for op A's hidden activations h (docs/design.md, Backward designs):
recomputed in backward where memory-bound (MREF), stored in bf16 where compute-bound (VG).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

import pan_kernels
from pan_kernels import reference

MODES = ("fwd", "bwd", "fwd+bwd")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PROVIDERS = ("eager", "compile", "triton", "cuda")
SCALES = ("full", "small")


class Unavailable(RuntimeError):
    """A provider cannot run on this machine; the message says why and how to get it."""


@dataclass(frozen=True)
class Shape:
    """One layer's sizes. Hd and k belong to the attention MLP ops, A to the hard marginals."""

    name: str
    B: int
    C: int
    H: int
    W: int
    Hd: int = 0
    k: int = 1
    A: int = 0
    h_policy: str = "recompute"

    def label(self) -> str:
        text = f"B{self.B} C{self.C} {self.H}x{self.W}"
        if self.Hd:
            text += f" Hd{self.Hd} k{self.k}"
        if self.A:
            text += f" A{self.A}"
        return text


# ------------------------------------------------------------------------------------------------- shapes

_MLP_FULL = (
    Shape("MREF-49", 256, 32, 49, 49, Hd=32, k=3),
    Shape("MREF-23", 256, 32, 23, 23, Hd=32, k=3),
    Shape("MREF-10", 256, 32, 10, 10, Hd=32, k=3),
    Shape("VG-56", 32, 256, 56, 56, Hd=256, k=5, h_policy="store"),
    Shape("VG-28", 32, 512, 28, 28, Hd=512, k=5, h_policy="store"),
    Shape("VG-14", 32, 512, 14, 14, Hd=512, k=5, h_policy="store"),
)
_SCORES_FULL = (
    Shape("MREF-4", 256, 32, 4, 4, Hd=32, k=1),
    Shape("VG-14", 32, 512, 14, 14, Hd=512, k=5, h_policy="store"),
)
_HEAD_FULL = (
    Shape("MREF-4", 256, 32, 4, 4, A=5),
    Shape("VG-14", 32, 512, 14, 14, A=749),
)
# the Visual Genome attribute head (paper §4.2): A = 749 attributes on VGG-16's pool5 (14x14) and a 7x7 grid
_MULTILABEL_FULL = (
    Shape("VG-14", 32, 512, 14, 14, A=749),
    Shape("VG-7", 32, 512, 7, 7, A=749),
)
_POOL_FULL = (
    Shape("MREF-4", 256, 32, 4, 4),
    Shape("VG-14", 32, 512, 14, 14),
)


def _small(shape: Shape) -> Shape:
    """The CPU-sized version of a layer: MREF keeps its layer and cuts the batch; VG cuts batch, channels, size."""
    if shape.name.startswith("MREF"):
        return replace(shape, B=2)
    size = max(4, shape.H // 4)
    return replace(shape, B=2, C=32, H=size, W=size, Hd=32 if shape.Hd else 0)


# ---------------------------------------------------------------------------------------------- input factories


def _randn(generator: torch.Generator, *shape: int, std: float = 1.0) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64) * std


def _mlp_inputs(shape: Shape, generator: torch.Generator) -> tuple:
    """(x, query_bias, weight1, bias1, weight2, bias2) in float64, scaled like a trained layer."""
    s, g = shape, generator
    fan_in = s.C * s.k * s.k
    return (
        _randn(g, s.B, s.C, s.H, s.W), _randn(g, s.B, s.Hd, std=0.5), _randn(g, s.Hd, s.C, s.k, s.k, std=fan_in**-0.5),
        _randn(g, s.Hd, std=0.5), _randn(g, s.Hd, std=s.Hd**-0.5), _randn(g, std=0.5),
    )


def _marginal_inputs(shape: Shape, generator: torch.Generator) -> tuple:
    """(x, scores, cls_weight, cls_bias)."""
    s, g = shape, generator
    return _randn(g, s.B, s.C, s.H, s.W), _randn(g, s.B, s.H, s.W, std=2.0), _randn(g, s.A, s.C, std=s.C**-0.5), \
        _randn(g, s.A, std=0.5)


def _pool_inputs(shape: Shape, generator: torch.Generator) -> tuple:
    """(x, scores)."""
    s, g = shape, generator
    return _randn(g, s.B, s.C, s.H, s.W), _randn(g, s.B, s.H, s.W, std=2.0)


# ------------------------------------------------------------------------------------------------------ ops


@dataclass(frozen=True)
class OpSpec:
    """One op: how to call it, how to make its inputs, which inputs are differentiated, and where it is timed."""

    name: str
    api: Callable  # the public op, called with backend=...
    ref: Callable  # the eager reference (compiled by the "compile" provider)
    factory: Callable[[Shape, torch.Generator], tuple]
    shapes: tuple[Shape, ...]
    modes: tuple[str, ...] = MODES
    dtypes: tuple[str, ...] = tuple(DTYPES)
    output_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()

    def shapes_for(self, scale: str) -> tuple[Shape, ...]:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        return self.shapes if scale == "full" else tuple(_small(s) for s in self.shapes)

    def make_inputs(self, shape: Shape, dtype: torch.dtype, device: torch.device, seed: int = 0) -> tuple:
        """Inputs drawn in float64 from `seed`, rounded to `dtype` on `device` (None stays None)."""
        generator = torch.Generator().manual_seed(seed)
        return tuple(None if t is None else t.to(device=device, dtype=dtype) for t in self.factory(shape, generator))


def as_tuple(result) -> tuple[Tensor, ...]:
    """An op's result as a tuple of tensors (attention_scores returns one tensor)."""
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


_MLP_INPUTS = ("x", "query_bias", "weight1", "bias1", "weight2", "bias2")

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("progressive_attention", pan_kernels.progressive_attention, reference.progressive_attention_ref,
               _mlp_inputs, _MLP_FULL, output_names=("out", "alpha"), input_names=_MLP_INPUTS),
        OpSpec("attention_scores", pan_kernels.attention_scores, reference.attention_scores_ref,
               _mlp_inputs, _SCORES_FULL, output_names=("scores",), input_names=_MLP_INPUTS),
        OpSpec("hard_attention_marginal", pan_kernels.hard_attention_marginal, reference.hard_attention_marginal_ref,
               _marginal_inputs, _HEAD_FULL, output_names=("log_p", "alpha"),
               input_names=("x", "scores", "cls_weight", "cls_bias")),
        OpSpec("soft_attention_pool", pan_kernels.soft_attention_pool, reference.soft_attention_pool_ref,
               _pool_inputs, _POOL_FULL, output_names=("f_att", "alpha"), input_names=("x", "scores")),
        OpSpec("hard_attention_marginal_multilabel", pan_kernels.hard_attention_marginal_multilabel,
               reference.hard_attention_marginal_multilabel_ref, _marginal_inputs, _MULTILABEL_FULL,
               output_names=("log_p", "log_1mp", "alpha"), input_names=("x", "scores", "cls_weight", "cls_bias")),
    )
}

# What `pan bench` runs on a CPU when no --shape is given: one layer per op (the interpreter and torch.compile on
# two cores are slow; --shape all or a list of names selects more).
CPU_DEFAULT_SHAPES = {
    "progressive_attention": ("MREF-23",),
    "attention_scores": ("MREF-4",),
    "hard_attention_marginal": ("MREF-4",),
    "soft_attention_pool": ("MREF-4",),
    "hard_attention_marginal_multilabel": ("VG-7",),
}


# -------------------------------------------------------------------------------------------------- providers


@functools.cache
def _compiled(ref: Callable, mode: str | None) -> Callable:
    # One compiled wrapper per op for the whole run; dynamic=False specialises every shape, as a user's
    # static-shape model would be. The runner raises dynamo's recompile limit so no case silently falls back.
    return torch.compile(ref, dynamic=False, mode=mode)


def _check_backend(spec: OpSpec, backend: str, example: Tensor) -> None:
    from pan_kernels._backend import resolve_backend

    try:
        resolve_backend(spec.name, backend, example)
    except (RuntimeError, TypeError) as err:
        raise Unavailable(str(err)) from None


def make_provider(name: str, spec: OpSpec, example: Tensor, *, compile_mode: str | None = None) -> Callable:
    """The callable of provider `name` for `spec` (same signature as the reference), or raise Unavailable."""
    if name == "eager":
        return functools.partial(spec.api, backend="torch")
    if name == "compile":
        return _compiled(spec.ref, compile_mode)
    if name in ("triton", "cuda"):
        _check_backend(spec, name, example)
        return functools.partial(spec.api, backend=name)
    raise ValueError(f"unknown provider {name!r}; choose from {PROVIDERS}")


@dataclass(frozen=True)
class Case:
    """One (op, shape, mode, dtype) group, timed for each provider."""

    op: OpSpec
    shape: Shape
    mode: str
    dtype: str


def select_cases(ops=None, shapes=None, modes=None, dtypes=None, scale: str = "full",
                 cpu_defaults: bool = False) -> list[Case]:
    """The registry's cases filtered by op names, shape names ("all" or None = every one), modes and dtypes.

    cpu_defaults (with shapes None) keeps only CPU_DEFAULT_SHAPES.
    """
    for kind, chosen, known in (("op", ops, OPS), ("mode", modes, MODES), ("dtype", dtypes, DTYPES)):
        unknown = [c for c in chosen or () if c not in known]
        if unknown:
            raise ValueError(f"unknown {kind} {unknown}; choose from {list(known)}")
    all_shapes = {s.name for spec in OPS.values() for s in spec.shapes}
    if shapes and "all" not in shapes:
        unknown = [s for s in shapes if s not in all_shapes]
        if unknown:
            raise ValueError(f"unknown shape {unknown}; choose from {sorted(all_shapes)} or 'all'")
    cases = []
    for spec in OPS.values():
        if ops and spec.name not in ops:
            continue
        for shape in spec.shapes_for(scale):
            if shapes and "all" not in shapes and shape.name not in shapes:
                continue
            if not shapes and cpu_defaults and shape.name not in CPU_DEFAULT_SHAPES[spec.name]:
                continue
            for mode in spec.modes:
                if modes and mode not in modes:
                    continue
                for dtype in spec.dtypes:
                    if dtype in (dtypes or ("float32",)):
                        cases.append(Case(spec, shape, mode, dtype))
    return cases
