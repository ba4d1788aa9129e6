"""Static pre-flight of every Triton kernel at the registry's shapes, compiled for the H100/H200 (sm_90) without a GPU.

    pan bench --preflight [--op ...] [--shape ...] [--dtype ...] [--json FILE]
    python -m pan.bench.preflight [--op ...] [--shape ...] [--dtype ...] [--json FILE]

For each (op, shape, dtype) of `pan.bench.registry` (full scale: the paper's layers) the Triton launchers run
forward and backward on *meta* tensors under the GPU tile policy; every kernel launch is recorded instead of run
(grid, arguments, num_warps) and specialised exactly as Triton's JIT would on a GPU (ints equal to 1 become
constants, 16-divisible ints and pointers get `tt.divisibility`), then compiled with `triton.compile` for
`GPUTarget("cuda", 90, 32)`. Per launch it reports:

- registers per thread, spill stores/loads and stack (`ptxas -v` on the kernel's PTX, Triton's own ptxas),
- shared memory per CTA (Triton's metadata), CTAs in the grid, CTAs per SM (registers, shared memory, threads)
  and waves over the 132 SMs (`ctas < 132`: SMs left idle),
- tensor-core instructions in the PTX (`mma.sync`, `wgmma`),
- how the loads of x are laid out (from the TTGIR: which tensor dimension the lanes of a warp run along and how many
  elements each thread moves at once) and whether that is the memory-contiguous dimension of x (NCHW: pixels;
  channels_last: channels): `coalesced`, `vec` (elements per thread and instruction), `contig_bytes` (contiguous
  bytes one warp row covers); the PTX's global-load and cp.async widths are counted too.

Exit status: 0 when every kernel compiled and every tl.dot lowered to tensor-core instructions; 1 otherwise. Spills,
uncoalesced x loads and grids under one wave are findings (the `findings` column), not failures; `--strict` makes
them failures. Needs no GPU, only triton (+ torch); runs without TRITON_INTERPRET (`pan bench --preflight` re-runs
itself in a subprocess when it is set).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

SM90 = {"sms": 132, "regs_per_sm": 65536, "smem_per_sm": 228 * 1024, "smem_reserved_per_cta": 1024,
        "max_threads_per_sm": 2048, "max_ctas_per_sm": 32}
_ELEM_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "f64": 8}


@dataclasses.dataclass
class Launch:
    op: str
    shape: str
    dtype: str
    direction: str
    kernel: object  # JITFunction
    args: tuple
    kwargs: dict
    grid: tuple
    x_layout: str  # "nchw" or "channels_last": which dimension of x is contiguous in memory


# --------------------------------------------------------------------------------------------- launch collection


def _meta(*shape, dtype):
    import torch

    return torch.empty(shape, device="meta", dtype=dtype)


def _run_op(op: str, s, dtype) -> None:
    """Forward and backward launchers of `op` at shape `s` on meta tensors (nothing runs; launches are recorded)."""
    import torch

    from pan_kernels.ops import attention_mlp_triton as mlp
    from pan_kernels.ops import multilabel_marginal_triton as multilabel
    from pan_kernels.ops import spatial_attention_triton as spatial

    x = _meta(s.B, s.C, s.H, s.W, dtype=dtype)
    if op in ("progressive_attention", "attention_scores"):
        gate = op == "progressive_attention"
        qb, w1, b1 = _meta(s.B, s.Hd, dtype=dtype), _meta(s.Hd, s.C, s.k, s.k, dtype=dtype), _meta(s.Hd, dtype=dtype)
        w2, b2 = _meta(s.Hd, dtype=dtype), _meta(dtype=dtype)
        _set_direction("fwd")
        _, a = mlp.attention_mlp_fwd(x, qb, w1, b1, w2, b2, gate=gate)
        _set_direction("bwd")
        mlp.attention_mlp_bwd(torch.empty_like(x) if gate else None, _meta(s.B, s.H, s.W, dtype=dtype), x, qb, w1, b1,
                              w2, a, gate=gate)
    elif op == "hard_attention_marginal":
        sc, wc, bc = _meta(s.B, s.H, s.W, dtype=dtype), _meta(s.A, s.C, dtype=dtype), _meta(s.A, dtype=dtype)
        _set_direction("fwd")
        _, _, stats = spatial.hard_attention_marginal_fwd(x, sc, wc, bc)
        _set_direction("bwd")
        spatial.hard_attention_marginal_bwd(_meta(s.B, s.A, dtype=dtype), _meta(s.B, s.H, s.W, dtype=dtype), x, wc, bc,
                                            stats)
    elif op == "hard_attention_marginal_multilabel":
        sc, wc, bc = _meta(s.B, s.H, s.W, dtype=dtype), _meta(s.A, s.C, dtype=dtype), _meta(s.A, dtype=dtype)
        _set_direction("fwd")
        *_, stats = multilabel.hard_attention_marginal_multilabel_fwd(x, sc, wc, bc)
        _set_direction("bwd")
        g = _meta(s.B, s.A, dtype=dtype)
        multilabel.hard_attention_marginal_multilabel_bwd(g, g, _meta(s.B, s.H, s.W, dtype=dtype), x, wc, bc, stats)
    elif op == "soft_attention_pool":
        sc = _meta(s.B, s.H, s.W, dtype=dtype)
        _set_direction("fwd")
        _, alpha = spatial.soft_attention_pool_fwd(x, sc)
        _set_direction("bwd")
        spatial.soft_attention_pool_bwd(_meta(s.B, s.C, dtype=dtype), _meta(s.B, s.H, s.W, dtype=dtype), x, alpha)
    else:
        raise ValueError(f"unknown op {op!r}")


_STATE: dict = {"direction": "fwd", "records": None}


def _set_direction(direction: str) -> None:
    _STATE["direction"] = direction


def collect_launches(op: str, shape, dtype_name: str) -> list[Launch]:
    """Every Triton launch the launchers of `op` make at `shape` (a registry Shape) under the GPU tile policy."""
    import torch
    from triton.runtime.jit import JITFunction

    from pan_kernels.ops import _launch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype_name]
    records: list = []

    def record(self, *args, grid, warmup, **kwargs):
        records.append((_STATE["direction"], self, args, kwargs, tuple(grid)))

    saved = (_launch.on_gpu, JITFunction.run, torch.backends.cudnn.allow_tf32)
    _launch.on_gpu = lambda x: True  # GPU tiles and TF32 dots, as on the device (cudnn.allow_tf32 defaults to True)
    JITFunction.run = record
    torch.backends.cudnn.allow_tf32 = True
    try:
        _run_op(op, shape, dtype)
    finally:
        _launch.on_gpu, JITFunction.run, torch.backends.cudnn.allow_tf32 = saved
    return [Launch(op, shape.name, dtype_name, d, k, a, kw, g, "nchw") for d, k, a, kw, g in records]


# ------------------------------------------------------------------------------------------------------ compile


def _target():
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", 90, 32)


@cache
def _backend():
    from triton.compiler import make_backend

    return make_backend(_target())


def specialise(launch: Launch) -> tuple[dict, dict, dict, dict]:
    """(signature, constexprs, attrs, options) exactly as triton's JIT builds them for this launch on a GPU."""
    from triton.runtime import jit as tjit

    backend = _backend()
    kernel = launch.kernel
    binder = tjit.create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, launch.kwargs, bound, specialization, options)
    return signature, constexprs, attrs, options.__dict__


def _key(launch: Launch, spec) -> str:
    signature, constexprs, attrs, options = spec
    return json.dumps([launch.kernel.__name__, signature, sorted((str(k), str(v)) for k, v in constexprs.items()),
                       sorted((str(k), str(v)) for k, v in attrs.items()), options.get("num_warps"),
                       options.get("num_stages")], default=str)


def compile_launch(launch: Launch, spec):
    import triton
    from triton.compiler import ASTSource

    signature, constexprs, attrs, options = spec
    return triton.compile(ASTSource(launch.kernel, signature, constexprs, attrs), target=_target(), options=options)


def _ptxas_path() -> str:
    try:
        from triton import knobs

        path = knobs.nvidia.ptxas.path
        if path and os.path.exists(path):
            return path
    except Exception:  # noqa: BLE001 — older triton: fall back to the toolkit
        pass
    for cand in (os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "ptxas"), "ptxas"):
        if cand == "ptxas" or os.path.exists(cand):
            return cand
    return "ptxas"


def ptxas_info(ptx: str) -> dict:
    """registers, spill_stores, spill_loads, stack (bytes) from `ptxas -v` on this PTX."""
    arch = re.search(r"^\.target\s+(\w+)", ptx, re.M)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        proc = subprocess.run([_ptxas_path(), f"-arch={arch.group(1) if arch else 'sm_90a'}", "-v", str(src), "-o",
                               str(Path(tmp) / "k.cubin")], capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    num = lambda pat: int(m.group(1)) if (m := re.search(pat, text)) else 0  # noqa: E731
    return {"registers": num(r"Used (\d+) registers"), "spill_stores": num(r"(\d+) bytes spill stores"),
            "spill_loads": num(r"(\d+) bytes spill loads"), "stack": num(r"(\d+) bytes stack frame"),
            "ptxas_ok": proc.returncode == 0}


def ptx_counts(ptx: str) -> dict:
    """Tensor-core and global-memory instruction counts (static, in the PTX text)."""
    counts = {"mma_sync": len(re.findall(r"\bmma\.sync\.", ptx)), "wgmma": len(re.findall(r"\bwgmma\.mma_async", ptx))}
    loads: dict[str, int] = {}
    for m in re.finditer(r"\bld\.global(?:\.[a-z]+)*?(\.v[248])?\.([busf]\d+)", ptx):
        width = int(m.group(1)[2:]) if m.group(1) else 1
        bits = int(m.group(2)[1:]) * width
        loads[f"ld{bits}"] = loads.get(f"ld{bits}", 0) + 1
    for m in re.finditer(r"\bcp\.async\.c[ag]\.shared\.global[^\n;]*?,\s*(\d+)\s*[,;]", ptx):
        loads[f"cp.async{int(m.group(1)) * 8}"] = loads.get(f"cp.async{int(m.group(1)) * 8}", 0) + 1
    counts["global_loads"] = dict(sorted(loads.items()))
    return counts


# -------------------------------------------------------------------------------------- x-load layout (TTGIR)

_LOAD_RE = re.compile(r"(?:tt\.load|ttg\.async_copy_global_to_local)\s.*?:\s*tensor<([0-9x]+)x!tt\.ptr<(\w+)>,\s*"
                      r"(#[\w.]+)>.*?loc\((#loc\d*)\)")


def _parse_layouts(ttgir: str) -> dict[str, dict]:
    out = {}
    for m in re.finditer(r"^(#blocked\d*) = #ttg\.blocked<\{(.*?)\}>", ttgir, re.M):
        fields = {k: [int(v) for v in vals.split(",")] for k, vals in
                  re.findall(r"(\w+) = \[([0-9, ]+)\]", m.group(2))}
        out[m.group(1)] = fields
    return out


def _parse_locs(ttgir: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^(#loc\d*) = loc\((.*)\)\s*$", ttgir, re.M)}


def _resolve_loc(ref: str, locs: dict[str, str], depth: int = 0) -> tuple[str, int] | None:
    """The innermost (callee) source file and line of a TTGIR location reference."""
    text = locs.get(ref)
    if text is None or depth > 50:
        return None
    m = re.match(r'"([^"]+)":(\d+):\d+', text)
    if m:
        return m.group(1), int(m.group(2))
    m = re.match(r"callsite\((#loc\d*) at (#loc\d*)\)", text)
    if m:
        return _resolve_loc(m.group(1), locs, depth + 1)
    m = re.search(r"(#loc\d*)", text)
    return _resolve_loc(m.group(1), locs, depth + 1) if m else None


@cache
def _source_line(path: str, line: int) -> str:
    try:
        return Path(path).read_text().splitlines()[line - 1]
    except (OSError, IndexError):
        return ""


_X_LOAD = re.compile(r"\bb_xt?\s*=\s*tl\.load\(")


def x_loads(ttgir: str, contiguous: str) -> list[dict]:
    """Layout of every load of x (source lines `b_x = tl.load(...)` / `b_xt = ...`): which dimension the lanes run
    along, elements per thread along it, and whether that is x's memory-contiguous dimension (`contiguous`:
    "pixels" or "channels"). The channel dimension of a load is the one `o_c` is broadcast along on its line."""
    layouts, locs = _parse_layouts(ttgir), _parse_locs(ttgir)
    rows, seen = [], set()
    for m in _LOAD_RE.finditer(ttgir):
        shape, elem, layout_name, loc = m.group(1), m.group(2), m.group(3), m.group(4)
        where = _resolve_loc(loc, locs)
        if where is None:
            continue
        text = _source_line(*where)
        if not _X_LOAD.search(text) or (where, layout_name) in seen:
            continue
        seen.add((where, layout_name))
        layout = layouts.get(layout_name)
        dims = [int(d) for d in shape.split("x")]
        if layout is None or len(dims) != 2:
            rows.append({"line": where[1], "layout": layout_name, "coalesced": None})
            continue
        chan_dim = 1 if "o_c[None, :]" in text else 0 if "o_c[:, None]" in text else None
        fast = layout["order"][0]
        lanes_dim = fast if layout["threadsPerWarp"][fast] > 1 else 1 - fast
        names = {chan_dim: "channels", None if chan_dim is None else 1 - chan_dim: "pixels"}
        vec = layout["sizePerThread"][fast]
        lanes_along = names.get(lanes_dim, f"dim{lanes_dim}")
        coalesced = lanes_along == contiguous
        contig = (layout["sizePerThread"][lanes_dim] * layout["threadsPerWarp"][lanes_dim] if coalesced else 1)
        rows.append({"line": where[1], "tile": dims, "lanes_along": lanes_along, "vec": vec if coalesced else 1,
                     "coalesced": coalesced, "contig_bytes": contig * _ELEM_BYTES.get(elem, 4)})
    return rows


# ------------------------------------------------------------------------------------------------- occupancy


def occupancy(registers: int, num_warps: int, smem: int) -> int:
    """CTAs per SM on sm_90 (registers allocated per warp in units of 256, shared memory, threads, CTA limit)."""
    per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_regs = SM90["regs_per_sm"] // (per_warp * num_warps)
    by_smem = SM90["smem_per_sm"] // (smem + SM90["smem_reserved_per_cta"]) if smem else SM90["max_ctas_per_sm"]
    by_threads = SM90["max_threads_per_sm"] // (32 * num_warps)
    return max(0, min(by_regs, by_smem, by_threads, SM90["max_ctas_per_sm"]))


def _uses_dot(kernel) -> bool:
    import inspect

    from triton.runtime.jit import JITFunction

    def walk(fn, seen):
        source = inspect.getsource(fn.fn)
        if "tl.dot(" in source or "mma(" in source:
            return True
        helpers = [f for name, f in fn.fn.__globals__.items()
                   if isinstance(f, JITFunction) and f"{name}(" in source and name not in seen]
        return any(walk(f, seen | {fn.__name__}) for f in helpers)

    return walk(kernel, frozenset())


@contextlib.contextmanager
def _fresh_triton_cache():
    """Compile into a new, temporary Triton cache. A cached kernel's TTGIR keeps the source locations (file, line) of
    the checkout that compiled it first, which need not be these files at these lines; the x-load analysis reads the
    source lines the locations point at."""
    saved = os.environ.get("TRITON_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="pan-preflight-triton-") as cache_dir:
        os.environ["TRITON_CACHE_DIR"] = cache_dir
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("TRITON_CACHE_DIR", None)
            else:
                os.environ["TRITON_CACHE_DIR"] = saved


def analyse(launches: list[Launch], log=lambda _m: None) -> list[dict]:
    """One row per launch: compile (cached per specialisation) and measure."""
    compiled_cache: dict[str, dict] = {}
    rows = []
    for launch in launches:
        name = launch.kernel.__name__
        row = {"op": launch.op, "shape": launch.shape, "dtype": launch.dtype, "dir": launch.direction,
               "kernel": name, "grid": list(launch.grid)}
        try:
            spec = specialise(launch)
            key = _key(launch, spec)
            if key not in compiled_cache:
                log(f"compiling {name} for {launch.op} {launch.shape} {launch.dtype}")
                ck = compile_launch(launch, spec)
                ptx, ttgir = ck.asm["ptx"], ck.asm.get("ttgir", "")
                num_warps = ck.metadata.num_warps
                info = {"num_warps": num_warps, "num_stages": getattr(ck.metadata, "num_stages", None),
                        "smem": ck.metadata.shared, **ptxas_info(ptx), **ptx_counts(ptx), "_ttgir": ttgir}
                compiled_cache[key] = info
            info = compiled_cache[key]
            x_arg = launch.args[0] if name.startswith(("_attention_mlp_fwd", "_attention_mlp_bwd_pre",
                                                        "_attention_mlp_bwd_weight", "_hard", "_soft")) else None
            contiguous = "channels" if x_arg is not None and x_arg.stride(1) == 1 else "pixels"
            row.update({k: v for k, v in info.items() if not k.startswith("_")})
            row["x_loads"] = x_loads(info["_ttgir"], contiguous) if x_arg is not None else []
            ctas = 1
            for g in launch.grid:
                ctas *= int(g)
            per_sm = occupancy(info["registers"], info["num_warps"], info["smem"])
            row.update(ctas=ctas, ctas_per_sm=per_sm,
                       waves=round(ctas / max(1, per_sm * SM90["sms"]), 3))
            uses_dot = _uses_dot(launch.kernel)
            row["uses_dot"] = uses_dot
            row["ok"] = info["ptxas_ok"] and (not uses_dot or info["mma_sync"] + info["wgmma"] > 0)
            if uses_dot and info["mma_sync"] + info["wgmma"] == 0:
                row["error"] = "tl.dot did not lower to tensor-core instructions"
            findings = []
            if info["spill_stores"] or info["spill_loads"]:
                findings.append(f"spills {info['spill_stores']}/{info['spill_loads']} B")
            if ctas < SM90["sms"]:
                findings.append(f"{ctas} CTAs < {SM90['sms']} SMs")
            if any(r.get("coalesced") is False for r in row["x_loads"]):
                findings.append("x loads uncoalesced")
            row["findings"] = findings
        except Exception as err:  # noqa: BLE001 — report every kernel, then fail
            row.update(ok=False, error=f"{type(err).__name__}: {err}"[:2000], findings=[])
        rows.append(row)
    return rows


def run_preflight(ops=None, shapes=None, dtypes=("float32",), log=lambda _m: None) -> list[dict]:
    """Rows for the registry's (op, full-scale shape, dtype) selection; shapes None or "all" = every one. Compiles
    in a fresh Triton cache (`_fresh_triton_cache`)."""
    from pan.bench import registry

    rows = []
    with _fresh_triton_cache():
        for spec in registry.OPS.values():
            if ops and spec.name not in ops:
                continue
            for shape in spec.shapes:
                if shapes and "all" not in shapes and shape.name not in shapes:
                    continue
                for dtype in dtypes:
                    rows += analyse(collect_launches(spec.name, shape, dtype), log)
    return rows


def format_rows(rows: list[dict]) -> str:
    head = (f"{'op':24s} {'shape':8s} {'dtype':8s} {'dir':3s} {'kernel':34s} {'regs':>4s} {'spill':>7s} "
            f"{'smem':>6s} {'CTAs':>6s} {'/SM':>3s} {'waves':>6s} {'mma':>4s} {'wgmma':>5s}  x loads; findings")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "registers" not in r:
            lines.append(f"{r['op']:24s} {r['shape']:8s} {r['dtype']:8s} {r['dir']:3s} {r['kernel']:34s} "
                         f"FAILED: {r.get('error', '')[:200]}")
            continue
        xl = ",".join(("" if x.get("coalesced") else "!") + f"{x.get('lanes_along', '?')}x{x.get('vec', '?')}"
                      for x in r["x_loads"]) or "-"
        lines.append(
            f"{r['op']:24s} {r['shape']:8s} {r['dtype']:8s} {r['dir']:3s} {r['kernel']:34s} {r['registers']:4d} "
            f"{r['spill_stores']:3d}/{r['spill_loads']:<3d} {r['smem']:6d} {r['ctas']:6d} {r['ctas_per_sm']:3d} "
            f"{r['waves']:6.2f} {r['mma_sync']:4d} {r['wgmma']:5d}  {xl}; {'; '.join(r['findings']) or 'ok'}"
            + ("" if r["ok"] else f"  FAILED: {r.get('error', '')}"))
    return "\n".join(lines)


def versions() -> dict:
    import torch
    import triton

    return {"triton": triton.__version__, "torch": torch.__version__, "target": "cuda sm_90 (warp 32)",
            "ptxas": _ptxas_path()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pan.bench.preflight", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--op", nargs="+", default=None)
    parser.add_argument("--shape", nargs="+", default=None)
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--strict", action="store_true", help="findings (spills, uncoalesced x, <1 wave) fail too")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    return preflight_main(args.op, args.shape, args.dtype, args.json, args.strict, args.quiet)


def preflight_main(ops, shapes, dtypes, json_path, strict: bool, quiet: bool) -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        # the interpreter replaces @triton.jit functions: compile in a clean subprocess
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        cmd = [sys.executable, "-m", "pan.bench.preflight", "--dtype", *dtypes]
        cmd += ["--op", *ops] if ops else []
        cmd += ["--shape", *shapes] if shapes else []
        cmd += ["--json", json_path] if json_path else []
        cmd += ["--strict"] if strict else []
        cmd += ["--quiet"] if quiet else []
        root = str(Path(__file__).resolve().parent.parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        return subprocess.run(cmd, env=env, cwd=root).returncode
    log = (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        rows = run_preflight(ops, shapes, tuple(dtypes), log)
    except ValueError as err:
        print(f"pan bench --preflight: error: {err}", file=sys.stderr)
        return 2
    print(f"preflight: {json.dumps(versions())}")
    print(format_rows(rows))
    failed = [r for r in rows if not r["ok"]]
    flagged = [r for r in rows if r.get("findings")]
    print(f"preflight: {len(rows)} launches, {len(failed)} failed, {len(flagged)} with findings")
    if json_path:
        Path(json_path).write_text(json.dumps({"versions": versions(), "sm90": SM90, "rows": rows}, indent=1))
        print(f"wrote {json_path}")
    return 1 if failed or (strict and flagged) else 0


if __name__ == "__main__":
    sys.exit(main())
