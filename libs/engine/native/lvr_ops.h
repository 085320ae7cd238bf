// The decoder projections as ONNX Runtime custom ops, domain "lvr" (graphs.decoder_fused_lvr, docs/bundle-format.md):
//   Linear(x [..., K], w [N, K], bias [N] optional) -> x . w^T + bias, [..., N]
//   SiluMulLinear(x [..., K], gate [N, K], up [N, K]) -> silu(x . gate^T) * (x . up^T), [..., N]
// CPU kernels for float tensors; CUDA kernels for float16: one row (a batch-1 decode step) through our own kernels
// (skinny_linear.cu, compiled at registration by NVRTC for the device), more rows through cuBLAS.
#ifndef LVR_OPS_H
#define LVR_OPS_H

#include <stddef.h>

#include "onnxruntime_c_api.h"

typedef struct {
  int (*malloc)(void **, size_t);
  int (*set_device)(int);
  int (*free)(void *);
} LvrCudaRuntime;

// Adds the lvr domain to `so`: the CPU kernels, or with `gpu` the CUDA kernels for `device` (NVRTC from
// `nvrtc_library`, or libnvrtc.so.13 / .12 when NULL). Returns NULL, or why the ops are not available.
const char *lvr_ops_register(const OrtApi *api, OrtSessionOptions *so, int gpu, int device,
                             const char *nvrtc_library, const LvrCudaRuntime *rt);

#endif
