// The kernels of csrc/ compiled for the CPU emulator (emu_runtime.h) and registered as CPU operators
// pan_emu::<op>_cuda[_backward], with the schemas of the real extension. Not part of the extension build
// (setup.py skips csrc/emu/); tests/test_cuda_extension.py builds it with torch.utils.cpp_extension.load when
// PAN_TEST_EMULATION=1, to run the real kernel code (index math, masks, barriers, mma fragment layouts)
// against the eager reference on a machine without a GPU.
#ifndef PAN_EMULATE
#error "build with -DPAN_EMULATE"
#endif

#include <torch/library.h>

#include "../attention_mlp.cu"
#include "../multilabel_marginal.cu"
#include "../schemas.h"
#include "../spatial_attention.cu"

TORCH_LIBRARY(pan_emu, m) {
#define PAN_DEF(name, schema) m.def(#name schema);
  PAN_CUDA_SCHEMAS(PAN_DEF)
#undef PAN_DEF
}

TORCH_LIBRARY_IMPL(pan_emu, CPU, m) {
#define PAN_IMPL(name, schema) m.impl(#name, TORCH_FN(pan::name));
  PAN_CUDA_SCHEMAS(PAN_IMPL)
#undef PAN_IMPL
}
