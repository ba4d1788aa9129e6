// The compiled extension pan_kernels._C: an empty Python module whose loading defines the operators
// pan_kernels::<op>_cuda[_backward] (schemas in csrc/schemas.h) and registers their CUDA kernels.
// Fakes and autograd are attached from Python (pan_kernels/ops/cuda_backend.py).
//
// The Triton backend defines pan_kernels::*_triton into the same namespace from Python with
// torch.library.custom_op, which registers a FRAGMENT; only a second TORCH_LIBRARY (DEF) block would conflict.
#include <Python.h>
#include <torch/library.h>

#include "ops.h"
#include "schemas.h"

extern "C" {
// `import pan_kernels._C` loads this shared object (and with it the registrations below); no Python bindings.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(pan_kernels, m) {
#define PAN_DEF(name, schema) m.def(#name schema);
  PAN_CUDA_SCHEMAS(PAN_DEF)
#undef PAN_DEF
}

TORCH_LIBRARY_IMPL(pan_kernels, CUDA, m) {
#define PAN_IMPL(name, schema) m.impl(#name, TORCH_FN(pan::name));
  PAN_CUDA_SCHEMAS(PAN_IMPL)
#undef PAN_IMPL
}
