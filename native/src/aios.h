// The addon's C++ API: plain functions over pointers and shapes.
// Nothing here knows about Node; addon.cc is the only file that does.
// Pointers are already offset to the first element; tensors are contiguous
// unless a function takes strides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace aios {

// The numeric codes are part of the JS ABI (engine-core/src/dtype.ts).
enum class DType : int32_t { BF16 = 0, F16 = 1, F32 = 2, I32 = 3, I64 = 4 };
constexpr int kNumDTypes = 5;

inline size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::BF16: case DType::F16: return 2;
    case DType::F32: case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}
inline const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::F32: return "f32";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
  }
  return "?";
}
inline bool is_float(DType dt) { return dt == DType::BF16 || dt == DType::F16 || dt == DType::F32; }
inline bool is_index(DType dt) { return dt == DType::I32 || dt == DType::I64; }

// Every argument problem found below the bindings is one of these; addon.cc
// turns it into a JS exception, so bad input never aborts the process.
struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

constexpr int kMaxRank = 8;

// Shapes of the attention op, shared by both backends.
struct AttentionShape {
  int64_t q_len;       // Tq: query tokens (the last Tq positions of the sequence)
  int64_t kv_len;      // Tk: key/value tokens, positions 0..Tk-1
  int64_t q_heads;     // Hq
  int64_t kv_heads;    // Hkv; Hq % Hkv == 0 (grouped-query attention)
  int64_t head_dim;    // D
  float scale;         // usually 1/sqrt(D)
  bool causal;         // query i sits at position Tk - Tq + i and sees keys <= that
  // Paged K/V: when kv_slots is given, key/value j is row kv_slots[j] of k and v,
  // which hold kv_rows rows (a KV pool); otherwise row j, and kv_rows == kv_len.
  const int32_t* kv_slots = nullptr;
  int64_t kv_rows = 0;
};

// Attention of one packed step over a paged KV pool (lessons 07 on). The new
// tokens' K/V are already stored in the pool when this runs.
struct PagedAttentionArgs {
  const void* q;                 // [num_tokens, q_heads, head_dim]
  const void* k_cache;           // [num_slots, kv_heads, head_dim]: one layer's keys, slot = block * block_size + offset
  const void* v_cache;           // [num_slots, kv_heads, head_dim]
  void* out;                     // [num_tokens, q_heads, head_dim]
  const int32_t* cu_seqlens_q;   // [num_seqs + 1]: sequence b's queries are rows cu[b] .. cu[b+1]-1
  const int32_t* context_lens;   // [num_seqs]: tokens of sequence b in the pool, this step's included
  const int32_t* block_tables;   // [num_seqs, max_blocks_per_seq]: block ids, row-major
  // [num_seqs] or null: a permutation of the sequences, longest context first. Lesson 09's
  // decode v3 hands sequences to thread blocks in this order, so the longest contexts start in
  // the first wave and the last wave holds short ones (a ragged batch's tail is a short block,
  // not a 2,000-key one). Ignored by the other kernels and the CPU.
  const int32_t* seq_order = nullptr;
  int64_t num_seqs = 0, num_tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t block_size = 0, max_blocks_per_seq = 0, num_slots = 0;
  int64_t max_q_len = 0;         // host-known bounds (launch shapes): the longest query run and context
  int64_t max_context_len = 0;
  float scale = 0.0f;
  DType dt = DType::BF16;
};

// The arguments of qk_norm_rope_store (lesson 10; see its declaration below).
struct QkNormRopeStoreArgs {
  const void* qkv;
  const void* q_norm;
  const void* k_norm;
  const int32_t* positions;
  const float* cos;
  const float* sin;
  const int32_t* slot_mapping;
  void* q_out;
  void* k_cache;
  void* v_cache;
  int64_t tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0, max_pos = 0, num_slots = 0;
  float eps = 0.0f;
  DType dt = DType::BF16;
};

// ---- Lesson 12: sampling on the device.
// One row's sampling parameters, 12 32-bit words per row (engine-core/src/ops.ts
// packs the same layout: packSampleRows). Order of the steps on a row (vLLM's):
// penalties -> temperature -> top-k -> top-p -> min-p -> one draw.
struct SampleRowParams {
  float temperature;         // 0: greedy (argmax of the penalized row, lowest index on ties, NaN largest)
  int32_t top_k;             // keep values >= the k-th largest (ties kept); 0: off
  float top_p;               // keep the values >= t for the largest t whose mass reaches top_p of what top-k kept; 1: off
  float min_p;               // keep p_i >= min_p * p_max, i.e. (x_i - x_max) / T >= log(min_p); 0: off
  float repetition_penalty;  // 1: off; applied to the tokens of the penalty list
  float presence_penalty;    // 0: off
  float frequency_penalty;   // 0: off
  uint32_t seed_lo, seed_hi; // the Philox key
  uint32_t position;         // the token position being sampled: the Philox counter's second word
  int32_t num_logprobs;      // -1: no log-probs; 0..kMaxSampleLogprobs: the chosen token's and that many alternatives
  int32_t reserved;          // 0
};
static_assert(sizeof(SampleRowParams) == 48, "SampleRowParams is 12 words (the JS packer's layout)");
constexpr int kSampleParamWords = 12;

// One (row, token) pair a penalty applies to: the token occurs output_count times in the
// row's output and, when in_prompt is 1, in its prompt. Each pair appears at most once.
struct SamplePenalty {
  int32_t row, token, output_count, in_prompt;
};
constexpr int kSamplePenaltyWords = 4;

constexpr int kMaxSampleLogprobs = 20;
// The output, one flat int32 buffer so that one copy brings everything back:
// [tokens: rows][chosen log-prob: rows, f32 bits][top ids: rows x 20][top log-probs: rows x 20, f32 bits].
// Log-probs are of the raw logits: log_softmax before penalties, temperature and filters.
inline int64_t sample_out_words(int64_t rows) { return rows * (2 + 2 * int64_t(kMaxSampleLogprobs)); }

struct SampleTokensArgs {
  float* logits;                   // [rows, n] f32; penalties are applied in place and undone before returning
  int64_t rows = 0, n = 0;
  const SampleRowParams* params;   // [rows]
  const SamplePenalty* penalties;  // [num_penalties], may be null when 0
  int64_t num_penalties = 0;
  int32_t* out;                    // [sample_out_words(rows)]
  // Scratch of sample_workspace_bytes(rows, n, num_penalties) bytes; after the call its first
  // `rows` floats hold each row's keep-threshold (-inf: no filter) and the next `rows` its
  // penalized maximum (tests compare them between backends).
  void* workspace;
  // Hints from the host, which packed the params: false lets CUDA skip the threshold or the
  // log-prob kernel. They must be true when any row filters (top-k, top-p or min-p at a
  // temperature > 0) or asks for log-probs. The CPU ignores them. Without the threshold
  // kernel the workspace's thresholds and maxima are not written.
  bool any_filtered = true, any_logprobs = true;
  // Lesson 14, one rank's share of the race: the logits are the vocabulary entries
  // [index_base, index_base + n) of rows of a larger vocabulary, each drawn with its global index
  // (the Philox stream and the ties), and shard_out, when set, takes each row's best instead of a
  // token: [rows][2] int32, the score's f32 bits and its global index (kNoSampleIndex when the
  // slice kept nothing). The best of the ranks' pairs in the race's order (the larger score, NaN
  // largest, ties to the lower index) is the token one rank would draw from the whole row. Plain rows only: no filter, no penalty, no log-probs
  // (those need the whole row); index_base a multiple of 4 (one Philox call per 4 entries).
  int64_t index_base = 0;
  int32_t* shard_out = nullptr;
};

constexpr int32_t kNoSampleIndex = 0x7fffffff;

// Vocabulary entries per block of the CUDA race kernel (each block reduces one chunk of a row).
constexpr int64_t kSampleChunk = 4096;
inline int64_t sample_chunks(int64_t n) { return (n + kSampleChunk - 1) / kSampleChunk; }
inline int64_t sample_workspace_bytes(int64_t rows, int64_t n, int64_t num_penalties) {
  // thresholds, maxima, per-chunk best (score, index), saved logits of the penalized entries
  return 4 * (2 * rows + 2 * rows * sample_chunks(n) + num_penalties);
}

// ---- CPU reference kernels (src/cpu): readable loops, float32 accumulation.
namespace cpu {
void fill(void* out, DType dt, int64_t n, double value);
// dst[i...] = cast(src[i...]) over a strided index space of `rank` dims (strides in elements).
void copy_strided(const void* src, DType src_dt, const int64_t* src_strides, void* dst, DType dst_dt,
                  const int64_t* dst_strides, const int64_t* shape, int rank);
// out[i, :] = table[ids[i], :]; an id outside [0, vocab) throws.
void embedding(const void* table, DType dt, const void* ids, DType id_dt, void* out, int64_t n_ids,
               int64_t vocab, int64_t dim);
// out[M, N] = x[M, K] @ w[N, K]^T (nn.Linear's layout), float32 accumulation.
void matmul_nt(const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K, DType in_dt,
               DType out_dt);
// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight
void rmsnorm(const void* x, const void* weight, void* out, int64_t rows, int64_t dim, float eps, DType dt);
// Rotary embedding, neox layout (halves rotated): x, out [tokens, heads, head_dim];
// cos, sin [max_pos, head_dim/2] float32; positions int32 [tokens].
void rope_neox(const void* x, void* out, const int32_t* positions, const float* cos, const float* sin,
               int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_pos, DType dt);
void silu(const void* x, void* out, int64_t n, DType dt);
void add(const void* a, const void* b, void* out, int64_t n, DType dt);
void mul(const void* a, const void* b, void* out, int64_t n, DType dt);
void softmax(const void* x, void* out, int64_t rows, int64_t n, DType dt);
// Naive attention over materialized scores: q [Tq, Hq, D], k and v [Tk, Hkv, D]
// (or [kv_rows, Hkv, D] read through kv_slots), out [Tq, Hq, D], scores float32
// [Hq, Tq, Tk] (caller-owned scratch). A slot outside [0, kv_rows) throws on
// the CPU; the CUDA kernel cannot throw and reads row 0 instead, so the host
// must build valid slots (lesson 06's block manager does).
void attention(const void* q, const void* k, const void* v, void* out, float* scores,
               const AttentionShape& s, DType dt);
// Causal attention of a packed step through block tables: sequence b's local
// query i sits at position context_lens[b] - q_len_b + i and sees keys 0..that
// position, key p at slot block_tables[b][p / block_size] * block_size + p % block_size.
// Throws on metadata that does not describe that (cu_seqlens not rising from 0
// to num_tokens, a context shorter than its queries, a block id outside the pool).
void paged_attention(const PagedAttentionArgs& a);
// paged_attention's checks of the step's metadata (throws what it names).
void check_paged_metadata(const PagedAttentionArgs& a);
// Lesson 13: paged_attention's result for a decode step (every sequence 0 or 1 query),
// computed as the CUDA cascade decode divides it (aios::flash, flash.h): the splits a group
// of sequences holds in the same blocks read once for the whole group, the rest per
// sequence, the partial (output, log-sum-exp) pairs combined. Returns how many keys it read
// (per KV head), which the plain decode would make sum(context_lens).
int64_t cascade_decode(const PagedAttentionArgs& a);
// out[r] = index of the largest x[r, :] (the first one on ties), int32.
void argmax(const void* x, int32_t* out, int64_t rows, int64_t n, DType dt);

// ---- fused kernels (lesson 10). Each rounds to the storage type where the unfused
// sequence of ops would, so a fused forward matches the unfused one up to the
// order of float32 sums.
// The residual stream: residual[r] = x[r] + residual[r] (stored), then
// out[r] = rmsnorm(residual[r]) * weight: two ops and one round trip of the row fewer.
void add_rmsnorm(const void* x, void* residual, const void* weight, void* out, int64_t rows, int64_t dim, float eps,
                 DType dt);
// SwiGLU's middle: out[r, i] = silu(gate_up[r, i]) * gate_up[r, inter + i], gate_up [rows, 2 * inter].
void silu_mul(const void* gate_up, void* out, int64_t rows, int64_t inter, DType dt);
// After the fused q/k/v projection qkv [tokens, (q_heads + 2 kv_heads) * head_dim]: per
// token, each q head RMS-normed with q_norm and rotated (neox) into q_out [tokens, q_heads,
// head_dim]; each k head normed with k_norm, rotated and stored at its slot of k_cache
// [slots, kv_heads, head_dim]; each v head stored at its slot of v_cache. A slot < 0 stores
// nothing (padding rows of a captured step).

void qk_norm_rope_store(const QkNormRopeStoreArgs& a);
// One draw per row from softmax(x[r, :] / temperature[r]) by inverse CDF: the
// first index whose running sum of exp((x - max) / t) reaches uniform[r] times
// the row's total (uniform[r] in [0, 1), drawn by the caller). A temperature of
// 0 takes the argmax. The CPU sums in double, in index order; CUDA in float32 chunks. A
// negative or NaN temperature is an error on the CPU; the CUDA kernel cannot report one and
// takes the argmax (the ops facade rejects it before either runs).
void sample_rows(const float* x, const float* temperature, const float* uniform, int32_t* out, int64_t rows,
                 int64_t n);
// Lesson 12: one token per row drawn by the exponential race (Gumbel-max) over the kept
// entries with Philox numbers keyed by (seed, position, vocabulary index), penalties and
// filters as SampleRowParams says, log-probs for the rows that ask. Throws on a penalty
// entry outside the rows or vocabulary, a repeated (row, token) pair, or out-of-range params.
void sample_tokens(const SampleTokensArgs& a);
// out[i, :] = src[idx[i], :] and dst[idx[i], :] = src[i, :], rows of row_bytes bytes.
void gather_rows(const void* src, int64_t src_rows, const void* idx, DType idx_dt, void* out, int64_t n_idx,
                 int64_t row_bytes);
void scatter_rows(const void* src, const void* idx, DType idx_dt, void* dst, int64_t dst_rows, int64_t n_idx,
                  int64_t row_bytes);
}  // namespace cpu

}  // namespace aios
