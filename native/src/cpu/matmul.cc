// Reference matmul with a transposed weight: out[M, N] = x[M, K] @ w[N, K]^T.
// Both operands are read along K, so each output is one contiguous dot product.
#include <vector>

#include "numeric.h"
#include "parallel.h"

namespace aios::cpu {

namespace {
template <class T> void to_f32_row(const T* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

// Eight partial sums keep the loop free of a serial dependency chain.
float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
}  // namespace

void matmul_nt(const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K, DType in_dt,
               DType out_dt) {
  std::vector<float> xf(size_t(M * K));
  dispatch_float(in_dt, [&](auto tag) {
    using T = decltype(tag);
    to_f32_row(static_cast<const T*>(x), xf.data(), M * K);
  });
  dispatch_float(out_dt, [&](auto out_tag) {
    using O = decltype(out_tag);
    dispatch_float(in_dt, [&](auto in_tag) {
      using T = decltype(in_tag);
      // Each worker takes a range of output columns (weight rows): a weight row is
      // converted to float32 once and dotted with every input row.
      parallel_for(N, 64, [&](int64_t n_begin, int64_t n_end) {
        std::vector<float> wrow(static_cast<size_t>(K));
        for (int64_t n = n_begin; n < n_end; ++n) {
          to_f32_row(static_cast<const T*>(w) + n * K, wrow.data(), K);
          for (int64_t m = 0; m < M; ++m)
            static_cast<O*>(out)[m * N + n] = from_float<O>(dot(xf.data() + m * K, wrow.data(), K));
        }
      });
    });
  });
}

}  // namespace aios::cpu
