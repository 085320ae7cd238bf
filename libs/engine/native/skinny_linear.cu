// Decode-step projections for one row (issue #14): y[n] = sum_k x[k] * w[n, k] (+ bias[n]) in fp16 with fp32
// accumulation. At these sizes a step is bound by reading the weights once, so each warp
// streams whole weight rows (w is [N, K], the PyTorch Linear layout) with 16-byte loads that skip L1, keeps several
// loads in flight, and reduces its dot products with shuffles: no shared memory, no split over K, no tensor cores.
// `lvr_silu_mul_m1` takes the MLP's gate and up weights ([N, K] each) and writes silu(x . gate) * (x . up), [N]:
// the MLP's first half in one kernel.
//
// Compiled at load time by NVRTC (no headers: fp16 through PTX conversions), so the addon needs no CUDA toolkit to
// build. K must be a multiple of 8 (the host checks it).

typedef unsigned short lvr_half;

__device__ __forceinline__ void lvr_unpack(unsigned int v, float &lo, float &hi) {
  asm("{.reg .f16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h;}" : "=f"(lo), "=f"(hi) : "r"(v));
}

__device__ __forceinline__ lvr_half lvr_to_half(float f) {
  lvr_half h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

__device__ __forceinline__ float lvr_to_float(lvr_half h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

// Weights are read once per step: bypass L1 so the activations stay there.
__device__ __forceinline__ void lvr_load_stream(const lvr_half *p, unsigned int (&v)[4]) {
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3])
      : "l"(p));
}

__device__ __forceinline__ void lvr_load(const lvr_half *p, unsigned int (&v)[4]) {
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3]) : "l"(p));
}

__device__ __forceinline__ void lvr_to_floats(const unsigned int (&v)[4], float (&f)[8]) {
#pragma unroll
  for (int j = 0; j < 4; j++) lvr_unpack(v[j], f[2 * j], f[2 * j + 1]);
}

// One warp computes the dot products of R weight rows (`rows`, K halves each) with x (one row of K halves), U chunks
// of 8 halves per lane in flight; every lane ends with the full sums.
template <int R, int U>
__device__ __forceinline__ void lvr_warp_dots(const lvr_half *__restrict__ x, const lvr_half *const (&rows)[R],
                                              int K, int lane, float (&acc)[R]) {
#pragma unroll
  for (int r = 0; r < R; r++) acc[r] = 0.f;
  const int chunks = K >> 3;
  int c = lane;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    unsigned int wv[U][R][4];
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
      for (int r = 0; r < R; r++) lvr_load_stream(rows[r] + (size_t)(c + 32 * u) * 8, wv[u][r]);
#pragma unroll
    for (int u = 0; u < U; u++) {
      unsigned int xv[4];
      float xf[8], wf[8];
      lvr_load(x + (size_t)(c + 32 * u) * 8, xv);
      lvr_to_floats(xv, xf);
#pragma unroll
      for (int r = 0; r < R; r++) {
        lvr_to_floats(wv[u][r], wf);
#pragma unroll
        for (int j = 0; j < 8; j++) acc[r] = fmaf(xf[j], wf[j], acc[r]);
      }
    }
  }
  for (; c < chunks; c += 32) {
    unsigned int xv[4];
    float xf[8], wf[8];
    lvr_load(x + (size_t)c * 8, xv);
    lvr_to_floats(xv, xf);
#pragma unroll
    for (int r = 0; r < R; r++) {
      unsigned int v[4];
      lvr_load_stream(rows[r] + (size_t)c * 8, v);
      lvr_to_floats(v, wf);
#pragma unroll
      for (int j = 0; j < 8; j++) acc[r] = fmaf(xf[j], wf[j], acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], s);
}

// silu(gate) * up in fp16 steps: the gate rounds to fp16 before the activation, as ONNX's MatMul -> Sigmoid -> Mul
// chain does.
__device__ __forceinline__ lvr_half lvr_silu_times(float gate, float up) {
  const float g = lvr_to_float(lvr_to_half(gate));
  const float s = lvr_to_float(lvr_to_half(g / (1.f + __expf(-g))));
  return lvr_to_half(s * lvr_to_float(lvr_to_half(up)));
}

#define LVR_LOADS_IN_FLIGHT 4

// One row of x (a batch-1 decode step): what the probe found faster than cuBLAS at every decoder shape; one warp per
// output column. Steps of more rows go through cuBLAS with the two elementwise kernels below (the addon's lvr ops
// choose).
extern "C" __global__ void __launch_bounds__(256) lvr_linear_m1(const lvr_half *x, const lvr_half *w,
                                                                const lvr_half *bias, lvr_half *y, int K, int N) {
  const int n = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (n >= N) return;
  const lvr_half *rows[1] = {w + (size_t)n * K};
  float acc[1];
  lvr_warp_dots<1, LVR_LOADS_IN_FLIGHT>(x, rows, K, lane, acc);
  if (lane == 0) y[n] = lvr_to_half(acc[0] + (bias ? lvr_to_float(bias[n]) : 0.f));
}

// y[n] = silu(x . gate[n]) * (x . up[n]), the gate and up rows in flight together.
extern "C" __global__ void __launch_bounds__(256) lvr_silu_mul_m1(const lvr_half *x, const lvr_half *gate,
                                                                  const lvr_half *up, lvr_half *y, int K, int N) {
  const int n = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (n >= N) return;
  const lvr_half *rows[2] = {gate + (size_t)n * K, up + (size_t)n * K};
  float acc[2];
  lvr_warp_dots<2, LVR_LOADS_IN_FLIGHT>(x, rows, K, lane, acc);
  if (lane == 0) y[n] = lvr_silu_times(acc[0], acc[1]);
}

extern "C" __global__ void lvr_add_bias(lvr_half *y, const lvr_half *bias, int M, int N) {
  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (long)M * N) y[i] = lvr_to_half(lvr_to_float(y[i]) + lvr_to_float(bias[i % N]));
}

// y = silu(gate) * y elementwise, rounding as the one-row kernel does.
extern "C" __global__ void lvr_silu_mul_into(const lvr_half *gate, lvr_half *y, long count) {
  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) y[i] = lvr_silu_times(lvr_to_float(gate[i]), lvr_to_float(y[i]));
}
