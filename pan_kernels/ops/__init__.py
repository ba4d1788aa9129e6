"""Kernels (Triton) and their torch.library registration; the public API lives in pan_kernels.functional."""
