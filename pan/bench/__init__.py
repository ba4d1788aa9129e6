"""Benchmarks of the pan_kernels ops and of PAN training: eager vs torch.compile vs Triton vs CUDA.

- `pan.bench.registry`: every op once (input factory, shapes, providers, modes, dtypes);
- `pan.bench.roofline`: bytes and FLOPs per op, and the device's measured ceilings;
- `pan.bench.run`: the correctness gate and the timing of each provider;
- `pan.bench.report`: header, table, JSON, plot;
- `pan.bench.train`: PAN[H]+CTX training steps per backend, and a profiled step;
- `pan.bench.cli`: `pan bench` / `python -m pan.bench`;
- `pan.bench.summary`: markdown tables of `--json` files for RESULTS.md, and the performance targets checked;
- `pan.bench.gpu_run`: the full GPU run that a session with a lent GPU executes;
- `benchmarks/test_bench_ops.py`: the same registry under pytest-benchmark (not part of the default test run).

Results: `benchmarks/RESULTS.md` and `benchmarks/results/`.
"""
