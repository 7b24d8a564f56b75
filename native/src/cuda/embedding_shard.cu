// Lesson 14's vocab-parallel embedding lookup: one block per token.
#include "../tp.h"
#include "common.cuh"

namespace aios::cuda {

namespace {
template <class T> __global__ void embedding_shard_kernel(const T* table, const void* ids, bool ids64, T* out,
                                                          int64_t vocab, int64_t start, int64_t rows, int64_t dim) {
  const int64_t row = blockIdx.x;
  const int64_t id = load_index(ids, ids64, row);
  const bool mine = id >= 0 && id < vocab && id >= start && id < start + rows;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
    out[row * dim + c] = mine ? table[(id - start) * dim + c] : from_f<T>(0.0f);
}
}  // namespace

void embedding_shard(cudaStream_t st, const void* table, DType dt, const void* ids, DType id_dt, void* out,
                     int64_t n_ids, int64_t vocab, int64_t start, int64_t rows, int64_t dim) {
  if (n_ids == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    embedding_shard_kernel<T><<<unsigned(n_ids), 256, 0, st>>>(static_cast<const T*>(table), ids, id_dt == DType::I64,
                                                               static_cast<T*>(out), vocab, start, rows, dim);
  });
  check_launch("embeddingShard");
}

}  // namespace aios::cuda
