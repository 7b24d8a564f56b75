// Reference of lesson 13's cascade decode: a decode step's attention computed
// the way the CUDA kernels divide it (flash.h, "cascade"), in readable loops.
// The first splits of kCascadePartition keys that a group of sequences holds
// in the same blocks are read once and attended by all the group's queries;
// the rest of each context is read by its own sequence. Each
// (query, split) gives a partial result: the softmax-weighted values of the
// split's keys and the log-sum-exp of its scores. Merging the partials of a
// query, each weighted by exp(lse - max lse), gives exactly softmax attention
// over the whole context (up to the order of float32 sums).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../flash.h"
#include "numeric.h"

namespace aios::cpu {

namespace {

// One query row's result over some keys: out = sum p_j v_j / sum p_j, lse = log sum exp(score_j).
struct Partial {
  float lse;
  std::vector<float> out;
};

// The keys of one split of one KV head, loaded once as float32 rows.
struct KeyTile {
  std::vector<float> k, v;  // [keys][D]
  int64_t keys = 0;
};

}  // namespace

int64_t cascade_decode(const PagedAttentionArgs& a) {
  check_paged_metadata(a);
  const int64_t Hq = a.q_heads, Hkv = a.kv_heads, D = a.head_dim, group = Hq / Hkv, bs = a.block_size;
  const int64_t P = aios::flash::kCascadePartition;
  for (int64_t b = 0; b < a.num_seqs; ++b)
    if (a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b] > 1)
      throw Error("cascade_decode: sequence " + std::to_string(b) + " has " +
                  std::to_string(a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b]) + " queries; a decode step has at most 1");
  int64_t keys_read = 0;
  // partials[token * Hq + head]: what each split contributed to that query row.
  std::vector<std::vector<Partial>> partials(size_t(a.num_tokens * Hq));

  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    auto *Q = static_cast<const T*>(a.q), *K = static_cast<const T*>(a.k_cache), *V = static_cast<const T*>(a.v_cache);
    auto* O = static_cast<T*>(a.out);

    // Reads keys [begin, end) of KV head kvh through sequence b's block table.
    auto load = [&](int64_t b, int64_t kvh, int64_t begin, int64_t end) {
      KeyTile t;
      t.keys = end - begin;
      t.k.resize(size_t(t.keys * D));
      t.v.resize(size_t(t.keys * D));
      const int32_t* table = a.block_tables + b * a.max_blocks_per_seq;
      for (int64_t j = 0; j < t.keys; ++j) {
        const int64_t key = begin + j, slot = int64_t(table[key / bs]) * bs + key % bs;
        for (int64_t d = 0; d < D; ++d) {
          t.k[size_t(j * D + d)] = to_float(K[(slot * Hkv + kvh) * D + d]);
          t.v[size_t(j * D + d)] = to_float(V[(slot * Hkv + kvh) * D + d]);
        }
      }
      if (kvh == 0) keys_read += t.keys;  // counted per KV head: every head reads the same keys
      return t;
    };
    // Query row (token, head) over every key of the tile (all lie before the query: no mask).
    auto attend = [&](const KeyTile& t, int64_t token, int64_t head) {
      std::vector<float> q(static_cast<size_t>(D)), s(static_cast<size_t>(t.keys));
      for (int64_t d = 0; d < D; ++d) q[size_t(d)] = to_float(Q[(token * Hq + head) * D + d]);
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < t.keys; ++j) {
        float dot = 0.0f;
        for (int64_t d = 0; d < D; ++d) dot += q[size_t(d)] * t.k[size_t(j * D + d)];
        s[size_t(j)] = dot * a.scale;
        mx = std::fmax(mx, s[size_t(j)]);
      }
      Partial p{0.0f, std::vector<float>(size_t(D), 0.0f)};
      float sum = 0.0f;
      for (int64_t j = 0; j < t.keys; ++j) {
        const float w = std::exp(s[size_t(j)] - mx);
        sum += w;
        for (int64_t d = 0; d < D; ++d) p.out[size_t(d)] += w * t.v[size_t(j * D + d)];
      }
      for (auto& o : p.out) o /= sum;
      p.lse = mx + std::log(sum);
      partials[size_t(token * Hq + head)].push_back(std::move(p));
    };

    // 1. The shared splits: per group leader, split and KV head, one load for all the members sharing it.
    std::vector<int64_t> shared(size_t(a.num_seqs));
    for (int64_t b = 0; b < a.num_seqs; ++b) shared[size_t(b)] = aios::flash::cascade_shared_splits(a, b);
    for (int64_t L = 0; L < a.num_seqs; ++L) {
      if (aios::flash::cascade_leader(a, L) != L || !aios::flash::cascade_in_group(a, L)) continue;
      int64_t run_end = L + 1;
      while (run_end < a.num_seqs && aios::flash::cascade_first_block(a, run_end) == aios::flash::cascade_first_block(a, L))
        ++run_end;
      for (int64_t split = 0; split < shared[size_t(L)]; ++split) {  // the leader shares at least what any member does
        std::vector<int64_t> members;
        for (int64_t x = L; x < run_end; ++x)
          if (shared[size_t(x)] > split) members.push_back(x);
        for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
          const KeyTile tile = load(L, kvh, split * P, (split + 1) * P);
          for (const int64_t x : members)
            for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) attend(tile, a.cu_seqlens_q[x], h);
        }
      }
    }

    // 2. Each sequence's own keys, past its shared splits.
    for (int64_t b = 0; b < a.num_seqs; ++b) {
      if (a.cu_seqlens_q[b + 1] == a.cu_seqlens_q[b]) continue;  // no query this step
      const int64_t begin = shared[size_t(b)] * P, ctx = a.context_lens[b];
      if (begin >= ctx) continue;
      for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
        const KeyTile tile = load(b, kvh, begin, ctx);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) attend(tile, a.cu_seqlens_q[b], h);
      }
    }

    // 3. Merge each query row's partials.
    for (int64_t row = 0; row < a.num_tokens * Hq; ++row) {
      const auto& ps = partials[size_t(row)];
      float mx = -std::numeric_limits<float>::infinity();
      for (const auto& p : ps) mx = std::fmax(mx, p.lse);
      float wsum = 0.0f;
      std::vector<float> acc(size_t(D), 0.0f);
      for (const auto& p : ps) {
        const float w = std::exp(p.lse - mx);
        wsum += w;
        for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += w * p.out[size_t(d)];
      }
      for (int64_t d = 0; d < D; ++d) O[row * D + d] = from_float<T>(wsum > 0.0f ? acc[size_t(d)] / wsum : 0.0f);
    }
  });
  return keys_read;
}

}  // namespace aios::cpu
