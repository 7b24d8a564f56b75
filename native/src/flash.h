// Lesson 09's FlashAttention kernels over the paged KV pool: which versions
// exist, what each one supports, and how the split-KV decode divides a step's
// contexts over thread blocks. Plain host code, shared by the CUDA launchers
// (cuda/flash_*.cu), the bindings (addon.cc) and the CPU emulator test
// (native/emu), so all three agree on shapes and workspace sizes.
//
// Versions, one step of the lesson each (llm.c's dev/cuda habit: the old ones stay):
//   prefill 1  scalar FlashAttention: Q, K, V tiles in shared memory, online softmax in registers
//   prefill 2  tensor cores: mma.sync m16n8k16 with ldmatrix, P kept in registers, cp.async
//              double buffering, the query heads of one KV head packed into the tile's rows
//   prefill 3  v2 with 32 rows per warp: each K/V fragment read from shared memory feeds two
//              mma's (half v2's shared-memory traffic per FLOP); Q re-read from shared memory
//   prefill 4  v3 with K/V in a 3-buffer ring: copies two tiles ahead, one barrier per tile
//   prefill 5  v4 with 64-key tiles in a 2-buffer ring, Q/K/V fragments loaded one mma step
//              ahead (fully unrolled loops), the softmax in raw score units (one FFMA + ex2 per
//              score), masking only on tiles that cross a warp's diagonal, block-table lookups
//              a tile ahead
//   decode 1   scalar, one block per (sequence, KV head): the KV head's query heads share each
//              16-byte K/V load; the whole context in one block
//   decode 2   decode 1 split over blocks along the context (flash-decoding) + a combine kernel
//   decode 3   decode 2 on tensor cores with a multi-stage cp.async pipeline
// Prefill versions run any step (decode too); decode versions need max_q_len * group within
// their row limit (a decode step has max_q_len 1).
// max_q_len and max_context_len are launch bounds the host promises: a sequence whose
// queries or context exceed them on the device is not caught (the CPU reference throws),
// its extra rows or keys are left out. Lesson 11's buckets keep within them by construction.
#pragma once
#include <cstdint>
#include <string>

#include "aios.h"

namespace aios::flash {

constexpr int kPrefillVersions = 5;
constexpr int kDecodeVersions = 3;
constexpr int64_t kDecodeTile = 64;          // keys per decode tile; a split covers whole tiles
// The automatic split never gives a block fewer keys than 2 tiles. It was 4: a decode block's
// tiles come one after another (then each a block-table read, then the copy; the table is read a
// tile ahead since 43b3779), so at batch 1 two blocks
// of 2 tiles finish sooner than one of 4. On the H200, lesson 11's batch 1 ran 1.24 ms a step with
// 2 against 1.34 with 4 (same call, 9fdb89f, docs/measurements/decode-knobs-h200-9fdb89f.log); the
// course and throughput workloads did not move (1.97 and 1.94 ms a step; 5.65 and 5.66 ms).
constexpr int64_t kMinTilesPerSplit = 2;

inline bool is_half(DType dt) { return dt == DType::BF16 || dt == DType::F16; }

// The attention kernels find a key's slot in 32 bits (BlockIndex, cuda/flash_common.cuh): a pool of
// 2^31 slots or more is refused (at 256 bytes of K/V a slot a layer, the least any head size here
// holds, such a pool would be 512 GiB a layer).
constexpr int64_t kMaxPoolSlots = int64_t(INT32_MAX);
inline std::string pool_too_large(const PagedAttentionArgs& a) {
  return "the attention kernels hold slot numbers in 32 bits: a pool of at most 2^31 - 1 slots, got " + std::to_string(a.num_slots);
}

/** "" when prefill `version` can run `a`, else the reason it cannot. */
inline std::string prefill_unsupported(const PagedAttentionArgs& a, int version) {
  const int64_t D = a.head_dim;
  if (version < 1 || version > kPrefillVersions)
    return "prefill version " + std::to_string(version) + " does not exist (1.." + std::to_string(kPrefillVersions) + ")";
  if (version == 1 && D != 64 && D != 128 && D != 256) return "prefill v1 needs head_dim 64, 128 or 256, got " + std::to_string(D);
  if (version >= 2) {
    const std::string v = "prefill v" + std::to_string(version);
    if (!is_half(a.dt)) return v + " (tensor cores) needs bf16 or f16, got " + dtype_name(a.dt);
    if (D != 64 && D != 128) return v + " needs head_dim 64 or 128, got " + std::to_string(D);
  }
  if (a.num_slots > kMaxPoolSlots) return pool_too_large(a);
  return "";
}

/** Query rows one decode block holds: max_q_len tokens times the query heads of a KV head. */
inline int64_t decode_rows(const PagedAttentionArgs& a) { return a.max_q_len * (a.q_heads / a.kv_heads); }
inline int64_t decode_max_rows(int version) { return version == 3 ? 16 : 8; }

/** "" when decode `version` can run `a`, else the reason it cannot. */
inline std::string decode_unsupported(const PagedAttentionArgs& a, int version) {
  const int64_t D = a.head_dim;
  if (version < 1 || version > kDecodeVersions)
    return "decode version " + std::to_string(version) + " does not exist (1.." + std::to_string(kDecodeVersions) + ")";
  if (D != 64 && D != 128 && (version == 3 || D != 256))
    return "decode v" + std::to_string(version) + " needs head_dim 64, 128" + (version == 3 ? "" : " or 256") + ", got " +
           std::to_string(D);
  if (version == 3 && !is_half(a.dt)) return std::string("decode v3 (tensor cores) needs bf16 or f16, got ") + dtype_name(a.dt);
  if (a.num_slots > kMaxPoolSlots) return pool_too_large(a);
  if (version != 3 && a.dt == DType::F32 && D > 128) return "decode v" + std::to_string(version) + " with f32 needs head_dim 64 or 128";
  if (decode_rows(a) > decode_max_rows(version))
    return "decode v" + std::to_string(version) + " holds " + std::to_string(decode_max_rows(version)) +
           " query rows per KV head, but max_q_len " + std::to_string(a.max_q_len) + " x " +
           std::to_string(a.q_heads / a.kv_heads) + " query heads per KV head is " + std::to_string(decode_rows(a));
  return "";
}

// How a decode launch divides the contexts: `splits` blocks per (sequence, KV head), each
// covering `partition` keys (a multiple of kDecodeTile). Derived only from host-known numbers
// (num_seqs, kv_heads, max_context_len, and how many blocks of the kernel the GPU runs at
// once), never from the device's context lengths, so a launch's shape is fixed for a given
// bound (lesson 11 captures it in a graph). With more than one split the partial results go
// to a caller-owned float32 workspace of `workspace_bytes`: [splits, num_tokens, q_heads,
// head_dim] outputs then [splits, num_tokens, q_heads] log-sum-exps (base 2), combined by a
// second kernel.
struct DecodePlan {
  int64_t splits = 1;
  int64_t partition = 0;
  int64_t workspace_bytes = 0;
};

/**
 * requested_splits 0 = automatic; version 1 always uses one split. `resident` is how many
 * blocks of the kernel the whole GPU holds at once (SMs x blocks per SM). The automatic choice
 * models a launch as waves of `resident` blocks, each as long as its share of tiles plus one
 * (the pipeline filling up), a split launch costing 5% more (the partials and the combine
 * kernel): so a batch that already fills the GPU is not split (batch 64 x 8 KV heads = 512
 * blocks is two full waves of 2 x 132), a small one is split just enough to fill a wave, and
 * no block gets fewer than `min_tiles` tiles (kMinTilesPerSplit unless the caller times another).
 */
inline DecodePlan decode_plan(const PagedAttentionArgs& a, int version, int64_t requested_splits, int64_t resident,
                              int64_t min_tiles = kMinTilesPerSplit) {
  DecodePlan p;
  const int64_t tiles = a.max_context_len > 0 ? (a.max_context_len + kDecodeTile - 1) / kDecodeTile : 1;
  int64_t splits = 1;
  if (version != 1) {
    if (requested_splits > 0) {
      splits = requested_splits;
    } else {
      const int64_t base = a.num_seqs * a.kv_heads > 0 ? a.num_seqs * a.kv_heads : 1;
      const int64_t slots = resident > 0 ? resident : 1;
      auto waves = [&](int64_t s) { return double((base * s + slots - 1) / slots); };
      double best = waves(1) * double(tiles + 1);
      for (int64_t t = tiles - 1; t >= min_tiles; --t) {  // tiles per block, fewest splits first
        const int64_t s = (tiles + t - 1) / t;
        if ((tiles + s - 1) / s != t) continue;  // t is not what s splits give: another t stands for this s
        const double cost = waves(s) * double(t + 1) * 1.05;
        if (cost < best) {
          best = cost;
          splits = s;
        }
      }
    }
    if (splits > tiles) splits = tiles;
    if (splits < 1) splits = 1;
  }
  p.partition = (tiles + splits - 1) / splits * kDecodeTile;
  p.splits = a.max_context_len > 0 ? (a.max_context_len + p.partition - 1) / p.partition : 1;
  p.workspace_bytes = p.splits > 1 ? p.splits * a.num_tokens * a.q_heads * (a.head_dim + 1) * int64_t(sizeof(float)) : 0;
  return p;
}

// ---- Lesson 13: cascade (shared-prefix) decode
// Under prefix caching many decoding sequences hold the same first blocks (one system prompt,
// one document): the plain decode reads those blocks' K/V once per sequence. The cascade decode
// cuts contexts into kCascadePartition-key "shared splits"; the shared splits a group of
// sequences holds in the same blocks are computed by one thread block per (group, split, KV
// head), which reads their K/V once for all the group's queries. Each sequence's remaining keys
// (its own suffix) go to decode v3 with lesson 09's split plan, and one combine merges the
// partial (output, log-sum-exp) pairs.
//
// The groups come from the block tables alone, on the device (so a captured step needs no
// host metadata): a group is a maximal run of two or more adjacent sequences with the same
// first block id (lesson 13's scheduler keeps such sequences adjacent), its leader the run's
// first sequence. Member x of the group led by L shares its first c_x splits, where c_x is the
// largest c with: L and x both decoding (one query each), both contexts at least c * partition
// long, and x's block ids over keys [0, c * partition) equal to L's (equal ids are the same
// physical K/V; every shared key lies before the query, so the shared part needs no masking).
// Anything else shares nothing (c_x = 0): then the cascade is the plain decode.
constexpr int64_t kCascadePartition = 256;  // keys per shared split (4 decode tiles)
constexpr int64_t kCascadeRows = 64;        // query rows the shared-split block holds (4 warps x 16)
constexpr int64_t kCascadeWindow = 32;      // sequences whose leaders one shared-split block looks after

/** "" when the CUDA cascade decode can run `a`, else the reason (the CPU reference runs any decode step). */
inline std::string cascade_unsupported(const PagedAttentionArgs& a) {
  if (a.max_q_len > 1) return "cascade decode runs decode steps (max_q_len 1), got max_q_len " + std::to_string(a.max_q_len);
  const std::string why = decode_unsupported(a, 3);  // the suffixes run on decode v3
  return why.empty() ? "" : "cascade decode: " + why;
}

// The launch shapes, from host-known bounds only: `shared_splits` shared splits of
// kCascadePartition keys over max_context_len, then `own` (lesson 09's decode plan for v3, which
// covers each sequence's keys past its shared splits). The workspace holds the partials of both:
// [shared_splits + own.splits, num_tokens, q_heads, head_dim] outputs, then the log-sum-exps.
struct CascadePlan {
  int64_t shared_splits = 0;
  DecodePlan own;
  int64_t workspace_bytes = 0;
};
inline CascadePlan cascade_plan(const PagedAttentionArgs& a, const DecodePlan& own) {
  CascadePlan p;
  p.shared_splits = a.max_context_len > 0 ? (a.max_context_len + kCascadePartition - 1) / kCascadePartition : 1;
  p.own = own;
  p.workspace_bytes = (p.shared_splits + own.splits) * a.num_tokens * a.q_heads * (a.head_dim + 1) * int64_t(sizeof(float));
  return p;
}

// The group rule above on host arrays (the CPU reference's; the CUDA kernels evaluate the same
// rule with loads from the device's copies).
inline int64_t cascade_first_block(const PagedAttentionArgs& a, int64_t b) { return a.block_tables[b * a.max_blocks_per_seq]; }
/** The leader of b's run of adjacent sequences with b's first block id. */
inline int64_t cascade_leader(const PagedAttentionArgs& a, int64_t b) {
  int64_t L = b;
  while (L > 0 && cascade_first_block(a, L - 1) == cascade_first_block(a, b)) --L;
  return L;
}
/** Whether b's run has another sequence (a run of one is no group). */
inline bool cascade_in_group(const PagedAttentionArgs& a, int64_t b) {
  const int64_t f = cascade_first_block(a, b);
  return (b > 0 && cascade_first_block(a, b - 1) == f) || (b + 1 < a.num_seqs && cascade_first_block(a, b + 1) == f);
}
/** c_b: how many leading kCascadePartition-key splits of sequence b its group computes. */
inline int64_t cascade_shared_splits(const PagedAttentionArgs& a, int64_t b) {
  if (a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b] != 1 || !cascade_in_group(a, b)) return 0;
  const int64_t L = cascade_leader(a, b);
  if (a.cu_seqlens_q[L + 1] - a.cu_seqlens_q[L] != 1) return 0;
  const int64_t shortest = a.context_lens[L] < a.context_lens[b] ? a.context_lens[L] : a.context_lens[b];
  int64_t equal = 0;  // leading blocks with the same id in both tables
  const int64_t blocks = (shortest + a.block_size - 1) / a.block_size;
  while (equal < blocks && a.block_tables[L * a.max_blocks_per_seq + equal] == a.block_tables[b * a.max_blocks_per_seq + equal]) ++equal;
  const int64_t by_ctx = shortest / kCascadePartition, by_blocks = equal * a.block_size / kCascadePartition;
  return by_ctx < by_blocks ? by_ctx : by_blocks;
}

}  // namespace aios::flash
