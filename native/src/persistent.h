// Lesson 11's persistent decode step: the whole decoder stack of a small-batch
// decode step (every layer's norms, projections, q/k norm + RoPE + K/V store,
// attention and MLP) as ONE kernel launch whose blocks stay resident and meet at
// grid-wide barriers between the stages of a layer, instead of ~10 launches a
// layer. Plain host code, shared by the CUDA launcher (cuda/persistent_decode.cu),
// the binding (addon.cc) and the CPU emulator test (native/emu), so all three agree
// on what it supports and how it divides the work.
//
// Why: at one token a decode step is ~290 kernels of a few microseconds each, and
// each kernel pays its start and its tail on a GPU it leaves mostly idle (lesson
// 11's knock-out table). Here every block streams its share of each weight matrix
// through a ring of shared-memory stages that runs ahead of the computation across
// layer and stage boundaries (weights do not depend on the activations), so the
// next stage's weights are already arriving while the blocks wait at a barrier.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "aios.h"

namespace aios::persistent {

constexpr int kThreads = 256;                 // 8 warps a block, one block per SM
constexpr int kWarps = kThreads / 32;
constexpr int kStages = 8;                    // the weight ring: 7 stages in flight while one is read
constexpr int64_t kStageBytes = 16 * 1024;    // one stage: a chunk of one tile (8 rows, or 8 gate + 8 up rows)
constexpr int kTileRows = 8;                  // output rows a tile of a weight matrix gives (the mma's 16 rows: 8 + 8 for gate/up)
constexpr int kMaxTokens = 8;                 // decode rows a launch takes (graph buckets 1, 2, 4, 8)
constexpr int kTileKeys = 64;                 // keys of K and V staged at once by an attention unit
constexpr int kHeadDim = 128;                 // every Qwen3 size
constexpr int kMaxGroup = 8;                  // query heads per KV head (Qwen3-32B: 64 / 8)
constexpr int kMaxSplits = 32;

/** The model's shape and the step's size: what the plan depends on. */
struct Shape {
  int64_t tokens = 0, layers = 0, hidden = 0, q_heads = 0, kv_heads = 0, head_dim = 0, inter = 0;
};

/** How a launch divides the step; `why` is "" when the kernel can run the shape. */
struct Plan {
  std::string why;
  int grid = 0;              // blocks: one per SM, all resident at once (the barriers need that)
  int splits = 0;            // each (token, KV head)'s context is split over this many attention units
  int64_t smem = 0;          // dynamic shared memory a block
  int64_t partial_floats = 0;  // float32 scratch: [tokens, q_heads, splits, head_dim + 1] (o and lse)
  int64_t sync_words = 0;    // uint32 counters, zeroed before each launch: the barrier, then one per (token, KV head)
  // Columns of each matrix one chunk holds (a tile's rows times these fill at most a stage); the
  // plan's shared-memory layout.
  int kc_qkv = 0, kc_o = 0, kc_gate_up = 0, kc_down = 0;
  int64_t x_offset = 0, q_offset = 0, res_offset = 0, red_offset = 0, misc_offset = 0;  // the attention's tiles use x's space
};

/** Shared memory the attention of one unit needs: a K and a V tile, or each warp's partial results for the merge. */
inline int64_t attn_smem(int64_t group) {
  const int64_t tiles = 2 * int64_t(kTileKeys) * kHeadDim * 2;
  const int64_t merge = int64_t(kWarps) * group * (kHeadDim + 2) * 4;
  return tiles > merge ? tiles : merge;
}

inline int64_t align16(int64_t n) { return (n + 15) / 16 * 16; }

/**
 * Whether the persistent kernel runs `s` in bf16/f16 on a GPU of `sms` SMs with `smem_optin`
 * bytes of shared memory a block, and how. The limits are the kernel's: head_dim 128, at most 8
 * query heads per KV head, every row length a multiple of 256 elements (so a chunk of a tile's
 * rows, 256 to 1024 columns, divides the row: whole 32-column mma steps, and at least the 8
 * 16-byte columns the swizzle permutes), and the ring, the step's activations and an attention
 * tile together in shared memory.
 */
inline Plan plan(const Shape& s, int sms, int64_t smem_optin) {
  Plan p;
  auto fail = [&](const std::string& why) {
    p.why = why;
    return p;
  };
  if (s.tokens < 1 || s.tokens > kMaxTokens)
    return fail("takes 1 to " + std::to_string(kMaxTokens) + " decode rows, got " + std::to_string(s.tokens));
  if (s.layers < 1) return fail("needs at least one layer");
  if (s.head_dim != kHeadDim) return fail("needs head_dim 128, got " + std::to_string(s.head_dim));
  if (s.kv_heads < 1 || s.q_heads % s.kv_heads != 0) return fail("needs q_heads a multiple of kv_heads");
  const int64_t group = s.q_heads / s.kv_heads;
  if (group > kMaxGroup) return fail("holds at most 8 query heads per KV head, got " + std::to_string(group));
  const int64_t qd = s.q_heads * s.head_dim;
  for (int64_t k : {s.hidden, qd, s.inter})
    if (k < 256 || k % 256 != 0) return fail("needs hidden, q_heads x head_dim and intermediate multiples of 256");
  // A chunk: the most columns of a tile's rows a stage holds, halved until they divide the row.
  auto cols = [&](int64_t k, int64_t rows) {
    int64_t kc = kStageBytes / (rows * 2);
    while (kc > 32 && k % kc != 0) kc /= 2;
    return int(kc);
  };
  p.kc_qkv = cols(s.hidden, kTileRows);
  p.kc_o = cols(qd, kTileRows);
  p.kc_gate_up = cols(s.hidden, 2 * kTileRows);
  p.kc_down = cols(s.inter, kTileRows);
  if (sms < 1) return fail("no SMs");
  const int64_t kmax = std::max(std::max(s.hidden, qd), s.inter);
  // The activations: always 8 rows (the mma's 8 columns; rows past the step's are never read out).
  // The attention's tiles share the activations' space: x is dead from the end of the qkv stage
  // until the o stage loads the attention's output into it.
  p.x_offset = int64_t(kStages) * kStageBytes;
  p.q_offset = p.x_offset + align16(std::max(int64_t(kMaxTokens) * kmax * 2, attn_smem(group)));
  p.res_offset = p.q_offset + align16(group * kHeadDim * 4);
  p.red_offset = p.res_offset + align16(s.tokens * s.hidden * 2);
  // red: each warp's 16 x 8 accumulator tile; misc: an attention tile's slots, the merge's weights and a flag
  p.misc_offset = p.red_offset + align16(int64_t(kWarps) * 16 * 8 * 4);
  p.smem = p.misc_offset + align16((kTileKeys + kMaxGroup * kMaxSplits + 4) * 4);
  if (p.smem > smem_optin)
    return fail("needs " + std::to_string(p.smem) + " bytes of shared memory a block, the GPU gives " + std::to_string(smem_optin));
  p.grid = sms;
  int64_t splits = sms / (s.tokens * s.kv_heads);
  p.splits = int(splits < 1 ? 1 : splits > kMaxSplits ? kMaxSplits : splits);
  p.partial_floats = s.tokens * s.q_heads * p.splits * (s.head_dim + 1);
  p.sync_words = 1 + s.tokens * s.kv_heads;
  return p;
}

}  // namespace aios::persistent

namespace aios {

/** The persistent decode step's arguments (device pointers; weights stacked over the layers). */
struct PersistentDecodeArgs {
  // Weights, [layers, rows, cols] each, row-major as the fused forward holds them.
  const void* qkv_w;       // [L, (Hq + 2 Hkv) D, H]
  const void* o_w;         // [L, H, Hq D]
  const void* gate_up_w;   // [L, 2 I, H]: gate rows then up rows
  const void* down_w;      // [L, H, I]
  const void* input_norm;  // [L, H]
  const void* post_norm;   // [L, H]
  const void* q_norm;      // [L, D]
  const void* k_norm;      // [L, D]
  const void* final_norm;  // [H]
  const float* cos;        // [max_pos, D / 2]
  const float* sin;
  void* kv_pool;           // [L, 2, num_slots, Hkv, D]: lesson 06's pool, K then V of each layer
  // The step (one query row per sequence).
  const int32_t* positions;     // [tokens]
  const int32_t* slot_mapping;  // [tokens]: where the new K/V goes; < 0 stores nothing (padding)
  const int32_t* context_lens;  // [tokens]: keys once the new one is stored
  const int32_t* block_tables;  // [tokens, table_width]
  // Activations and scratch.
  void* residual;    // [tokens, H]: in, the embeddings; out, the residual stream after the last layer
  void* normed_out;  // [tokens, H]: the final norm of it (the LM head's input)
  void* qkv;         // [tokens, (Hq + 2 Hkv) D]
  void* attn;        // [tokens, Hq D]
  void* act;         // [tokens, I]
  float* partials;   // plan.partial_floats
  uint32_t* sync;    // plan.sync_words, zeroed by the launcher before the kernel
  persistent::Shape shape;  // the step's model and token count, the shape the plan was made for
  int64_t max_pos = 0, num_slots = 0, block_size = 0, table_width = 0;
  float eps = 0.0f, scale = 0.0f;
  DType dt = DType::BF16;
};

}  // namespace aios
