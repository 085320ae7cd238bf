// The lvr custom ops (lvr_ops.h). The CUDA side opens the driver, NVRTC and cuBLAS with dlopen, like the addon opens
// ONNX Runtime, so nothing here links against a GPU library.
#include "lvr_ops.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skinny_linear.cu.h" // LVR_SKINNY_SOURCE: skinny_linear.cu as a string (build.mjs)

#include "glibc_compat.h"

typedef enum { OP_LINEAR, OP_SILU_MUL } OpKind;

static const OrtApi *api;
static char why[512];

// -- shapes ---------------------------------------------------------------------------------------------------------
typedef struct {
  const void *x, *w, *w2; // w2: SiluMulLinear's up weights, or Linear's bias (NULL when absent)
  void *y;
  int64_t rows, K, N;
} Problem;

static OrtStatus *fail(const char *msg) { return api->CreateStatus(ORT_FAIL, msg); }

// Reads the inputs, checks their shapes and allocates the output [..., N].
static OrtStatus *problem_of(OrtKernelContext *ctx, OpKind kind, ONNXTensorElementDataType want, Problem *p) {
  const OrtValue *in[3] = {0};
  size_t n_in = 0;
  OrtStatus *st = api->KernelContext_GetInputCount(ctx, &n_in);
  if (st) return st;
  for (size_t i = 0; i < n_in && i < 3; i++)
    if ((st = api->KernelContext_GetInput(ctx, i, &in[i]))) return st;
  int64_t xdims[8], wdims[8];
  size_t xn = 0, wn = 0;
  ONNXTensorElementDataType xt, wt;
  for (int k = 0; k < 2; k++) {
    OrtTensorTypeAndShapeInfo *info;
    if ((st = api->GetTensorTypeAndShape(in[k], &info))) return st;
    size_t *n = k ? &wn : &xn;
    st = api->GetDimensionsCount(info, n);
    if (!st && *n > 8) st = fail("lvr op: more than 8 dimensions");
    if (!st) st = api->GetDimensions(info, k ? wdims : xdims, *n);
    if (!st) st = api->GetTensorElementType(info, k ? &wt : &xt);
    api->ReleaseTensorTypeAndShapeInfo(info);
    if (st) return st;
  }
  if (xt != want || wt != want) return fail("lvr op: unsupported element type for this execution provider");
  if (xn < 1 || wn != 2 || xdims[xn - 1] != wdims[1])
    return fail("lvr op: x must be [..., K] and the weights [N, K]");
  p->K = wdims[1];
  p->N = wdims[0];
  p->rows = 1;
  for (size_t i = 0; i + 1 < xn; i++) p->rows *= xdims[i];
  if (kind == OP_SILU_MUL && (n_in < 3 || in[2] == NULL)) return fail("lvr SiluMulLinear: needs gate and up");
  void *data;
  if ((st = api->GetTensorMutableData((OrtValue *)in[0], &data))) return st;
  p->x = data;
  if ((st = api->GetTensorMutableData((OrtValue *)in[1], &data))) return st;
  p->w = data;
  p->w2 = NULL;
  if (n_in > 2 && in[2] != NULL) {
    OrtTensorTypeAndShapeInfo *info;
    size_t count = 0;
    if ((st = api->GetTensorTypeAndShape(in[2], &info))) return st;
    st = api->GetTensorShapeElementCount(info, &count);
    api->ReleaseTensorTypeAndShapeInfo(info);
    if (st) return st;
    if ((int64_t)count != (kind == OP_SILU_MUL ? p->N * p->K : p->N))
      return fail(kind == OP_SILU_MUL ? "lvr SiluMulLinear: up must be shaped like gate" : "lvr Linear: bias must be [N]");
    if ((st = api->GetTensorMutableData((OrtValue *)in[2], &data))) return st;
    p->w2 = data;
  }
  xdims[xn - 1] = p->N;
  OrtValue *out;
  if ((st = api->KernelContext_GetOutput(ctx, 0, xdims, xn, &out))) return st;
  return api->GetTensorMutableData(out, &p->y);
}

// -- CPU kernels (float) --------------------------------------------------------------------------------------------
static float dot(const float *a, const float *b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static OrtStatus *cpu_compute(OpKind kind, OrtKernelContext *ctx) {
  Problem p;
  OrtStatus *st = problem_of(ctx, kind, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &p);
  if (st) return st;
  const float *x = p.x, *w = p.w, *w2 = p.w2;
  float *y = p.y;
  for (int64_t m = 0; m < p.rows; m++)
    for (int64_t n = 0; n < p.N; n++) {
      float v = dot(x + m * p.K, w + n * p.K, p.K);
      if (kind == OP_SILU_MUL) v = v / (1.f + expf(-v)) * dot(x + m * p.K, w2 + n * p.K, p.K);
      else if (w2) v += w2[n];
      y[m * p.N + n] = v;
    }
  return NULL;
}

// -- CUDA kernels (float16) -----------------------------------------------------------------------------------------
typedef int (*cu_fn)();
static struct {
  int ready;
  void *ctx;
  int (*ctx_get_current)(void **);
  int (*ctx_set_current)(void *);
  int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **,
                void **);
  void *linear, *silu_mul, *add_bias, *silu_mul_into;
  // cuBLAS, for more than one row: opened when the first kernel is created (ONNX Runtime's CUDA EP has loaded it).
  void *cublas;
  int (*cublas_set_stream)(void *, void *);
  int (*gemm_ex)(void *, int, int, int, int, int, const void *, const void *, int, int, const void *, int, int,
                 const void *, void *, int, int, int, int);
  void *workspace;
  LvrCudaRuntime rt;
  int device;
} gpu;

enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUDA_R_16F = 2, CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1 };
enum { CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76 };
#define CUBLAS_WORKSPACE_BYTES (32u << 20)

static void *open_first(const char *const *names) {
  for (int i = 0; names[i]; i++) {
    void *lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (lib) return lib;
  }
  return NULL;
}

// NVRTC-compiles skinny_linear.cu for `device` and loads it; fills `why` and returns 0 on failure.
static int gpu_prepare(int device, const char *nvrtc_library, const LvrCudaRuntime *rt) {
  if (gpu.ready) return gpu.device == device ? 1 : (snprintf(why, sizeof why, "lvr ops: one device per process"), 0);
  const char *driver_names[] = {"libcuda.so.1", "libcuda.so", NULL};
  const char *nvrtc_names[] = {nvrtc_library ? nvrtc_library : "libnvrtc.so.13", nvrtc_library ? NULL : "libnvrtc.so.12",
                               NULL};
  void *cu = open_first(driver_names), *nvrtc = open_first(nvrtc_names);
  if (!cu || !nvrtc) {
    snprintf(why, sizeof why, "lvr ops: %s not found", cu ? "NVRTC (libnvrtc)" : "the CUDA driver (libcuda.so.1)");
    return 0;
  }
  int (*device_get)(int *, int) = (void *)dlsym(cu, "cuDeviceGet");
  int (*attribute)(int *, int, int) = (void *)dlsym(cu, "cuDeviceGetAttribute");
  int (*module_load)(void **, const void *) = (void *)dlsym(cu, "cuModuleLoadData");
  int (*get_function)(void **, void *, const char *) = (void *)dlsym(cu, "cuModuleGetFunction");
  gpu.ctx_get_current = (void *)dlsym(cu, "cuCtxGetCurrent");
  gpu.ctx_set_current = (void *)dlsym(cu, "cuCtxSetCurrent");
  gpu.launch = (void *)dlsym(cu, "cuLaunchKernel");
  int (*create)(void **, const char *, const char *, int, const char *const *, const char *const *) =
      (void *)dlsym(nvrtc, "nvrtcCreateProgram");
  int (*compile)(void *, int, const char *const *) = (void *)dlsym(nvrtc, "nvrtcCompileProgram");
  int (*log_size)(void *, size_t *) = (void *)dlsym(nvrtc, "nvrtcGetProgramLogSize");
  int (*get_log)(void *, char *) = (void *)dlsym(nvrtc, "nvrtcGetProgramLog");
  int (*cubin_size)(void *, size_t *) = (void *)dlsym(nvrtc, "nvrtcGetCUBINSize");
  int (*get_cubin)(void *, char *) = (void *)dlsym(nvrtc, "nvrtcGetCUBIN");
  int (*destroy)(void **) = (void *)dlsym(nvrtc, "nvrtcDestroyProgram");
  if (!device_get || !attribute || !module_load || !get_function || !gpu.ctx_get_current || !gpu.ctx_set_current ||
      !gpu.launch || !create || !compile || !log_size || !get_log || !cubin_size || !get_cubin || !destroy) {
    snprintf(why, sizeof why, "lvr ops: the CUDA driver or NVRTC lacks a function this addon uses");
    return 0;
  }
  // The runtime's primary context, current on this thread: ONNX Runtime runs the kernels in it.
  if (rt->set_device(device) != 0 || rt->free(NULL) != 0 || gpu.ctx_get_current(&gpu.ctx) != 0 || !gpu.ctx) {
    snprintf(why, sizeof why, "lvr ops: no CUDA context on device %d", device);
    return 0;
  }
  int dev = 0, major = 0, minor = 0;
  device_get(&dev, device);
  attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  char arch[48];
  snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d%d", major, minor);
  const char *opts[] = {arch, "-std=c++17"};
  void *prog = NULL;
  if (create(&prog, LVR_SKINNY_SOURCE, "skinny_linear.cu", 0, NULL, NULL) != 0) {
    snprintf(why, sizeof why, "lvr ops: nvrtcCreateProgram failed");
    return 0;
  }
  int rc = compile(prog, 2, opts);
  size_t n = 0;
  if (rc != 0) {
    log_size(prog, &n);
    char *log = malloc(n + 1);
    get_log(prog, log);
    log[n] = 0;
    snprintf(why, sizeof why, "lvr ops: NVRTC could not compile the kernels for sm_%d%d: %.380s", major, minor, log);
    free(log);
    destroy(&prog);
    return 0;
  }
  cubin_size(prog, &n);
  char *cubin = malloc(n);
  get_cubin(prog, cubin);
  destroy(&prog);
  void *module = NULL;
  rc = module_load(&module, cubin);
  free(cubin);
  if (rc != 0 || get_function(&gpu.linear, module, "lvr_linear_m1") != 0 ||
      get_function(&gpu.silu_mul, module, "lvr_silu_mul_m1") != 0 ||
      get_function(&gpu.add_bias, module, "lvr_add_bias") != 0 ||
      get_function(&gpu.silu_mul_into, module, "lvr_silu_mul_into") != 0) {
    snprintf(why, sizeof why, "lvr ops: loading the compiled kernels failed (CUDA error %d)", rc);
    return 0;
  }
  gpu.rt = *rt;
  gpu.device = device;
  gpu.ready = 1;
  return 1;
}

static OrtStatus *cublas_open(void) {
  if (gpu.cublas) return NULL;
  const char *names[] = {"libcublas.so.13", "libcublas.so.12", NULL};
  void *lib = open_first(names);
  if (!lib) return fail("lvr ops: libcublas not found");
  int (*create)(void **) = (void *)dlsym(lib, "cublasCreate_v2");
  int (*set_workspace)(void *, void *, size_t) = (void *)dlsym(lib, "cublasSetWorkspace_v2");
  gpu.cublas_set_stream = (void *)dlsym(lib, "cublasSetStream_v2");
  gpu.gemm_ex = (void *)dlsym(lib, "cublasGemmEx");
  if (!create || !set_workspace || !gpu.cublas_set_stream || !gpu.gemm_ex) return fail("lvr ops: cuBLAS lacks cublasGemmEx");
  void *handle = NULL;
  gpu.rt.set_device(gpu.device);
  // A workspace of our own: cuBLAS must not allocate while ONNX Runtime captures a step's CUDA graph.
  if (create(&handle) != 0 || gpu.rt.malloc(&gpu.workspace, CUBLAS_WORKSPACE_BYTES) != 0 ||
      set_workspace(handle, gpu.workspace, CUBLAS_WORKSPACE_BYTES) != 0)
    return fail("lvr ops: cuBLAS setup failed");
  gpu.cublas = handle;
  return NULL;
}

static OrtStatus *launch(void *fn, int64_t threads, void *stream, void **args) {
  void *current = NULL;
  if (gpu.ctx_get_current(&current) != 0 || current == NULL) gpu.ctx_set_current(gpu.ctx);
  unsigned blocks = (unsigned)((threads + 255) / 256);
  int rc = gpu.launch(fn, blocks, 1, 1, 256, 1, 1, 0, stream, args, NULL);
  return rc == 0 ? NULL : fail("lvr ops: kernel launch failed");
}

// y[rows, N] = x[rows, K] . w[N, K]^T in cuBLAS' column-major terms: y^T = w^T(op T) . x^T.
static OrtStatus *gemm(void *stream, const void *x, const void *w, void *y, const Problem *p) {
  static const float one = 1.f, zero = 0.f;
  gpu.cublas_set_stream(gpu.cublas, stream);
  int rc = gpu.gemm_ex(gpu.cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)p->N, (int)p->rows, (int)p->K, &one, w, CUDA_R_16F,
                       (int)p->K, x, CUDA_R_16F, (int)p->K, &zero, y, CUDA_R_16F, (int)p->N, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT);
  return rc == 0 ? NULL : fail("lvr ops: cublasGemmEx failed");
}

static OrtStatus *cuda_compute(OpKind kind, OrtKernelContext *ctx, const OrtMemoryInfo *mem) {
  Problem p;
  OrtStatus *st = problem_of(ctx, kind, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, &p);
  if (st) return st;
  if (p.rows == 0 || p.N == 0) return NULL;
  void *stream = NULL;
  if ((st = api->KernelContext_GetGPUComputeStream(ctx, &stream))) return st;
  int K = (int)p.K, N = (int)p.N;
  // The one-row kernels read x and the weights 16 bytes at a time.
  uintptr_t vectors = (uintptr_t)p.x | (uintptr_t)p.w | (kind == OP_SILU_MUL ? (uintptr_t)p.w2 : 0);
  if (p.rows == 1 && p.K % 8 == 0 && vectors % 16 == 0) {
    // Both kernels take (x, w or gate, bias or up, y, K, N); one warp per output column.
    void *args[] = {&p.x, &p.w, &p.w2, &p.y, &K, &N};
    return launch(kind == OP_LINEAR ? gpu.linear : gpu.silu_mul, (int64_t)N * 32, stream, args);
  }
  if (kind == OP_LINEAR) {
    if ((st = gemm(stream, p.x, p.w, p.y, &p))) return st;
    if (!p.w2) return NULL;
    int M = (int)p.rows;
    void *args[] = {&p.y, &p.w2, &M, &N};
    return launch(gpu.add_bias, p.rows * p.N, stream, args);
  }
  // silu(x . gate^T) into a scratch buffer, x . up^T into y, then y = silu(gate) * y.
  OrtAllocator *alloc = NULL;
  if ((st = api->KernelContext_GetAllocator(ctx, mem, &alloc))) return st;
  long count = (long)(p.rows * p.N);
  void *gate = alloc->Alloc(alloc, (size_t)count * 2);
  if (!gate) st = fail("lvr SiluMulLinear: out of device memory");
  if (!st) st = gemm(stream, p.x, p.w, gate, &p);
  if (!st) st = gemm(stream, p.x, p.w2, p.y, &p);
  void *args[] = {&gate, &p.y, &count};
  if (!st) st = launch(gpu.silu_mul_into, count, stream, args);
  // Freed at once: the arena hands it out again only to work queued after ours on the same stream.
  if (gate) alloc->Free(alloc, gate);
  api->ReleaseAllocator(alloc);
  return st;
}

// -- ONNX Runtime custom-op plumbing --------------------------------------------------------------------------------
typedef struct {
  OrtCustomOp op; // first: ONNX Runtime hands back this pointer
  OpKind kind;
  int gpu;
} LvrOp;

typedef struct {
  OpKind kind;
  int gpu;
  OrtMemoryInfo *mem;
} LvrKernel;

static const LvrOp *lvr_op(const OrtCustomOp *op) { return (const LvrOp *)op; }

static OrtStatus *ORT_API_CALL create_kernel(const OrtCustomOp *op, const OrtApi *a, const OrtKernelInfo *info,
                                             void **out) {
  LvrKernel *k = calloc(1, sizeof *k);
  k->kind = lvr_op(op)->kind;
  k->gpu = lvr_op(op)->gpu;
  if (k->gpu) {
    OrtStatus *st = cublas_open();
    if (!st) st = a->CreateMemoryInfo("Cuda", OrtArenaAllocator, gpu.device, OrtMemTypeDefault, &k->mem);
    if (st) {
      free(k);
      return st;
    }
  }
  *out = k;
  return NULL;
}

static OrtStatus *ORT_API_CALL compute(void *kernel, OrtKernelContext *ctx) {
  LvrKernel *k = kernel;
  return k->gpu ? cuda_compute(k->kind, ctx, k->mem) : cpu_compute(k->kind, ctx);
}

static void ORT_API_CALL destroy_kernel(void *kernel) {
  LvrKernel *k = kernel;
  if (k->mem) api->ReleaseMemoryInfo(k->mem);
  free(k);
}

static const char *ORT_API_CALL op_name(const OrtCustomOp *op) {
  return lvr_op(op)->kind == OP_LINEAR ? "Linear" : "SiluMulLinear";
}
static const char *ORT_API_CALL op_ep(const OrtCustomOp *op) {
  return lvr_op(op)->gpu ? "CUDAExecutionProvider" : "CPUExecutionProvider";
}
static ONNXTensorElementDataType ORT_API_CALL op_type(const OrtCustomOp *op, size_t i) {
  return lvr_op(op)->gpu ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static size_t ORT_API_CALL op_inputs(const OrtCustomOp *op) { return 3; }
static size_t ORT_API_CALL op_outputs(const OrtCustomOp *op) { return 1; }
static OrtCustomOpInputOutputCharacteristic ORT_API_CALL op_input_kind(const OrtCustomOp *op, size_t i) {
  return i == 2 && lvr_op(op)->kind == OP_LINEAR ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}
static OrtCustomOpInputOutputCharacteristic ORT_API_CALL op_output_kind(const OrtCustomOp *op, size_t i) {
  return INPUT_OUTPUT_REQUIRED;
}
static OrtMemType ORT_API_CALL op_memory(const OrtCustomOp *op, size_t i) { return OrtMemTypeDefault; }
static int ORT_API_CALL op_one(const OrtCustomOp *op) { return 1; }
static int ORT_API_CALL op_zero(const OrtCustomOp *op) { return 0; }
static int ORT_API_CALL op_end_version(const OrtCustomOp *op) { return 1 << 30; }

static void op_init(LvrOp *o, OpKind kind, int gpu_kernels) {
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->gpu = gpu_kernels;
  OrtCustomOp *op = &o->op;
  op->version = ORT_API_VERSION;
  op->GetName = op_name;
  op->GetExecutionProviderType = op_ep;
  op->GetInputType = op_type;
  op->GetInputTypeCount = op_inputs;
  op->GetOutputType = op_type;
  op->GetOutputTypeCount = op_outputs;
  op->KernelDestroy = destroy_kernel;
  op->GetInputCharacteristic = op_input_kind;
  op->GetOutputCharacteristic = op_output_kind;
  op->GetInputMemoryType = op_memory;
  op->GetVariadicInputMinArity = op_one;
  op->GetVariadicInputHomogeneity = op_zero;
  op->GetVariadicOutputMinArity = op_one;
  op->GetVariadicOutputHomogeneity = op_zero;
  op->CreateKernelV2 = create_kernel;
  op->KernelComputeV2 = compute;
  op->GetStartVersion = op_one;
  op->GetEndVersion = op_end_version;
}

// Copies the status' message into `why` and releases it.
static const char *status_message(OrtStatus *st, const char *what) {
  snprintf(why, sizeof why, "lvr ops: %s: %s", what, api->GetErrorMessage(st));
  api->ReleaseStatus(st);
  return why;
}

const char *lvr_ops_register(const OrtApi *a, OrtSessionOptions *so, int gpu_kernels, int device,
                             const char *nvrtc_library, const LvrCudaRuntime *rt) {
  // ONNX Runtime keeps pointers to the domain and its ops for as long as sessions use them: one of each, for good.
  static LvrOp ops[2][2];
  static OrtCustomOpDomain *domains[2];
  api = a;
  if (gpu_kernels && !gpu_prepare(device, nvrtc_library, rt)) return why;
  int g = gpu_kernels ? 1 : 0;
  if (!domains[g]) {
    OrtCustomOpDomain *domain = NULL;
    op_init(&ops[g][0], OP_LINEAR, g);
    op_init(&ops[g][1], OP_SILU_MUL, g);
    OrtStatus *st = a->CreateCustomOpDomain("lvr", &domain);
    if (!st) st = a->CustomOpDomain_Add(domain, &ops[g][0].op);
    if (!st) st = a->CustomOpDomain_Add(domain, &ops[g][1].op);
    if (st) return status_message(st, "could not create the custom op domain");
    domains[g] = domain;
  }
  OrtStatus *st = a->AddCustomOpDomain(so, domains[g]);
  return st ? status_message(st, "could not add the custom op domain to the session") : NULL;
}
