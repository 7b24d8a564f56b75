// Elementwise ops and row reductions on the device: SiLU, add, mul, RMSNorm,
// rotary embedding, softmax, argmax. Plain versions: one value per thread
// (or one row per block), float32 math; lesson 10 fuses them.
#include "common.cuh"

namespace aios::cuda {

namespace {

template <class T> __global__ void silu_kernel(const T* x, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = to_f(x[i]);
    out[i] = from_f<T>(v / (1.0f + __expf(-v)));
  }
}

template <class T, bool kMul> __global__ void binary_kernel(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float x = to_f(a[i]), y = to_f(b[i]);
    out[i] = from_f<T>(kMul ? x * y : x + y);
  }
}

template <class T> __global__ void rmsnorm_kernel(const T* x, const T* w, T* out, int64_t dim, float eps) {
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * dim;
  T* o = out + blockIdx.x * dim;
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) { float v = to_f(xr[i]); sum_sq += v * v; }
  sum_sq = block_reduce<false>(sum_sq, scratch);
  const float inv_rms = rsqrtf(sum_sq / float(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = from_f<T>(to_f(xr[i]) * inv_rms * to_f(w[i]));
}

// One thread per (token, head, i < half): rotates the pair (i, i + half).
template <class T> __global__ void rope_kernel(const T* x, T* out, const int32_t* pos, const float* cos_t,
                                               const float* sin_t, int64_t tokens, int64_t heads, int64_t half,
                                               int64_t max_pos) {
  const int64_t n = tokens * heads * half;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < n; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = g % half, th = g / half, t = th / heads;
    const int64_t p = pos[t];
    const int64_t base = th * 2 * half;
    if (p < 0 || p >= max_pos) {  // cannot throw here: poison the pair so the error is visible
      out[base + i] = out[base + i + half] = from_f<T>(__int_as_float(0x7fc00000));
      continue;
    }
    const float c = cos_t[p * half + i], s = sin_t[p * half + i];
    const float x1 = to_f(x[base + i]), x2 = to_f(x[base + i + half]);
    out[base + i] = from_f<T>(x1 * c - x2 * s);
    out[base + i + half] = from_f<T>(x2 * c + x1 * s);
  }
}

template <class T> __global__ void softmax_kernel(const T* x, T* out, int64_t n) {
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * n;
  T* o = out + blockIdx.x * n;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, to_f(xr[i]));
  mx = block_reduce<true>(mx, scratch);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += __expf(to_f(xr[i]) - mx);
  sum = block_reduce<false>(sum, scratch);
  const float inv = 1.0f / sum;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = from_f<T>(__expf(to_f(xr[i]) - mx) * inv);
}


template <class T> __global__ void argmax_kernel(const T* x, int32_t* out, int64_t n) {
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  const T* xr = x + blockIdx.x * n;
  float bv = -INFINITY;
  int64_t bi = n;  // sentinel: loses every tie
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = to_f(xr[i]);
    if (better(v, i, bv, bi)) { bv = v; bi = i; }
  }
  warp_best(bv, bi);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  if (lane == 0) { best_v[warp] = bv; best_i[warp] = bi; }
  __syncthreads();
  if (warp == 0) {
    bv = lane < warps ? best_v[lane] : -INFINITY;
    bi = lane < warps ? best_i[lane] : n;
    warp_best(bv, bi);
    if (lane == 0) out[blockIdx.x] = int32_t(bi >= n ? 0 : bi);
  }
}


}  // namespace

void silu(cudaStream_t st, const void* x, void* out, int64_t n, DType dt) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    silu_kernel<T><<<blocks_for(n, 256), 256, 0, st>>>(static_cast<const T*>(x), static_cast<T*>(out), n);
  });
  check_launch("silu");
}

void add(cudaStream_t st, const void* a, const void* b, void* out, int64_t n, DType dt) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<T, false><<<blocks_for(n, 256), 256, 0, st>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                                static_cast<T*>(out), n);
  });
  check_launch("add");
}

void mul(cudaStream_t st, const void* a, const void* b, void* out, int64_t n, DType dt) {
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<T, true><<<blocks_for(n, 256), 256, 0, st>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                               static_cast<T*>(out), n);
  });
  check_launch("mul");
}

void rmsnorm(cudaStream_t st, const void* x, const void* weight, void* out, int64_t rows, int64_t dim, float eps,
             DType dt) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_kernel<T><<<unsigned(rows), row_threads(dim), 0, st>>>(static_cast<const T*>(x), static_cast<const T*>(weight),
                                                                   static_cast<T*>(out), dim, eps);
  });
  check_launch("rmsnorm");
}

void rope_neox(cudaStream_t st, const void* x, void* out, const int32_t* positions, const float* cos,
               const float* sin, int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_pos, DType dt) {
  const int64_t half = head_dim / 2, n = tokens * heads * half;
  if (n == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    rope_kernel<T><<<blocks_for(n, 256), 256, 0, st>>>(static_cast<const T*>(x), static_cast<T*>(out), positions, cos,
                                                       sin, tokens, heads, half, max_pos);
  });
  check_launch("rope_neox");
}

void softmax(cudaStream_t st, const void* x, void* out, int64_t rows, int64_t n, DType dt) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<unsigned(rows), row_threads(n), 0, st>>>(static_cast<const T*>(x), static_cast<T*>(out), n);
  });
  check_launch("softmax");
}

void argmax(cudaStream_t st, const void* x, int32_t* out, int64_t rows, int64_t n, DType dt) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    argmax_kernel<T><<<unsigned(rows), row_threads(n), 0, st>>>(static_cast<const T*>(x), out, n);
  });
  check_launch("argmax");
}

}  // namespace aios::cuda
