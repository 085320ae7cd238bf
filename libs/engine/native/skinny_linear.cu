// Decode-step projections for a few rows (issue #14): y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) in fp16 with
// fp32 accumulation, for M <= 8 rows of x. At these sizes a step is bound by reading the weights once, so each warp
// streams whole weight rows (w is [N, K], the PyTorch Linear layout) with 16-byte loads that skip L1, keeps several
// loads in flight, and reduces its dot products with shuffles: no shared memory, no split over K, no tensor cores.
// `silu_mul` kernels take the MLP's gate and up weights ([N, K] each) and write silu(x . gate) * (x . up), [M, N]:
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

// One warp computes the dot products of R weight rows (`rows`, K halves each) with all M rows of x; U chunks of 8
// halves per lane in flight.
template <int M, int R, int U>
__device__ __forceinline__ void lvr_warp_dots(const lvr_half *__restrict__ x, const lvr_half *const (&rows)[R],
                                              int K, int lane, float (&acc)[M][R]) {
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++) acc[m][r] = 0.f;
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
      float wf[R][8];
#pragma unroll
      for (int r = 0; r < R; r++) lvr_to_floats(wv[u][r], wf[r]);
#pragma unroll
      for (int m = 0; m < M; m++) {
        unsigned int xv[4];
        float xf[8];
        lvr_load(x + (size_t)m * K + (size_t)(c + 32 * u) * 8, xv);
        lvr_to_floats(xv, xf);
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
          for (int j = 0; j < 8; j++) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
      }
    }
  }
  for (; c < chunks; c += 32) {
    float wf[R][8];
#pragma unroll
    for (int r = 0; r < R; r++) {
      unsigned int v[4];
      lvr_load_stream(rows[r] + (size_t)c * 8, v);
      lvr_to_floats(v, wf[r]);
    }
#pragma unroll
    for (int m = 0; m < M; m++) {
      unsigned int xv[4];
      float xf[8];
      lvr_load(x + (size_t)m * K + (size_t)c * 8, xv);
      lvr_to_floats(xv, xf);
#pragma unroll
      for (int r = 0; r < R; r++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
    }
  }
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
      for (int s = 16; s > 0; s >>= 1) acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], s);
}

template <int M, int R, int U>
__device__ __forceinline__ void lvr_linear(const lvr_half *__restrict__ x, const lvr_half *__restrict__ w,
                                           const lvr_half *__restrict__ bias, lvr_half *__restrict__ y, int K,
                                           int N) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  const int n0 = warp * R;
  if (n0 >= N) return;
  const lvr_half *rows[R];
#pragma unroll
  for (int r = 0; r < R; r++) rows[r] = w + (size_t)(n0 + r < N ? n0 + r : N - 1) * K;
  float acc[M][R];
  lvr_warp_dots<M, R, U>(x, rows, K, lane, acc);
  // Lane (m * R + r) % 32 writes y[m, n0 + r].
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++)
      if (lane == (m * R + r) % 32 && n0 + r < N)
        y[(size_t)m * N + n0 + r] = lvr_to_half(acc[m][r] + (bias ? lvr_to_float(bias[n0 + r]) : 0.f));
}

// y[m, n] = silu(x[m] . gate[n]) * (x[m] . up[n]): one warp per output column, its gate and up rows in flight
// together.
template <int M, int U>
__device__ __forceinline__ void lvr_silu_mul(const lvr_half *__restrict__ x, const lvr_half *__restrict__ gate,
                                             const lvr_half *__restrict__ up, lvr_half *__restrict__ y, int K, int N) {
  const int n = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (n >= N) return;
  const lvr_half *rows[2] = {gate + (size_t)n * K, up + (size_t)n * K};
  float acc[M][2];
  lvr_warp_dots<M, 2, U>(x, rows, K, lane, acc);
#pragma unroll
  for (int m = 0; m < M; m++)
    if (lane == m % 32) {
      // The gate rounds to fp16 before the activation, as ONNX's MatMul -> Sigmoid -> Mul chain does.
      const float g = lvr_to_float(lvr_to_half(acc[m][0])), u = lvr_to_float(lvr_to_half(acc[m][1]));
      const float s = lvr_to_float(lvr_to_half(g / (1.f + __expf(-g))));
      y[(size_t)m * N + n] = lvr_to_half(s * u);
    }
}

#define LVR_LINEAR(M, R, U)                                                                                       \
  extern "C" __global__ void __launch_bounds__(256) lvr_linear_m##M(                                             \
      const lvr_half *x, const lvr_half *w, const lvr_half *bias, lvr_half *y, int K, int N) {                   \
    lvr_linear<M, R, U>(x, w, bias, y, K, N);                                                                     \
  }                                                                                                               \
  extern "C" __global__ void __launch_bounds__(256) lvr_silu_mul_m##M(                                           \
      const lvr_half *x, const lvr_half *gate, const lvr_half *up, lvr_half *y, int K, int N) {                  \
    lvr_silu_mul<M, U>(x, gate, up, y, K, N);                                                                     \
  }

// One row (a batch-1 decode step): what the probe found faster than cuBLAS at every decoder shape. Steps of more rows
// go through cuBLAS with the two elementwise kernels below (the addon's lvr ops choose).
LVR_LINEAR(1, 1, 4)

extern "C" __global__ void lvr_add_bias(lvr_half *y, const lvr_half *bias, int M, int N) {
  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (long)M * N) y[i] = lvr_to_half(lvr_to_float(y[i]) + lvr_to_float(bias[i % N]));
}

// y = silu(gate) * y elementwise, rounding as the one-row kernel does.
extern "C" __global__ void lvr_silu_mul_into(const lvr_half *gate, lvr_half *y, long count) {
  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = lvr_to_float(gate[i]);
  const float s = lvr_to_float(lvr_to_half(g / (1.f + __expf(-g))));
  y[i] = lvr_to_half(s * lvr_to_float(y[i]));
}
