// Reference fused kernels (lesson 10): the same arithmetic as the unfused ops
// they replace, rounding to the storage type at the same points, so the CUDA
// versions and the fused forward can be checked against the unfused path.
#include <cmath>
#include <string>
#include <vector>

#include "numeric.h"

namespace aios::cpu {

// The unfused ops themselves, composed: the fused kernels' definition, so "rounds
// where the unfused ops round" holds by construction.
void add_rmsnorm(const void* x, void* residual, const void* weight, void* out, int64_t rows, int64_t dim, float eps,
                 DType dt) {
  add(x, residual, residual, rows * dim, dt);
  rmsnorm(residual, weight, out, rows, dim, eps, dt);
}

void silu_mul(const void* gate_up, void* out, int64_t rows, int64_t inter, DType dt) {
  const int64_t row_bytes = inter * int64_t(dtype_size(dt));
  for (int64_t r = 0; r < rows; ++r) {
    const char* g = static_cast<const char*>(gate_up) + r * 2 * row_bytes;
    char* o = static_cast<char*>(out) + r * row_bytes;
    silu(g, o, inter, dt);        // silu(gate), stored as ops.silu stores it
    mul(o, g + row_bytes, o, inter, dt);  // times up
  }
}

void qk_norm_rope_store(const QkNormRopeStoreArgs& a) {
  const int64_t D = a.head_dim, half = D / 2, heads = a.q_heads + 2 * a.kv_heads;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int64_t p = a.positions[t], slot = a.slot_mapping[t];
    if (p < 0 || p >= a.max_pos)
      throw Error("qk_norm_rope_store: position " + std::to_string(p) + " of token " + std::to_string(t) +
                  " is outside the table [0, " + std::to_string(a.max_pos) + ")");
    if (slot >= a.num_slots)
      throw Error("qk_norm_rope_store: slot " + std::to_string(slot) + " of token " + std::to_string(t) +
                  " is outside the pool's " + std::to_string(a.num_slots) + " slots");
  }
  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    auto* qkv = static_cast<const T*>(a.qkv);
    auto *qn = static_cast<const T*>(a.q_norm), *kn = static_cast<const T*>(a.k_norm);
    std::vector<float> normed(static_cast<size_t>(D));
    for (int64_t t = 0; t < a.tokens; ++t) {
      const int64_t p = a.positions[t], slot = a.slot_mapping[t];
      const float *c = a.cos + p * half, *s = a.sin + p * half;
      for (int64_t h = 0; h < heads; ++h) {
        const T* x = qkv + (t * heads + h) * D;
        const bool is_q = h < a.q_heads, is_v = h >= a.q_heads + a.kv_heads;
        T* dst;
        if (is_q) dst = static_cast<T*>(a.q_out) + (t * a.q_heads + h) * D;
        else if (slot < 0) continue;
        else {
          const int64_t kvh = is_v ? h - a.q_heads - a.kv_heads : h - a.q_heads;
          dst = static_cast<T*>(is_v ? a.v_cache : a.k_cache) + (slot * a.kv_heads + kvh) * D;
        }
        if (is_v) {
          for (int64_t i = 0; i < D; ++i) dst[i] = x[i];
          continue;
        }
        // RMSNorm over the head (rounded as ops.rmsnorm stores it), then the neox rotation.
        const T* w = is_q ? qn : kn;
        float sum_sq = 0.0f;
        for (int64_t i = 0; i < D; ++i) { const float v = to_float(x[i]); sum_sq += v * v; }
        const float inv_rms = 1.0f / std::sqrt(sum_sq / float(D) + a.eps);
        for (int64_t i = 0; i < D; ++i) normed[size_t(i)] = to_float(from_float<T>(to_float(x[i]) * inv_rms * to_float(w[i])));
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = normed[size_t(i)], x2 = normed[size_t(i + half)];
          dst[i] = from_float<T>(x1 * c[i] - x2 * s[i]);
          dst[i + half] = from_float<T>(x2 * c[i] + x1 * s[i]);
        }
      }
    }
  });
}

}  // namespace aios::cpu
