"""A small run of every CUDA-backend op, forward and backward, for compute-sanitizer (scripts/gpu_check_cuda.sh).

Shapes are tiny but reach every code path: several 64-pixel tiles and halos at the borders, more than one
32-channel chunk (C = 40), one and several output-column blocks (Hd, A = 20 and 70), k = 1, 3, 7, channels_last,
no biases, exact fp32 and TF32, bf16, fp16. Prints one line per op and dtype; any sanitizer report goes to its log.
"""

from __future__ import annotations

import torch

import pan_kernels

assert pan_kernels.has_cuda_extension(), "build pan_kernels._C first"


def run(dtype: torch.dtype, tf32: bool, channels_last: bool) -> None:
    torch.backends.cudnn.allow_tf32 = tf32
    dev = "cuda"
    for B, C, H, W, Hd, k, bias in [(2, 40, 11, 13, 70, 3, True), (1, 5, 9, 7, 20, 7, False), (3, 3, 4, 5, 9, 1, True)]:
        x = torch.randn(B, C, H, W, device=dev, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        qb = torch.randn(B, Hd, device=dev, dtype=dtype, requires_grad=True)
        w1 = (torch.randn(Hd, C, k, k, device=dev, dtype=dtype) / (C * k * k) ** 0.5).requires_grad_()
        b1 = torch.randn(Hd, device=dev, dtype=dtype, requires_grad=True) if bias else None
        w2 = torch.randn(Hd, device=dev, dtype=dtype, requires_grad=True)
        b2 = torch.randn((), device=dev, dtype=dtype, requires_grad=True) if bias else None
        out, alpha = pan_kernels.progressive_attention(x, qb, w1, b1, w2, b2, backend="cuda")
        s = pan_kernels.attention_scores(out, qb, w1, b1, w2, b2, backend="cuda")
        A = Hd  # 70 / 20 / 9 classes
        wc = torch.randn(A, C, device=dev, dtype=dtype, requires_grad=True)
        bc = torch.randn(A, device=dev, dtype=dtype, requires_grad=True) if bias else None
        log_p, alpha2 = pan_kernels.hard_attention_marginal(out, s, wc, bc, backend="cuda")
        f_att, alpha3 = pan_kernels.soft_attention_pool(out, s, backend="cuda")
        loss = (log_p[:, 0].float().sum() + alpha.float().square().sum() + alpha2.float().sum()
                + f_att.float().square().sum() + alpha3.float().square().sum() + out.float().sum())
        loss.backward()
        torch.cuda.synchronize()
        print(f"ok {dtype} tf32={tf32} channels_last={channels_last} B{B} C{C} {H}x{W} Hd{Hd} k{k}", flush=True)


if __name__ == "__main__":
    for dtype, tf32 in [(torch.float32, True), (torch.float32, False), (torch.bfloat16, True), (torch.float16, True)]:
        run(dtype, tf32, channels_last=False)
    run(torch.float32, True, channels_last=True)
    # B = 0 launches nothing
    x = torch.randn(0, 4, 5, 5, device="cuda")
    pan_kernels.progressive_attention(x, torch.randn(0, 8, device="cuda"), torch.randn(8, 4, 3, 3, device="cuda"), None,
                                      torch.randn(8, device="cuda"), None, backend="cuda")
    print("done", flush=True)
