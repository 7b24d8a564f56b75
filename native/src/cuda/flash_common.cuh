// The primitives lesson 09's kernels are written in: warp-level matrix ops
// (ldmatrix, mma.sync m16n8k16), asynchronous copies (cp.async), shuffles,
// exp2, bf16/f16 packing, and the global loads and stores. On the device each
// is one PTX instruction or intrinsic.
//
// Compiled as plain C++ with AIOS_EMU defined (native/emu), the same names run
// on a small CPU emulator of a thread block (one fiber per thread, warp-level
// ops exchanged between the 32 lanes, cp.async completed only at its wait,
// every global access checked against the buffers the test registered), so the
// kernels' indexing, fragment layouts, masking and pipelining are checked on a
// machine without a GPU. The kernel sources have no #ifdef of their own.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "../flash.h"
#include "../switches.h"

#ifdef AIOS_EMU
#include <cmath>

#include "../../emu/emu.h"
#include "../cpu/numeric.h"
#define AIOS_FLASH_NS emu
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define threadIdx (::aios::emurt::thread_idx())
#define blockIdx (::aios::emurt::block_idx())
#define blockDim (::aios::emurt::block_dim())
#define gridDim (::aios::emurt::grid_dim())
#define __syncthreads() ::aios::emurt::syncthreads()
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend.h"
#include "pdl.cuh"
#define AIOS_FLASH_NS cuda
#endif

namespace aios::AIOS_FLASH_NS::flash {

using aios::flash::DecodePlan;

#ifdef AIOS_EMU
inline void pdl_begin() {}  // the emulator runs one kernel at a time
inline void pdl_trigger() {}
inline void pdl_wait() {}
using Stream = int;
using bf16 = aios::cpu::bf16;
using f16 = aios::cpu::f16;
inline float to_f(float v) { return v; }
inline float to_f(bf16 v) { return aios::cpu::to_float(v); }
inline float to_f(f16 v) { return aios::cpu::to_float(v); }
template <class T> inline T from_f(float v) { return aios::cpu::from_float<T>(v); }
template <class T> inline uint32_t pack2(float lo, float hi) {
  return uint32_t(from_f<T>(lo).bits) | (uint32_t(from_f<T>(hi).bits) << 16);
}
template <class T> inline float half_bits_to_f(uint32_t bits16) { return to_f(T{uint16_t(bits16)}); }
#else
using Stream = cudaStream_t;
using bf16 = __nv_bfloat16;
using f16 = __half;
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(f16 v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ f16 from_f<f16>(float v) { return __float2half_rn(v); }
// Two floats as one 32-bit register of two 16-bit values, `lo` in the low half
// (the element with the smaller index, as the mma fragments expect).
template <class T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<bf16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}
template <> __device__ __forceinline__ uint32_t pack2<f16>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}
template <class T> __device__ __forceinline__ float half_bits_to_f(uint32_t bits16);
template <> __device__ __forceinline__ float half_bits_to_f<bf16>(uint32_t bits16) { return __uint_as_float(bits16 << 16); }
template <> __device__ __forceinline__ float half_bits_to_f<f16>(uint32_t bits16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
}
#endif

// ---- conversions of one 16-byte vector: 8 bf16/f16 or 4 f32 values
template <class T> constexpr int kVec = 16 / int(sizeof(T));

template <class T> __device__ __forceinline__ void unpack16(const uint4& v, float (&f)[kVec<T>]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float x;
      memcpy(&x, &w[i], 4);
      f[i] = x;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = half_bits_to_f<T>(w[i] & 0xffffu);
      f[2 * i + 1] = half_bits_to_f<T>(w[i] >> 16);
    }
  }
}

// ---- global memory (checked against the registered buffers in the emulator)
__device__ __forceinline__ uint4 ldg16(const void* p) {
#ifdef AIOS_EMU
  uint4 v{0, 0, 0, 0};
  if (emurt::check_global(p, 16, false)) memcpy(&v, p, 16);
  return v;
#else
  return __ldg(static_cast<const uint4*>(p));
#endif
}
template <class T> __device__ __forceinline__ T ldg(const T* p) {
#ifdef AIOS_EMU
  T v{};
  if (emurt::check_global(p, sizeof(T), false)) memcpy(&v, p, sizeof(T));
  return v;
#else
  return __ldg(p);
#endif
}
template <class T> __device__ __forceinline__ void stg(T* p, T v) {
#ifdef AIOS_EMU
  if (emurt::check_global(p, sizeof(T), true)) memcpy(p, &v, sizeof(T));
#else
  *p = v;
#endif
}

// ---- shared memory: the kernel's dynamic allocation
#ifdef AIOS_EMU
inline unsigned char* smem_base() { return emurt::shared_base(); }
#else
extern __shared__ __align__(128) unsigned char aios_flash_smem[];
__device__ __forceinline__ unsigned char* smem_base() { return aios_flash_smem; }
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
#endif

// ---- warp-level ops
__device__ __forceinline__ float shfl_xor(float v, int lane_mask) {
#ifdef AIOS_EMU
  return emurt::shfl_xor(v, lane_mask);
#else
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);
#endif
}

/** Whether `p` holds on any lane of the warp (all 32 lanes must call it). */
__device__ __forceinline__ bool warp_any(bool p) {
#ifdef AIOS_EMU
  return emurt::warp_any(p);
#else
  return __any_sync(0xffffffffu, p);
#endif
}

/** 2^x (ex2.approx: 2^-inf = 0). */
__device__ __forceinline__ float exp2_fast(float x) {
#ifdef AIOS_EMU
  return std::exp2(x);
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#endif
}

/** Four 8x8 matrices of 16-bit values from shared memory; lane l gives the address of row l%8 of matrix l/8. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
#ifdef AIOS_EMU
  emurt::ldmatrix_x4(r, smem_row, false);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem_row)));
#endif
}
/** The same, each matrix transposed. */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
#ifdef AIOS_EMU
  emurt::ldmatrix_x4(r, smem_row, true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem_row)));
#endif
}

/** d[16x8] += a[16x16] * b[16x8], bf16 or f16 operands, float32 accumulators (mma.sync m16n8k16, row.col). */
template <class T> __device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef AIOS_EMU
  const uint32_t b[2] = {b0, b1};
  emurt::mma_16816(d, a, b, std::is_same_v<T, bf16>);
#else
  if constexpr (std::is_same_v<T, bf16>)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// ---- asynchronous copies global -> shared (16 bytes each; zero-filled when !valid)
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#ifdef AIOS_EMU
  emurt::cp_async16(smem, gmem, valid);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(smem)), "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef AIOS_EMU
  emurt::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
/** Waits until at most N of this thread's committed groups are still in flight. */
template <int N> __device__ __forceinline__ void cp_async_wait() {
#ifdef AIOS_EMU
  emurt::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

// ---- warp reductions over the 4 lanes of a quad (the lanes sharing an mma row) and the whole warp
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, shfl_xor(v, 1));
  return fmaxf(v, shfl_xor(v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += shfl_xor(v, 1);
  return v + shfl_xor(v, 2);
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, shfl_xor(v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += shfl_xor(v, o);
  return v;
}

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kNegInf = -__builtin_huge_valf();

// A row's running max moved to take in a tile whose largest score is `tile_max`: returns the
// factor that rescales what was summed under the old max, and sets `m_use`, the max the tile's
// exp2 subtracts (0 for a row with nothing visible yet: its -inf scores then give 0, not NaN).
__device__ __forceinline__ float online_max_step(float& m_run, float tile_max, float& m_use) {
  const float m_new = fmaxf(m_run, tile_max);
  m_use = m_new == kNegInf ? 0.0f : m_new;
  const float alpha = exp2_fast(m_run - m_use);
  m_run = m_new;
  return alpha;
}

// One step of the online softmax for one row of an mma accumulator tile (h2 = 0: the fragment's
// row g, 1: row g + 8), over its NT n-tiles of 8 keys: each of the row's scores first goes
// through score(v, nt, e) (the scale to log2 units, or -inf for a key the row must not see), the
// row's running max and sum move to take the tile in, the scores become exp2(score - max) (the P
// of P @ V), and the factor that rescales what was accumulated under the old max is returned.
// The tensor-core kernels (prefill v2-v4, decode v3, the cascade) all step their rows this way.
template <int NT, class Score>
__device__ __forceinline__ float online_softmax_row(float (&s)[NT][4], int h2, float& m_run, float& l_run, Score score) {
  float mx = kNegInf;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float& v = s[nt][2 * h2 + e];
      v = score(v, nt, e);
      mx = fmaxf(mx, v);
    }
  float m_use;
  const float alpha = online_max_step(m_run, quad_max(mx), m_use);
  float psum = 0.0f;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float& v = s[nt][2 * h2 + e];
      v = exp2_fast(v - m_use);
      psum += v;
    }
  l_run = l_run * alpha + psum;
  return alpha;
}

// Where a sequence's keys live in the pool: key k is in block k / size of its block table, at slot
// id * size + k % size. Every attention kernel (prefill, decode, the cascade's shared splits, the
// persistent step) finds its keys through one BlockIndex, made once per launch on the host and
// passed by value: a power-of-two block size (the engines use 16) as a shift, any other as a
// divisor. A 32-bit division by a run-time value is a reciprocal and its correction steps, about
// twenty instructions, and the compiler redoes it for every slot a thread looks up: in Nsight
// Compute's SASS page of a course step's decode launch (fcd942f,
// docs/measurements/profile-sass-h200-lesson11-course-step40-fcd942f.txt) a slot cost about 38
// instructions, decode v3's eight a tile more than the tile's tensor-core math.
struct BlockIndex {
  uint32_t size = 1;    // keys a block
  int shift = -1;       // log2(size) when size is a power of two, else -1 (divide)
  uint32_t blocks = 0;  // blocks in the pool: an id outside [0, blocks) reads block 0
};
/** A pool's BlockIndex; shift = false divides even a power of two (AIOS_BLOCK_SHIFT=0, for timing the two). */
__host__ __device__ inline BlockIndex block_index(int64_t block_size, int64_t num_slots, bool shift) {
  BlockIndex ix;
  ix.size = uint32_t(block_size);
  ix.blocks = uint32_t(num_slots / block_size);
  if (shift && block_size > 0 && (block_size & (block_size - 1)) == 0) {
    ix.shift = 0;
    while ((int64_t(1) << ix.shift) < block_size) ++ix.shift;
  }
  return ix;
}
/**
 * The pool slot of key `key` of the sequence whose block table is `table`, in 32 bits (the
 * kernels' *_unsupported checks keep pools under 2^31 slots). A block id outside the pool reads
 * block 0: the device cannot throw, and the CPU reference rejects such tables.
 */
__device__ __forceinline__ int32_t slot_in(const int32_t* table, uint32_t key, const BlockIndex& ix) {
  const uint32_t blk = ix.shift >= 0 ? key >> ix.shift : key / ix.size;
  const int32_t id = ldg(table + blk);
  const uint32_t use = uint32_t(id) < ix.blocks ? uint32_t(id) : 0u;  // a negative id wraps past blocks
  return int32_t(use * ix.size + (key - blk * ix.size));
}

using aios::timing_switch;  // ../switches.h

// AIOS_BLOCK_SHIFT=0..1: whether the attention kernels find a power-of-two block size's blocks by a
// shift (unset: 1; BlockIndex says why) or divide as for any other size, for timing the two on a
// card. Read once. The persistent kernel (off by default) always shifts.
inline BlockIndex block_index(const PagedAttentionArgs& a) {
  static const bool shift = timing_switch("AIOS_BLOCK_SHIFT", 0, 1, 1) == 1;
  return block_index(a.block_size, a.num_slots, shift);
}

// dtype and head_dim dispatch of the launchers
template <class F> void dispatch_half(DType dt, F&& body) {
  if (dt == DType::BF16) body(bf16{});
  else if (dt == DType::F16) body(f16{});
  else throw Error(std::string("expected bf16 or f16, got ") + dtype_name(dt));
}
template <class F> void dispatch_any(DType dt, F&& body) {
  if (dt == DType::F32) body(float{});
  else dispatch_half(dt, body);
}
template <class F> void dispatch_dim(int64_t D, F&& body) {
  if (D == 64) body(std::integral_constant<int, 64>{});
  else if (D == 128) body(std::integral_constant<int, 128>{});
  else if (D == 256) body(std::integral_constant<int, 256>{});
  else throw Error("head_dim " + std::to_string(D) + " has no kernel");
}

// ---- launching
/** The current device's multiprocessor count (the split-KV plan's only device input); the emulator says 132, an H200's. */
#ifdef AIOS_EMU
inline int64_t sm_count() { return 132; }
#else
inline int64_t sm_count() {
  static int cached[64] = {};
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev < 0 || dev >= 64) dev = 0;
  if (!cached[dev]) check(cudaDeviceGetAttribute(&cached[dev], cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  return cached[dev];
}
#endif

#ifndef AIOS_EMU
inline void raise_smem_limit(const void* kernel, size_t smem, const char* name) {
  // A block gets more than 48 KB of dynamic shared memory only after this; done once per kernel and device.
  static const void* raised[128];
  static int devs[128];
  static int n = 0;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  for (int i = 0; i < n; ++i)
    if (raised[i] == kernel && devs[i] == dev) return;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), name);
  if (n < 128) {
    raised[n] = kernel;
    devs[n++] = dev;
  }
}
#endif

/** How many blocks of `kernel` the whole GPU runs at once (SMs x the occupancy calculator's blocks per SM). */
template <class... P> int64_t resident_blocks(void (*kernel)(P...), int threads, size_t smem, const char* name) {
#ifdef AIOS_EMU
  (void)kernel, (void)threads, (void)smem, (void)name;
  return sm_count() * 2;
#else
  static const void* keys[64];
  static int64_t values[64], devs[64];
  static int n = 0;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  const void* key = reinterpret_cast<const void*>(kernel);
  for (int i = 0; i < n; ++i)
    if (keys[i] == key && devs[i] == dev) return values[i];
  if (smem > 48 * 1024) raise_smem_limit(key, smem, name);
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem), name);
  const int64_t r = sm_count() * (per_sm > 0 ? per_sm : 1);
  if (n < 64) {
    keys[n] = key;
    devs[n] = dev;
    values[n++] = r;
  }
  return r;
#endif
}

template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, Stream st, const char* name, A... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
#ifdef AIOS_EMU
  (void)st;
  emurt::launch(grid, block, smem, name, [&] { kernel(P(args)...); });
#else
  if (smem > 48 * 1024) raise_smem_limit(reinterpret_cast<const void*>(kernel), smem, name);
  launch_pdl(kernel, grid, block, smem, st, name, P(args)...);  // every kernel launched here calls pdl_begin() first, or pdl_trigger() and then pdl_wait() (pdl.cuh); it checks the launch
#endif
}


}  // namespace aios::AIOS_FLASH_NS::flash

namespace aios::AIOS_FLASH_NS {
// The lesson-09 entry points (declared for the addon in cuda/backend.h, for the emulator in emu/emu.h).
void flash_prefill(flash::Stream st, const PagedAttentionArgs& a, int version);
// Decode launches from a plan (flash_decode_plan): the caller sizes the workspace from the same
// plan it launches, so the contexts are divided once per call.
void flash_decode(flash::Stream st, const PagedAttentionArgs& a, int version, const aios::flash::DecodePlan& plan,
                  void* workspace, int64_t workspace_bytes);
aios::flash::DecodePlan flash_decode_plan(const PagedAttentionArgs& a, int version, int64_t splits);
// Lesson 13: a decode step with the splits that groups of sequences share read once per group
// (flash.h, "cascade"); the plan from flash_cascade_plan, its workspace always needed.
aios::flash::CascadePlan flash_cascade_plan(const PagedAttentionArgs& a);
void flash_cascade_decode(flash::Stream st, const PagedAttentionArgs& a, const aios::flash::CascadePlan& plan, void* workspace,
                          int64_t workspace_bytes);
}  // namespace aios::AIOS_FLASH_NS
