// Lesson 09, decode: attention of a step's few new queries per sequence over
// long paged contexts. Reading K and V is the whole cost (each key's bytes are
// used for a handful of multiply-adds), so these kernels are about keeping
// enough 16-byte loads in flight on every SM.
//
//   v1  scalar, one block per (sequence, KV head). The KV head's query heads
//       (GQA) are the block's rows, so each K/V load serves all of them. Keys
//       go in chunks of 64: scores into shared memory, an online-softmax update
//       per chunk, then the chunk's values weighted into registers.
//   v2  v1 split along the context (flash-decoding): `splits` blocks per
//       (sequence, KV head) each take `partition` keys and write a partial
//       output and its log-sum-exp to a workspace; a second kernel combines
//       the splits. Small batches then fill the GPU too.
//   v3  v2 on tensor cores: the block's rows (up to 16) are the A operand of
//       mma.sync; each warp takes 16 keys of every 64-key tile; the tiles come
//       through a 2-4 stage cp.async pipeline, so copies of the next tiles
//       overlap the math on this one; the 4 warps' partial softmax states are
//       merged in shared memory at the end.
//
// The split plan (aios::flash::decode_plan) depends only on host-known bounds,
// never on the device's context lengths; blocks whose split starts past their
// sequence's context exit at once and the combine kernel ignores them.
#include <cstdlib>

#include "flash_common.cuh"

namespace aios::AIOS_FLASH_NS {
namespace flash {
namespace {

constexpr int kDecThreads = 128;
constexpr int kChunk = 64;        // keys per chunk in the scalar kernel
constexpr int kScalarRows = 8;    // rows the scalar kernel holds (decode_max_rows(1 or 2))
constexpr int kMmaRows = 16;      // rows the tensor-core kernel holds (one m16 tile)
constexpr int kTile = int(aios::flash::kDecodeTile);

// Where row r of the block (token r / group, head r % group of this KV head) writes: its
// final output when its sequence ran as one split (ws_lse null: partial_lse), else its
// partial output and log-sum-exp.
struct RowSink {
  void* out;
  float* ws_o;
  float* ws_lse;
  int64_t num_tokens, Hq, D, split, splits;
};

template <class T>
__device__ __forceinline__ void write_row_value(const RowSink& k, int64_t token, int64_t head, int d, float o, float m,
                                                float l) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  if (k.ws_lse == nullptr) {  // the sequence ran as one split: the final output
    stg(static_cast<T*>(k.out) + (token * k.Hq + head) * k.D + d, from_f<T>(o * inv));
  } else {
    const int64_t row = (k.split * k.num_tokens + token) * k.Hq + head;
    stg(k.ws_o + row * k.D + d, o * inv);
    if (d == 0) stg(k.ws_lse + row, l > 0.0f ? m + log2f(l) : kNegInf);
  }
}

// Where a decode block's partial goes: a sequence whose whole context fits one partition (and,
// in lesson 13's cascade, shares no split) ran as one split, so its block writes the final output
// (ws_lse null) and the combine, which finds the same single split, leaves that row alone: no
// float32 round trip for the short contexts of a step whose launch was split for its longest
// (lesson 11's graphs split for the bucket's bound).
__device__ __forceinline__ float* partial_lse(float* ws_lse, int64_t ctx, int64_t partition) {
  return ctx <= partition ? nullptr : ws_lse;
}

// ------------------------------------------------------------------ v1/v2: scalar

template <class T, int D> struct ScalarShape {
  static constexpr int VEC = kVec<T>;                     // elements per 16-byte load
  static constexpr int TPK = D / VEC;                     // threads per key row
  static constexpr int KPP = kDecThreads / TPK;           // keys per pass of the block
  static constexpr int KPT = kChunk / KPP;                // keys per thread per chunk
  static constexpr int KB = KPT < 8 ? KPT : 8;            // loads in flight per thread (registers bound it)
  static_assert(KPT % KB == 0, "a chunk's keys come in whole batches of KB loads");
  static constexpr size_t smem = sizeof(float) * (size_t(kScalarRows) * kChunk + 3 * kScalarRows + size_t(KPP) * kScalarRows * D);
  static_assert(TPK <= 32 && 32 % TPK == 0, "a key row must be read by lanes of one warp");
};

// Thread t reads dims (t % TPK)*VEC .. +VEC of keys t / TPK, t / TPK + KPP, ... of each chunk.
template <class T, int D>
__global__ void __launch_bounds__(kDecThreads) decode_scalar_kernel(PagedAttentionArgs a, float scale_log2, int64_t partition,
                                                                    int64_t splits, float* ws_o, float* ws_lse, BlockIndex bix) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  using Sh = ScalarShape<T, D>;
  constexpr int VEC = Sh::VEC, TPK = Sh::TPK, KPP = Sh::KPP, KPT = Sh::KPT, KB = Sh::KB;
  float* p_s = reinterpret_cast<float*>(smem_base());  // [rows][kChunk] scores, then probabilities
  float* m_s = p_s + kScalarRows * kChunk;             // [rows] running max (log2 units)
  float* l_s = m_s + kScalarRows;                      // [rows] running sum
  float* alpha_s = l_s + kScalarRows;                  // [rows] this chunk's rescale factor
  float* red = alpha_s + kScalarRows;                  // [KPP][rows][D] the key groups' outputs

  const int b = int(blockIdx.z);
  const int64_t split = blockIdx.x, kvh = blockIdx.y, Hq = a.q_heads, Hkv = a.kv_heads, group = Hq / Hkv;
  const int64_t q_start = ldg(a.cu_seqlens_q + b), q_len = ldg(a.cu_seqlens_q + b + 1) - q_start;
  const int64_t ctx = ldg(a.context_lens + b);
  int64_t R = q_len * group;
  if (R > kScalarRows) R = kScalarRows;  // the host checked max_q_len; never index past the arrays
  const int64_t k_begin = split * partition;
  if (R <= 0 || k_begin >= ctx) return;
  const int64_t k_end = ctx < k_begin + partition ? ctx : k_begin + partition;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, kg = tid / TPK, c = tid % TPK;
  const int64_t first_pos = ctx - q_len;
  const int32_t* table = a.block_tables + int64_t(b) * a.max_blocks_per_seq;
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);

  float qv[kScalarRows][VEC];
  float acc[kScalarRows][VEC];
#pragma unroll
  for (int r = 0; r < kScalarRows; ++r) {
    float f[VEC] = {};
    if (r < R)
      unpack16<T>(ldg16(static_cast<const T*>(a.q) + ((q_start + r / group) * Hq + kvh * group + r % group) * D + c * VEC), f);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      qv[r][e] = f[e] * scale_log2;
      acc[r][e] = 0.0f;
    }
  }
  if (tid < kScalarRows) {
    m_s[tid] = kNegInf;
    l_s[tid] = 0.0f;
  }

  for (int64_t n0 = k_begin; n0 < k_end; n0 += kChunk) {
    int32_t slots[KPT];
#pragma unroll
    for (int i = 0; i < KPT; ++i) {
      const int64_t key = n0 + kg + KPP * i;
      slots[i] = key < k_end ? slot_in(table, uint32_t(key), bix) : -1;
    }
    // 1. scores, KB keys at a time: a batch's loads are all issued before the first is used
#pragma unroll
    for (int i0 = 0; i0 < KPT; i0 += KB) {
      uint4 kr[KB];
#pragma unroll
      for (int i = 0; i < KB; ++i)
        kr[i] = slots[i0 + i] >= 0 ? ldg16(kc + (slots[i0 + i] * Hkv + kvh) * D + c * VEC) : uint4{0, 0, 0, 0};
#pragma unroll
      for (int i = 0; i < KB; ++i) {
        float kf[VEC];
        unpack16<T>(kr[i], kf);
        const int64_t key = n0 + kg + KPP * (i0 + i);
#pragma unroll
        for (int r = 0; r < kScalarRows; ++r) {
          if (r >= R) break;  // R is the same for the whole block: the shuffles below stay convergent
          float dot = 0.0f;
#pragma unroll
          for (int e = 0; e < VEC; ++e) dot += qv[r][e] * kf[e];
#pragma unroll
          for (int o = TPK / 2; o > 0; o >>= 1) dot += shfl_xor(dot, o);
          if (c == 0) p_s[r * kChunk + kg + KPP * (i0 + i)] = key < k_end && key <= first_pos + r / group ? dot : kNegInf;
        }
      }
    }
    __syncthreads();

    // 2. online softmax over the chunk: warp w updates rows w and w + 4
    for (int r = warp; r < R; r += kDecThreads / 32) {
      const float v0 = p_s[r * kChunk + lane], v1 = p_s[r * kChunk + lane + 32];
      float m_run = m_s[r], m_use;
      const float alpha = online_max_step(m_run, warp_max(fmaxf(v0, v1)), m_use);
      const float p0 = exp2_fast(v0 - m_use), p1 = exp2_fast(v1 - m_use);
      p_s[r * kChunk + lane] = p0;
      p_s[r * kChunk + lane + 32] = p1;
      const float sum = warp_sum(p0 + p1);
      if (lane == 0) {
        alpha_s[r] = alpha;
        l_s[r] = l_s[r] * alpha + sum;
        m_s[r] = m_run;
      }
    }
    __syncthreads();

    // 3. the chunk's values, weighted by the probabilities, into the rescaled accumulators
#pragma unroll
    for (int r = 0; r < kScalarRows; ++r) {
      if (r >= R) break;
      const float alpha = alpha_s[r];
#pragma unroll
      for (int e = 0; e < VEC; ++e) acc[r][e] *= alpha;
    }
#pragma unroll
    for (int i0 = 0; i0 < KPT; i0 += KB) {
      uint4 vr[KB];
#pragma unroll
      for (int i = 0; i < KB; ++i)
        vr[i] = slots[i0 + i] >= 0 ? ldg16(vc + (slots[i0 + i] * Hkv + kvh) * D + c * VEC) : uint4{0, 0, 0, 0};
#pragma unroll
      for (int i = 0; i < KB; ++i) {
        float vf[VEC];
        unpack16<T>(vr[i], vf);
#pragma unroll
        for (int r = 0; r < kScalarRows; ++r) {
          if (r >= R) break;
          const float p = p_s[r * kChunk + kg + KPP * (i0 + i)];
#pragma unroll
          for (int e = 0; e < VEC; ++e) acc[r][e] += p * vf[e];
        }
      }
    }
    __syncthreads();  // the next chunk rewrites p_s and alpha_s
  }

#pragma unroll
  for (int r = 0; r < kScalarRows; ++r) {
    if (r >= R) break;
#pragma unroll
    for (int e = 0; e < VEC; ++e) red[(kg * kScalarRows + r) * D + c * VEC + e] = acc[r][e];
  }
  __syncthreads();
  const RowSink sink{a.out, ws_o, partial_lse(ws_lse, ctx, partition), a.num_tokens, Hq, D, split, splits};
  for (int idx = tid; idx < R * D; idx += kDecThreads) {
    const int r = idx / D, d = idx % D;
    float o = 0.0f;
#pragma unroll
    for (int g2 = 0; g2 < KPP; ++g2) o += red[(g2 * kScalarRows + r) * D + d];
    write_row_value<T>(sink, q_start + r / group, kvh * group + r % group, d, o, m_s[r], l_s[r]);
  }
}

// ------------------------------------------------------------------ lesson 13: the cascade's group rule
// flash.h's rule (cascade_leader, cascade_in_group, cascade_shared_splits) with loads from the device's
// metadata; every thread of a warp computes the same answer, so callers stay convergent.

__device__ __forceinline__ int32_t first_block(const PagedAttentionArgs& a, int64_t b) {
  return ldg(a.block_tables + b * a.max_blocks_per_seq);
}
__device__ __forceinline__ int64_t queries_of(const PagedAttentionArgs& a, int64_t b) {
  return int64_t(ldg(a.cu_seqlens_q + b + 1)) - ldg(a.cu_seqlens_q + b);
}
__device__ __forceinline__ float warp_min(float v) { return -warp_max(-v); }

// The leader of b's run: the lanes look at 32 earlier sequences at a time for one whose first
// block differs (indices travel as floats through the shuffles: exact below 2^24).
__device__ int64_t cascade_leader_dev(const PagedAttentionArgs& a, int64_t b) {
  const int lane = int(threadIdx.x) % 32;
  const int32_t f = first_block(a, b);
  for (int64_t base = b - 1;; base -= 32) {
    const int64_t y = base - lane;
    const float v = y < 0 ? -1.0f : first_block(a, y) != f ? float(y) : -2.0f;
    const float m = warp_max(v);  // the nearest differing sequence, -1 past the first, -2 none yet
    if (m >= -1.0f) return int64_t(m) + 1;
  }
}
// One past the last sequence of the run that starts at leader L.
__device__ int64_t cascade_run_end_dev(const PagedAttentionArgs& a, int64_t L) {
  const int lane = int(threadIdx.x) % 32;
  const int32_t f = first_block(a, L);
  for (int64_t base = L + 1;; base += 32) {
    const int64_t y = base + lane;
    const float v = y >= a.num_seqs ? float(a.num_seqs) : first_block(a, y) != f ? float(y) : 3.0e7f;
    const float m = warp_min(v);
    if (m < 3.0e7f) return int64_t(m);
  }
}
// c_b of flash.h: how many leading shared splits of sequence b its group computes.
// The first loads are independent (one round trip), and a sequence whose neighbours hold other
// first blocks, every sequence of a step without shared prefixes, stops there.
__device__ int64_t cascade_shared_splits_dev(const PagedAttentionArgs& a, int64_t b) {
  const int64_t q0 = ldg(a.cu_seqlens_q + b), q1 = ldg(a.cu_seqlens_q + b + 1);
  const int32_t f = first_block(a, b);
  const int32_t before = b > 0 ? first_block(a, b - 1) : f ^ 1, after = b + 1 < a.num_seqs ? first_block(a, b + 1) : f ^ 1;
  if (q1 - q0 != 1 || (before != f && after != f)) return 0;  // not decoding, or a run of one
  const int64_t L = before == f ? cascade_leader_dev(a, b) : b;
  if (queries_of(a, L) != 1) return 0;
  const int64_t cl = ldg(a.context_lens + L), cb = ldg(a.context_lens + b);
  const int64_t by_ctx = (cl < cb ? cl : cb) / aios::flash::kCascadePartition;
  if (by_ctx == 0 || L == b) return by_ctx;
  const int lane = int(threadIdx.x) % 32;
  const int64_t blocks = (by_ctx * aios::flash::kCascadePartition + a.block_size - 1) / a.block_size;
  const int32_t* tl = a.block_tables + L * a.max_blocks_per_seq;
  const int32_t* tb = a.block_tables + b * a.max_blocks_per_seq;
  for (int64_t j0 = 0; j0 < blocks; j0 += 32) {
    const int64_t j = j0 + lane;
    const float m = warp_min(j < blocks && ldg(tl + j) != ldg(tb + j) ? float(j) : 3.0e7f);  // the first differing block
    if (m < 3.0e7f) {
      const int64_t by_blocks = int64_t(m) * a.block_size / aios::flash::kCascadePartition;
      return by_blocks < by_ctx ? by_blocks : by_ctx;
    }
  }
  return by_ctx;
}

// ------------------------------------------------------------------ v3: tensor cores

// The ring's depth at head_dim 128 is 2: two stages (74 KB of shared memory) let three blocks share
// an SM where three stages (109 KB) left room for two, and on the H200 lesson 11's throughput
// workload ran at 21,469.5 tok/s with two against 19,349.8 and 19,782.6 with three, before and after
// in the same call (2d70069, docs/measurements/decode-stages-h200-2d70069.log; four stages, one
// block per SM: 13,831.3). More blocks in flight hide each block's start (Q, the block table, the
// first tile) better than a deeper ring hides its loads.
template <int D, int STAGES_ = (D == 64 ? 4 : 2)> struct MmaShape {
  static constexpr int S = D + 8;                         // padded smem row (elements): ldmatrix is conflict-free
  static constexpr int CHUNKS = D / 8;                    // 16-byte chunks per row
  static constexpr int ROW_STEP = kDecThreads / CHUNKS;   // tile rows one pass of the block copies
  static constexpr int LOADS = kTile / ROW_STEP;          // K (and V) copies per thread per tile
  static constexpr int STAGES = STAGES_;  // cp.async ring depth: STAGES - 1 tiles in flight while one is used
  static_assert(STAGES >= 2 && STAGES <= 4, "2..4 stages");
  static constexpr size_t q_bytes = 2 * size_t(kMmaRows) * S;
  static constexpr size_t stage_bytes = 2 * 2 * size_t(kTile) * S;  // K and V
  static constexpr size_t epilogue_bytes = sizeof(float) * (4 * size_t(kMmaRows) * D + 2 * 4 * kMmaRows);
  static constexpr size_t smem = q_bytes + STAGES * stage_bytes;
  static_assert(epilogue_bytes <= STAGES * stage_bytes, "the epilogue reuses the pipeline's buffers");
};

template <class T, int D, int STAGES_ = MmaShape<D>::STAGES>
__global__ void __launch_bounds__(kDecThreads) decode_mma_kernel(PagedAttentionArgs a, float scale_log2, int64_t partition,
                                                                 int64_t splits, float* ws_o, float* ws_lse,
                                                                 int64_t shared_splits, bool table_ahead, BlockIndex bix) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  using Sh = MmaShape<D, STAGES_>;
  constexpr int S = Sh::S, CHUNKS = Sh::CHUNKS, ROW_STEP = Sh::ROW_STEP, LOADS = Sh::LOADS, STAGES = Sh::STAGES;
  T* Qs = reinterpret_cast<T*>(smem_base());  // [16][S]
  T* KVs = Qs + kMmaRows * S;                  // [STAGES][K, V][kTile][S]

  // The blocks of a grid start in blockIdx order: z through seq_order puts the longest contexts first.
  const int b = a.seq_order ? int(ldg(a.seq_order + blockIdx.z)) : int(blockIdx.z);
  const int64_t split = blockIdx.x, kvh = blockIdx.y, Hq = a.q_heads, Hkv = a.kv_heads, group = Hq / Hkv;
  const int64_t q_start = ldg(a.cu_seqlens_q + b), q_len = ldg(a.cu_seqlens_q + b + 1) - q_start;
  const int64_t ctx = ldg(a.context_lens + b);
  int64_t R = q_len * group;
  if (R > kMmaRows) R = kMmaRows;
  int64_t k_begin = split * partition;
  if (R <= 0 || k_begin >= ctx) return;
  const int64_t k_end = ctx < k_begin + partition ? ctx : k_begin + partition;
  int64_t slot = split;  // where the partial goes in the workspace
  int64_t shared_end = 0;
  if (shared_splits > 0) {  // lesson 13's cascade: the group's blocks did this sequence's first c_b splits
    shared_end = cascade_shared_splits_dev(a, b) * aios::flash::kCascadePartition;
    if (shared_end >= k_end) return;
    if (shared_end > k_begin) k_begin = shared_end;  // a multiple of the tile, as the split's start is
    slot = shared_splits + split;
  }
  if (shared_end == 0) ws_lse = partial_lse(ws_lse, ctx, partition);
  const int n_tiles = int((k_end - k_begin + kTile - 1) / kTile);
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int64_t first_pos = ctx - q_len;
  const int32_t* table = a.block_tables + int64_t(b) * a.max_blocks_per_seq;
  const T* q = static_cast<const T*>(a.q);
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);

  for (int i = tid; i < kMmaRows * CHUNKS; i += kDecThreads) {
    const int row = i / CHUNKS, col = (i % CHUNKS) * 8;
    const bool valid = row < R;
    const T* src = valid ? q + ((q_start + row / group) * Hq + kvh * group + row % group) * D + col : q;
    cp_async16(Qs + row * S + col, src, valid);
  }
  const int ld_row = tid / CHUNKS, ld_col = (tid % CHUNKS) * 8;
  // The pool slots of this thread's rows of the next tile to be copied (-1: past the split), looked
  // up one tile ahead (table_ahead, the default): the block table is read while the tile before is
  // in flight, so a tile's copies go out without first waiting for the table (otherwise an L2
  // round trip whenever the tile starts a new 32-byte sector of the table: every other 64-key tile
  // at 16 keys a block; AIOS_DECODE_TABLE_AHEAD=0 looks up at the copy, for timing the two).
  int32_t slots[LOADS];
  auto locate = [&](int tile) {  // in 32 bits: a context's keys fit, and 64-bit compares cost twice
    const uint32_t first = uint32_t(k_begin) + uint32_t(tile) * kTile + uint32_t(ld_row), end = uint32_t(k_end);
#pragma unroll
    for (int i = 0; i < LOADS; ++i) {
      const uint32_t key = first + uint32_t(i * ROW_STEP);
      slots[i] = key < end ? slot_in(table, key, bix) : -1;
    }
  };
  auto load_tile = [&](int tile) {
    T* Kd = KVs + (tile % STAGES) * 2 * kTile * S;
    T* Vd = Kd + kTile * S;
#pragma unroll
    for (int i = 0; i < LOADS; ++i) {
      const int row = ld_row + i * ROW_STEP;
      const bool valid = slots[i] >= 0;
      const int64_t off = valid ? (int64_t(slots[i]) * Hkv + kvh) * D + ld_col : 0;
      cp_async16(Kd + row * S + ld_col, kc + off, valid);
      cp_async16(Vd + row * S + ld_col, vc + off, valid);
    }
  };
  // One commit group per tile, empty past the last, so "tile t has landed" is always
  // "at most STAGES-2 groups pending" at the top of iteration t.
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < n_tiles) {
      locate(st);
      load_tile(st);
    }
    cp_async_commit();
  }
  if (table_ahead && STAGES - 1 < n_tiles) locate(STAGES - 1);

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_run[2] = {kNegInf, kNegInf}, l_run[2] = {0.0f, 0.0f};  // rows g and g+8, over this warp's keys
  int64_t row_pos[2];
  for (int h2 = 0; h2 < 2; ++h2) row_pos[h2] = first_pos + (g + 8 * h2) / group;

  for (int t = 0; t < n_tiles; ++t) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile t landed for every thread; every warp is done with tile t-1's stage
    if (t == 0)
      for (int ks = 0; ks < D / 16; ++ks) ldmatrix_x4(qf[ks], Qs + (lane & 15) * S + ks * 16 + (lane >> 4) * 8);
    if (t + STAGES - 1 < n_tiles) {  // into the stage tile t-1 used
      if (!table_ahead) locate(t + STAGES - 1);
      load_tile(t + STAGES - 1);
    }
    cp_async_commit();
    if (table_ahead && t + STAGES < n_tiles) locate(t + STAGES);  // read while this tile's math runs

    const T* Ks = KVs + (t % STAGES) * 2 * kTile * S + warp * 16 * S;  // this warp's 16 keys
    const T* Vs = Ks + kTile * S;
    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t kf[4];
      ldmatrix_x4(kf, Ks + ((lane & 7) + ((lane >> 4) << 3)) * S + ks * 16 + ((lane >> 3) & 1) * 8);
      mma_16816<T>(s[0], qf[ks], kf[0], kf[1]);
      mma_16816<T>(s[1], qf[ks], kf[2], kf[3]);
    }
    const int64_t n0 = k_begin + int64_t(t) * kTile + warp * 16;
    float alpha[2];
    for (int h2 = 0; h2 < 2; ++h2)
      alpha[h2] = online_softmax_row(s, h2, m_run[h2], l_run[h2], [&](float v, int nt, int e) {
        const int64_t key = n0 + nt * 8 + 2 * t4 + e;
        return key >= k_end || key > row_pos[h2] ? kNegInf : v * scale_log2;
      });
    if (warp_any(alpha[0] != 1.0f || alpha[1] != 1.0f))  // most tiles move no row's maximum
      for (int i = 0; i < D / 8; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
      }
    const uint32_t pf[4] = {pack2<T>(s[0][0], s[0][1]), pack2<T>(s[0][2], s[0][3]), pack2<T>(s[1][0], s[1][1]),
                            pack2<T>(s[1][2], s[1][3])};
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t vf[4];
      ldmatrix_x4_trans(vf, Vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * S + dp * 16 + (lane >> 4) * 8);
      mma_16816<T>(o[2 * dp], pf, vf[0], vf[1]);
      mma_16816<T>(o[2 * dp + 1], pf, vf[2], vf[3]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline's buffers are free: the warps' states meet there

  float* Os = reinterpret_cast<float*>(KVs);  // [4 warps][16 rows][D]
  float* ms = Os + 4 * kMmaRows * D;          // [4][16]
  float* ls = ms + 4 * kMmaRows;              // [4][16]
  for (int h2 = 0; h2 < 2; ++h2) {
    const int row = g + 8 * h2;
    const float l = quad_sum(l_run[h2]);
    if (t4 == 0) {
      ms[warp * kMmaRows + row] = m_run[h2];
      ls[warp * kMmaRows + row] = l;
    }
    for (int i = 0; i < D / 8; ++i) {
      Os[(warp * kMmaRows + row) * D + i * 8 + 2 * t4] = o[i][2 * h2];
      Os[(warp * kMmaRows + row) * D + i * 8 + 2 * t4 + 1] = o[i][2 * h2 + 1];
    }
  }
  __syncthreads();
  const RowSink sink{a.out, ws_o, ws_lse, a.num_tokens, Hq, D, slot, splits};
  for (int idx = tid; idx < R * D; idx += kDecThreads) {
    const int r = idx / D, d = idx % D;
    float m = kNegInf;
    for (int w = 0; w < 4; ++w) m = fmaxf(m, ms[w * kMmaRows + r]);
    const float m_use = m == kNegInf ? 0.0f : m;
    float l = 0.0f, acc = 0.0f;
    for (int w = 0; w < 4; ++w) {
      const float f = exp2_fast(ms[w * kMmaRows + r] - m_use);
      l += f * ls[w * kMmaRows + r];
      acc += f * Os[(w * kMmaRows + r) * D + d];
    }
    write_row_value<T>(sink, q_start + r / group, kvh * group + r % group, d, acc, m, l);
  }
}

// AIOS_DECODE_STAGES=2..4: decode v3's cp.async ring depth, for timing the choice on a card (2 stages
// at head_dim 128: 74 KB of shared memory, three blocks per SM; 3: 109 KB, two; 4: 144 KB, one).
// Unset: 2 at head_dim 128 (MmaShape says why), 4 at 64.
inline int decode_stages_override() {
  static const int stages = int(timing_switch("AIOS_DECODE_STAGES", 2, 4));
  return stages;
}

// AIOS_DECODE_MIN_TILES=1..16: the fewest 64-key tiles the automatic split gives a block, for timing
// the choice on a card (unset: aios::flash::kMinTilesPerSplit).
inline int64_t decode_min_tiles() {
  static const int64_t tiles = timing_switch("AIOS_DECODE_MIN_TILES", 1, 16);
  return tiles > 0 ? tiles : aios::flash::kMinTilesPerSplit;
}

// AIOS_DECODE_SPLITS=1..1024: the splits every automatic decode launch takes instead of the wave
// model's choice (capped at the launch's tiles), for timing the model on a card (unset: the model).
inline int64_t decode_splits_override() {
  static const int64_t splits = timing_switch("AIOS_DECODE_SPLITS", 1, 1024);
  return splits;
}

// AIOS_DECODE_TABLE_AHEAD=0..1: whether decode v3 reads the block table a tile ahead of its copies
// (unset: 1; decode_mma_kernel says why), for timing the two on a card.
inline bool decode_table_ahead() {
  static const bool ahead = timing_switch("AIOS_DECODE_TABLE_AHEAD", 0, 1, 1) == 1;
  return ahead;
}

// f(std::integral_constant<int, STAGES>) with the stage count decode v3 runs with at head_dim D.
template <int D, class F> void with_decode_stages(F&& f) {
  switch (decode_stages_override()) {
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    default: f(std::integral_constant<int, MmaShape<D>::STAGES>{}); break;
  }
}

// ------------------------------------------------------------------ lesson 13: the shared-prefix kernel

// The group kernel's layout: Q of 64 rows (4 warps x 16), K/V tiles of 64 keys in a 2-buffer
// ring, which members of the current chunk share the split, which sequences of the window lead.
template <int D> struct CascadeShape {
  static constexpr int S = MmaShape<D>::S;
  static constexpr int ROWS = int(aios::flash::kCascadeRows);
  static constexpr int WINDOW = int(aios::flash::kCascadeWindow);
  static constexpr size_t smem = 2 * (size_t(ROWS) * S + 2 * 2 * size_t(kTile) * S) + sizeof(int) * (ROWS + WINDOW);
};

// One block per (shared split, KV head, window of 32 sequences); it serves the groups whose
// leaders lie in its window, one after another (a window holds one leader or two in practice;
// one block per sequence would launch mostly blocks that exit, each holding its shared memory
// while it finds out). Per group it reads the split's keys through the leader's block table
// once per chunk of 64 query rows (32 members with Qwen3-0.6B's 2 query heads per KV head: one
// chunk) and writes each sharing member's partial output and log-sum-exp for this split. Each
// warp owns 16 rows over all 64 keys of a tile, so no merge between warps is needed; a shared
// split lies before every query, so no key is masked.
template <class T, int D>
__global__ void __launch_bounds__(kDecThreads) cascade_shared_kernel(PagedAttentionArgs a, float scale_log2, int64_t splits,
                                                                     float* ws_o, float* ws_lse, BlockIndex bix) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  using Sh = MmaShape<D>;
  constexpr int S = Sh::S, CHUNKS = Sh::CHUNKS, ROW_STEP = Sh::ROW_STEP, LOADS = Sh::LOADS;
  constexpr int ROWS = CascadeShape<D>::ROWS, WINDOW = CascadeShape<D>::WINDOW;
  constexpr int64_t partition = aios::flash::kCascadePartition;
  T* Qs = reinterpret_cast<T*>(smem_base());                         // [ROWS][S]
  T* KVs = Qs + ROWS * S;                                             // [2 stages][K, V][kTile][S]
  int* covered_s = reinterpret_cast<int*>(KVs + 2 * 2 * kTile * S);  // [ROWS] members of the chunk sharing the split
  int* leads_s = covered_s + ROWS;                                    // [WINDOW] which sequences of the window lead a group

  const int64_t split = blockIdx.x, kvh = blockIdx.y, w0 = int64_t(blockIdx.z) * WINDOW;
  const int64_t Hq = a.q_heads, Hkv = a.kv_heads, group = Hq / Hkv, k_begin = split * partition;
  const int tid = int(threadIdx.x);
  if (tid < WINDOW) {  // a leader of a run of two or more, decoding, its context past the split
    const int64_t c = w0 + tid, cc = c < a.num_seqs ? c : 0;  // independent loads: one round trip
    const int64_t q0 = ldg(a.cu_seqlens_q + cc), q1 = ldg(a.cu_seqlens_q + cc + 1), ctx = ldg(a.context_lens + cc);
    const int32_t f = first_block(a, cc);
    const int32_t before = cc > 0 ? first_block(a, cc - 1) : f ^ 1, after = cc + 1 < a.num_seqs ? first_block(a, cc + 1) : f ^ 1;
    const bool lead = c < a.num_seqs && q1 - q0 == 1 && ctx >= k_begin + partition && before != f && after == f;
    leads_s[tid] = lead ? 1 : 0;
  }
  __syncthreads();
  for (int li = 0; li < WINDOW; ++li) {
    if (!leads_s[li]) continue;  // the same in every thread
    const int64_t L = w0 + li;
    const int64_t run_end = cascade_run_end_dev(a, L);
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
    const int n_tiles = int(partition / kTile);
    const int32_t* table = a.block_tables + L * a.max_blocks_per_seq;
      const T* q = static_cast<const T*>(a.q);
    const T* kc = static_cast<const T*>(a.k_cache);
    const T* vc = static_cast<const T*>(a.v_cache);
    const int ld_row = tid / CHUNKS, ld_col = (tid % CHUNKS) * 8;
    auto load_tile = [&](int tile) {
      T* Kd = KVs + (tile % 2) * 2 * kTile * S;
      T* Vd = Kd + kTile * S;
#pragma unroll
      for (int i = 0; i < LOADS; ++i) {
        const int row = ld_row + i * ROW_STEP;
        const int64_t key = k_begin + int64_t(tile) * kTile + row;
        const int64_t off = (int64_t(slot_in(table, uint32_t(key), bix)) * Hkv + kvh) * D + ld_col;
        cp_async16(Kd + row * S + ld_col, kc + off, true);
        cp_async16(Vd + row * S + ld_col, vc + off, true);
      }
    };
    const RowSink sink{a.out, ws_o, ws_lse, a.num_tokens, Hq, D, split, splits};
    const int64_t per_chunk = ROWS / group;

    for (int64_t c0 = L; c0 < run_end; c0 += per_chunk) {
      const int64_t members = run_end - c0 < per_chunk ? run_end - c0 : per_chunk, rows = members * group;
      // Which members share the split (c_x > split in flash.h's terms: decoding, the context past
      // the split, the same leading block ids through the split's last key; the leader's own part
      // was checked above): every thread takes (member, block) pairs, so the table reads of the
      // whole chunk are in flight together; a differing block clears its member.
      for (int64_t m = tid; m < members; m += kDecThreads) {
        const int64_t x = c0 + m;
        covered_s[m] = queries_of(a, x) == 1 && ldg(a.context_lens + x) >= k_begin + partition ? 1 : 0;
      }
      __syncthreads();
      const int64_t blocks = (k_begin + partition + a.block_size - 1) / a.block_size;  // through the split's last key
#pragma unroll 4
      for (int64_t i = tid; i < members * blocks; i += kDecThreads) {
        const int64_t m = i / blocks, j = i % blocks;
        if (ldg(table + j) != ldg(a.block_tables + (c0 + m) * a.max_blocks_per_seq + j)) covered_s[m] = 0;
      }
      __syncthreads();
      bool any = false;
      for (int i = 0; i < members; ++i) any = any || covered_s[i] != 0;
      if (any) {  // the same answer in every thread
        for (int i = tid; i < ROWS * CHUNKS; i += kDecThreads) {
          const int row = i / CHUNKS, col = (i % CHUNKS) * 8;
          const bool valid = row < rows && covered_s[row / group] != 0;
          const T* src = valid ? q + (int64_t(ldg(a.cu_seqlens_q + c0 + row / group)) * Hq + kvh * group + row % group) * D + col : q;
          cp_async16(Qs + row * S + col, src, valid);  // rows of no covered member are zeros
        }
        load_tile(0);
        cp_async_commit();

        uint32_t qf[D / 16][4];
        float o[D / 8][4];
#pragma unroll
        for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
        float m_run[2] = {kNegInf, kNegInf}, l_run[2] = {0.0f, 0.0f};  // rows g and g+8 of this warp
        for (int t = 0; t < n_tiles; ++t) {
          cp_async_wait<0>();
          __syncthreads();  // tile t (and Q) landed for every thread; every warp is done with tile t-1's buffer
          if (t == 0)
#pragma unroll
            for (int ks = 0; ks < D / 16; ++ks) ldmatrix_x4(qf[ks], Qs + (warp * 16 + (lane & 15)) * S + ks * 16 + (lane >> 4) * 8);
          if (t + 1 < n_tiles) load_tile(t + 1);  // overlaps this tile's math
          cp_async_commit();

          const T* Ks = KVs + (t % 2) * 2 * kTile * S;
          const T* Vs = Ks + kTile * S;
          float s[kTile / 8][4];
#pragma unroll
          for (int nt = 0; nt < kTile / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
          for (int kk = 0; kk < kTile / 16; ++kk)
#pragma unroll
            for (int ks = 0; ks < D / 16; ++ks) {
              uint32_t kf[4];
              ldmatrix_x4(kf, Ks + (kk * 16 + (lane & 7) + ((lane >> 4) << 3)) * S + ks * 16 + ((lane >> 3) & 1) * 8);
              mma_16816<T>(s[2 * kk], qf[ks], kf[0], kf[1]);
              mma_16816<T>(s[2 * kk + 1], qf[ks], kf[2], kf[3]);
            }
          float alpha[2];
#pragma unroll
          for (int h2 = 0; h2 < 2; ++h2)  // a shared split lies before every query: no key is masked
            alpha[h2] = online_softmax_row(s, h2, m_run[h2], l_run[h2], [&](float v, int, int) { return v * scale_log2; });
#pragma unroll
          for (int i = 0; i < D / 8; ++i) {
            o[i][0] *= alpha[0];
            o[i][1] *= alpha[0];
            o[i][2] *= alpha[1];
            o[i][3] *= alpha[1];
          }
#pragma unroll
          for (int kk = 0; kk < kTile / 16; ++kk) {
            const uint32_t pf[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                                    pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
              uint32_t vf[4];
              ldmatrix_x4_trans(vf, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dp * 16 + (lane >> 4) * 8);
              mma_16816<T>(o[2 * dp], pf, vf[0], vf[1]);
              mma_16816<T>(o[2 * dp + 1], pf, vf[2], vf[3]);
            }
          }
        }
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
          const float l = quad_sum(l_run[h2]);
          const int row = warp * 16 + g + 8 * h2;
          if (row < rows && covered_s[row / group] != 0) {
            const int64_t token = ldg(a.cu_seqlens_q + c0 + row / group), head = kvh * group + row % group;
#pragma unroll
            for (int i = 0; i < D / 8; ++i)
#pragma unroll
              for (int e = 0; e < 2; ++e) write_row_value<T>(sink, token, head, i * 8 + 2 * t4 + e, o[i][2 * h2 + e], m_run[h2], l);
          }
        }
      }
      cp_async_wait<0>();
      __syncthreads();  // the next chunk rewrites Q, the tiles and covered_s
    }
  }
}

// ------------------------------------------------------------------ combine

// One warp per (query token, query head): the splits' outputs weighted by 2^(lse_s - max lse) and
// normalized by the weights' sum. A sequence that ran as one split wrote its output itself
// (partial_lse). Each lane owns D / 32 adjacent elements, and the split loop is unrolled, so a
// warp has several splits' loads in flight rather than one dependent load per split and element.
template <class T, int D>
__global__ void __launch_bounds__(kDecThreads) combine_kernel(PagedAttentionArgs a, int64_t partition, int64_t splits,
                                                              const float* ws_o, const float* ws_lse) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  constexpr int PER = D / 32;
  static_assert(D % 32 == 0, "a lane owns whole elements of the row");
  const int b = int(blockIdx.z), warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t h = int64_t(blockIdx.x) * (kDecThreads / 32) + warp, i = blockIdx.y;
  const int64_t q_start = ldg(a.cu_seqlens_q + b), q_len = ldg(a.cu_seqlens_q + b + 1) - q_start;
  if (h >= a.q_heads || i >= q_len) return;
  const int64_t ctx = ldg(a.context_lens + b), token = q_start + i, Hq = a.q_heads;
  int64_t n = (ctx + partition - 1) / partition;  // the splits that ran for this sequence
  if (n > splits) n = splits;
  if (n == 1) return;  // the decode block wrote the final output
  auto lse = [&](int64_t s) { return ldg(ws_lse + (s * a.num_tokens + token) * Hq + h); };
  float mx = kNegInf;
  for (int64_t s = lane; s < n; s += 32) mx = fmaxf(mx, lse(s));
  mx = warp_max(mx);
  const float m_use = mx == kNegInf ? 0.0f : mx;
  float wsum = 0.0f;
  for (int64_t s = lane; s < n; s += 32) wsum += exp2_fast(lse(s) - m_use);
  wsum = warp_sum(wsum);
  const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;
  const int64_t stride = a.num_tokens * Hq * D;  // from one split's partials to the next's
  const float* part = ws_o + (token * Hq + h) * D + lane * PER;
  float acc[PER];
#pragma unroll
  for (int e = 0; e < PER; ++e) acc[e] = 0.0f;
#pragma unroll 4
  for (int64_t s = 0; s < n; ++s) {
    const float w = exp2_fast(lse(s) - m_use);
#pragma unroll
    for (int e = 0; e < PER; ++e) acc[e] += w * ldg(part + s * stride + e);
  }
  T* out = static_cast<T*>(a.out) + (token * Hq + h) * D + lane * PER;
#pragma unroll
  for (int e = 0; e < PER; ++e) stg(out + e, from_f<T>(acc[e] * inv));
}

// Lesson 13: one warp per (query token, query head), like combine_kernel, over the slots that
// were written: the sequence's c_b shared splits (workspace slots 0..c_b-1) and the own splits
// (slots shared_splits + s) that hold keys past them.
template <class T, int D>
__global__ void __launch_bounds__(kDecThreads) cascade_combine_kernel(PagedAttentionArgs a, int64_t shared_splits, int64_t partition,
                                                                      int64_t own_splits, const float* ws_o, const float* ws_lse) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  const int b = int(blockIdx.z), warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t h = int64_t(blockIdx.x) * (kDecThreads / 32) + warp;
  if (h >= a.q_heads || queries_of(a, b) != 1) return;  // the whole warp: h is the warp's
  const int64_t ctx = ldg(a.context_lens + b), token = ldg(a.cu_seqlens_q + b), Hq = a.q_heads;
  const int64_t shared = cascade_shared_splits_dev(a, b), shared_end = shared * aios::flash::kCascadePartition;
  if (shared == 0 && ctx <= partition) return;  // decode v3 wrote this sequence's output itself (partial_lse)
  const int64_t n = shared_splits + own_splits;
  auto written = [&](int64_t i) {
    if (i < shared_splits) return i < shared;
    const int64_t s = i - shared_splits, begin = s * partition > shared_end ? s * partition : shared_end;
    const int64_t end = (s + 1) * partition < ctx ? (s + 1) * partition : ctx;
    return begin < end;
  };
  auto lse = [&](int64_t i) { return ldg(ws_lse + (i * a.num_tokens + token) * Hq + h); };
  float mx = kNegInf;
  for (int64_t i = lane; i < n; i += 32)
    if (written(i)) mx = fmaxf(mx, lse(i));
  mx = warp_max(mx);
  const float m_use = mx == kNegInf ? 0.0f : mx;
  float wsum = 0.0f;
  for (int64_t i = lane; i < n; i += 32)
    if (written(i)) wsum += exp2_fast(lse(i) - m_use);
  wsum = warp_sum(wsum);
  const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;
  T* out = static_cast<T*>(a.out) + (token * Hq + h) * D;
  for (int d = lane; d < D; d += 32) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n; ++i)
      if (written(i)) acc += exp2_fast(lse(i) - m_use) * ldg(ws_o + ((i * a.num_tokens + token) * Hq + h) * D + d);
    stg(out + d, from_f<T>(acc * inv));
  }
}

}  // namespace
}  // namespace flash

aios::flash::DecodePlan flash_decode_plan(const PagedAttentionArgs& a, int version, int64_t splits) {
  using namespace flash;
  // The automatic split fills waves of the blocks the GPU holds at once, so it asks the occupancy
  // calculator about the kernel this version launches (a version that cannot run: any guess will do).
  int64_t resident = 2 * sm_count();
  if (aios::flash::decode_unsupported(a, version).empty() && splits == 0 && version != 1) {
    dispatch_any(a.dt, [&](auto tag) {
      using T = decltype(tag);
      dispatch_dim(a.head_dim, [&](auto dim) {
        constexpr int D = decltype(dim)::value;
        if (version == 3) {
          if constexpr (!std::is_same_v<T, float> && D <= 128)
            with_decode_stages<D>([&](auto stages) {
              constexpr int ST = decltype(stages)::value;
              resident = resident_blocks(decode_mma_kernel<T, D, ST>, kDecThreads, MmaShape<D, ST>::smem, "flash_decode v3");
            });
        } else if constexpr (kVec<T> * 32 >= D) {
          resident = resident_blocks(decode_scalar_kernel<T, D>, kDecThreads, ScalarShape<T, D>::smem, "flash_decode v2");
        }
      });
    });
  }
  if (splits == 0 && version != 1) splits = decode_splits_override();
  return aios::flash::decode_plan(a, version, splits, resident, decode_min_tiles());
}

void flash_decode(flash::Stream st, const PagedAttentionArgs& a, int version, const aios::flash::DecodePlan& plan,
                  void* workspace, int64_t workspace_bytes) {
  using namespace flash;
  // Checked here, not only in the binding: the dispatch below launches nothing for a version the
  // dtype or head size cannot run, and the combine would then read an unwritten workspace.
  const std::string why = aios::flash::decode_unsupported(a, version);
  if (!why.empty()) throw Error("flash_decode: " + why);
  if (a.num_seqs == 0 || a.num_tokens == 0 || a.max_q_len == 0) return;
  if (plan.splits > 1 && (!workspace || workspace_bytes < plan.workspace_bytes))
    throw Error("flash_decode: " + std::to_string(plan.splits) + " splits need a workspace of " +
                std::to_string(plan.workspace_bytes) + " bytes, got " + std::to_string(workspace ? workspace_bytes : 0));
  float* ws_o = static_cast<float*>(workspace);
  float* ws_lse = plan.splits > 1 ? ws_o + plan.splits * a.num_tokens * a.q_heads * a.head_dim : nullptr;
  const float scale_log2 = a.scale * kLog2e;
  const dim3 grid(unsigned(plan.splits), unsigned(a.kv_heads), unsigned(a.num_seqs));
  if (a.num_seqs > 65535 || a.max_q_len > 65535) throw Error("flash_decode: more than 65535 sequences or queries per sequence in one launch");
  dispatch_any(a.dt, [&](auto tag) {
    using T = decltype(tag);
    dispatch_dim(a.head_dim, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      if (version == 3) {
        if constexpr (!std::is_same_v<T, float> && D <= 128)
          with_decode_stages<D>([&](auto stages) {
            constexpr int ST = decltype(stages)::value;
            launch(decode_mma_kernel<T, D, ST>, grid, dim3(kDecThreads), MmaShape<D, ST>::smem, st, "flash_decode v3", a, scale_log2,
                   plan.partition, plan.splits, ws_o, ws_lse, int64_t(0), decode_table_ahead(), block_index(a));
          });
      } else if constexpr (kVec<T> * 32 >= D) {
        launch(decode_scalar_kernel<T, D>, grid, dim3(kDecThreads), ScalarShape<T, D>::smem, st,
               version == 1 ? "flash_decode v1" : "flash_decode v2", a, scale_log2, plan.partition, plan.splits, ws_o, ws_lse,
               block_index(a));
      }
      if (plan.splits > 1) {
        const dim3 cgrid(unsigned((a.q_heads + 3) / 4), unsigned(a.max_q_len), unsigned(a.num_seqs));
        launch(combine_kernel<T, D>, cgrid, dim3(kDecThreads), 0, st, "flash_decode combine", a, plan.partition, plan.splits,
               static_cast<const float*>(ws_o), static_cast<const float*>(ws_lse));
      }
    });
  });
}

// Lesson 13: the group kernel for the shared splits, decode v3 (lesson 09's split plan) for each
// sequence's own keys, the combine over both. Launch shapes depend only on the host-known bounds.
aios::flash::CascadePlan flash_cascade_plan(const PagedAttentionArgs& a) {
  return aios::flash::cascade_plan(a, flash_decode_plan(a, 3, 0));
}

void flash_cascade_decode(flash::Stream st, const PagedAttentionArgs& a, const aios::flash::CascadePlan& plan, void* workspace,
                          int64_t workspace_bytes) {
  using namespace flash;
  const std::string why = aios::flash::cascade_unsupported(a);
  if (!why.empty()) throw Error("flash_cascade_decode: " + why);
  if (a.num_seqs == 0 || a.num_tokens == 0 || a.max_q_len == 0) return;
  if (plan.shared_splits < 1 || plan.own.splits < 1 || plan.own.partition % kTile != 0)
    throw Error("flash_cascade_decode: the plan is not a cascade plan (flash_cascade_plan)");
  if (!workspace || workspace_bytes < plan.workspace_bytes)
    throw Error("flash_cascade_decode: needs a workspace of " + std::to_string(plan.workspace_bytes) + " bytes, got " +
                std::to_string(workspace ? workspace_bytes : 0));
  if (a.num_seqs > 65535) throw Error("flash_cascade_decode: more than 65535 sequences in one launch");
  const int64_t slots = plan.shared_splits + plan.own.splits;
  float* ws_o = static_cast<float*>(workspace);
  float* ws_lse = ws_o + slots * a.num_tokens * a.q_heads * a.head_dim;
  const float scale_log2 = a.scale * kLog2e;
  const int64_t windows = (a.num_seqs + aios::flash::kCascadeWindow - 1) / aios::flash::kCascadeWindow;
  dispatch_half(a.dt, [&](auto tag) {
    using T = decltype(tag);
    dispatch_dim(a.head_dim, [&](auto dim) {
      constexpr int D = decltype(dim)::value;
      if constexpr (D <= 128) {
        launch(cascade_shared_kernel<T, D>, dim3(unsigned(plan.shared_splits), unsigned(a.kv_heads), unsigned(windows)),
               dim3(kDecThreads), CascadeShape<D>::smem, st, "flash_cascade_decode shared", a, scale_log2, slots, ws_o, ws_lse,
               block_index(a));
        with_decode_stages<D>([&](auto stages) {
          constexpr int ST = decltype(stages)::value;
          launch(decode_mma_kernel<T, D, ST>, dim3(unsigned(plan.own.splits), unsigned(a.kv_heads), unsigned(a.num_seqs)),
                 dim3(kDecThreads), MmaShape<D, ST>::smem, st, "flash_cascade_decode own", a, scale_log2, plan.own.partition, slots,
                 ws_o, ws_lse, plan.shared_splits, decode_table_ahead(), block_index(a));
        });
        launch(cascade_combine_kernel<T, D>, dim3(unsigned((a.q_heads + 3) / 4), 1u, unsigned(a.num_seqs)), dim3(kDecThreads), 0, st,
               "flash_cascade_decode combine", a, plan.shared_splits, plan.own.partition, plan.own.splits,
               static_cast<const float*>(ws_o), static_cast<const float*>(ws_lse));
      }
    });
  });
}

}  // namespace aios::AIOS_FLASH_NS
