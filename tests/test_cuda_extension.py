"""The CUDA extension pan_kernels._C (csrc/): build decision, operator schemas, import order, correctness.

- setup.py's build decision runs everywhere (setup.py is imported, never run).
- Schema and import-order tests need the built extension (skipped otherwise, with the reason).
- Correctness tests need a CUDA GPU and the extension: forward and every gradient against the float64 reference for
  fp32 (TF32 and exact), bf16, fp16; odd shapes, k in {1, 3, 5, 7}, channels_last and strided x, B = 0, no biases;
  every output and workspace the extension allocates starts as NaN (PAN_CUDA_POISON=1); opcheck; CUDA-graph capture;
  torch.compile(fullgraph=True).
- By default (PAN_TEST_EMULATION=0 opts out) the same kernel code is compiled for the CPU emulator of csrc/emu/ (g++,
  about 15 s) and the correctness cases run on the CPU: index math, masks, barriers and tensor-core fragment layouts,
  without a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import pan_kernels
from pan_kernels import reference
from pan_kernels.ops.registry import get_op
from pan_kernels.ops.schemas import BACKEND_OPS, SCHEMAS, op_name
from tests.helpers import (
    ARG_NAMES,
    CONTRACT_OPS,
    DTYPES,
    HEAD_CASES,
    MLP_CASES,
    NAN_OPS,
    NUM_OUTPUTS,
    ONE_OUTPUT_CASES,
    apply_layout,
    assert_close,
    backward_args,
    check_against_reference,
    contract_args,
    fp32_pair_tol,
    grad_kind,
    head_inputs,
    leaves,
    mlp_inputs,
    nan_case,
    noncontiguous,
    opcheck_samples,
    tolerance,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CUDA_OPS = BACKEND_OPS["cuda"]
HAS_EXT = pan_kernels.has_cuda_extension()
needs_extension = pytest.mark.skipif(
    not HAS_EXT, reason="pan_kernels._C is not built (pip install -e . --no-build-isolation with CUDA_HOME set)"
)
needs_gpu = pytest.mark.skipif(
    not (HAS_EXT and torch.cuda.is_available()), reason="needs a CUDA GPU and the built extension pan_kernels._C"
)
EMULATE = os.environ.get("PAN_TEST_EMULATION", "1") != "0"  # on unless PAN_TEST_EMULATION=0 (see conftest.py)

# ------------------------------------------------------------------------------------------- setup.py


def _load_setup():
    spec = importlib.util.spec_from_file_location("pan_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the helpers only: setup() runs under __main__
    return module


def test_setup_skip_flag_builds_nothing(monkeypatch):
    setup = _load_setup()
    monkeypatch.setenv("PAN_SKIP_CUDA_BUILD", "1")
    monkeypatch.setenv("PAN_FORCE_CUDA_BUILD", "1")  # skip wins over force
    assert setup._cuda_extension() == ([], {})


def test_setup_without_nvcc_skips_or_fails_loudly(monkeypatch):
    import torch.utils.cpp_extension as cpp_extension

    setup = _load_setup()
    monkeypatch.delenv("PAN_SKIP_CUDA_BUILD", raising=False)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    monkeypatch.delenv("PAN_FORCE_CUDA_BUILD", raising=False)
    assert setup._cuda_extension() == ([], {})
    monkeypatch.setenv("PAN_FORCE_CUDA_BUILD", "1")
    with pytest.raises(RuntimeError, match="CUDA_HOME"):
        setup._cuda_extension()


def test_setup_refuses_a_cuda_home_that_is_not_a_toolkit(monkeypatch, tmp_path):
    """torch guesses CUDA_HOME from `which nvcc`; a wrapper outside the toolkit must not lead to a broken link."""
    import torch.utils.cpp_extension as cpp_extension

    setup = _load_setup()
    monkeypatch.delenv("PAN_SKIP_CUDA_BUILD", raising=False)
    monkeypatch.delenv("PAN_FORCE_CUDA_BUILD", raising=False)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    assert setup._cuda_extension() == ([], {})
    monkeypatch.setenv("PAN_FORCE_CUDA_BUILD", "1")
    with pytest.raises(RuntimeError, match="not a CUDA toolkit root"):
        setup._cuda_extension()


def test_setup_builds_the_extension_when_it_can(monkeypatch):
    from torch.utils.cpp_extension import CUDA_HOME

    toolkit = CUDA_HOME is not None and (pathlib.Path(CUDA_HOME) / "include" / "cuda_runtime.h").is_file()
    if not toolkit or torch.version.cuda is None:
        pytest.skip("needs a CUDA toolkit (CUDA_HOME) and a CUDA build of torch")
    setup = _load_setup()
    monkeypatch.delenv("PAN_SKIP_CUDA_BUILD", raising=False)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")  # restored after the test
    exts, cmdclass = setup._cuda_extension()
    assert [e.name for e in exts] == ["pan_kernels._C"] and "build_ext" in cmdclass
    assert exts[0].sources == [
        "csrc/attention_mlp.cu",
        "csrc/multilabel_marginal.cu",
        "csrc/pan_kernels.cpp",
        "csrc/spatial_attention.cu",
    ]
    flags = exts[0].extra_compile_args
    assert not any(f.startswith("-std=") for f in flags["cxx"] + flags["nvcc"]), "torch picks the C++ standard"


# ------------------------------------------------------------------------------ schemas and import order


def _parse_schema(schema: str):
    """'(Tensor x, Tensor? b) -> (Tensor, Tensor)' -> ([(name, type)], number of returns)."""
    args, _, rets = schema.partition("->")
    arguments = [tuple(reversed(a.strip().rsplit(" ", 1))) for a in args.strip()[1:-1].split(",")]
    rets = rets.strip()
    n_ret = len(rets[1:-1].split(",")) if rets.startswith("(") else 1
    return arguments, n_ret


def _schema_type(t) -> str:
    """A schema type as the schema language spells it: OptionalType(Tensor) -> "Tensor?"."""
    return _schema_type(t.getElementType()) + "?" if t.kind() == "OptionalType" else str(t)


@needs_extension
@pytest.mark.parametrize("key", sorted(SCHEMAS))
def test_cuda_schema_matches_the_single_source(key):
    from pan_kernels import _C  # noqa: F401

    op, backward = key.removesuffix("_backward"), key.endswith("_backward")
    schema = get_op(op, "cuda", backward=backward)._schema
    assert schema.name == f"pan_kernels::{op_name(op, 'cuda', backward)}"
    expected_args, expected_returns = _parse_schema(SCHEMAS[key])
    got = [(a.name, _schema_type(a.type)) for a in schema.arguments]
    assert got == expected_args
    assert not any(a.has_default_value() for a in schema.arguments)
    assert len(schema.returns) == expected_returns
    assert all(str(r.type) == "Tensor" for r in schema.returns)
    assert not schema.is_mutable


_IMPORT_ORDERS = {
    "extension-first": "torch.ops.load_library({so!r}); import pan_kernels",
    "package-first": "import pan_kernels; from pan_kernels import _C",
    "triton-then-extension": "import pan_kernels.ops.triton_backend; from pan_kernels import _C; import pan_kernels",
}


@needs_extension
@pytest.mark.parametrize("order", sorted(_IMPORT_ORDERS))
def test_extension_coexists_with_the_triton_ops(order):
    """TORCH_LIBRARY(pan_kernels) in C++ and torch.library.custom_op (a FRAGMENT) in Python, in either order."""
    from pan_kernels import _C

    code = "\n".join([
        "import torch",
        _IMPORT_ORDERS[order].format(so=_C.__file__),
        "from pan_kernels._backend import has_triton",
        "ops = torch.ops.pan_kernels",
        "names = [n + '_cuda' for n in {ops!r}] + [n + '_cuda_backward' for n in {ops!r}]",
        "names += [n.replace('_cuda', '_triton') for n in names] if has_triton() else []",
        "missing = [n for n in names if not hasattr(ops, n)]",
        "assert not missing, missing",
        "assert pan_kernels.has_cuda_extension()",
        "print('ok')",
    ]).format(ops=list(CUDA_OPS))
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env.setdefault("TRITON_INTERPRET", "1")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# ------------------------------------------------------------------------------------ correctness cases

def _run_public(op, args, grads_out):
    """The public op with backend="cuda" and autograd: (outputs, gradients of every tensor argument)."""
    outs = getattr(pan_kernels, op)(*args, backend="cuda")
    outs = outs if isinstance(outs, tuple) else (outs,)
    torch.autograd.backward(outs, grads_out)
    return outs, [None if t is None else t.grad for t in args]


def _run_ops(ops, op, args, grads_out):
    """The forward and backward operators called directly (no autograd): used for the emulated build."""
    a = [None if t is None else t.detach() for t in args]
    fwd, bwd = getattr(ops, op_name(op, "cuda")), getattr(ops, op_name(op, "cuda", True))
    if op == "progressive_attention":
        outs = fwd(*a)
        grads = list(bwd(*grads_out, *a[:5], outs[1]))
    elif op == "attention_scores":
        outs = (fwd(*a),)
        grads = list(bwd(grads_out[0], *a[:5]))
    elif op == "hard_attention_marginal":
        log_p, alpha, stats = fwd(*a)
        outs = (log_p, alpha)
        grads = list(bwd(*grads_out, a[0], a[2], a[3], stats))
    elif op == "hard_attention_marginal_multilabel":
        *outs, stats = fwd(*a)
        grads = list(bwd(*grads_out, a[0], a[2], a[3], stats))
    else:
        outs = fwd(*a)
        grads = list(bwd(*grads_out, a[0], outs[1]))
    return outs, [None if t is None else g for t, g in zip(args, grads)]


def _check(op, args, dtype, device, runner, *, tf32=True, layout="contiguous"):
    """Forward and every gradient of `op` on `args` (float64 values) against the float64 reference."""
    low, ref = leaves(args, dtype, device, tf32)
    x_kernel = apply_layout(low[0], layout)
    outs_ref = getattr(reference, op + "_ref")(*ref)
    outs_ref = outs_ref if isinstance(outs_ref, tuple) else (outs_ref,)
    grads_out = [torch.randn(o.shape, dtype=torch.float64) for o in outs_ref]
    torch.autograd.backward(outs_ref, grads_out)
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        outs, grads = runner(op, [x_kernel, *low[1:]], [g.to(device=device, dtype=dtype) for g in grads_out])
    finally:
        torch.backends.cudnn.allow_tf32 = previous
    for i, (got, want) in enumerate(zip(outs, outs_ref)):
        assert got.dtype == dtype
        assert_close(got, want, tolerance(dtype, tf32), f"{op} output {i}")
    if op == "progressive_attention":  # out is allocated like x
        assert outs[0].stride() == torch.empty_like(x_kernel).stride()
    if runner is _run_public and x_kernel is not low[0]:
        grads[0] = low[0].grad
    for name, got, want in zip(ARG_NAMES[op], grads, [t.grad if t is not None else None for t in ref]):
        if want is not None:
            assert got.dtype == dtype
            assert_close(got, want, tolerance(dtype, tf32, grad_kind(name)), f"{op}: grad of {name}")


def _mlp_args(B, C, H, W, Hd, k, biases):
    return mlp_inputs(B, C, H, W, Hd, k, bias1=biases, bias2=biases)


def _head_args(op, B, C, H, W, A, bias):
    args = head_inputs(B, C, H, W, A, bias=bias)
    return args[:2] if op == "soft_attention_pool" else args


@pytest.fixture
def poison_outputs(monkeypatch):
    monkeypatch.setenv("PAN_CUDA_POISON", "1")
    yield


# ------------------------------------------------------------------------------------------- GPU tests


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,Hd,k,biases,layout", MLP_CASES)
@pytest.mark.parametrize("op", ["progressive_attention", "attention_scores"])
def test_attention_mlp_cuda(op, B, C, H, W, Hd, k, biases, layout, dtype, poison_outputs):
    _check(op, _mlp_args(B, C, H, W, Hd, k, biases), dtype, "cuda", _run_public, layout=layout)


@needs_gpu
@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("op", ["progressive_attention", "attention_scores"])
def test_attention_mlp_cuda_exact_fp32(op, k, poison_outputs):
    """With cudnn.allow_tf32 off the fp32 kernels use exact FMA: fp32-level agreement."""
    _check(op, _mlp_args(2, 37, 9, 10, 40, k, True), torch.float32, "cuda", _run_public, tf32=False)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,A,bias,layout", HEAD_CASES)
@pytest.mark.parametrize("op", ["hard_attention_marginal", "soft_attention_pool", "hard_attention_marginal_multilabel"])
def test_spatial_heads_cuda(op, B, C, H, W, A, bias, layout, dtype, poison_outputs):
    _check(op, _head_args(op, B, C, H, W, A, bias), dtype, "cuda", _run_public, layout=layout)


@needs_gpu
def test_hard_marginal_cuda_exact_fp32(poison_outputs):
    _check("hard_attention_marginal", head_inputs(3, 70, 9, 8, 66), torch.float32, "cuda", _run_public, tf32=False)


@needs_gpu
def test_marginal_error_bounded_by_eager_same_dtype():
    """FA's rule for softmax reductions: the bf16 kernel's error is at most a small multiple of eager bf16's."""
    x, s, wc, bc = head_inputs(4, 32, 9, 9, 40)
    want, _ = reference.hard_attention_marginal_ref(x, s, wc, bc)
    low = [t.to(device="cuda", dtype=torch.bfloat16) for t in (x, s, wc, bc)]
    got, _ = pan_kernels.hard_attention_marginal(*low, backend="cuda")
    eager, _ = reference.hard_attention_marginal_ref(*[t.cpu() for t in low])
    err_kernel = (got.double().cpu() - want).abs().max().item()
    err_eager = (eager.double() - want).abs().max().item()
    assert err_kernel <= 2.0 * err_eager + 1e-3, (err_kernel, err_eager)


@needs_gpu
def test_grad_of_sum_with_expanded_incoming_gradient():
    """The gradient of .sum() arrives as an expanded stride-0 tensor; every element of dx must still be right."""
    low, ref = leaves(mlp_inputs(2, 4, 5, 6, 16, 3), torch.float32, "cuda", tf32=True)
    out, alpha = pan_kernels.progressive_attention(*low, backend="cuda")
    (out.sum() + alpha.sum()).backward()
    out_r, alpha_r = reference.progressive_attention_ref(*ref)
    (out_r.sum() + alpha_r.sum()).backward()
    for name, got, want in zip(ARG_NAMES["progressive_attention"], low, ref):
        assert_close(got.grad, want.grad, tolerance(torch.float32, True, grad_kind(name)), f"grad of {name}")


@needs_gpu
@pytest.mark.parametrize("op", NAN_OPS)
def test_nan_in_gives_nan_out(op):
    args, call = nan_case(op)
    want = call(args, backend="torch")
    got = call([t.to(device="cuda", dtype=torch.float32) for t in args], backend="cuda")
    assert torch.isnan(want).any()
    assert torch.equal(torch.isnan(got.cpu()), torch.isnan(want))


@needs_gpu
@pytest.mark.parametrize("op", CUDA_OPS)
def test_opcheck_cuda_ops(op):
    for args in opcheck_samples(op, "cuda"):
        torch.library.opcheck(get_op(op, "cuda"), tuple(args))
        a = [None if t is None else t.detach() for t in args]
        outs = get_op(op, "cuda")(*a)
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.library.opcheck(get_op(op, "cuda", backward=True), backward_args(op, a, outs))


def _train_step(x, query_bias, weight1, weight2, cls_weight, scores_w1, scores_w2):
    out, alpha = pan_kernels.progressive_attention(x, query_bias, weight1, None, weight2, None, backend="cuda")
    s = pan_kernels.attention_scores(out, query_bias, scores_w1, None, scores_w2, None, backend="cuda")
    log_p, alpha2 = pan_kernels.hard_attention_marginal(out, s, cls_weight, None, backend="cuda")
    f_att, _ = pan_kernels.soft_attention_pool(out, s, backend="cuda")
    return -log_p[:, 0].mean() + alpha.square().mean() + alpha2.square().sum() + f_att.square().mean()


def _step_inputs():
    g = torch.Generator().manual_seed(1)
    x, qb, w1, _, w2, _ = mlp_inputs(3, 8, 9, 7, 16, 3, generator=g)
    sw1, sw2 = mlp_inputs(3, 8, 9, 7, 16, 1, generator=g)[2:5:2]
    wc = head_inputs(3, 8, 9, 7, 5, generator=g)[2]
    return [t.to("cuda", torch.float32).requires_grad_() for t in (x, qb, w1, w2, wc, sw1, sw2)]


@needs_gpu
def test_cuda_graph_capture_replays_forward_and_backward():
    """Every kernel launches on the current stream and does no host sync: a captured training step replays right."""
    params = _step_inputs()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            torch.autograd.grad(_train_step(*params), params)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = _train_step(*params)
        grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        params[0].copy_(torch.randn_like(params[0]))
    graph.replay()
    want_loss = _train_step(*params)
    want = torch.autograd.grad(want_loss, params)
    torch.testing.assert_close(loss, want_loss)
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b)


@needs_gpu
def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    params = _step_inputs()
    compiled = torch.compile(_train_step, fullgraph=True)
    want = torch.autograd.grad(_train_step(*params), params)
    got = torch.autograd.grad(compiled(*params), params)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **fp32_pair_tol("cuda"))


# ------------------------------------------------------------------------------------- CPU emulation


@pytest.fixture(scope="module")
def emulated_ops():
    if not EMULATE:
        pytest.skip("PAN_TEST_EMULATION=0: the csrc/ kernels are not run in their CPU emulator")
    import shutil

    from torch.utils.cpp_extension import load

    if not any(shutil.which(cxx) for cxx in (os.environ.get("CXX", "c++"), "c++", "g++")):
        pytest.fail("the CUDA emulator tests need a C++ compiler (g++); set PAN_TEST_EMULATION=0 to leave them out")

    build_dir = ROOT / "build" / "emu"
    build_dir.mkdir(parents=True, exist_ok=True)
    load(
        name="pan_emu_ops", sources=[str(ROOT / "csrc" / "emu" / "emu_ops.cpp")],
        extra_cflags=["-DPAN_EMULATE", "-O1", "-Wno-unknown-pragmas"], extra_include_paths=[str(ROOT / "csrc")],
        build_directory=str(build_dir), is_python_module=False,
    )
    # the fakes and autograd of pan_kernels.ops.registry, attached as register_backend("cuda") does
    from pan_kernels.ops.registry import AUTOGRAD, FAKES

    for op in CUDA_OPS:
        for key, backward in ((op, False), (op + "_backward", True)):
            torch.library.register_fake(f"pan_emu::{op_name(op, 'cuda', backward)}")(FAKES[key])
        make_backward, setup_context = AUTOGRAD[op]
        bwd = getattr(torch.ops.pan_emu, op_name(op, "cuda", True)).default
        torch.library.register_autograd(f"pan_emu::{op_name(op, 'cuda')}", make_backward(bwd),
                                        setup_context=setup_context)
    return torch.ops.pan_emu


@pytest.mark.parametrize("tf32", [True, False], ids=["tf32", "exact"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,Hd,k,biases,layout", MLP_CASES)
@pytest.mark.parametrize("op", ["progressive_attention", "attention_scores"])
def test_attention_mlp_emulated(op, B, C, H, W, Hd, k, biases, layout, dtype, tf32, emulated_ops, poison_outputs):
    if not tf32 and dtype != torch.float32:
        pytest.skip("TF32 applies to fp32 only")
    runner = lambda *a: _run_ops(emulated_ops, *a)  # noqa: E731
    _check(op, _mlp_args(B, C, H, W, Hd, k, biases), dtype, "cpu", runner, tf32=tf32, layout=layout)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,A,bias,layout", HEAD_CASES)
@pytest.mark.parametrize("op", ["hard_attention_marginal", "soft_attention_pool", "hard_attention_marginal_multilabel"])
def test_spatial_heads_emulated(op, B, C, H, W, A, bias, layout, dtype, emulated_ops, poison_outputs):
    runner = lambda *a: _run_ops(emulated_ops, *a)  # noqa: E731
    _check(op, _head_args(op, B, C, H, W, A, bias), dtype, "cpu", runner, layout=layout)


@pytest.mark.parametrize("op", CUDA_OPS)
def test_opcheck_emulated(op, emulated_ops):
    """The C++ host code's outputs (shapes, strides, dtypes) agree with the Python fakes; autograd is wired."""
    for args in opcheck_samples(op, "cpu"):
        fwd = getattr(emulated_ops, op_name(op, "cuda")).default
        torch.library.opcheck(fwd, tuple(args))
        a = [None if t is None else t.detach() for t in args]
        outs = fwd(*a)
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.library.opcheck(getattr(emulated_ops, op_name(op, "cuda", True)).default, backward_args(op, a, outs))


def _emulated_public(ops, op):
    """The emulated forward operator with its registered autograd, returning the public outputs (no stats)."""
    fwd = getattr(ops, op_name(op, "cuda"))

    def call(*args):
        outs = fwd(*args)
        return outs[: NUM_OUTPUTS[op]] if isinstance(outs, tuple) else outs

    return call


@pytest.mark.parametrize("op", CONTRACT_OPS)
def test_noncontiguous_arguments_and_gradients_emulated(op, emulated_ops, poison_outputs):
    """As tests/test_op_contract.py: every argument and incoming gradient non-contiguous (the host code's strides)."""
    check_against_reference(op, _emulated_public(emulated_ops, op), contract_args(op), "cpu",
                            tf32=torch.backends.cudnn.allow_tf32, layout=noncontiguous)


@pytest.mark.parametrize("op,output", ONE_OUTPUT_CASES)
def test_gradient_of_one_output_alone_emulated(op, output, emulated_ops, poison_outputs):
    """As tests/test_op_contract.py: the gradient through one output while the others get none."""
    check_against_reference(op, _emulated_public(emulated_ops, op), contract_args(op), "cpu",
                            tf32=torch.backends.cudnn.allow_tf32, only=output)
