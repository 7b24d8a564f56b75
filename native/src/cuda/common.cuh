// Helpers shared by the kernel files: float conversions per storage type,
// dtype dispatch, launch checks and block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "backend.h"

namespace aios::cuda {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }

template <class F> inline void dispatch_float(DType dt, F&& body) {
  switch (dt) {
    case DType::BF16: body(__nv_bfloat16{}); return;
    case DType::F16: body(__half{}); return;
    case DType::F32: body(float{}); return;
    default: throw Error(std::string("expected a float dtype (bf16, f16, f32), got ") + dtype_name(dt));
  }
}

inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline unsigned blocks_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum or max; every thread gets the result. `scratch` holds 32 floats.
template <bool kMax> __device__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  r = kMax ? warp_max(r) : warp_sum(r);
  return r;
}

// Argmax order: NaN counts as the largest value; ties go to the lower index (as on the CPU).
__device__ __forceinline__ bool better(float v, int64_t i, float bv, int64_t bi) {
  if (isnan(v)) return !isnan(bv) || i < bi;
  if (isnan(bv)) return false;
  return v > bv || (v == bv && i < bi);
}

// The warp's best (value, index) in the order of `better`, in every lane (int32 or int64 indices).
template <class I> __device__ __forceinline__ void warp_best(float& v, I& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const I oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) { v = ov; i = oi; }
  }
}

// 16 bytes of T as floats and back (8 halves or 4 floats), rounding as from_f does: the 16-byte
// loads and stores of the kernels that stream rows (fused.cu's vector kernels, peer_allreduce.cu).
template <class T> struct Vec16 {
  static constexpr int N = 16 / int(sizeof(T));
  __device__ static void load(const uint4& v, float* f) {
    const T* h = reinterpret_cast<const T*>(&v);
    for (int e = 0; e < N; ++e) f[e] = to_f(h[e]);
  }
  __device__ static uint4 store(const float* f) {
    uint4 v;
    T* h = reinterpret_cast<T*>(&v);
    for (int e = 0; e < N; ++e) h[e] = from_f<T>(f[e]);
    return v;
  }
};

// Threads for a kernel that gives one block to a row of n values.
inline int row_threads(int64_t n) { return n >= 1024 ? 1024 : (n >= 256 ? 256 : 128); }

__device__ __forceinline__ int64_t load_index(const void* idx, bool idx64, int64_t i) {
  return idx64 ? static_cast<const int64_t*>(idx)[i] : int64_t(static_cast<const int32_t*>(idx)[i]);
}

}  // namespace aios::cuda
