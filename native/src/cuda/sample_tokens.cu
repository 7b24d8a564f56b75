// Lesson 12's sampler on the device: the logits never leave it; only the chosen ids
// (and, for rows that ask, log-probs) are written for the host to read back.
//
//   penalize   one thread per penalty entry: saves the logit, writes the penalized one (in place)
//   thresholds one block per filtered row: its top-k / top-p keep-threshold by radix select
//              (4 passes of 8 bits each, per-warp histograms in shared memory) and its max
//   race       rows x chunks blocks of 256 threads: each thread reads 4 logits (one float4),
//              draws 4 Philox words in one call, and keeps the best x / T - log(-log u) of
//              the kept entries (the argmax of x for a greedy row); one partial per chunk
//   combine    one warp per row: the best of its chunks' partials -> the token (a shard of
//              lesson 14: -> the row's best score and its global index, for rank 0 to compare)
//   restore    one thread per penalty entry: the saved logit back
//   logprobs   one block per row that asks: log_softmax of the raw row at the chosen token,
//              and the n largest (radix select of the n-th, then a gather, ties by index)
//
// The plain temperature path (no filter, no penalty, no log-probs) is race + combine:
// one read of each row, with rows x chunks blocks (256 x 38 at Qwen3's vocabulary) to
// fill the card. A greedy row takes the same kernels with the argmax order of `better`.
#include "../philox.h"
#include "common.cuh"

namespace aios::cuda {

namespace {

using sample_rules::order_key;

constexpr int kRaceThreads = 256;
constexpr int kGroupsPerThread = int(kSampleChunk / (4 * kRaceThreads));
static_assert(kSampleChunk == int64_t(kGroupsPerThread) * 4 * kRaceThreads, "a race block's chunk is whole groups of 4 per thread");
constexpr int kRowThreads = 1024;  // threshold and log-prob kernels: one block per row
constexpr int kWarps = kRowThreads / 32;
constexpr int kBins = 256;

__device__ __forceinline__ bool filtered_row(const SampleRowParams& p) {
  return p.temperature > 0.0f && (p.top_k > 0 || p.top_p < 1.0f || p.min_p > 0.0f);
}

__global__ void penalize_kernel(float* logits, int64_t n, const SampleRowParams* params, const SamplePenalty* pen,
                                int64_t count, float* saved) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const SamplePenalty q = pen[e];
  const SampleRowParams& p = params[q.row];
  float* x = logits + int64_t(q.row) * n + q.token;
  const float v = *x;
  saved[e] = v;
  *x = sample_rules::penalized_logit(v, p.repetition_penalty, p.presence_penalty, p.frequency_penalty, q.output_count,
                                     q.in_prompt);
}

__global__ void restore_kernel(float* logits, int64_t n, const SamplePenalty* pen, int64_t count, const float* saved) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= count) return;
  logits[int64_t(pen[e].row) * n + pen[e].token] = saved[e];
}

// Shared state of a row block's radix select.
struct SelectShared {
  float hist[kWarps][kBins];  // one histogram per warp: no contention between warps
  uint32_t prefix;
  float above;
};

// The largest key t among the row's non-NaN entries with key >= lower such that the summed
// weight of entries with key >= t reaches target (weight 1 for top-k and top-n, exp((x - mx) / T)
// for top-p); the smallest such key when rounding keeps the total short of the target.
// Decided 8 bits at a time from the top: 4 passes over the row. Every thread returns it.
__device__ uint32_t select_from_top(const float* row, int64_t n, uint32_t lower, bool mass, float mx, float inv_t,
                                    float target, SelectShared& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint32_t prefix = 0, mask = 0;
  float above = 0.0f;  // weight of the entries whose key's decided bits are above the prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = lane; b < kBins; b += 32) s.hist[warp][b] = 0.0f;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += kRowThreads) {
      const float v = row[i];
      if (isnan(v)) continue;
      const uint32_t k = order_key(v);
      if (k < lower || (k & mask) != prefix) continue;
      atomicAdd(&s.hist[warp][(k >> shift) & 0xffu], mass ? expf((v - mx) * inv_t) : 1.0f);
    }
    __syncthreads();
    // Fold the warps' histograms into warp 0's.
    for (int b = threadIdx.x; b < kBins; b += kRowThreads) {
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) sum += s.hist[w][b];
      s.hist[0][b] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float cum = above;
      int digit = -1, lowest = -1;
      for (int d = kBins - 1; d >= 0; --d) {
        const float h = s.hist[0][d];
        if (h <= 0.0f) continue;
        lowest = d;
        if (cum + h >= target) { digit = d; break; }
        cum += h;
      }
      if (digit < 0) {  // the target is past the total (rounding): keep down to the lowest bin
        digit = lowest < 0 ? 0 : lowest;
        if (lowest >= 0) cum -= s.hist[0][lowest];
      }
      s.prefix = prefix | (uint32_t(digit) << shift);
      s.above = cum;
    }
    __syncthreads();
    prefix = s.prefix;
    above = s.above;
    mask |= 0xffu << shift;
  }
  return prefix;
}

__global__ void __launch_bounds__(kRowThreads) threshold_kernel(const float* logits, int64_t n,
                                                                const SampleRowParams* params, float* thresholds,
                                                                float* maxima) {
  __shared__ SelectShared s;
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const SampleRowParams p = params[r];
  if (!filtered_row(p)) {
    if (threadIdx.x == 0) { thresholds[r] = -INFINITY; maxima[r] = 0.0f; }
    return;
  }
  const float* row = logits + r * n;
  const float inv_t = 1.0f / p.temperature;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += kRowThreads) mx = fmaxf(mx, row[i]);  // fmaxf skips NaN
  mx = block_reduce<true>(mx, scratch);
  uint32_t lower = 0;  // below every non-NaN key
  float threshold = -INFINITY;
  if (p.top_k > 0) {
    lower = select_from_top(row, n, 0u, false, mx, inv_t, float(p.top_k), s);
    threshold = sample_rules::key_value(lower);
  }
  if (p.top_p < 1.0f) {
    float total = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += kRowThreads) {
      const float v = row[i];
      if (!isnan(v) && order_key(v) >= lower) total += expf((v - mx) * inv_t);
    }
    total = block_reduce<false>(total, scratch);
    threshold = sample_rules::key_value(select_from_top(row, n, lower, true, mx, inv_t, p.top_p * total, s));
  }
  if (threadIdx.x == 0) { thresholds[r] = threshold; maxima[r] = mx; }
}

__device__ __forceinline__ void race_step(float v, int32_t i, bool greedy, float threshold, float mx, float inv_t,
                                          float log_min_p, uint32_t bits, float& best, int32_t& best_i) {
  if (greedy) {
    if (better(v, i, best, best_i)) { best = v; best_i = i; }
    return;
  }
  if (isnan(v) || v < threshold || (v - mx) * inv_t < log_min_p) return;
  // x / T plus Gumbel noise -log(E), E = -log(u) exponential. The inner log is the accurate
  // logf: u close to 1 gives the smallest E, the likeliest winners, and __logf's absolute error
  // (about 2^-22) there is larger than E itself (it could return 0 and a score of +inf). The
  // outer log's argument is E, away from 1 where it matters, so __logf is accurate enough.
  // __fmul_rn / __fsub_rn keep the compiler from fusing an FMA: the score rounds as the CPU's.
  const float e = -logf(philox::open_uniform(bits));
  const float score = __fsub_rn(__fmul_rn(v, inv_t), __logf(e));
  if (better(score, i, best, best_i)) { best = score; best_i = i; }
}

__global__ void __launch_bounds__(kRaceThreads) race_kernel(const float* logits, int64_t n,
                                                            const SampleRowParams* params, const float* thresholds,
                                                            const float* maxima, float* part_score, int32_t* part_idx,
                                                            bool vec4, int64_t base) {
  __shared__ float s_best[32];
  __shared__ int32_t s_idx[32];
  const int64_t r = blockIdx.y, chunks = gridDim.x;
  const SampleRowParams& p = params[r];
  const bool greedy = !(p.temperature > 0.0f), filtered = filtered_row(p);
  const float inv_t = greedy ? 0.0f : 1.0f / p.temperature;
  const float threshold = filtered ? thresholds[r] : -INFINITY, mx = filtered ? maxima[r] : 0.0f;
  const float log_min_p = p.min_p > 0.0f ? logf(p.min_p) : -INFINITY;
  const float* row = logits + r * n;
  const int64_t begin = int64_t(blockIdx.x) * kSampleChunk;
  const int64_t end = begin + kSampleChunk < n ? begin + kSampleChunk : n;
  const uint32_t seed_lo = p.seed_lo, seed_hi = p.seed_hi, position = p.position;
  // Entry i of the row is entry base + i of the vocabulary (lesson 14's shards; 0 otherwise): its
  // random number and its place in the ties. base + n, past every entry, marks "none yet".
  const int32_t none = int32_t(base + n);
  float best = -INFINITY;
  int32_t best_i = none;
  // Each thread takes kGroupsPerThread groups of 4 consecutive entries, 256 groups apart: all
  // its loads are issued first (one float4 each, four in flight per thread), then each group
  // gets one Philox call for its four entries.
  float v[kGroupsPerThread][4];
  const int64_t g0 = begin / 4 + threadIdx.x;
#pragma unroll
  for (int k = 0; k < kGroupsPerThread; ++k) {
    const int64_t g = g0 + int64_t(k) * kRaceThreads, i0 = 4 * g;
    if (i0 >= end) continue;
    if (vec4) {
      const float4 q = reinterpret_cast<const float4*>(row)[g];
      v[k][0] = q.x; v[k][1] = q.y; v[k][2] = q.z; v[k][3] = q.w;
    } else {
      for (int j = 0; j < 4; ++j) v[k][j] = i0 + j < end ? row[i0 + j] : 0.0f;
    }
  }
#pragma unroll
  for (int k = 0; k < kGroupsPerThread; ++k) {
    const int64_t g = g0 + int64_t(k) * kRaceThreads, i0 = 4 * g;
    if (i0 >= end) continue;
    philox::Words4 bits{{0u, 0u, 0u, 0u}};
    if (!greedy) bits = philox::sample_bits(seed_lo, seed_hi, position, uint32_t(base / 4 + g));
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (i0 + j < end) race_step(v[k][j], int32_t(base + i0 + j), greedy, threshold, mx, inv_t, log_min_p, bits.v[j], best, best_i);
  }
  // Block reduction in the argmax order.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  warp_best(best, best_i);
  if (lane == 0) { s_best[warp] = best; s_idx[warp] = best_i; }
  __syncthreads();
  if (warp == 0) {
    const int warps = kRaceThreads / 32;
    best = lane < warps ? s_best[lane] : -INFINITY;
    best_i = lane < warps ? s_idx[lane] : none;
    warp_best(best, best_i);
    if (lane == 0) { part_score[r * chunks + blockIdx.x] = best; part_idx[r * chunks + blockIdx.x] = best_i; }
  }
}

// `none` (base + n) marks a row whose entries were all skipped (NaN). A shard (shard_out) reports
// that as kNoSampleIndex; a whole row falls back to token 0.
__global__ void combine_kernel(const float* part_score, const int32_t* part_idx, int64_t chunks, int32_t none,
                               int32_t* out, int32_t* shard_out) {
  const int64_t r = blockIdx.x;
  float best = -INFINITY;
  int32_t best_i = none;
  for (int64_t c = threadIdx.x; c < chunks; c += 32)
    if (better(part_score[r * chunks + c], part_idx[r * chunks + c], best, best_i)) {
      best = part_score[r * chunks + c];
      best_i = part_idx[r * chunks + c];
    }
  warp_best(best, best_i);
  if (threadIdx.x != 0) return;
  if (shard_out) {
    shard_out[2 * r] = __float_as_int(best_i < none ? best : -INFINITY);
    shard_out[2 * r + 1] = best_i < none ? best_i : kNoSampleIndex;
  } else {
    out[r] = best_i < none ? best_i : 0;  // nothing kept: every logit NaN
  }
}

__global__ void __launch_bounds__(kRowThreads) logprob_kernel(const float* logits, int64_t n, int64_t rows,
                                                              const SampleRowParams* params, int32_t* out) {
  __shared__ SelectShared s;
  __shared__ float scratch[32];
  __shared__ int32_t scan[kRowThreads];
  __shared__ int32_t cand_id[kMaxSampleLogprobs];
  __shared__ float cand_v[kMaxSampleLogprobs];
  __shared__ int32_t n_greater;
  const int64_t r = blockIdx.x;
  const int want = params[r].num_logprobs;
  if (want < 0) return;
  const float* row = logits + r * n;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += kRowThreads) mx = fmaxf(mx, row[i]);
  mx = block_reduce<true>(mx, scratch);
  float total = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kRowThreads)
    if (!isnan(row[i])) total += expf(row[i] - mx);
  total = block_reduce<false>(total, scratch);
  const float lse = mx + logf(total);
  float* chosen_logprob = reinterpret_cast<float*>(out + rows);
  if (threadIdx.x == 0) chosen_logprob[r] = row[out[r]] - lse;
  if (want == 0) return;

  // The want-th largest key, then the entries above it and, in index order, enough of its ties.
  const uint32_t kth = select_from_top(row, n, 0u, false, 0.0f, 0.0f, float(want), s);
  if (threadIdx.x == 0) n_greater = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += kRowThreads) {
    const float v = row[i];
    if (!isnan(v) && order_key(v) > kth) {
      const int slot = atomicAdd(&n_greater, 1);
      if (slot < kMaxSampleLogprobs) { cand_id[slot] = int32_t(i); cand_v[slot] = v; }
    }
  }
  __syncthreads();
  const int greater = n_greater < want ? n_greater : want;
  const int64_t per = (n + kRowThreads - 1) / kRowThreads;
  const int64_t b0 = int64_t(threadIdx.x) * per, b1 = b0 + per < n ? b0 + per : n;
  int32_t ties = 0;
  for (int64_t i = b0; i < b1; ++i) ties += (!isnan(row[i]) && order_key(row[i]) == kth) ? 1 : 0;
  scan[threadIdx.x] = ties;
  __syncthreads();
  for (int off = 1; off < kRowThreads; off <<= 1) {  // inclusive scan of the tie counts
    const int32_t add = threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
  int slot = greater + scan[threadIdx.x] - ties;
  for (int64_t i = b0; i < b1 && slot < want; ++i)
    if (!isnan(row[i]) && order_key(row[i]) == kth) { cand_id[slot] = int32_t(i); cand_v[slot] = row[i]; ++slot; }
  __syncthreads();
  if (threadIdx.x == 0) {
    // At most 20 candidates: an insertion sort, largest first, lower index first on ties.
    int have = greater + scan[kRowThreads - 1];
    if (have > want) have = want;
    for (int a = 1; a < have; ++a)
      for (int b = a; b > 0; --b) {
        const bool swap = cand_v[b] > cand_v[b - 1] || (cand_v[b] == cand_v[b - 1] && cand_id[b] < cand_id[b - 1]);
        if (!swap) break;
        const float tv = cand_v[b]; cand_v[b] = cand_v[b - 1]; cand_v[b - 1] = tv;
        const int32_t ti = cand_id[b]; cand_id[b] = cand_id[b - 1]; cand_id[b - 1] = ti;
      }
    int32_t* top_ids = out + 2 * rows + r * kMaxSampleLogprobs;
    float* top_lp = reinterpret_cast<float*>(out + 2 * rows + rows * kMaxSampleLogprobs) + r * kMaxSampleLogprobs;
    for (int j = 0; j < have; ++j) { top_ids[j] = cand_id[j]; top_lp[j] = cand_v[j] - lse; }
    // Fewer non-NaN logits than alternatives asked: the rest say so (id -1), never stale memory.
    for (int j = have; j < want; ++j) { top_ids[j] = -1; top_lp[j] = -INFINITY; }
  }
}

}  // namespace

void sample_tokens(cudaStream_t st, const SampleTokensArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  if (rows == 0) return;
  if (n == 0) throw Error("sample_tokens: the rows are empty");
  if (n > 0x7fffffffLL) throw Error("sample_tokens: the vocabulary is too large for int32 token ids");
  const int64_t chunks = sample_chunks(n);
  if (rows > 65535) throw Error("sample_tokens: more than 65535 rows in one launch");
  const int64_t base = a.index_base;
  if (a.shard_out) {
    if (base < 0 || base % 4 != 0 || base + n > int64_t(kNoSampleIndex))
      throw Error("sample_tokens (a shard): the slice must start at a multiple of 4 and end below 2^31 - 1");
    // The host packed the rows and knows (SampleParams' flags): the kernels cannot refuse a row.
    if (a.num_penalties > 0 || a.any_filtered || a.any_logprobs)
      throw Error("sample_tokens (a shard): penalties, filters and log-probs need the whole row");
  } else if (base != 0) {
    throw Error("sample_tokens: a slice of the vocabulary (index_base) is only for a shard's race (shard_out)");
  }
  float* thresholds = static_cast<float*>(a.workspace);
  float* maxima = thresholds + rows;
  float* part_score = maxima + rows;
  int32_t* part_idx = reinterpret_cast<int32_t*>(part_score + rows * chunks);
  float* saved = reinterpret_cast<float*>(part_idx + rows * chunks);
  const unsigned entry_blocks = unsigned((a.num_penalties + 255) / 256);
  if (a.num_penalties > 0) {
    penalize_kernel<<<entry_blocks, 256, 0, st>>>(a.logits, n, a.params, a.penalties, a.num_penalties, saved);
    check_launch("sample_tokens (penalize)");
  }
  if (a.any_filtered) {
    threshold_kernel<<<unsigned(rows), kRowThreads, 0, st>>>(a.logits, n, a.params, thresholds, maxima);
    check_launch("sample_tokens (thresholds)");
  }
  const bool vec4 = n % 4 == 0 && reinterpret_cast<uintptr_t>(a.logits) % 16 == 0;
  race_kernel<<<dim3(unsigned(chunks), unsigned(rows)), kRaceThreads, 0, st>>>(a.logits, n, a.params, thresholds, maxima,
                                                                                part_score, part_idx, vec4, base);
  check_launch("sample_tokens (race)");
  combine_kernel<<<unsigned(rows), 32, 0, st>>>(part_score, part_idx, chunks, int32_t(base + n), a.out, a.shard_out);
  check_launch("sample_tokens (combine)");
  if (a.num_penalties > 0) {
    restore_kernel<<<entry_blocks, 256, 0, st>>>(a.logits, n, a.penalties, a.num_penalties, saved);
    check_launch("sample_tokens (restore)");
  }
  if (a.any_logprobs) {
    logprob_kernel<<<unsigned(rows), kRowThreads, 0, st>>>(a.logits, n, rows, a.params, a.out);
    check_launch("sample_tokens (logprobs)");
  }
}

}  // namespace aios::cuda
