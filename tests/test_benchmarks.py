"""The benchmark machinery on the CPU: the bytes/FLOPs model on hand-computed cases, the correctness gate (a wrong
provider is refused, never timed), the CLI's JSON with the eager and compile providers, training and profiling."""

from __future__ import annotations

import json

import pytest
import torch

from pan.bench import registry, report, roofline, run, timing

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------------ bytes and FLOPs


def test_attention_mlp_cost_hand_computed():
    # B=2, C=3, H=4, W=5, Hd=6, k=3, fp32 (4 bytes): N = 40 pixels, K = C*k*k = 27.
    # x: 2*3*4*5 = 120 elements = 480 bytes; alpha: 40 elements = 160 bytes;
    # params: query_bias 2*6 + weight1 6*27 + bias1 6 + weight2 6 + bias2 1 = 187 elements = 748 bytes.
    # fwd bytes = x + out + alpha + params = 480 + 480 + 160 + 748 = 1868.
    # fwd FLOPs = GEMM 2*40*27*6 = 12960 + epilogue 4*40*6 = 960 + gate 40*3 = 120 -> 14040.
    fwd = roofline.attention_mlp_cost(2, 3, 4, 5, 6, 3, "fwd", 4, gate=True)
    assert (fwd.bytes, fwd.flops) == (1868, 14040)
    # bwd bytes = x + grad_alpha + dx + params + param grads + grad_out + alpha = 480+160+480+748+748+480+160 = 3256.
    # bwd FLOPs (recompute) = dgrad + wgrad 2*12960 + recompute 12960 + 960 + through w2/relu 960 + gate 3*40*3 = 41160.
    bwd = roofline.attention_mlp_cost(2, 3, 4, 5, 6, 3, "bwd", 4, gate=True)
    assert (bwd.bytes, bwd.flops) == (3256, 41160)
    both = roofline.attention_mlp_cost(2, 3, 4, 5, 6, 3, "fwd+bwd", 4, gate=True)
    assert (both.bytes, both.flops) == (1868 + 3256, 14040 + 41160)
    # Storing h (bf16, 40*6*2 = 480 bytes): written by the forward, read by the backward; no recompute.
    stored = roofline.attention_mlp_cost(2, 3, 4, 5, 6, 3, "fwd+bwd", 4, gate=True, h_policy="store")
    assert (stored.bytes, stored.flops) == (1868 + 480 + 3256 + 480, 14040 + 2 * 12960 + 960 + 360)
    # attention_scores: no out, no gate terms. fwd bytes = 480 + 160 + 748; FLOPs = 12960 + 960.
    scores = roofline.attention_mlp_cost(2, 3, 4, 5, 6, 3, "fwd", 4, gate=False)
    assert (scores.bytes, scores.flops) == (1388, 13920)


def test_head_costs_hand_computed():
    # hard marginal, B=2, C=3, H=W=2, A=5, fp32: N = 8. fwd reads x 24 + scores 8 + Wc 15 + bc 5 and writes
    # log_p 10 + alpha 8 -> 70 elements = 280 bytes; FLOPs = 2*8*5*3 = 240 + 5*8*5 = 200 -> 440.
    fwd = roofline.hard_attention_marginal_cost(2, 3, 2, 2, 5, "fwd", 4)
    assert (fwd.bytes, fwd.flops) == (280, 440)
    # bwd: x 24 + grad_log_p 10 + grad_alpha 8 + alpha 8 + Wc,bc 20 (read) + dx 24 + ds 8 + dWc,dbc 20 -> 122 elements.
    bwd = roofline.hard_attention_marginal_cost(2, 3, 2, 2, 5, "bwd", 4)
    assert (bwd.bytes, bwd.flops) == (488, 3 * 240 + 200)
    # soft pool: x 24 + scores 8 + f_att 6 + alpha 8 = 46 elements; FLOPs 2*8*3 + 4*8 = 80.
    pool = roofline.soft_attention_pool_cost(2, 3, 2, 2, "fwd", 4)
    assert (pool.bytes, pool.flops) == (184, 80)
    # bf16 halves every byte.
    assert roofline.soft_attention_pool_cost(2, 3, 2, 2, "fwd", 2).bytes == 92
    # multi-label marginal: as the hard marginal plus log_1mp 10 written (fwd: 80 elements = 320 bytes; FLOPs
    # 240 + 6*8*5 = 480) and grad_log_1mp 10 read (bwd: 132 elements = 528 bytes; FLOPs 3*240 + 8*8*5 = 1040).
    ml_fwd = roofline.hard_attention_marginal_multilabel_cost(2, 3, 2, 2, 5, "fwd", 4)
    assert (ml_fwd.bytes, ml_fwd.flops) == (320, 480)
    ml_bwd = roofline.hard_attention_marginal_multilabel_cost(2, 3, 2, 2, 5, "bwd", 4)
    assert (ml_bwd.bytes, ml_bwd.flops) == (528, 1040)
    assert roofline.op_cost("hard_attention_marginal_multilabel", registry.OPS["hard_attention_marginal_multilabel"]
                            .shapes[0], "fwd", torch.bfloat16).flops > 0


def test_costs_reproduce_perf_md_floors():
    """The registry's shapes and docs/design.md's floors (H100: 3.0 TB/s, 495 TFLOP/s TF32) agree within 2%."""
    ops = registry.OPS
    mref49 = next(s for s in ops["progressive_attention"].shapes if s.name == "MREF-49")
    vg28 = next(s for s in ops["progressive_attention"].shapes if s.name == "VG-28")
    vg14 = next(s for s in ops["hard_attention_marginal"].shapes if s.name == "VG-14")

    def floor_us(op, shape, mode):
        c = roofline.op_cost(op, shape, mode, torch.float32)
        return max(c.bytes / 3.0e12, c.flops / 495e12) * 1e6

    assert floor_us("progressive_attention", mref49, "fwd") == pytest.approx(53, rel=0.02)
    assert floor_us("progressive_attention", mref49, "fwd+bwd") == pytest.approx(133, rel=0.02)
    assert floor_us("progressive_attention", vg28, "fwd") == pytest.approx(664, rel=0.02)
    assert floor_us("progressive_attention", vg28, "fwd+bwd") == pytest.approx(1990, rel=0.02)  # storing h
    assert floor_us("hard_attention_marginal", vg14, "fwd") == pytest.approx(9.8, rel=0.02)
    assert floor_us("hard_attention_marginal", vg14, "fwd+bwd") == pytest.approx(39, rel=0.02)


def test_roofline_floor_uses_the_larger_term():
    roof = roofline.Roofline("x", copy_gbps=1000.0, matmul_tflops={"float32": 1.0})
    assert roof.floor_us(roofline.Cost(10**9, 0), torch.float32) == pytest.approx(1000.0)  # 1 GB at 1 TB/s
    assert roof.floor_us(roofline.Cost(0, 10**12), torch.float32) == pytest.approx(1e6)  # 1 TFLOP at 1 TFLOP/s
    assert roof.floor_us(roofline.Cost(1, 1), torch.bfloat16) is None  # no rate measured for bf16


# ------------------------------------------------------------------------------------------------- registry


def test_registry_holds_the_papers_layers():
    mlp = {s.name: s for s in registry.OPS["progressive_attention"].shapes}
    assert (mlp["MREF-49"].B, mlp["MREF-49"].C, mlp["MREF-49"].Hd, mlp["MREF-49"].k) == (256, 32, 32, 3)
    assert {n: (s.H, s.C) for n, s in mlp.items() if n.startswith("VG")} == {
        "VG-56": (56, 256), "VG-28": (28, 512), "VG-14": (14, 512)}
    head = {s.name: s for s in registry.OPS["hard_attention_marginal"].shapes}
    assert (head["MREF-4"].A, head["VG-14"].A, head["VG-14"].C) == (5, 749, 512)
    multilabel = {s.name: (s.H, s.C, s.A) for s in registry.OPS["hard_attention_marginal_multilabel"].shapes}
    assert multilabel == {"VG-14": (14, 512, 749), "VG-7": (7, 512, 749)}
    for spec in registry.OPS.values():
        assert spec.modes == ("fwd", "bwd", "fwd+bwd")
        for shape in spec.shapes_for("small"):
            inputs = spec.make_inputs(shape, torch.float32, CPU)
            assert inputs[0].shape == (shape.B, shape.C, shape.H, shape.W)


def test_select_cases_filters_and_rejects_unknown_names():
    cases = registry.select_cases(["soft_attention_pool"], ["MREF-4"], ["fwd"], ["float32"], scale="small")
    assert [(c.op.name, c.shape.name, c.mode, c.dtype) for c in cases] == [
        ("soft_attention_pool", "MREF-4", "fwd", "float32")]
    cpu = registry.select_cases(scale="small", cpu_defaults=True)
    assert {c.op.name for c in cpu} == set(registry.OPS) and len(cpu) == 3 * len(registry.OPS)
    for bad in ({"ops": ["nope"]}, {"shapes": ["MREF-3"]}, {"modes": ["sideways"]}, {"dtypes": ["int8"]}):
        with pytest.raises(ValueError, match="unknown"):
            registry.select_cases(**bad)


# ------------------------------------------------------------------------------------- the correctness gate


def _case(op="soft_attention_pool", mode="fwd", shape="MREF-4"):
    return registry.select_cases([op], [shape], [mode], ["float32"], scale="small")[0]


@pytest.fixture
def count_timings(monkeypatch):
    """Records the provider label of every timing the runner starts."""
    calls = []
    real = timing.time_fn

    def spy(fn, device, **kwargs):
        calls.append(fn)
        return real(fn, device, warmup_ms=0.0, rep_ms=1.0)

    monkeypatch.setattr(timing, "time_fn", spy)
    return calls


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_wrong_output_is_refused_and_not_timed(count_timings, mode):
    def wrong(x, scores):
        f_att, alpha = registry.OPS["soft_attention_pool"].ref(x, scores)
        return f_att + 0.1, alpha

    options = run.RunOptions(providers=("eager",))
    rows = run.run_case(_case(mode=mode), CPU, options, extra_providers={"broken": wrong})
    eager, broken = rows
    assert eager.status == "ok" and eager.median_us is not None
    assert broken.status == "refused: wrong result"
    assert "f_att" in broken.reason and broken.max_err > broken.tol
    for field in ("median_us", "p20_us", "p80_us", "peak_mem_mb", "gbps", "tflops", "speedup_vs_eager",
                  "speedup_vs_compile", "pct_of_floor"):
        assert getattr(broken, field) is None, field
    assert len(count_timings) == 1  # only eager was timed


def test_wrong_gradient_is_refused(count_timings):
    def wrong_grad(x, scores):
        # Same forward values; the gradient reaching x is halved.
        x = x.detach() + 0.5 * (x - x.detach())
        return registry.OPS["soft_attention_pool"].ref(x, scores)

    rows = run.run_case(_case(mode="bwd"), CPU, run.RunOptions(providers=("eager",)),
                        extra_providers={"halved": wrong_grad})
    assert rows[1].status == "refused: wrong result" and rows[1].worst_tensor == "dx"
    fwd_rows = run.run_case(_case(mode="fwd"), CPU, run.RunOptions(providers=("eager",)),
                            extra_providers={"halved": wrong_grad})
    assert fwd_rows[1].status == "ok"  # the forward alone is right
    assert len(count_timings) == 3


def test_nan_output_is_refused():
    def nan(x, scores):
        f_att, alpha = registry.OPS["soft_attention_pool"].ref(x, scores)
        return f_att.clone().index_fill_(1, torch.tensor([0]), float("nan")), alpha

    rows = run.run_case(_case(), CPU, run.RunOptions(providers=()), extra_providers={"nan": nan})
    assert rows[0].status == "refused: wrong result" and rows[0].max_err == float("inf")


def test_crashing_and_unavailable_providers_are_reported():
    def crash(x, scores):
        raise RuntimeError("boom")

    rows = run.run_case(_case(), CPU, run.RunOptions(providers=("cuda",)), extra_providers={"crash": crash})
    assert rows[0].status == "skipped" and "CUDA" in rows[0].reason and rows[0].median_us is None
    assert rows[1].status == "failed" and "boom" in rows[1].reason


def test_triton_provider_passes_the_gate(device):
    # On a GPU the compiled kernels run; without one, conftest has switched the Triton interpreter on.
    case = _case(op="attention_scores", mode="fwd+bwd")
    rows = run.run_case(case, device, run.RunOptions(providers=("eager", "triton"), warmup_ms=0.0, rep_ms=1.0))
    triton = rows[1]
    assert triton.status == "ok", triton.reason
    assert triton.max_err <= triton.tol and triton.speedup_vs_eager is not None
    assert triton.bytes == roofline.op_cost("attention_scores", case.shape, "fwd+bwd", torch.float32).bytes


# ------------------------------------------------------------------------------------------------------ CLI


def _check_json(path, n_rows: int) -> dict:
    doc = json.loads(path.read_text())
    for key in ("device", "torch", "triton", "cuda", "git_sha", "date", "command"):
        assert key in doc["header"], key
    assert doc["header"]["torch"] == torch.__version__
    assert len(doc["rows"]) == n_rows
    for row in doc["rows"]:
        for key in ("op", "mode", "shape", "dtype", "provider", "median_us", "p20_us", "p80_us", "peak_mem_mb",
                    "gbps", "tflops", "speedup_vs_eager", "speedup_vs_compile"):
            assert key in row, key
    return doc


def test_cli_cpu_eager_and_compile_writes_json(tmp_path, capsys):
    from pan.cli.main import main

    out, png = tmp_path / "bench.json", tmp_path / "speedups.png"
    rc = main(["bench", "--device", "cpu", "--op", "soft_attention_pool", "--mode", "fwd",
               "--provider", "eager", "compile", "--warmup-ms", "1", "--rep-ms", "20", "--quiet",
               "--json", str(out), "--plot", str(png)])
    assert rc == 0
    doc = _check_json(out, 2)
    eager, compiled = doc["rows"]
    assert (eager["provider"], compiled["provider"]) == ("eager", "compile")
    for row in doc["rows"]:
        assert row["status"] == "ok", row
        assert row["p20_us"] <= row["median_us"] <= row["p80_us"]
        assert row["gbps"] > 0 and row["tflops"] > 0 and row["peak_mem_mb"] is None  # no peak memory on the CPU
    assert eager["speedup_vs_eager"] == 1.0 and compiled["speedup_vs_compile"] == 1.0
    assert compiled["speedup_vs_eager"] == pytest.approx(eager["median_us"] / compiled["median_us"])
    assert doc["roofline"]["copy_gbps"] > 0 and doc["roofline"]["matmul_tflops"]["float32"] > 0
    assert png.stat().st_size > 0
    printed = capsys.readouterr().out
    assert printed.startswith("# ") and "git" in printed and "soft_attention_pool" in printed


def test_cli_refuses_a_wrong_provider(tmp_path, monkeypatch):
    from pan.bench import cli

    real = registry.make_provider

    def patched(name, spec, example, **kwargs):
        if name == "compile":  # a "compiled" op that is off by a constant
            return lambda *args: tuple(t + 1.0 for t in spec.ref(*args))
        return real(name, spec, example, **kwargs)

    monkeypatch.setattr(registry, "make_provider", patched)
    out = tmp_path / "bench.json"
    rc = cli.main(["--device", "cpu", "--op", "hard_attention_marginal", "--mode", "fwd",
                   "--provider", "eager", "compile", "--quiet", "--no-roofline", "--rep-ms", "5", "--json", str(out)])
    assert rc == 1  # a refused row makes the run fail
    eager, compiled = _check_json(out, 2)["rows"]
    assert eager["status"] == "ok" and eager["speedup_vs_compile"] is None
    assert compiled["status"] == "refused: wrong result"
    assert compiled["median_us"] is None and compiled["speedup_vs_eager"] is None


def test_cli_list_and_bad_arguments(capsys):
    from pan.bench import cli

    assert cli.main(["--list"]) == 0
    assert "MREF-49" in capsys.readouterr().out
    assert cli.main(["--op", "nope", "--quiet"]) == 2


def test_report_helpers(tmp_path):
    assert timing.quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert timing.quantile([1.0, 2.0], 0.2) == pytest.approx(1.2)
    row = run.Row("op", "fwd", "B1", "S", "float32", "p", max_err=float("inf")).to_json()
    clean = report.sanitize([row])[0]
    assert clean["max_err"] == "inf"
    base = tmp_path / "base.json"
    timed = dict(clean, median_us=20.0)
    report.write_json(base, {"git_sha": "abc"}, [timed])
    lines = report.compare_with_base([dict(timed, median_us=10.0)], base)
    assert "2.00x" in lines[-1]


# ------------------------------------------------------------------------------------- training and profile


def test_train_benchmark_tiny(tmp_path):
    from pan.bench import cli

    out = tmp_path / "train.json"
    rc = cli.main(["--train", "--device", "cpu", "--train-batch", "2", "--train-steps", "2", "--train-warmup", "1",
                   "--quiet", "--train-variants", "torch", "cuda", "triton+graphs", "--json", str(out)])
    assert rc == 0
    train = json.loads(out.read_text())["train"]
    torch_row, cuda_row, graphs_row = train
    assert torch_row["status"] == "ok" and torch_row["images_per_s"] > 0 and torch_row["max_logprob_err"] == 0.0
    assert torch_row["speedup_vs_eager"] == 1.0
    assert cuda_row["status"] == "skipped" and graphs_row["status"] == "skipped"


def test_profile_writes_a_chrome_trace(tmp_path):
    from pan.bench import train

    path = tmp_path / "trace.json"
    summary = train.profile_training_step(str(path), CPU, "torch", batch_size=2, warmup=1)
    trace = json.loads(path.read_text())
    names = {event.get("name") for event in trace["traceEvents"]}
    assert "train_step" in names and "backward" in names
    assert any(n and n.startswith("ProgressiveAttention:gates.0") for n in names)
    assert any(n and n.startswith("HardAttentionHead") for n in names)
    assert "Name" in summary


def test_op_range_is_a_no_op_context_without_cuda():
    """Without CUDA the range is only a profiler record_function: the body runs, once, and the trace names it."""
    ran = []
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with timing.op_range("pan_test_range"):
            ran.append(torch.ones(2).sum().item())
    assert ran == [2.0]
    assert "pan_test_range" in {event.name for event in prof.events()}
    with pytest.raises(ValueError, match="inside"):  # an error in the body is not swallowed
        with timing.op_range("pan_test_range"):
            raise ValueError("inside")


def test_summary_checks_targets_only_on_measured_rows(tmp_path):
    from pan.bench import summary

    def row(provider, median, mode="fwd", op="progressive_attention", shape="MREF-49", **extra):
        base = dict(op=op, mode=mode, shape="B256 C32 49x49 Hd32 k3", shape_name=shape, dtype="float32",
                    precision="float32-tf32", provider=provider, status="ok", reason=None, median_us=median,
                    p20_us=median, p80_us=median, peak_mem_mb=None, floor_us=50.0,
                    pct_of_floor=5000.0 / median if median else None)
        return base | extra

    rows = [row("eager", 400.0, speedup_vs_eager=1.0), row("triton", 80.0, speedup_vs_eager=5.0),
            row("cuda", None, status="refused: wrong result")]
    verdicts = {t: (m, v) for t, m, v in summary.check_targets(rows, None)}
    assert verdicts["gate fwd >= 4x eager"] == ("5.00x (triton)", "met")
    assert verdicts["gate fwd within 1.5x of the HBM floor"][1] == "not met"  # 80 us vs a 50 us floor = 1.6x
    assert verdicts["gate fwd+bwd >= 3x eager"][1] == "not measured"
    assert verdicts["training >= 2x eager images/s"][1] == "not measured"
    path = tmp_path / "r.json"
    report.write_json(path, {"device": "d", "torch": "t", "triton": "x", "cuda": None, "git_sha": "abc",
                             "date": "now", "command": "pan bench", "tf32": {"matmul": True, "cudnn": True}}, rows)
    text = summary.summarize([path])
    assert "| progressive_attention | fwd | MREF-49" in text and "refused" in text
