// Lesson 14's vocab-parallel embedding lookup, reference version.
#include <cstring>
#include <string>

#include "../tp.h"
#include "numeric.h"

namespace aios::cpu {

void embedding_shard(const void* table, DType dt, const void* ids, DType id_dt, void* out, int64_t n_ids,
                     int64_t vocab, int64_t start, int64_t rows, int64_t dim) {
  const size_t row_bytes = size_t(dim) * dtype_size(dt);
  for (int64_t i = 0; i < n_ids; ++i) {
    const int64_t id = load_index(ids, id_dt, i);
    if (id < 0 || id >= vocab)
      throw Error("embeddingShard: token id " + std::to_string(id) + " at position " + std::to_string(i) +
                  " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    char* o = static_cast<char*>(out) + i * row_bytes;
    if (id >= start && id < start + rows)
      std::memcpy(o, static_cast<const char*>(table) + (id - start) * row_bytes, row_bytes);
    else
      std::memset(o, 0, row_bytes);  // all-zero bits are +0.0 in bf16, f16 and f32 alike
  }
}

}  // namespace aios::cpu
