// Fused kernels (lesson 10): one launch where the unfused forward makes two to
// six, and one pass over the data where it makes several. Each rounds to the
// storage type where the unfused ops would (see aios.h and src/cpu/fused.cc).
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "pdl.cuh"

namespace aios::cuda {

namespace {

// One block per row: store x + residual, then normalize what was stored.
template <class T> __global__ void add_rmsnorm_kernel(const T* x, T* residual, const T* w, T* out, int64_t dim, float eps) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
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
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  const int64_t n = rows * inter;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < n; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = g / inter, i = g % inter;
    const float v = to_f(gate_up[r * 2 * inter + i]);
    const float s = to_f(from_f<T>(v / (1.0f + __expf(-v))));  // rounded where silu_kernel stores it
    out[g] = from_f<T>(s * to_f(gate_up[r * 2 * inter + inter + i]));
  }
}

// Where head h of token t goes: q_out for a query head, the token's slot of the KV pool for a key
// or value head (the caller has checked the slot).
template <class T> __device__ T* qk_head_dst(const QkNormRopeStoreArgs& a, int64_t t, int64_t h, int64_t slot, bool is_q, bool is_v) {
  if (is_q) return static_cast<T*>(a.q_out) + (t * a.q_heads + h) * a.head_dim;
  const int64_t kvh = is_v ? h - a.q_heads - a.kv_heads : h - a.q_heads;
  return static_cast<T*>(is_v ? a.v_cache : a.k_cache) + (slot * a.kv_heads + kvh) * a.head_dim;
}

// One block per (token, head of qkv), head_dim threads: thread i holds element i.
template <class T> __global__ void qk_norm_rope_store_kernel(QkNormRopeStoreArgs a) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  extern __shared__ float normed[];  // head_dim floats
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x, h = blockIdx.y, D = a.head_dim, half = D / 2, i = threadIdx.x;
  const int64_t heads = a.q_heads + 2 * a.kv_heads;
  const bool is_q = h < a.q_heads, is_v = h >= a.q_heads + a.kv_heads;
  const int64_t slot = a.slot_mapping[t], p = a.positions[t];
  // Block-uniform exits: padding rows store nothing; a bad slot or position cannot throw here.
  if (!is_q && (slot < 0 || slot >= a.num_slots)) return;
  const T* x = static_cast<const T*>(a.qkv) + (t * heads + h) * D;
  T* dst = qk_head_dst<T>(a, t, h, slot, is_q, is_v);
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

// ---- 16-byte versions for bf16/f16 rows whose length is a multiple of 8 (every Qwen3 shape):
// the same arithmetic and roundings as the kernels above, 8 elements per load and store
// instead of one (the scalar kernels moved 2 bytes per access: measured at 3-18 us a call on
// the H200 where the bytes need 1-3 us). Only the order of the sums of squares differs.

template <class T> struct Half8 {
  float f[8];
  __device__ void load(const T* p) { Vec16<T>::load(*reinterpret_cast<const uint4*>(p), f); }
  __device__ void store(T* p) const { *reinterpret_cast<uint4*>(p) = Vec16<T>::store(f); }
};

constexpr int kRowVecs = 8;  // 16-byte vectors a thread of the row kernel holds: rows up to 8 x 8 x 256 elements

// One block per row, each thread kVecs-or-fewer vectors of the row held in registers.
template <class T> __global__ void add_rmsnorm_vec_kernel(const T* x, T* residual, const T* w, T* out, int64_t dim, float eps) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  __shared__ float scratch[32];
  const int64_t vecs = dim / 8, row = blockIdx.x;
  const T* xr = x + row * dim;
  T* res = residual + row * dim;
  T* o = out + row * dim;
  Half8<T> h[kRowVecs];
  float sum_sq = 0.0f;
  for (int j = 0; j < kRowVecs; ++j) {
    const int64_t v = threadIdx.x + int64_t(j) * blockDim.x;
    if (v >= vecs) break;
    Half8<T> a;
    a.load(xr + 8 * v);
    h[j].load(res + 8 * v);
    for (int e = 0; e < 8; ++e) h[j].f[e] = to_f(from_f<T>(a.f[e] + h[j].f[e]));  // stored as T, read back as T
    h[j].store(res + 8 * v);
    for (int e = 0; e < 8; ++e) sum_sq += h[j].f[e] * h[j].f[e];
  }
  sum_sq = block_reduce<false>(sum_sq, scratch);
  const float inv_rms = rsqrtf(sum_sq / float(dim) + eps);
  for (int j = 0; j < kRowVecs; ++j) {
    const int64_t v = threadIdx.x + int64_t(j) * blockDim.x;
    if (v >= vecs) break;
    Half8<T> wv;
    wv.load(w + 8 * v);
    for (int e = 0; e < 8; ++e) h[j].f[e] = h[j].f[e] * inv_rms * wv.f[e];
    h[j].store(o + 8 * v);
  }
}

// Thread g: elements 8g' .. 8g'+7 of one row's SiLU(gate) * up, 32-bit index math (n < 2^31 vectors).
template <class T> __global__ void silu_mul_vec_kernel(const T* gate_up, T* out, int rows, int inter_vecs) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  const int n = rows * inter_vecs;
  for (int g = blockIdx.x * blockDim.x + threadIdx.x; g < n; g += gridDim.x * blockDim.x) {
    const int r = g / inter_vecs, i = g - r * inter_vecs;
    const T* gate = gate_up + (int64_t(r) * 2 * inter_vecs + i) * 8;
    Half8<T> a, b;
    a.load(gate);
    b.load(gate + int64_t(inter_vecs) * 8);
    for (int e = 0; e < 8; ++e) {
      const float v = a.f[e];
      const float s = to_f(from_f<T>(v / (1.0f + __expf(-v))));  // rounded where silu_kernel stores it
      a.f[e] = s * b.f[e];
    }
    a.store(out + int64_t(g) * 8);
  }
}

// head_dim 128: one warp per (token, head), 8 heads per block. Lane l holds elements 2l, 2l+1
// (first half) and 64+2l, 64+2l+1 (their rotary partners), so the rotation needs no exchange
// and the norm one warp sum.
constexpr int kQkWarps = 8;
template <class T> __global__ void __launch_bounds__(32 * kQkWarps) qk_norm_rope_store_d128_kernel(QkNormRopeStoreArgs a) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  constexpr int D = 128, half = 64;
  const int lane = threadIdx.x & 31;
  const int64_t t = blockIdx.x, h = int64_t(blockIdx.y) * kQkWarps + (threadIdx.x >> 5);
  const int64_t heads = a.q_heads + 2 * a.kv_heads;
  if (h >= heads) return;
  const bool is_q = h < a.q_heads, is_v = h >= a.q_heads + a.kv_heads;
  const int64_t slot = a.slot_mapping[t], p = a.positions[t];
  if (!is_q && (slot < 0 || slot >= a.num_slots)) return;  // warp-uniform: padding rows store nothing
  const T* x = static_cast<const T*>(a.qkv) + (t * heads + h) * D;
  T* dst = qk_head_dst<T>(a, t, h, slot, is_q, is_v);
  const int i0 = 2 * lane, i1 = half + 2 * lane;
  using T2 = typename std::conditional<std::is_same<T, __half>::value, __half2, __nv_bfloat162>::type;
  const T2 lo = *reinterpret_cast<const T2*>(x + i0), hi = *reinterpret_cast<const T2*>(x + i1);
  if (is_v) {
    *reinterpret_cast<T2*>(dst + i0) = lo;
    *reinterpret_cast<T2*>(dst + i1) = hi;
    return;
  }
  const T* lo_h = reinterpret_cast<const T*>(&lo);
  const T* hi_h = reinterpret_cast<const T*>(&hi);
  float v[4] = {to_f(lo_h[0]), to_f(lo_h[1]), to_f(hi_h[0]), to_f(hi_h[1])};
  const float sum_sq = warp_sum(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]);
  const float inv_rms = rsqrtf(sum_sq / float(D) + a.eps);
  const T* w = static_cast<const T*>(is_q ? a.q_norm : a.k_norm);
  const int idx[4] = {i0, i0 + 1, i1, i1 + 1};
  for (int e = 0; e < 4; ++e) v[e] = to_f(from_f<T>(v[e] * inv_rms * to_f(w[idx[e]])));  // rounded where rmsnorm_kernel stores it
  T out_lo[2], out_hi[2];
  if (p < 0 || p >= a.max_pos) {  // poison the pairs so the error is visible, as rope_kernel does
    out_lo[0] = out_lo[1] = out_hi[0] = out_hi[1] = from_f<T>(__int_as_float(0x7fc00000));
  } else {
    for (int e = 0; e < 2; ++e) {
      const float c = a.cos[p * half + i0 + e], s = a.sin[p * half + i0 + e];
      const float x1 = v[e], x2 = v[2 + e];
      out_lo[e] = from_f<T>(x1 * c - x2 * s);
      out_hi[e] = from_f<T>(x2 * c + x1 * s);
    }
  }
  T2 olo, ohi;
  memcpy(&olo, out_lo, 4);
  memcpy(&ohi, out_hi, 4);
  *reinterpret_cast<T2*>(dst + i0) = olo;
  *reinterpret_cast<T2*>(dst + i1) = ohi;
}

// Whether the 16-byte kernels take these pointers (whole, aligned 16-byte vectors).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void add_rmsnorm(cudaStream_t st, const void* x, void* residual, const void* weight, void* out, int64_t rows, int64_t dim,
                 float eps, DType dt) {
  if (rows == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const int64_t vecs = dim / 8;
    if constexpr (!std::is_same_v<T, float>) {
      if (dim % 8 == 0 && vecs <= int64_t(kRowVecs) * 256 && aligned16(x) && aligned16(residual) && aligned16(weight) && aligned16(out)) {
        const int threads = vecs >= 256 ? 256 : int((vecs + 31) / 32 * 32);
        launch_pdl(add_rmsnorm_vec_kernel<T>, dim3(unsigned(rows)), dim3(unsigned(threads)), 0, st, "add_rmsnorm", static_cast<const T*>(x), static_cast<T*>(residual),
                   static_cast<const T*>(weight), static_cast<T*>(out), dim, eps);
        return;
      }
    }
    launch_pdl(add_rmsnorm_kernel<T>, dim3(unsigned(rows)), dim3(row_threads(dim)), 0, st, "add_rmsnorm", static_cast<const T*>(x), static_cast<T*>(residual),
               static_cast<const T*>(weight), static_cast<T*>(out), dim, eps);
  });  // launch_pdl checks each launch
}

void silu_mul(cudaStream_t st, const void* gate_up, void* out, int64_t rows, int64_t inter, DType dt) {
  if (rows * inter == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, float>) {
      if (inter % 8 == 0 && rows * (inter / 8) < (int64_t(1) << 31) && aligned16(gate_up) && aligned16(out)) {
        const int64_t n = rows * (inter / 8);
        launch_pdl(silu_mul_vec_kernel<T>, dim3(blocks_for(n, 256)), dim3(256), 0, st, "silu_mul", static_cast<const T*>(gate_up), static_cast<T*>(out), int(rows), int(inter / 8));
        return;
      }
    }
    launch_pdl(silu_mul_kernel<T>, dim3(blocks_for(rows * inter, 256)), dim3(256), 0, st, "silu_mul", static_cast<const T*>(gate_up), static_cast<T*>(out), rows, inter);
  });  // launch_pdl checks each launch
}

void qk_norm_rope_store(cudaStream_t st, const QkNormRopeStoreArgs& a) {
  if (a.tokens == 0) return;
  if (a.head_dim % 32 != 0 || a.head_dim > 1024) throw Error("qk_norm_rope_store: head_dim must be a multiple of 32, at most 1024");
  if (a.tokens > 0x7fffffffLL || a.q_heads + 2 * a.kv_heads > 65535) throw Error("qk_norm_rope_store: too many tokens or heads for one launch");
  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    const int64_t heads = a.q_heads + 2 * a.kv_heads;
    if constexpr (!std::is_same_v<T, float>) {
      if (a.head_dim == 128 && aligned16(a.qkv) && aligned16(a.q_out) && aligned16(a.k_cache) && aligned16(a.v_cache)) {
        const dim3 grid(unsigned(a.tokens), unsigned((heads + kQkWarps - 1) / kQkWarps));
        launch_pdl(qk_norm_rope_store_d128_kernel<T>, grid, dim3(32 * kQkWarps), 0, st, "qk_norm_rope_store", a);
        return;
      }
    }
    const dim3 grid(unsigned(a.tokens), unsigned(heads));
    launch_pdl(qk_norm_rope_store_kernel<T>, grid, dim3(unsigned(a.head_dim)), size_t(a.head_dim) * sizeof(float), st, "qk_norm_rope_store", a);
  });  // launch_pdl checks each launch
}

}  // namespace aios::cuda
