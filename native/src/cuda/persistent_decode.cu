// Lesson 11's persistent decode step (see ../persistent.h for why and what it
// supports): one launch runs every decoder layer of a decode step of 1-8 rows.
// One block per SM; per layer five stages separated by grid-wide barriers:
//
//   1. qkv      x = rmsnorm(residual) * input_norm;  qkv = x @ Wqkv^T
//   2. attention  per unit (token, KV head, split of the context): q/k RMSNorm and
//               RoPE, the new K/V into the pool (the unit holding the last key),
//               flash-decoding over the unit's keys; the last unit of a (token, KV
//               head) to finish merges the splits (a counter, no extra barrier)
//   3. o        residual += attn @ Wo^T
//   4. gate_up  x = rmsnorm(residual) * post_norm;  act = silu(x @ Wg^T) * (x @ Wu^T)
//   5. down     residual += act @ Wd^T
//
// then the final norm into normed_out. Each weight matrix is cut into tiles of 8
// output rows (gate/up: 8 rows of each), tile t belonging to block t % grid, and
// each tile into chunks of kc columns, one ring stage each (Geometry). A block's
// chunks of the whole step form one stream that the ring copies (cp.async)
// kStages - 1 chunks ahead of the one being multiplied, across stage and layer
// boundaries: the weights of the next stage arrive while the block
// waits at the barrier. Every rounding to the storage type is where lesson 10's
// kernels round (GEMM outputs, the residual, the norms, q/k after norm and
// RoPE, SiLU), so the two paths differ only in the order of float sums.
//
// Compiled as plain C++ with AIOS_EMU (native/emu) it runs on the CPU emulator,
// grid barriers included (emurt::launch_grid).
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "../persistent.h"
#include "flash_common.cuh"

namespace aios::AIOS_FLASH_NS {
namespace persistent_kernel {
namespace {

using namespace aios::AIOS_FLASH_NS::flash;
using aios::persistent::kMaxTokens;
using aios::persistent::kStageBytes;
using aios::persistent::kStages;
using aios::persistent::kThreads;
using aios::persistent::kTileKeys;
using aios::persistent::kWarps;
constexpr int D = aios::persistent::kHeadDim;
using aios::persistent::kTileRows;

// ---- memory the other blocks write during the kernel: read through L2 (ld.global.cg), never the
// non-coherent read-only path that ldg() uses for the step's inputs and the weights.
__device__ __forceinline__ uint4 ldcg16(const void* p) {
#ifdef AIOS_EMU
  return ldg16(p);
#else
  return __ldcg(static_cast<const uint4*>(p));
#endif
}
template <class T> __device__ __forceinline__ T ldcg(const T* p) {
#ifdef AIOS_EMU
  return ldg(p);
#else
  return __ldcg(p);
#endif
}
// An add that releases what this thread (and, after a barrier, its block) wrote before it and
// acquires what the adds before it released: one instruction, no separate fence.
__device__ __forceinline__ uint32_t atomic_add_acq_rel(uint32_t* p, uint32_t v) {
#ifdef AIOS_EMU
  return emurt::atomic_add_u32(p, v);
#else
  uint32_t old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
#endif
}

// AIOS_PERSISTENT_KNOCKOUT (timing only, the outputs are then wrong; read once by the launcher): a
// sum of these leaves that part of every layer out, so one call times what each part costs in the
// step, as lesson 11's knock-out table does for the layered forward's kernels.
constexpr int kKnockBarriers = 1;  // the grid barriers return at once
constexpr int kKnockAttention = 2;  // no attention units (nothing stored, attn not written)
constexpr int kKnockMultiply = 4;  // weight chunks arrive but are not multiplied (no outputs)
constexpr int kKnockStream = 8;    // no weight copies (the multiplies read whatever the ring holds)

// Every block waits here until every block has arrived; what any block wrote before is then
// visible to all. `target` counts the arrivals expected so far (the counter only grows in a launch).
__device__ __forceinline__ void grid_barrier(uint32_t* counter, uint32_t& target, int knock) {
  target += gridDim.x;
  if (knock & kKnockBarriers) {  // timing only: no wait, wrong results
    __syncthreads();
    return;
  }
#ifdef AIOS_EMU
  (void)counter;
  emurt::grid_sync();
#else
  __syncthreads();
  if (threadIdx.x == 0) {
    // The arrival releases the block's writes (cumulatively: its threads' writes are ordered before
    // it by the barrier above); it returns nothing, so the wait starts at once.
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(counter) : "memory");
    uint32_t seen;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
    } while (seen < target);
  }
  __syncthreads();
#endif
}

template <class T> __device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  uint4 v;
  v.x = pack2<T>(f[0], f[1]);
  v.y = pack2<T>(f[2], f[3]);
  v.z = pack2<T>(f[4], f[5]);
  v.w = pack2<T>(f[6], f[7]);
  return v;
}
template <class T> __device__ __forceinline__ float round_t(float v) { return to_f(from_f<T>(v)); }

// The four weight stages of a layer, in the order their chunks stream.
enum Stage : int { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3 };

// What the kernel derives once from the arguments and the plan. 32-bit throughout (every size of
// a step fits): 64-bit divisions and remainders cost ~100 instructions each, and a block's 8 warps
// have little else to hide them behind. Per-stage values are separate scalars, chosen with
// switches: an array indexed by a run-time stage would live in local memory.
//
// A stage's matrix is cut into tiles of 8 output rows (gate/up: the same 8 rows of gate and of up,
// the mma's 16 rows), tile t belonging to block t % grid; a tile's rows into chunks of kc columns
// (one ring stage each), which stream one after another.
struct Geometry {
  int H, Hq, Hkv, I, QD, QKV, group, splits;
  int kc0, kc1, kc2, kc3;          // columns of a chunk per stage
  int mine0, mine1, mine2, mine3;  // chunks of each stage this block owns: its tiles x chunks a tile
  int mine_layer;                  // their sum: this block's chunks of one layer
  __device__ int kc_of(int s) const { return s == 0 ? kc0 : s == 1 ? kc1 : s == 2 ? kc2 : kc3; }
  __device__ int mine_of(int s) const { return s == 0 ? mine0 : s == 1 ? mine1 : s == 2 ? mine2 : mine3; }
  __device__ int k_of(int s) const { return s == 0 || s == 2 ? H : s == 1 ? QD : I; }
};

__device__ __forceinline__ int owned(int tiles) {
  const int block = int(blockIdx.x), grid = int(gridDim.x);
  return tiles > block ? (tiles - block + grid - 1) / grid : 0;
}

__device__ Geometry geometry(const PersistentDecodeArgs& a, int kc_qkv, int kc_o, int kc_gate_up, int kc_down, int splits) {
  Geometry g;
  g.H = int(a.shape.hidden), g.Hq = int(a.shape.q_heads), g.Hkv = int(a.shape.kv_heads), g.I = int(a.shape.inter);
  g.QD = g.Hq * D, g.QKV = (g.Hq + 2 * g.Hkv) * D, g.group = g.Hq / g.Hkv, g.splits = splits;
  g.kc0 = kc_qkv, g.kc1 = kc_o, g.kc2 = kc_gate_up, g.kc3 = kc_down;
  g.mine0 = owned(g.QKV / kTileRows) * (g.H / kc_qkv);
  g.mine1 = owned(g.H / kTileRows) * (g.QD / kc_o);
  g.mine2 = owned(g.I / kTileRows) * (g.H / kc_gate_up);
  g.mine3 = owned(g.H / kTileRows) * (g.I / kc_down);
  g.mine_layer = g.mine0 + g.mine1 + g.mine2 + g.mine3;
  return g;
}

// Chunk `idx` of this block's stream: its layer, stage, tile (its first output row) and column chunk.
struct ChunkRef {
  int layer, stage, row0, kchunk;
};
__device__ __forceinline__ ChunkRef chunk_ref(const Geometry& g, int idx) {
  ChunkRef c;
  c.layer = idx / g.mine_layer;
  int r = idx - c.layer * g.mine_layer;
  c.stage = 0;
  if (r >= g.mine0) {
    r -= g.mine0, c.stage = 1;
    if (r >= g.mine1) {
      r -= g.mine1, c.stage = 2;
      if (r >= g.mine2) r -= g.mine2, c.stage = 3;
    }
  }
  const int per_tile = g.k_of(c.stage) / g.kc_of(c.stage), j = r / per_tile;
  c.kchunk = r - j * per_tile;
  c.row0 = (int(blockIdx.x) + j * int(gridDim.x)) * kTileRows;
  return c;
}

// Where 16-byte column c16 of row `row` of a chunk (or of an activation row) sits in shared memory:
// XOR-swizzled by the row's low 3 bits, so ldmatrix's 8 rows at one column hit 8 different bank groups.
__device__ __forceinline__ int swz(int row, int c16) { return c16 ^ (row & 7); }

// Queues the copies of chunk `idx` of the stream into its ring stage (an empty group past the end,
// so every thread's count of groups stays one per chunk).
template <class T>
__device__ void issue_chunk(const PersistentDecodeArgs& a, const Geometry& g, int idx, int total, unsigned char* ring, int knock) {
  if (idx < total && !(knock & kKnockStream)) {
    const ChunkRef c = chunk_ref(g, idx);
    const int K = g.k_of(c.stage), kc = g.kc_of(c.stage), vpr = kc / 8;
    const T* base;
    int mat_rows;
    switch (c.stage) {
      case kQkv: base = static_cast<const T*>(a.qkv_w), mat_rows = g.QKV; break;
      case kO: base = static_cast<const T*>(a.o_w), mat_rows = g.H; break;
      case kGateUp: base = static_cast<const T*>(a.gate_up_w), mat_rows = 2 * g.I; break;
      default: base = static_cast<const T*>(a.down_w), mat_rows = g.H; break;
    }
    // Rows 0-7: the tile's rows; gate/up: rows 8-15 the same rows of up, I rows further.
    const T* mat = base + (int64_t(c.layer) * mat_rows + c.row0) * K + int64_t(c.kchunk) * kc;
    const int rows = c.stage == kGateUp ? 2 * kTileRows : kTileRows;
    unsigned char* dst = ring + (idx % kStages) * kStageBytes;
    for (int v = threadIdx.x; v < rows * vpr; v += kThreads) {
      const int row = v / vpr, c16 = v - row * vpr;
      const int src_row = row < kTileRows ? row : g.I + row - kTileRows;
      cp_async16(dst + (row * vpr + swz(row, c16)) * 16, mat + int64_t(src_row) * K + c16 * 8, true);
    }
  }
  cp_async_commit();
}

// out[m, :] = rmsnorm(residual[m, :]) * w, rounded to T, for the step's rows: into the activations
// in shared memory (swizzled, `to_global` false) or to global memory (the final norm); the residual
// rows themselves into res_s (the next stage adds to them without a global read).
template <class T>
__device__ void norm_rows(const T* residual, const T* w, int M, int H, float eps, T* out, bool to_global, float* red, T* res_s) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Loops over kMaxTokens with a guard, unrolled: the arrays stay in registers (a loop to M would
  // index them at run time, from local memory).
  float ss[kMaxTokens];
#pragma unroll
  for (int m = 0; m < kMaxTokens; ++m) ss[m] = 0.0f;
  for (int v = threadIdx.x; v < H / 8; v += kThreads)
#pragma unroll
    for (int m = 0; m < kMaxTokens; ++m) {
      if (m >= M) break;
      const uint4 raw = ldcg16(residual + m * H + v * 8);
      *reinterpret_cast<uint4*>(res_s + m * H + v * 8) = raw;
      float f[8];
      unpack16<T>(raw, f);
      for (int e = 0; e < 8; ++e) ss[m] += f[e] * f[e];
    }
#pragma unroll
  for (int m = 0; m < kMaxTokens; ++m) {
    if (m >= M) break;
    const float s = warp_sum(ss[m]);
    if (lane == 0) red[warp * kMaxTokens + m] = s;
  }
  __syncthreads();
  for (int v = threadIdx.x; v < H / 8; v += kThreads) {
    float wf[8];
    unpack16<T>(ldg16(w + v * 8), wf);
    for (int m = 0; m < M; ++m) {
      float tot = 0.0f;
      for (int i = 0; i < kWarps; ++i) tot += red[i * kMaxTokens + m];
      const float inv = 1.0f / sqrtf(tot / float(H) + eps);
      float f[8];
      unpack16<T>(*reinterpret_cast<const uint4*>(res_s + m * H + v * 8), f);  // this thread's own store
      for (int e = 0; e < 8; ++e) f[e] = f[e] * inv * wf[e];
      if (to_global) stg(reinterpret_cast<uint4*>(out + m * H + v * 8), pack8<T>(f));
      else *reinterpret_cast<uint4*>(out + m * H + swz(m, v) * 8) = pack8<T>(f);
    }
  }
  __syncthreads();  // out complete; red free again
}

// x[m, :] = src[m, :] (an activation other blocks wrote), into shared memory, swizzled.
template <class T> __device__ void load_rows(const T* src, int M, int K, T* x) {
  const int vpr = K / 8;
  for (int v = threadIdx.x; v < M * vpr; v += kThreads) {
    const int m = v / vpr, c16 = v - m * vpr;
    *reinterpret_cast<uint4*>(x + m * K + swz(m, c16) * 8) = ldcg16(src + v * 8);
  }
  __syncthreads();
}

// One stage of a layer: every chunk this block owns, multiplied with x (M rows of K in shared
// memory) on tensor cores as it comes out of the ring, and each tile's output rows handed to
// `emit(row, m, value, up)` (gate/up: the pair's two values). `next` is the stream position of
// this stage's first chunk; it advances past them.
//
// mma.sync m16n8k16 with the weights as A (16 rows: the tile's 8, and 8 more of up for gate/up or
// none) and the activations as B (8 columns: the step's rows; columns past M are never read out).
// Each warp takes every 8th 32-column step of a chunk and keeps its accumulators across the
// tile's chunks; at the tile's end the 8 warps' tiles are summed in warp order.
template <class T, class Emit>
__device__ void run_stage(const PersistentDecodeArgs& a, const Geometry& g, int stage, int& next, int total,
                          unsigned char* ring, const T* x, int M, float* red, int knock, Emit emit) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int K = g.k_of(stage), kc = g.kc_of(stage), vpr = kc / 8, per_tile = K / kc;
  const bool pairs = stage == kGateUp;
  const int mine = g.mine_of(stage);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int j = 0; j < mine; ++j, ++next) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // every thread's copies of this chunk landed; the stage read last is free
    issue_chunk<T>(a, g, next + kStages - 1, total, ring, knock);
    if (knock & kKnockMultiply) continue;
    const int jt = j / per_tile, kchunk = j - jt * per_tile;
    const unsigned char* w = ring + (next % kStages) * kStageBytes;
    // Lane l addresses row l % 8 of matrix l / 8 of each ldmatrix.x4.
    const int lrow = lane & 7, lmat = lane >> 3;
    for (int kp = warp; kp < kc / 32; kp += kWarps) {  // 32 columns: two k-steps of 16
      uint32_t b[4];  // x: matrices (rows 0-7, 16-byte columns 4kp .. 4kp + 3 of the chunk): b0 b1 of step 0, of step 1
      ldmatrix_x4(b, x + lrow * K + swz(lrow, kchunk * vpr + 4 * kp + lmat) * 8);
      if (pairs) {
        for (int step = 0; step < 2; ++step) {
          // Matrices (gate rows, c), (up rows, c), (gate, c + 1), (up, c + 1): a0..a3 as mma wants them.
          const int row = (lmat & 1) * kTileRows + lrow, c16 = 4 * kp + 2 * step + (lmat >> 1);
          uint32_t af[4];
          ldmatrix_x4(af, w + (row * vpr + swz(row, c16)) * 16);
          mma_16816<T>(acc, af, b[2 * step], b[2 * step + 1]);
        }
      } else {
        // Matrices (rows 0-7, columns 4kp .. 4kp + 3): a0 and a2 of both steps; rows 8-15 are zero.
        uint32_t w4[4];
        ldmatrix_x4(w4, w + (lrow * vpr + swz(lrow, 4 * kp + lmat)) * 16);
        const uint32_t a0[4] = {w4[0], 0u, w4[1], 0u}, a1[4] = {w4[2], 0u, w4[3], 0u};
        mma_16816<T>(acc, a0, b[0], b[1]);
        mma_16816<T>(acc, a1, b[2], b[3]);
      }
    }
    if (kchunk != per_tile - 1) continue;
    // The tile is done: each warp's 16 x 8 accumulators (c0 c1: row l / 4, columns 2 (l % 4) + 0, 1;
    // c2 c3: row l / 4 + 8) into red, then summed over the warps in order.
    const int gr = lane >> 2, tc = 2 * (lane & 3);
    float* rw = red + warp * 16 * 8;
    rw[gr * 8 + tc] = acc[0], rw[gr * 8 + tc + 1] = acc[1], rw[(gr + 8) * 8 + tc] = acc[2], rw[(gr + 8) * 8 + tc + 1] = acc[3];
    acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
    __syncthreads();
    const int row0 = (int(blockIdx.x) + jt * int(gridDim.x)) * kTileRows;
    for (int o = threadIdx.x; o < kTileRows * M; o += kThreads) {
      const int r = o / M, m = o - r * M;
      float s = 0.0f, s2 = 0.0f;
      for (int i = 0; i < kWarps; ++i) s += red[(i * 16 + r) * 8 + m];
      if (pairs)
        for (int i = 0; i < kWarps; ++i) s2 += red[(i * 16 + r + 8) * 8 + m];
      emit(row0 + r, m, s, s2);
    }
  }
}

// ---- attention of one unit: (token b, KV head kvh, split s)

// Head dim 128 as fused.cu's qk_norm_rope_store does it: lane l holds elements 2l, 2l+1 and
// their rotary partners 64 + 2l, 64 + 2l + 1. Returns them normed and rotated, rounded as stored.
template <class T>
__device__ void norm_rope_head(const T* x, const T* w, float eps, const float* cos, const float* sin, int p, int max_pos,
                               float (&out)[4]) {
  const int lane = threadIdx.x % 32, i0 = 2 * lane, i1 = 64 + 2 * lane;
  const bool ok = p >= 0 && p < max_pos;
  // Every load first (the head, the norm's weights, the rotation), all in flight at once.
  float v[4] = {to_f(ldcg(x + i0)), to_f(ldcg(x + i0 + 1)), to_f(ldcg(x + i1)), to_f(ldcg(x + i1 + 1))};
  const float wv[4] = {to_f(ldg(w + i0)), to_f(ldg(w + i0 + 1)), to_f(ldg(w + i1)), to_f(ldg(w + i1 + 1))};
  const int r = ok ? p * 64 + i0 : 0;
  const float c[2] = {ldg(cos + r), ldg(cos + r + 1)}, sn[2] = {ldg(sin + r), ldg(sin + r + 1)};
  const float ss = warp_sum(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]);
  const float inv = 1.0f / sqrtf(ss / float(D) + eps);
  for (int e = 0; e < 4; ++e) v[e] = round_t<T>(v[e] * inv * wv[e]);
  if (!ok) {  // poisoned, as qk_norm_rope_store does
    for (int e = 0; e < 4; ++e) out[e] = __builtin_nanf("");
    return;
  }
  for (int e = 0; e < 2; ++e) {
    out[e] = round_t<T>(v[e] * c[e] - v[2 + e] * sn[e]);
    out[2 + e] = round_t<T>(v[2 + e] * c[e] + v[e] * sn[e]);
  }
}

template <class T>
__device__ void attention_unit(const PersistentDecodeArgs& a, const Geometry& g, int layer, int unit, unsigned char* smem_attn,
                               float* qs, int32_t* tile_slots, float* merge_w, uint32_t* flag) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int S = g.splits, G = g.group;
  const int s = unit % S, bk = unit / S, kvh = bk % g.Hkv, b = bk / g.Hkv;
  const int L = ldg(a.context_lens + b), pos = ldg(a.positions + b);
  const int64_t slot = ldg(a.slot_mapping + b);
  const int per = (L + S - 1) / S, start = s * per, end = start + per < L ? start + per : L;
  const bool holds_new = start < end && end == L;
  const T* qkv = static_cast<const T*>(a.qkv) + b * g.QKV;
  T* pool = static_cast<T*>(a.kv_pool);
  const int64_t layer_elems = 2 * a.num_slots * g.Hkv * D;  // the pool's offsets: 64-bit
  T* kc = pool + layer * layer_elems;
  T* vc = kc + a.num_slots * g.Hkv * D;
  const bool store = holds_new && slot >= 0 && slot < a.num_slots;
  const int32_t* table = a.block_tables + b * a.table_width;
  const BlockIndex bix = block_index(a.block_size, a.num_slots, true);
  // The first tile's slots (one table read per key, in parallel) while the warps below read the heads.
  auto read_slots = [&](int t0, int n) {
    if (int(threadIdx.x) < n) tile_slots[threadIdx.x] = slot_in(table, uint32_t(t0 + threadIdx.x), bix);
  };
  if (start < end) read_slots(start, end - start < kTileKeys ? end - start : kTileKeys);
  // Jobs: the group's query heads, then (the unit holding the new key) its K and its V.
  const int jobs = G + (store ? 2 : 0);
  for (int job = warp; job < jobs; job += kWarps) {
    if (job < G) {
      const int qh = kvh * G + job;
      float o[4];
      norm_rope_head<T>(qkv + qh * D, static_cast<const T*>(a.q_norm) + layer * D, a.eps, a.cos, a.sin, pos, a.max_pos, o);
      const int i0 = 2 * lane, i1 = 64 + 2 * lane;
      qs[job * D + i0] = o[0], qs[job * D + i0 + 1] = o[1], qs[job * D + i1] = o[2], qs[job * D + i1 + 1] = o[3];
    } else if (job == G) {
      float o[4];
      norm_rope_head<T>(qkv + (g.Hq + kvh) * D, static_cast<const T*>(a.k_norm) + layer * D, a.eps, a.cos, a.sin, pos, a.max_pos, o);
      T* dst = kc + (slot * g.Hkv + kvh) * D;
      const int i0 = 2 * lane, i1 = 64 + 2 * lane;
      stg(dst + i0, from_f<T>(o[0])), stg(dst + i0 + 1, from_f<T>(o[1])), stg(dst + i1, from_f<T>(o[2])), stg(dst + i1 + 1, from_f<T>(o[3]));
    } else {
      const T* src = qkv + (g.Hq + g.Hkv + kvh) * D;
      T* dst = vc + (slot * g.Hkv + kvh) * D;
      for (int d = lane; d < D; d += 32) stg(dst + d, ldcg(src + d));
    }
  }
  __syncthreads();  // q in shared memory; the new K/V stored (read back below through L2)

  float* partial = a.partials + ((b * g.Hq + kvh * G) * S + s) * (D + 1);  // head h of the group: + h S (D + 1)
  if (start >= end) {  // no keys: the merge skips this split
    if (int(threadIdx.x) < G) partial[threadIdx.x * S * (D + 1) + D] = kNegInf;
  } else {
    const float scale_log2 = a.scale * kLog2e;
    constexpr int kMaxGroup = aios::persistent::kMaxGroup;
    float m_run[kMaxGroup], l_run[kMaxGroup], acc[kMaxGroup][4];  // registers: every loop over them unrolled, guarded by G
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) {
      m_run[h] = kNegInf, l_run[h] = 0.0f;
      for (int e = 0; e < 4; ++e) acc[h][e] = 0.0f;
    }
    T* ktile = reinterpret_cast<T*>(smem_attn);
    T* vtile = ktile + kTileKeys * D;
    for (int t0 = start; t0 < end; t0 += kTileKeys) {
      const int n = end - t0 < kTileKeys ? end - t0 : kTileKeys;
      // The tile's slots first, one table read per key in parallel (read inside the copy loop, each
      // thread's copies would wait for their table reads one after another); the first tile's were
      // read with the heads.
      if (t0 != start) {
        read_slots(t0, n);
        __syncthreads();
      }
      for (int v = threadIdx.x; v < 2 * n * (D / 8); v += kThreads) {
        const int which = v / (n * (D / 8)), r = v - which * n * (D / 8), key = r / (D / 8), c = r % (D / 8);
        const T* src = (which ? vc : kc) + (int64_t(tile_slots[key]) * g.Hkv + kvh) * D + c * 8;
        cp_async16((which ? vtile : ktile) + key * D + c * 8, src, true);
      }
      cp_async_commit();
      cp_async_wait<0>();  // also the weight chunks queued before: issued long ago, landed
      __syncthreads();
      for (int key = warp; key < n; key += kWarps) {
        float kf[4], vf[4];
        for (int e = 0; e < 4; ++e) kf[e] = to_f(ktile[key * D + 4 * lane + e]), vf[e] = to_f(vtile[key * D + 4 * lane + e]);
#pragma unroll
        for (int h = 0; h < kMaxGroup; ++h) {
          if (h >= G) break;
          float dot = 0.0f;
          for (int e = 0; e < 4; ++e) dot += qs[h * D + 4 * lane + e] * kf[e];
          const float sc = warp_sum(dot) * scale_log2;
          const float m_new = fmaxf(m_run[h], sc);
          const float alpha = exp2_fast(m_run[h] - m_new), p = exp2_fast(sc - m_new);
          m_run[h] = m_new;
          l_run[h] = l_run[h] * alpha + p;
          for (int e = 0; e < 4; ++e) acc[h][e] = acc[h][e] * alpha + p * vf[e];
        }
      }
      __syncthreads();  // the tile is read before the next overwrites it
    }
    // Merge the warps' states: wm[w][h], wl[w][h], wacc[w][h][D], over the tiles' space.
    float* wm = reinterpret_cast<float*>(smem_attn);
    float* wl = wm + kWarps * G;
    float* wacc = wl + kWarps * G;
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) {
      if (h >= G) break;
      if (lane == 0) wm[warp * G + h] = m_run[h], wl[warp * G + h] = l_run[h];
      for (int e = 0; e < 4; ++e) wacc[(warp * G + h) * D + 4 * lane + e] = acc[h][e];
    }
    __syncthreads();
    for (int o = threadIdx.x; o < G * D; o += kThreads) {
      const int h = o / D, d = o % D;
      float mx = kNegInf;
      for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, wm[w * G + h]);
      float l = 0.0f, sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) {
        const float f = wm[w * G + h] == kNegInf ? 0.0f : exp2_fast(wm[w * G + h] - mx);
        l += wl[w * G + h] * f;
        sum += wacc[(w * G + h) * D + d] * f;
      }
      if (S == 1) {
        stg(static_cast<T*>(a.attn) + b * g.QD + (kvh * G + h) * D + d, from_f<T>(sum / l));
      } else {
        stg(partial + h * S * (D + 1) + d, sum / l);
        if (d == 0) stg(partial + h * S * (D + 1) + D, mx + log2f(l));
      }
    }
  }
  if (S == 1) return;
  // The last of the (token, KV head)'s splits to arrive merges them.
  __syncthreads();
  uint32_t* counter = a.sync + 1 + b * g.Hkv + kvh;
  if (threadIdx.x == 0) {
    // Releases this unit's partials (written before the barrier above); the last to arrive acquires
    // every other unit's.
    *flag = atomic_add_acq_rel(counter, 1u) == uint32_t(S - 1);
    if (*flag) *counter = 0;  // ready for the next layer (which starts after a grid barrier)
  }
  __syncthreads();
  if (!*flag) return;
  // Each split's weight exp2(lse - max) / sum once per head, into shared memory (all lse loads in
  // flight at once), then each output element's S loads, sixteen in flight at a time.
  const float* part = a.partials + (b * g.Hq + kvh * G) * S * (D + 1);
  if (int(threadIdx.x) < G * S) merge_w[threadIdx.x] = ldcg(part + threadIdx.x * (D + 1) + D);  // head h split i at h S + i
  __syncthreads();
  if (int(threadIdx.x) < G) {
    float* wh = merge_w + threadIdx.x * S;
    float mx = kNegInf, l = 0.0f;
    for (int i = 0; i < S; ++i) mx = fmaxf(mx, wh[i]);
    for (int i = 0; i < S; ++i) l += wh[i] == kNegInf ? 0.0f : exp2_fast(wh[i] - mx);
    for (int i = 0; i < S; ++i) wh[i] = wh[i] == kNegInf ? 0.0f : exp2_fast(wh[i] - mx) / l;
  }
  __syncthreads();
  for (int o = threadIdx.x; o < G * D; o += kThreads) {
    const int h = o / D, d = o % D;
    const float* ph = part + h * S * (D + 1) + d;
    const float* wh = merge_w + h * S;
    float sum = 0.0f;
    for (int i0 = 0; i0 < S; i0 += 16) {
      float v[16];
#pragma unroll
      for (int j = 0; j < 16; ++j) v[j] = i0 + j < S && wh[i0 + j] != 0.0f ? ldcg(ph + (i0 + j) * (D + 1)) : 0.0f;
#pragma unroll
      for (int j = 0; j < 16; ++j)
        if (i0 + j < S) sum += wh[i0 + j] * v[j];
    }
    stg(static_cast<T*>(a.attn) + b * g.QD + (kvh * G + h) * D + d, from_f<T>(sum));
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    persistent_decode_kernel(PersistentDecodeArgs a, int kc_qkv, int kc_o, int kc_gate_up, int kc_down, int splits,
                             int64_t x_off, int64_t q_off, int64_t res_off, int64_t red_off, int64_t misc_off, int knock) {
  unsigned char* smem = smem_base();
  unsigned char* ring = smem;
  T* x = reinterpret_cast<T*>(smem + x_off);
  float* qs = reinterpret_cast<float*>(smem + q_off);
  float* red = reinterpret_cast<float*>(smem + red_off);
  T* res_s = reinterpret_cast<T*>(smem + res_off);
  int32_t* tile_slots = reinterpret_cast<int32_t*>(smem + misc_off);
  float* merge_w = reinterpret_cast<float*>(tile_slots + kTileKeys);
  uint32_t* flag = reinterpret_cast<uint32_t*>(merge_w + aios::persistent::kMaxGroup * aios::persistent::kMaxSplits);
  const Geometry g = geometry(a, kc_qkv, kc_o, kc_gate_up, kc_down, splits);
  const int M = int(a.shape.tokens), total = g.mine_layer * int(a.shape.layers);
  uint32_t target = 0;
  int next = 0;
  // The ring starts filling before anything else: the weights need nothing from the step.
  for (int i = 0; i < kStages - 1; ++i) issue_chunk<T>(a, g, i, total, ring, knock);
  T* residual = static_cast<T*>(a.residual);
  T* qkv = static_cast<T*>(a.qkv);
  T* act = static_cast<T*>(a.act);
  for (int l = 0; l < a.shape.layers; ++l) {
    norm_rows<T>(residual, static_cast<const T*>(a.input_norm) + l * g.H, M, g.H, a.eps, x, false, red, res_s);
    run_stage<T>(a, g, kQkv, next, total, ring, x, M, red, knock, [&](int n, int m, float v, float) {
      stg(qkv + m * g.QKV + n, from_f<T>(v));
    });
    grid_barrier(a.sync, target, knock);
    for (int u = blockIdx.x; u < (knock & kKnockAttention ? 0 : M * g.Hkv * g.splits); u += gridDim.x) {
      attention_unit<T>(a, g, l, u, smem + x_off, qs, tile_slots, merge_w, flag);  // its tiles in x's space (plan())
      __syncthreads();  // the unit's shared memory is free for the next
    }
    grid_barrier(a.sync, target, knock);
    load_rows<T>(static_cast<const T*>(a.attn), M, g.QD, x);
    // The residual rows as the qkv stage's norm read them (nothing wrote them since).
    run_stage<T>(a, g, kO, next, total, ring, x, M, red, knock, [&](int n, int m, float v, float) {
      stg(residual + m * g.H + n, from_f<T>(to_f(res_s[m * g.H + n]) + round_t<T>(v)));
    });
    grid_barrier(a.sync, target, knock);
    norm_rows<T>(residual, static_cast<const T*>(a.post_norm) + l * g.H, M, g.H, a.eps, x, false, red, res_s);
    run_stage<T>(a, g, kGateUp, next, total, ring, x, M, red, knock, [&](int n, int m, float gate, float up) {
      const float gv = round_t<T>(gate);
      const float s = round_t<T>(gv / (1.0f + expf(-gv)));
      stg(act + m * g.I + n, from_f<T>(s * round_t<T>(up)));
    });
    grid_barrier(a.sync, target, knock);
    load_rows<T>(act, M, g.I, x);
    run_stage<T>(a, g, kDown, next, total, ring, x, M, red, knock, [&](int n, int m, float v, float) {
      stg(residual + m * g.H + n, from_f<T>(to_f(res_s[m * g.H + n]) + round_t<T>(v)));
    });
    grid_barrier(a.sync, target, knock);
  }
  cp_async_wait<0>();  // the empty groups past the stream's end
  // The final norm: block m normalizes row m.
  for (int m = blockIdx.x; m < M; m += gridDim.x) {
    norm_rows<T>(residual + m * g.H, static_cast<const T*>(a.final_norm), 1, g.H, a.eps, static_cast<T*>(a.normed_out) + m * g.H, true, red,
                 res_s);
  }
}

}  // namespace
}  // namespace persistent_kernel

#ifdef AIOS_EMU
/** The emulator's launch: every block at once (launch_grid), since they meet at grid barriers. */
inline void persistent_decode_emu(const PersistentDecodeArgs& a, const aios::persistent::Plan& p) {
  using namespace persistent_kernel;
  if (!p.why.empty()) throw std::runtime_error("persistent_decode: " + p.why);
  std::memset(a.sync, 0, size_t(p.sync_words) * 4);
  emurt::launch_grid(dim3(unsigned(p.grid)), dim3(unsigned(kThreads)), size_t(p.smem), "persistent_decode", [&] {
    persistent_decode_kernel<bf16>(a, p.kc_qkv, p.kc_o, p.kc_gate_up, p.kc_down, p.splits, p.x_offset, p.q_offset, p.res_offset,
                                   p.red_offset, p.misc_offset, 0);
  });
}
#else
aios::persistent::Plan persistent_decode_plan(const aios::persistent::Shape& s) {
  using namespace flash;
  using namespace persistent_kernel;
  // Asked before every launch (the binding re-plans from the shape): the device's numbers and the
  // occupancy answers are cached, the rest is arithmetic.
  struct Known {
    int dev;
    int64_t smem;
    bool fits;
  };
  static int sms[64], optin[64];
  static Known known[32];
  static int n_known = 0;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev < 0 || dev >= 64) throw Error("persistent_decode_plan: device index out of range");
  if (!sms[dev]) {
    const DeviceInfo info = device_info(dev);
    optin[dev] = int(info.shared_per_block_optin);
    sms[dev] = info.sm_count;
    // The whole opt-in limit at once (not raise_smem_limit, which keeps the first size it is given):
    // the shared memory a launch needs grows with its rows.
    check(cudaFuncSetAttribute(persistent_decode_kernel<bf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin[dev]), "persistent_decode");
    check(cudaFuncSetAttribute(persistent_decode_kernel<f16>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin[dev]), "persistent_decode");
  }
  aios::persistent::Plan p = aios::persistent::plan(s, sms[dev], optin[dev]);
  if (!p.why.empty()) return p;
  for (int i = 0; i < n_known; ++i)
    if (known[i].dev == dev && known[i].smem == p.smem) {
      if (!known[i].fits) p.why = "a block of " + std::to_string(p.smem) + " bytes of shared memory does not fit an SM";
      return p;
    }
  // One block per SM, all resident: the barriers would wait forever for a block that never starts.
  int per_sm = 0;
  auto* kernel = persistent_decode_kernel<bf16>;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, size_t(p.smem)), "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  if (n_known < 32) known[n_known++] = {dev, p.smem, per_sm >= 1};
  if (per_sm < 1) p.why = "a block of " + std::to_string(p.smem) + " bytes of shared memory does not fit an SM";
  return p;
}

void persistent_decode(flash::Stream st, const PersistentDecodeArgs& a, const aios::persistent::Plan& p) {
  using namespace flash;
  using namespace persistent_kernel;
  if (!p.why.empty()) throw Error("persistent_decode: " + p.why);
  static const int knock = int(timing_switch("AIOS_PERSISTENT_KNOCKOUT", 0, 15));
  check(cudaMemsetAsync(a.sync, 0, size_t(p.sync_words) * 4, st), "persistent_decode: cudaMemsetAsync");
  dispatch_half(a.dt, [&](auto tag) {
    using T = decltype(tag);
    auto* kernel = persistent_decode_kernel<T>;  // its shared-memory limit raised by persistent_decode_plan
    // A plain launch, and the kernel never signals its dependents early (no pdl_begin): the next
    // kernel's blocks then start only once this one has completed, so none of them can hold an SM
    // that one of these blocks still waits for (the barriers need every block resident at once).
    kernel<<<dim3(unsigned(p.grid)), dim3(unsigned(kThreads)), size_t(p.smem), st>>>(
        a, p.kc_qkv, p.kc_o, p.kc_gate_up, p.kc_down, p.splits, p.x_offset, p.q_offset, p.res_offset, p.red_offset,
        p.misc_offset, knock);
    check(cudaGetLastError(), "persistent_decode");
  });
}
#endif

}  // namespace aios::AIOS_FLASH_NS
