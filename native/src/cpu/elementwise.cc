// Reference elementwise ops and row-wise reductions: SiLU, add, mul, RMSNorm,
// rotary embedding, softmax, argmax. Every value goes through float32.
#include <cmath>
#include <limits>
#include <string>

#include "numeric.h"

namespace aios::cpu {

void silu(const void* x, void* out, int64_t n, DType dt) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    auto* xi = static_cast<const T*>(x);
    auto* o = static_cast<T*>(out);
    for (int64_t i = 0; i < n; ++i) {
      float v = to_float(xi[i]);
      o[i] = from_float<T>(v / (1.0f + std::exp(-v)));
    }
  });
}

void add(const void* a, const void* b, void* out, int64_t n, DType dt) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    auto *pa = static_cast<const T*>(a), *pb = static_cast<const T*>(b);
    auto* o = static_cast<T*>(out);
    for (int64_t i = 0; i < n; ++i) o[i] = from_float<T>(to_float(pa[i]) + to_float(pb[i]));
  });
}

void mul(const void* a, const void* b, void* out, int64_t n, DType dt) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    auto *pa = static_cast<const T*>(a), *pb = static_cast<const T*>(b);
    auto* o = static_cast<T*>(out);
    for (int64_t i = 0; i < n; ++i) o[i] = from_float<T>(to_float(pa[i]) * to_float(pb[i]));
  });
}

void rmsnorm(const void* x, const void* weight, void* out, int64_t rows, int64_t dim, float eps, DType dt) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    auto* w = static_cast<const T*>(weight);
    for (int64_t r = 0; r < rows; ++r) {
      auto* xr = static_cast<const T*>(x) + r * dim;
      auto* o = static_cast<T*>(out) + r * dim;
      float sum_sq = 0.0f;
      for (int64_t i = 0; i < dim; ++i) { float v = to_float(xr[i]); sum_sq += v * v; }
      float inv_rms = 1.0f / std::sqrt(sum_sq / float(dim) + eps);
      for (int64_t i = 0; i < dim; ++i) o[i] = from_float<T>(to_float(xr[i]) * inv_rms * to_float(w[i]));
    }
  });
}

void rope_neox(const void* x, void* out, const int32_t* positions, const float* cos, const float* sin,
               int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_pos, DType dt) {
  const int64_t half = head_dim / 2;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t t = 0; t < tokens; ++t) {
      int64_t p = positions[t];
      if (p < 0 || p >= max_pos)
        throw Error("rope: position " + std::to_string(p) + " of token " + std::to_string(t) +
                    " is outside the table [0, " + std::to_string(max_pos) + ")");
      const float *c = cos + p * half, *s = sin + p * half;
      for (int64_t h = 0; h < heads; ++h) {
        auto* xi = static_cast<const T*>(x) + (t * heads + h) * head_dim;
        auto* o = static_cast<T*>(out) + (t * heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          // Read both halves before writing: out may alias x.
          float x1 = to_float(xi[i]), x2 = to_float(xi[i + half]);
          o[i] = from_float<T>(x1 * c[i] - x2 * s[i]);
          o[i + half] = from_float<T>(x2 * c[i] + x1 * s[i]);
        }
      }
    }
  });
}

void softmax(const void* x, void* out, int64_t rows, int64_t n, DType dt) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t r = 0; r < rows; ++r) {
      auto* xr = static_cast<const T*>(x) + r * n;
      auto* o = static_cast<T*>(out) + r * n;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, to_float(xr[i]));
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum += std::exp(to_float(xr[i]) - mx);
      for (int64_t i = 0; i < n; ++i) o[i] = from_float<T>(std::exp(to_float(xr[i]) - mx) / sum);
    }
  });
}

void argmax(const void* x, int32_t* out, int64_t rows, int64_t n, DType dt) {
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t r = 0; r < rows; ++r) {
      auto* xr = static_cast<const T*>(x) + r * n;
      int64_t best = 0;
      float best_v = to_float(xr[0]);
      for (int64_t i = 1; i < n; ++i) {
        float v = to_float(xr[i]);
        if (v > best_v || (std::isnan(v) && !std::isnan(best_v))) { best_v = v; best = i; }
      }
      out[r] = int32_t(best);
    }
  });
}

}  // namespace aios::cpu
