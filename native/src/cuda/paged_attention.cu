// Attention of a packed step over the paged KV pool, the straightforward
// version lessons 07 and 08 use (lesson 09 writes the tiled and split-KV ones).
//
// One thread block per (query token, KV head): it serves the G query heads
// that share that KV head, so each K/V row is read once for all of them. The
// block's 8 half-warps take keys in turn; a half-warp's 16 lanes each hold
// head_dim/16 consecutive dimensions (16 bytes for bf16 and head_dim 128), so a
// key's row is one coalesced 256-byte read. Each half-warp keeps an online
// softmax (running max, sum and weighted V) per query head; the 8 partial
// results are merged through shared memory at the end. Grid: num_tokens x
// kv_heads blocks, so a decode step of B sequences has B x kv_heads blocks and
// a prefill has one per prompt token and KV head: the whole GPU is busy. What
// it does not do: share a K/V row between the queries of one prompt (every
// query token re-reads its prefix, from L2 when it is lucky), or split one
// long context over several blocks. Lesson 09 does both.
#include <algorithm>

#include "common.cuh"

namespace aios::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kLanesPerKey = 16;
constexpr int kKeyGroups = kThreads / kLanesPerKey;  // half-warps per block
constexpr int kUnroll = 2;                           // keys per half-warp per iteration, loads issued together

template <class T, int N> struct alignas(sizeof(T) * N <= 16 ? sizeof(T) * N : 16) Vec {
  T v[N];
};

template <class T, int N> __device__ __forceinline__ void load_f(const T* p, float (&out)[N]) {
  const Vec<T, N> x = *reinterpret_cast<const Vec<T, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = to_f(x.v[i]);
}

template <class T, int D, int G>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(PagedAttentionArgs a) {
  constexpr int VEC = D / kLanesPerKey;
  const int64_t t = blockIdx.x, kvh = blockIdx.y;
  const int lane16 = threadIdx.x % kLanesPerKey, key_group = threadIdx.x / kLanesPerKey;  // key_group: the half-warp

  // The sequence of token t: the last b with cu[b] <= t (binary search over num_seqs + 1 offsets).
  int64_t lo = 0, hi = a.num_seqs - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (a.cu_seqlens_q[mid] <= t) lo = mid; else hi = mid - 1;
  }
  const int64_t b = lo;
  const int64_t q_len = a.cu_seqlens_q[b + 1] - a.cu_seqlens_q[b];
  const int64_t pos = int64_t(a.context_lens[b]) - q_len + (t - a.cu_seqlens_q[b]);
  const int32_t* table = a.block_tables + b * a.max_blocks_per_seq;
  const int64_t num_blocks = a.num_slots / a.block_size, Hkv = a.kv_heads;

  const T* Q = static_cast<const T*>(a.q);
  const T* K = static_cast<const T*>(a.k_cache);
  const T* V = static_cast<const T*>(a.v_cache);
  float q[G][VEC];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    load_f<T, VEC>(Q + (t * a.q_heads + kvh * G + g) * D + lane16 * VEC, q[g]);
#pragma unroll
    for (int i = 0; i < VEC; ++i) q[g][i] *= a.scale;
  }

  float m[G], l[G], acc[G][VEC];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < VEC; ++i) acc[g][i] = 0.0f;
  }

  // Where key j lives. A block id outside the pool reads block 0: the device
  // cannot throw, and the host builds the tables from its block manager.
  auto row_of = [&](int64_t j) -> int64_t {
    int64_t blk = table[j / a.block_size];
    if (blk < 0 || blk >= num_blocks) blk = 0;
    return ((blk * a.block_size + j % a.block_size) * Hkv + kvh) * D + lane16 * VEC;
  };

  // Keys in rounds of kKeyGroups * kUnroll: warp w takes keys [base, base + 2 * kUnroll) of each round,
  // its lower half-warp the first kUnroll of them, its upper half the rest. The loop's trip count
  // depends on the warp only (never on the half), so both halves always reach the shuffles together:
  // a full-mask __shfl_xor_sync with a half-warp gone would be undefined (and hangs).
  const int warp = threadIdx.x / 32, half = (threadIdx.x / kLanesPerKey) % 2;
  constexpr int64_t kRound = int64_t(kKeyGroups) * kUnroll, kPerWarp = 2 * kUnroll;
  for (int64_t base = int64_t(warp) * kPerWarp; base <= pos; base += kRound) {
    const int64_t j0 = base + int64_t(half) * kUnroll;
    float k[kUnroll][VEC], v[kUnroll][VEC];
    bool live[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      live[u] = j0 + u <= pos;
      const int64_t r = row_of(live[u] ? j0 + u : pos);  // a dead key reads a real row, then is ignored
      load_f<T, VEC>(K + r, k[u]);
      load_f<T, VEC>(V + r, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < VEC; ++i) s += q[g][i] * k[u][i];
#pragma unroll
        for (int o = kLanesPerKey / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (!live[u]) continue;  // uniform within the half-warp: its 16 lanes share j0
        const float m_new = fmaxf(m[g], s);
        const float keep = __expf(m[g] - m_new), p = __expf(s - m_new);
        l[g] = l[g] * keep + p;
#pragma unroll
        for (int i = 0; i < VEC; ++i) acc[g][i] = acc[g][i] * keep + p * v[u][i];
        m[g] = m_new;
      }
    }
  }

  // Merge the key groups: out = sum_k acc_k e^(m_k - M) / sum_k l_k e^(m_k - M).
  __shared__ float s_m[kKeyGroups], s_l[kKeyGroups];
  __shared__ float s_acc[kKeyGroups][D];
  T* O = static_cast<T*>(a.out);
#pragma unroll
  for (int g = 0; g < G; ++g) {
    __syncthreads();  // the previous head's merge has read s_acc
    if (lane16 == 0) {
      s_m[key_group] = m[g];
      s_l[key_group] = l[g];
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) s_acc[key_group][lane16 * VEC + i] = acc[g][i];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int k = 0; k < kKeyGroups; ++k) M = fmaxf(M, s_m[k]);
    float denom = 0.0f;
#pragma unroll
    for (int k = 0; k < kKeyGroups; ++k) denom += s_m[k] == -INFINITY ? 0.0f : s_l[k] * __expf(s_m[k] - M);
    const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
    for (int d = threadIdx.x; d < D; d += kThreads) {
      float o = 0.0f;
#pragma unroll
      for (int k = 0; k < kKeyGroups; ++k)
        if (s_m[k] != -INFINITY) o += s_acc[k][d] * __expf(s_m[k] - M);
      O[(t * a.q_heads + kvh * G + g) * D + d] = from_f<T>(o * inv);
    }
  }
}

template <class T, int D> void launch_for_group(cudaStream_t st, const PagedAttentionArgs& a, int64_t group) {
  const dim3 grid(unsigned(a.num_tokens), unsigned(a.kv_heads));
  switch (group) {
#define AIOS_GROUP(G) \
  case G: paged_attention_kernel<T, D, G><<<grid, kThreads, 0, st>>>(a); return;
    AIOS_GROUP(1) AIOS_GROUP(2) AIOS_GROUP(3) AIOS_GROUP(4) AIOS_GROUP(5) AIOS_GROUP(6) AIOS_GROUP(7) AIOS_GROUP(8)
#undef AIOS_GROUP
    default:
      throw Error("paged_attention: " + std::to_string(group) + " query heads per KV head; the kernel handles 1 to 8");
  }
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

void paged_attention(cudaStream_t st, const PagedAttentionArgs& a) {
  if (a.num_tokens == 0) return;
  if (a.num_tokens > 0x7fffffffLL || a.kv_heads > 65535) throw Error("paged_attention: too many tokens or KV heads for one launch");
  const int64_t group = a.q_heads / a.kv_heads;
  dispatch_float(a.dt, [&](auto tag) {
    using T = decltype(tag);
    // Each lane reads head_dim/16 consecutive elements as one vector.
    const size_t vec_bytes = std::min<size_t>(16, sizeof(T) * size_t(a.head_dim / kLanesPerKey));
    for (const void* p : {a.q, a.k_cache, a.v_cache, static_cast<const void*>(a.out)})
      if (!aligned(p, vec_bytes)) throw Error("paged_attention: a tensor is not aligned to " + std::to_string(vec_bytes) + " bytes");
    switch (a.head_dim) {
      case 32: launch_for_group<T, 32>(st, a, group); break;
      case 64: launch_for_group<T, 64>(st, a, group); break;
      case 128: launch_for_group<T, 128>(st, a, group); break;
      case 256: launch_for_group<T, 256>(st, a, group); break;
      default: throw Error("paged_attention: head_dim " + std::to_string(a.head_dim) + " is not one of 32, 64, 128, 256");
    }
  });
  check_launch("paged_attention");
}

}  // namespace aios::cuda
