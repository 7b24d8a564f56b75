// Reference causal grouped-query attention over materialized scores:
// scores = q k^T * scale (masked), softmax per row, out = scores v.
#include <cmath>
#include <limits>
#include <string>

#include "numeric.h"
#include "parallel.h"

namespace aios::cpu {

void attention(const void* q, const void* k, const void* v, void* out, float* scores, const AttentionShape& s,
               DType dt) {
  const int64_t Tq = s.q_len, Tk = s.kv_len, Hq = s.q_heads, Hkv = s.kv_heads, D = s.head_dim;
  const int64_t group = Hq / Hkv;  // query heads that share one key/value head
  if (s.kv_slots)
    for (int64_t j = 0; j < Tk; ++j)
      if (s.kv_slots[j] < 0 || s.kv_slots[j] >= s.kv_rows)
        throw Error("attention: kv slot " + std::to_string(s.kv_slots[j]) + " of key " + std::to_string(j) +
                    " is outside the pool's " + std::to_string(s.kv_rows) + " rows");
  auto kv_row = [&](int64_t j) -> int64_t { return s.kv_slots ? s.kv_slots[j] : j; };  // where key j lives
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    auto *Q = static_cast<const T*>(q), *K = static_cast<const T*>(k), *V = static_cast<const T*>(v);
    auto* O = static_cast<T*>(out);
    parallel_for(Hq * Tq, 4, [&](int64_t row_begin, int64_t row_end) {
      for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t h = row / Tq, i = row % Tq, kvh = h / group;
        const int64_t last = s.causal ? Tk - Tq + i : Tk - 1;  // last key this query may see
        float* p = scores + (h * Tq + i) * Tk;
        const T* qi = Q + (i * Hq + h) * D;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < Tk; ++j) {
          if (j > last) { p[j] = -std::numeric_limits<float>::infinity(); continue; }
          const T* kj = K + (kv_row(j) * Hkv + kvh) * D;
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) dot += to_float(qi[d]) * to_float(kj[d]);
          p[j] = dot * s.scale;
          mx = std::fmax(mx, p[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < Tk; ++j) {
          p[j] = j > last ? 0.0f : std::exp(p[j] - mx);
          sum += p[j];
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // a query with no visible key gets zeros
        for (int64_t j = 0; j < Tk; ++j) p[j] *= inv;
        T* oi = O + (i * Hq + h) * D;
        for (int64_t d = 0; d < D; ++d) {
          float acc = 0.0f;
          for (int64_t j = 0; j <= last && j < Tk; ++j) acc += p[j] * to_float(V[(kv_row(j) * Hkv + kvh) * D + d]);
          oi[d] = from_float<T>(acc);
        }
      }
    });
  });
}

}  // namespace aios::cpu
