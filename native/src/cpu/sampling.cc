// Lesson 12's sampler, the reference: one row at a time, plain loops, float32
// values. Sums of probabilities are kept in double (as sample_rows does: a float32
// running sum over 150k terms drifts by more than the smallest probabilities).
// Per row, in vLLM's order: penalties -> temperature -> top-k -> top-p -> min-p,
// then one draw by the exponential race: the kept entry with the largest
// x_i / T - log(-log u_i), u_i from Philox keyed by (seed, position, i). That
// argmax is a draw from softmax(x / T) renormalized over the kept entries (the
// Gumbel-max trick), so no sum and no scan is needed to sample.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include "../aios.h"
#include "../philox.h"

namespace aios::cpu {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The argmax order of ops.argmax and the CUDA kernels: NaN counts as the largest, ties go to the lower index.
bool better(float v, int64_t i, float bv, int64_t bi) {
  if (std::isnan(v)) return !std::isnan(bv) || i < bi;
  if (std::isnan(bv)) return false;
  return v > bv || (v == bv && i < bi);
}

int32_t bit_cast_i32(float v) {
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return i;
}

void check_params(const SampleRowParams& p, int64_t r) {
  auto fail = [&](const std::string& m) { throw Error("sample_tokens: row " + std::to_string(r) + ": " + m); };
  if (!(std::isfinite(p.temperature) && p.temperature >= 0.0f)) fail("temperature must be finite and >= 0, got " + std::to_string(p.temperature));
  if (p.top_k < 0) fail("top_k must be >= 0, got " + std::to_string(p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("top_p must be in (0, 1], got " + std::to_string(p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail("min_p must be in [0, 1], got " + std::to_string(p.min_p));
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f)) fail("repetition_penalty must be finite and > 0");
  if (!std::isfinite(p.presence_penalty) || !std::isfinite(p.frequency_penalty)) fail("presence/frequency penalties must be finite");
  if (p.num_logprobs < -1 || p.num_logprobs > kMaxSampleLogprobs)
    fail("num_logprobs must be in [-1, " + std::to_string(kMaxSampleLogprobs) + "], got " + std::to_string(p.num_logprobs));
}

// The largest value t of `values` (sorted descending, no NaN) whose running weight from the top
// reaches `target`; the last (smallest) value when rounding keeps the sum short of it.
float threshold_from_top(const std::vector<float>& sorted, const std::vector<double>& weights, double target) {
  double cum = 0.0;
  for (size_t j = 0; j < sorted.size(); ++j) {
    cum += weights[j];
    if (cum >= target) return sorted[j];
  }
  return sorted.back();
}

}  // namespace

void sample_tokens(const SampleTokensArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  float* thresholds = static_cast<float*>(a.workspace);
  float* maxima = thresholds + rows;
  // The token output's parts (a shard writes shard_out instead, and has no log-probs).
  float* chosen_logprob = a.out ? reinterpret_cast<float*>(a.out + rows) : nullptr;
  int32_t* top_ids = a.out ? a.out + 2 * rows : nullptr;
  float* top_logprobs = a.out ? reinterpret_cast<float*>(a.out + 2 * rows + rows * kMaxSampleLogprobs) : nullptr;

  // Each row's penalty entries, checked: inside the batch and vocabulary, each pair once.
  std::vector<std::vector<SamplePenalty>> entries(static_cast<size_t>(rows));
  std::unordered_set<int64_t> seen;
  for (int64_t e = 0; e < a.num_penalties; ++e) {
    const SamplePenalty& p = a.penalties[e];
    if (p.row < 0 || p.row >= rows || p.token < 0 || p.token >= n || p.output_count < 0 || (p.in_prompt != 0 && p.in_prompt != 1))
      throw Error("sample_tokens: penalty entry " + std::to_string(e) + " (row " + std::to_string(p.row) + ", token " +
                  std::to_string(p.token) + ", count " + std::to_string(p.output_count) + ", in prompt " +
                  std::to_string(p.in_prompt) + ") is outside " + std::to_string(rows) + " rows x " + std::to_string(n) +
                  " tokens or malformed");
    if (!seen.insert(int64_t(p.row) * n + p.token).second)
      throw Error("sample_tokens: penalty entry " + std::to_string(e) + " repeats (row " + std::to_string(p.row) +
                  ", token " + std::to_string(p.token) + ")");
    entries[size_t(p.row)].push_back(p);
  }
  for (int64_t r = 0; r < rows; ++r) check_params(a.params[r], r);
  const int64_t base = a.index_base;
  if (a.shard_out) {
    if (base < 0 || base % 4 != 0 || base + n > int64_t(kNoSampleIndex))
      throw Error("sample_tokens (a shard): the slice must start at a multiple of 4 and end below 2^31 - 1, got " + std::to_string(base) + " + " + std::to_string(n));
    if (a.num_penalties > 0) throw Error("sample_tokens (a shard): penalties need the whole row");
    for (int64_t r = 0; r < rows; ++r) {
      const SampleRowParams& p = a.params[r];
      if ((p.temperature > 0.0f && (p.top_k > 0 || p.top_p < 1.0f || p.min_p > 0.0f)) || p.num_logprobs >= 0)
        throw Error("sample_tokens (a shard): row " + std::to_string(r) + " filters or asks for log-probs, which need the whole row");
    }
  } else if (base != 0) {
    throw Error("sample_tokens: a slice of the vocabulary (index_base) is only for a shard's race (shard_out)");
  }

  std::vector<float> x(static_cast<size_t>(n)), sorted;
  std::vector<double> weights;
  for (int64_t r = 0; r < rows; ++r) {
    const SampleRowParams& p = a.params[r];
    const float* raw = a.logits + r * n;
    // 1. Penalties, on a copy (the logits stay as they were).
    std::copy(raw, raw + n, x.begin());
    for (const SamplePenalty& e : entries[size_t(r)])
      x[size_t(e.token)] = sample_rules::penalized_logit(x[size_t(e.token)], p.repetition_penalty, p.presence_penalty,
                                                         p.frequency_penalty, e.output_count, e.in_prompt);
    thresholds[r] = -kInf;
    maxima[r] = 0.0f;
    int64_t token = 0;
    float token_score = 0.0f;  // what a shard reports with its best (shard_out)
    if (p.temperature == 0.0f) {
      // Greedy: the argmax of the penalized row.
      for (int64_t i = 1; i < n; ++i)
        if (better(x[size_t(i)], i, x[size_t(token)], token)) token = i;
      token_score = x[size_t(token)];
    } else {
      // 2. Temperature: scores are x / T; the filters below compare x, whose order is the same.
      const float inv_t = 1.0f / p.temperature;
      const bool filtered = p.top_k > 0 || p.top_p < 1.0f || p.min_p > 0.0f;
      float threshold = -kInf, mx = 0.0f;
      if (filtered) {
        mx = -kInf;
        sorted.clear();
        for (float v : x)
          if (!std::isnan(v)) { sorted.push_back(v); mx = std::max(mx, v); }
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        // 3. Top-k: keep values >= the k-th largest (ties kept).
        if (p.top_k > 0 && !sorted.empty()) threshold = sorted[size_t(std::min<int64_t>(p.top_k, int64_t(sorted.size())) - 1)];
        // 4. Top-p over what top-k kept: the largest t whose mass of values >= t reaches top_p of the kept mass.
        if (p.top_p < 1.0f && !sorted.empty()) {
          while (!sorted.empty() && sorted.back() < threshold) sorted.pop_back();
          weights.resize(sorted.size());
          double total = 0.0;
          for (size_t j = 0; j < sorted.size(); ++j) total += weights[j] = std::exp((sorted[j] - mx) * inv_t);
          threshold = std::max(threshold, threshold_from_top(sorted, weights, double(p.top_p) * total));
        }
        thresholds[r] = threshold;
        maxima[r] = mx;
      }
      // 5. Min-p: keep (x - max) / T >= log(min_p), i.e. p_i >= min_p * p_max.
      const float log_min_p = p.min_p > 0.0f ? std::log(p.min_p) : -kInf;
      // 6. The race over the kept entries.
      float best = -kInf;
      int64_t best_i = n;
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[size_t(i)];
        if (std::isnan(v) || v < threshold || (v - mx) * inv_t < log_min_p) continue;
        const int64_t g = base + i;  // the entry's index in the whole vocabulary: its random number
        const uint32_t bits = philox::sample_bits(p.seed_lo, p.seed_hi, p.position, uint32_t(g >> 2)).v[g & 3];
        const float score = v * inv_t - std::log(-std::log(philox::open_uniform(bits)));
        if (better(score, i, best, best_i)) { best = score; best_i = i; }
      }
      if (a.shard_out && best_i == n) {  // nothing kept: every logit of the slice NaN
        a.shard_out[2 * r] = bit_cast_i32(-kInf);
        a.shard_out[2 * r + 1] = kNoSampleIndex;
        continue;
      }
      token = best_i < n ? best_i : 0;  // nothing kept: every logit NaN
      token_score = best;
    }
    if (a.shard_out) {
      a.shard_out[2 * r] = bit_cast_i32(token_score);
      a.shard_out[2 * r + 1] = int32_t(base + token);
      continue;
    }
    a.out[r] = int32_t(token);

    // 7. Log-probs under the raw distribution: log_softmax of the logits as the model gave them.
    if (p.num_logprobs >= 0) {
      float mx = -kInf;
      for (int64_t i = 0; i < n; ++i)
        if (!std::isnan(raw[i])) mx = std::max(mx, raw[i]);
      double total = 0.0;
      for (int64_t i = 0; i < n; ++i)
        if (!std::isnan(raw[i])) total += std::exp(double(raw[i]) - double(mx));
      const float lse = mx + float(std::log(total));
      chosen_logprob[r] = raw[token] - lse;
      std::vector<int32_t> order;
      order.reserve(size_t(n));
      for (int64_t i = 0; i < n; ++i)
        if (!std::isnan(raw[i])) order.push_back(int32_t(i));
      const size_t k = std::min(size_t(p.num_logprobs), order.size());
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int32_t i, int32_t j) { return raw[i] > raw[j] || (raw[i] == raw[j] && i < j); });
      for (size_t j = 0; j < k; ++j) {
        top_ids[r * kMaxSampleLogprobs + int64_t(j)] = order[j];
        top_logprobs[r * kMaxSampleLogprobs + int64_t(j)] = raw[order[j]] - lse;
      }
      // Fewer non-NaN logits than alternatives asked: the rest say so (id -1), never stale memory.
      for (int j = int(k); j < p.num_logprobs; ++j) {
        top_ids[r * kMaxSampleLogprobs + j] = -1;
        top_logprobs[r * kMaxSampleLogprobs + j] = -INFINITY;
      }
    }
  }
}

}  // namespace aios::cpu
