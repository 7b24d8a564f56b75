// Reference data-movement ops: fill, strided copy with cast, embedding, row gather/scatter.
#include <cstring>
#include <string>

#include "numeric.h"

namespace aios::cpu {

namespace {
// Reads element i of a typed buffer as double (exact for every dtype we hold but i64 > 2^53).
double read_as_double(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::BF16: return to_float(static_cast<const bf16*>(p)[i]);
    case DType::F16: return to_float(static_cast<const f16*>(p)[i]);
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return double(static_cast<const int64_t*>(p)[i]);
  }
  return 0;
}
void write_from_double(void* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::BF16: static_cast<bf16*>(p)[i] = bf16_from(float(v)); return;
    case DType::F16: static_cast<f16*>(p)[i] = f16_from(float(v)); return;
    case DType::F32: static_cast<float*>(p)[i] = float(v); return;
    case DType::I32: static_cast<int32_t*>(p)[i] = int32_t(v); return;
    case DType::I64: static_cast<int64_t*>(p)[i] = int64_t(v); return;
  }
}
}  // namespace

void fill(void* out, DType dt, int64_t n, double value) {
  for (int64_t i = 0; i < n; ++i) write_from_double(out, dt, i, value);
}

void copy_strided(const void* src, DType src_dt, const int64_t* src_strides, void* dst, DType dst_dt,
                  const int64_t* dst_strides, const int64_t* shape, int rank) {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  const bool same = src_dt == dst_dt;
  const size_t es = dtype_size(src_dt);
  auto dense = [&](const int64_t* strides) {
    int64_t expect = 1;
    for (int d = rank - 1; d >= 0; --d) {
      if (shape[d] != 1 && strides[d] != expect) return false;
      expect *= shape[d];
    }
    return true;
  };
  if (same && dense(src_strides) && dense(dst_strides)) {  // the common case: one block copy
    std::memmove(dst, src, size_t(n) * es);
    return;
  }
  int64_t index[kMaxRank] = {0};
  for (int64_t linear = 0; linear < n; ++linear) {
    int64_t so = 0, doff = 0;
    for (int d = 0; d < rank; ++d) { so += index[d] * src_strides[d]; doff += index[d] * dst_strides[d]; }
    if (same) {
      // Same dtype: move the bits, so i64 values and NaN payloads survive exactly.
      std::memcpy(static_cast<char*>(dst) + doff * es, static_cast<const char*>(src) + so * es, es);
    } else if (src_dt == DType::I64 && dst_dt == DType::I32) {
      static_cast<int32_t*>(dst)[doff] = int32_t(static_cast<const int64_t*>(src)[so]);
    } else if (src_dt == DType::I32 && dst_dt == DType::I64) {
      static_cast<int64_t*>(dst)[doff] = static_cast<const int32_t*>(src)[so];
    } else {
      write_from_double(dst, dst_dt, doff, read_as_double(src, src_dt, so));
    }
    for (int d = rank - 1; d >= 0; --d) {  // odometer increment of the multi-index
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

void embedding(const void* table, DType dt, const void* ids, DType id_dt, void* out, int64_t n_ids,
               int64_t vocab, int64_t dim) {
  const size_t row_bytes = size_t(dim) * dtype_size(dt);
  for (int64_t i = 0; i < n_ids; ++i) {
    int64_t id = load_index(ids, id_dt, i);
    if (id < 0 || id >= vocab)
      throw Error("embedding: token id " + std::to_string(id) + " at position " + std::to_string(i) +
                  " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    std::memcpy(static_cast<char*>(out) + i * row_bytes, static_cast<const char*>(table) + id * row_bytes, row_bytes);
  }
}

void gather_rows(const void* src, int64_t src_rows, const void* idx, DType idx_dt, void* out, int64_t n_idx,
                 int64_t row_bytes) {
  for (int64_t i = 0; i < n_idx; ++i) {
    int64_t r = load_index(idx, idx_dt, i);
    if (r < 0 || r >= src_rows)
      throw Error("gather_rows: index " + std::to_string(r) + " at position " + std::to_string(i) +
                  " is outside [0, " + std::to_string(src_rows) + ")");
    std::memcpy(static_cast<char*>(out) + i * row_bytes, static_cast<const char*>(src) + r * row_bytes, row_bytes);
  }
}

void scatter_rows(const void* src, const void* idx, DType idx_dt, void* dst, int64_t dst_rows, int64_t n_idx,
                  int64_t row_bytes) {
  for (int64_t i = 0; i < n_idx; ++i) {
    int64_t r = load_index(idx, idx_dt, i);
    if (r < 0 || r >= dst_rows)
      throw Error("scatter_rows: index " + std::to_string(r) + " at position " + std::to_string(i) +
                  " is outside [0, " + std::to_string(dst_rows) + ")");
    std::memcpy(static_cast<char*>(dst) + r * row_bytes, static_cast<const char*>(src) + i * row_bytes, row_bytes);
  }
}

}  // namespace aios::cpu
