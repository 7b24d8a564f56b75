// Reference attention of a packed step over a paged KV pool (lessons 07 on):
// for every query row, the keys of its own sequence up to its position, found
// through the sequence's block table. Two passes per row (scores and their max,
// then exp, sum and the weighted V), float32 throughout, keys in position order:
// a decode step and a prefill compute a given row with the same arithmetic.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "numeric.h"
#include "parallel.h"

namespace aios::cpu {

void check_paged_metadata(const PagedAttentionArgs& a) {
  const int32_t* cu = a.cu_seqlens_q;
  if (cu[0] != 0) throw Error("paged_attention: cu_seqlens_q[0] is " + std::to_string(cu[0]) + ", expected 0");
  if (cu[a.num_seqs] != a.num_tokens)
    throw Error("paged_attention: cu_seqlens_q ends at " + std::to_string(cu[a.num_seqs]) + " but there are " +
                std::to_string(a.num_tokens) + " query tokens");
  const int64_t num_blocks = a.num_slots / a.block_size;
  for (int64_t b = 0; b < a.num_seqs; ++b) {
    const int64_t q_len = int64_t(cu[b + 1]) - cu[b], ctx = a.context_lens[b];
    if (q_len < 0) throw Error("paged_attention: cu_seqlens_q falls at sequence " + std::to_string(b));
    if (q_len > a.max_q_len)
      throw Error("paged_attention: sequence " + std::to_string(b) + " has " + std::to_string(q_len) +
                  " queries, more than max_q_len " + std::to_string(a.max_q_len));
    if (ctx < q_len || ctx > a.max_context_len)
      throw Error("paged_attention: sequence " + std::to_string(b) + " has context length " + std::to_string(ctx) +
                  ", outside [" + std::to_string(q_len) + " queries, max_context_len " +
                  std::to_string(a.max_context_len) + "]");
    const int64_t blocks = (ctx + a.block_size - 1) / a.block_size;
    if (blocks > a.max_blocks_per_seq)
      throw Error("paged_attention: sequence " + std::to_string(b) + " needs " + std::to_string(blocks) +
                  " blocks, its table holds " + std::to_string(a.max_blocks_per_seq));
    for (int64_t i = 0; i < blocks; ++i) {
      const int32_t block = a.block_tables[b * a.max_blocks_per_seq + i];
      if (block < 0 || block >= num_blocks)
        throw Error("paged_attention: block table entry " + std::to_string(i) + " of sequence " + std::to_string(b) +
                    " is " + std::to_string(block) + ", outside the pool's " + std::to_string(num_blocks) + " blocks");
    }
  }
}

void paged_attention(const PagedAttentionArgs& a) {
  check_paged_metadata(a);
  const int64_t Hq = a.q_heads, Hkv = a.kv_heads, D = a.head_dim, group = Hq / Hkv, bs = a.block_size;
  // The sequence of each query row, so rows can be spread over threads independently.
  std::vector<int32_t> seq_of(size_t(a.num_tokens));
  for (int64_t b = 0; b < a.num_seqs; ++b)
    for (int32_t r = a.cu_seqlens_q[b]; r < a.cu_seqlens_q[b + 1]; ++r) seq_of[size_t(r)] = int32_t(b);
  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    auto *Q = static_cast<const T*>(a.q), *K = static_cast<const T*>(a.k_cache), *V = static_cast<const T*>(a.v_cache);
    auto* O = static_cast<T*>(a.out);
    parallel_for(a.num_tokens * Hq, 4, [&](int64_t begin, int64_t end) {
      std::vector<float> p;
      std::vector<float> acc(static_cast<size_t>(D));
      for (int64_t row = begin; row < end; ++row) {
        const int64_t t = row / Hq, h = row % Hq, kvh = h / group, b = seq_of[size_t(t)];
        const int64_t q_len = a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b];
        const int64_t pos = a.context_lens[b] - q_len + (t - a.cu_seqlens_q[b]);  // this query's position
        const int32_t* table = a.block_tables + b * a.max_blocks_per_seq;
        auto slot = [&](int64_t key) { return int64_t(table[key / bs]) * bs + key % bs; };
        const T* qt = Q + (t * Hq + h) * D;
        p.assign(size_t(pos + 1), 0.0f);
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j <= pos; ++j) {
          const T* kj = K + (slot(j) * Hkv + kvh) * D;
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) dot += to_float(qt[d]) * to_float(kj[d]);
          p[size_t(j)] = dot * a.scale;
          mx = std::fmax(mx, p[size_t(j)]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j <= pos; ++j) sum += p[size_t(j)] = std::exp(p[size_t(j)] - mx);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = 0; j <= pos; ++j) {
          const T* vj = V + (slot(j) * Hkv + kvh) * D;
          for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += p[size_t(j)] * to_float(vj[d]);
        }
        T* ot = O + (t * Hq + h) * D;
        for (int64_t d = 0; d < D; ++d) ot[d] = from_float<T>(acc[size_t(d)] / sum);
      }
    });
  });
}

void sample_rows(const float* x, const float* temperature, const float* uniform, int32_t* out, int64_t rows,
                 int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * n;
    const float t = temperature[r];
    if (!(t >= 0.0f)) throw Error("sample_rows: temperature of row " + std::to_string(r) + " is " + std::to_string(t));
    int32_t best32 = 0;
    argmax(row, &best32, 1, n, DType::F32);  // the argmax op's order: NaN counts as the largest
    const int64_t best = best32;
    if (t == 0.0f) { out[r] = best32; continue; }
    // Sums in double: a float32 running sum over 150k terms drifts by more than
    // the smallest probabilities, and the reference should not.
    const float mx = row[best], inv_t = 1.0f / t;
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += std::exp((row[i] - mx) * inv_t);
    const double target = double(uniform[r]) * total;
    // The first index whose running sum reaches the target; rounding can leave
    // the target past the last sum, and then the last token with weight wins.
    double run = 0.0;
    int64_t pick = -1, last_nonzero = best;
    for (int64_t i = 0; i < n; ++i) {
      const float w = std::exp((row[i] - mx) * inv_t);
      if (w > 0.0f) last_nonzero = i;
      run += w;
      if (run >= target && w > 0.0f) { pick = i; break; }
    }
    out[r] = int32_t(pick >= 0 ? pick : last_nonzero);
  }
}

}  // namespace aios::cpu
