// Naive causal grouped-query attention over materialized scores: the version
// lessons 03-08 use, and the baseline lesson 09's FlashAttention is measured
// against. One block per (head, query): it writes that query's full score row
// to global memory, softmaxes it there, then reads it back to weight V.
// Global traffic is O(Hq * Tq * Tk) floats, which is the point lesson 09 makes.
#include "common.cuh"

namespace aios::cuda {

namespace {

constexpr int kThreads = 128;                        // one block per (head, query)
constexpr int kMaxDimsPerThread = 1024 / kThreads;   // head_dim <= 1024 (checked by the binding)

template <class T> __global__ void __launch_bounds__(kThreads) attention_kernel(const T* q, const T* k, const T* v, T* out, float* scores,
                                                    AttentionShape s) {
  extern __shared__ float q_row[];  // head_dim floats
  __shared__ float scratch[32];
  const int64_t Tq = s.q_len, Tk = s.kv_len, Hq = s.q_heads, Hkv = s.kv_heads, D = s.head_dim;
  const int64_t h = blockIdx.x / Tq, i = blockIdx.x % Tq, kvh = h / (Hq / Hkv);
  const int64_t last = s.causal ? Tk - Tq + i : Tk - 1;
  float* p = scores + (h * Tq + i) * Tk;
  // Where key j lives: row j, or its slot in a paged pool. A bad slot reads row 0
  // (the host validated the slots it built; the device cannot throw).
  auto kv_row = [&](int64_t j) -> int64_t {
    if (!s.kv_slots) return j;
    const int64_t r = s.kv_slots[j];
    return r >= 0 && r < s.kv_rows ? r : 0;
  };

  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) q_row[d] = to_f(q[(i * Hq + h) * D + d]);
  __syncthreads();

  // 1. scores: one key per thread
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) {
    float dot = -INFINITY;
    if (j <= last) {
      const T* kj = k + (kv_row(j) * Hkv + kvh) * D;
      dot = 0.0f;
      for (int64_t d = 0; d < D; ++d) dot += q_row[d] * to_f(kj[d]);
      dot *= s.scale;
    }
    p[j] = dot;
    mx = fmaxf(mx, dot);
  }
  mx = block_reduce<true>(mx, scratch);

  // 2. softmax in place
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) {
    float e = j <= last ? __expf(p[j] - mx) : 0.0f;
    p[j] = e;
    sum += e;
  }
  sum = block_reduce<false>(sum, scratch);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  __syncthreads();  // every thread's p[j] writes are visible before the weighted sum reads them all

  // 3. out = p @ V. Keys go in chunks of kThreads: the block first copies the
  //    chunk's weights and rows to shared memory, so the inner loop's only
  //    global loads are V's, independent of each other (a loop whose next load
  //    address came from a global load would wait on that load every key).
  //    Each thread owns up to kMaxDimsPerThread output dimensions, in registers.
  __shared__ float p_chunk[kThreads];
  __shared__ int64_t row_chunk[kThreads];
  const int64_t visible = last + 1 < Tk ? last + 1 : Tk;
  float acc[kMaxDimsPerThread];
#pragma unroll
  for (int r = 0; r < kMaxDimsPerThread; ++r) acc[r] = 0.0f;
  for (int64_t j0 = 0; j0 < visible; j0 += kThreads) {
    const int n = int(visible - j0 < kThreads ? visible - j0 : kThreads);
    __syncthreads();  // the previous chunk is consumed
    if (int(threadIdx.x) < n) {
      p_chunk[threadIdx.x] = p[j0 + threadIdx.x];
      row_chunk[threadIdx.x] = kv_row(j0 + threadIdx.x);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kMaxDimsPerThread; ++r) {
      const int64_t d = threadIdx.x + int64_t(r) * kThreads;
      if (d < D) {
        float a = acc[r];
#pragma unroll 4
        for (int jj = 0; jj < n; ++jj) a += p_chunk[jj] * to_f(v[(row_chunk[jj] * Hkv + kvh) * D + d]);
        acc[r] = a;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kMaxDimsPerThread; ++r) {
    const int64_t d = threadIdx.x + int64_t(r) * kThreads;
    if (d < D) out[(i * Hq + h) * D + d] = from_f<T>(acc[r] * inv);
  }
  __syncthreads();  // all reads of the unnormalized row are done before it is rescaled
  // Leave normalized probabilities in `scores`, as the CPU reference does.
  for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) p[j] *= inv;
}

}  // namespace

void attention(cudaStream_t st, const void* q, const void* k, const void* v, void* out, float* scores,
               const AttentionShape& s, DType dt) {
  const int64_t blocks = s.q_heads * s.q_len;
  if (blocks == 0) return;
  // Each thread keeps kMaxDimsPerThread output dimensions in registers: a wider head would be cut short.
  if (s.head_dim > int64_t(kThreads) * kMaxDimsPerThread)
    throw Error("attention: head_dim " + std::to_string(s.head_dim) + " exceeds the kernel's " + std::to_string(kThreads * kMaxDimsPerThread));
  if (blocks > 0x7fffffffLL) throw Error("attention: q_heads * q_len is too large for one launch");
  const size_t shared = size_t(s.head_dim) * sizeof(float);
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    attention_kernel<T><<<unsigned(blocks), kThreads, shared, st>>>(static_cast<const T*>(q), static_cast<const T*>(k),
                                                               static_cast<const T*>(v), static_cast<T*>(out), scores, s);
  });
  check_launch("attention");
}

}  // namespace aios::cuda
