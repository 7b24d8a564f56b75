// Fused kernels (lesson 10): one launch where the unfused forward makes two to
// six, and one pass over the data where it makes several. Each rounds to the
// storage type where the unfused ops would (see aios.h and src/cpu/fused.cc).
#include "common.cuh"

namespace aios::cuda {

namespace {

// One block per row: store x + residual, then normalize what was stored.
template <class T> __global__ void add_rmsnorm_kernel(const T* x, T* residual, const T* w, T* out, int64_t dim, float eps) {
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * dim;
  T* res = residual + blockIdx.x * dim;
  T* o = out + blockIdx.x * dim;
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const T h = from_f<T>(to_f(xr[i]) + to_f(res[i]));
    res[i] = h;
    const float v = to_f(h);
    sum_sq += v * v;
  }
  sum_sq = block_reduce<false>(sum_sq, scratch);
  const float inv_rms = rsqrtf(sum_sq / float(dim) + eps);
  // Each thread reads back the elements it wrote itself: no barrier needed.
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = from_f<T>(to_f(res[i]) * inv_rms * to_f(w[i]));
}

template <class T> __global__ void silu_mul_kernel(const T* gate_up, T* out, int64_t rows, int64_t inter) {
  const int64_t n = rows * inter;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < n; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = g / inter, i = g % inter;
    const float v = to_f(gate_up[r * 2 * inter + i]);
    const float s = to_f(from_f<T>(v / (1.0f + __expf(-v))));  // rounded where silu_kernel stores it
    out[g] = from_f<T>(s * to_f(gate_up[r * 2 * inter + inter + i]));
  }
}

// One block per (token, head of qkv), head_dim threads: thread i holds element i.
template <class T> __global__ void qk_norm_rope_store_kernel(QkNormRopeStoreArgs a) {
  extern __shared__ float normed[];  // head_dim floats
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x, h = blockIdx.y, D = a.head_dim, half = D / 2, i = threadIdx.x;
  const int64_t heads = a.q_heads + 2 * a.kv_heads;
  const bool is_q = h < a.q_heads, is_v = h >= a.q_heads + a.kv_heads;
  const int64_t slot = a.slot_mapping[t], p = a.positions[t];
  // Block-uniform exits: padding rows store nothing; a bad slot or position cannot throw here.
  if (!is_q && (slot < 0 || slot >= a.num_slots)) return;
  const T* x = static_cast<const T*>(a.qkv) + (t * heads + h) * D;
  T* dst;
  if (is_q) dst = static_cast<T*>(a.q_out) + (t * a.q_heads + h) * D;
  else {
    const int64_t kvh = is_v ? h - a.q_heads - a.kv_heads : h - a.q_heads;
    dst = static_cast<T*>(is_v ? a.v_cache : a.k_cache) + (slot * a.kv_heads + kvh) * D;
  }
  if (is_v) {
    dst[i] = x[i];
    return;
  }
  const float v = to_f(x[i]);
  const float sum_sq = block_reduce<false>(v * v, scratch);
  const float inv_rms = rsqrtf(sum_sq / float(D) + a.eps);
  const T* w = static_cast<const T*>(is_q ? a.q_norm : a.k_norm);
  normed[i] = to_f(from_f<T>(v * inv_rms * to_f(w[i])));  // rounded where rmsnorm_kernel stores it
  __syncthreads();
  if (i >= half) return;
  if (p < 0 || p >= a.max_pos) {  // poison the pair so the error is visible, as rope_kernel does
    dst[i] = dst[i + half] = from_f<T>(__int_as_float(0x7fc00000));
    return;
  }
  const float c = a.cos[p * half + i], s = a.sin[p * half + i];
  const float x1 = normed[i], x2 = normed[i + half];
  dst[i] = from_f<T>(x1 * c - x2 * s);
  dst[i + half] = from_f<T>(x2 * c + x1 * s);
}

}  // namespace

void add_rmsnorm(cudaStream_t st, const void* x, void* residual, const void* weight, void* out, int64_t rows, int64_t dim,
                 float eps, DType dt) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    add_rmsnorm_kernel<T><<<unsigned(rows), row_threads(dim), 0, st>>>(static_cast<const T*>(x), static_cast<T*>(residual),
                                                                          static_cast<const T*>(weight), static_cast<T*>(out), dim, eps);
  });
  check_launch("add_rmsnorm");
}

void silu_mul(cudaStream_t st, const void* gate_up, void* out, int64_t rows, int64_t inter, DType dt) {
  if (rows * inter == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    silu_mul_kernel<T><<<blocks_for(rows * inter, 256), 256, 0, st>>>(static_cast<const T*>(gate_up), static_cast<T*>(out), rows, inter);
  });
  check_launch("silu_mul");
}

void qk_norm_rope_store(cudaStream_t st, const QkNormRopeStoreArgs& a) {
  if (a.tokens == 0) return;
  if (a.head_dim % 32 != 0 || a.head_dim > 1024) throw Error("qk_norm_rope_store: head_dim must be a multiple of 32, at most 1024");
  if (a.tokens > 0x7fffffffLL || a.q_heads + 2 * a.kv_heads > 65535) throw Error("qk_norm_rope_store: too many tokens or heads for one launch");
  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(unsigned(a.tokens), unsigned(a.q_heads + 2 * a.kv_heads));
    qk_norm_rope_store_kernel<T><<<grid, unsigned(a.head_dim), size_t(a.head_dim) * sizeof(float), st>>>(a);
  });
  check_launch("qk_norm_rope_store");
}

}  // namespace aios::cuda
