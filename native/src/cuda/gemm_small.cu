// The small-M GEMM: out[M, N] = x[M, K] @ w[N, K]^T for 1..64 tokens (a
// decode step's projections). At M = 1 each weight element is used for one
// multiply-add, so the kernel is a weight-streaming loop: its speed is how
// many 16-byte loads it keeps in flight on every SM (gemm_small.h has the
// tiling and the split plan).
//
// Tensor cores with the roles swapped: the WEIGHT is mma.sync's A operand (16
// output features per tile) and x the B operand (8 tokens per n-tile), so a
// single token wastes 7 of 8 columns of an mma, not 15 of 16 rows, and the
// mma's are nowhere near the bottleneck anyway. A dot product does not care
// in which order its k terms come, as long as A and B use the same order, so
// lane (g, t) of a warp loads the 16 contiguous bytes at k = 32s + 8t of
// weight rows g and g + 8 and the 16 bytes at the same k of x's token g:
// together they are the A and B fragments of two m16n8k16 mma's (k = 32s +
// 8t + {0..3} for the first, {4..7} for the second). Weight loads go straight
// from global into registers (the same lanes never need them twice), two
// stages of 4 KB per warp alternating so one stage's loads fly while the
// other's mma's run. x is staged in shared memory a chunk of K at a time
// (cp.async, two buffers), shared by the block's 8 warps.
//
// Written in flash_common.cuh's primitives, so the CPU emulator (native/emu)
// runs this same source; the three primitives only this kernel needs (a
// coherent load, an atomic add, a fence) follow, with their emulated forms.
#include "flash_common.cuh"
#include "gemm_small.h"

namespace aios::AIOS_FLASH_NS {
namespace flash {

// ---- cross-block primitives of the split-K reduction
#ifdef AIOS_EMU
/** A load of data other blocks of this launch wrote (through L2, never a stale L1 line). */
inline float ld_coherent(const float* p) {
  float v = 0;
  if (emurt::check_global(p, 4, false)) memcpy(&v, p, 4);
  return v;
}
/** The same, four floats at a 16-byte aligned address. */
inline void ld_coherent4(const float* p, float (&v)[4]) {
  v[0] = v[1] = v[2] = v[3] = 0;
  if (emurt::check_global(p, 16, false)) memcpy(v, p, 16);
}
/** atomicAdd; the emulator runs one thread at a time, so a plain read-modify-write is atomic. */
inline uint32_t atomic_add(uint32_t* p, uint32_t v) {
  uint32_t old = 0;
  if (emurt::check_global(p, 4, true)) {
    memcpy(&old, p, 4);
    const uint32_t next = old + v;
    memcpy(p, &next, 4);
  }
  return old;
}
/** __threadfence: this thread's writes are seen by the whole GPU before its later ones. */
inline void fence_gpu() {}
#else
__device__ __forceinline__ float ld_coherent(const float* p) { return __ldcg(p); }
__device__ __forceinline__ void ld_coherent4(const float* p, float (&v)[4]) {
  const float4 q = __ldcg(reinterpret_cast<const float4*>(p));
  v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
}
__device__ __forceinline__ uint32_t atomic_add(uint32_t* p, uint32_t v) { return atomicAdd(p, v); }
__device__ __forceinline__ void fence_gpu() { __threadfence(); }
#endif

namespace {

using gemm_small::kThreads;

template <int MT> struct Tile {
  static constexpr int kTokens = 8 * MT;
  static constexpr int kSteps = gemm_small::kStepsPerStage;
  static constexpr int kStageK = gemm_small::kStageK;
  static constexpr int kRows = gemm_small::kRowsPerBlock;
  static constexpr int kChunkK = gemm_small::chunk_k(MT);
  static constexpr int kStagesPerChunk = kChunkK / kStageK;
  // 32 elements of padding: a row of the chunk starts 64 bytes past a multiple of 128, so the
  // two x rows one 8-lane phase of a 16-byte shared load reads fall in different banks.
  static constexpr int kStride = kChunkK + 32;
  static constexpr int kBufElems = kTokens * kStride;
  template <class T> static constexpr size_t smem() { return 2 * size_t(kBufElems) * sizeof(T) + 16; }
  static_assert(kChunkK % kStageK == 0, "a chunk holds whole stages");
};

// One warp's weights for one stage: [k-step][rows g, g + 8].
using Stage = uint4[gemm_small::kStepsPerStage][2];

// Two blocks per SM (128 registers a thread): 16 warps x 4 KB of weights in flight per SM.
template <class T, class OutT, int MT>
__global__ void __launch_bounds__(kThreads, 2) gemm_small_kernel(const T* __restrict__ x, const T* __restrict__ w, OutT* __restrict__ out,
                                                                int64_t M, int64_t N, int64_t K, int64_t k_per_split, float* partials,
                                                                uint32_t* counters, bool early_weights) {
  pdl_trigger();  // pdl.cuh; the wait comes below, after the first weights are requested (when early_weights)
  using S = Tile<MT>;
  constexpr int U = S::kSteps;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int64_t split = blockIdx.y, splits = gridDim.y;
  const int64_t n_block = int64_t(blockIdx.x) * S::kRows;
  const int64_t k_begin = split * k_per_split;
  const int64_t k_end = k_begin + k_per_split < K ? k_begin + k_per_split : K;
  const int tokens = int(M);
  T* xs = reinterpret_cast<T*>(smem_base());
  uint32_t* last_flag = reinterpret_cast<uint32_t*>(smem_base() + 2 * size_t(S::kBufElems) * sizeof(T));

  // This lane's two weight rows (a row past N loads nothing: its outputs are not stored).
  const T* wrow[2];
  bool row_ok[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t n = n_block + warp * 16 + h * 8 + g;
    row_ok[h] = n < N;
    wrow[h] = w + (row_ok[h] ? n : 0) * K + 8 * t;
  }

  const int64_t span = k_end - k_begin;
  const int stages = int((span + S::kStageK - 1) / S::kStageK);
  const int chunks = int((span + S::kChunkK - 1) / S::kChunkK);

  // x[:, chunk] -> buffer chunk % 2: the columns of the chunk's stages, those past the split's end
  // zero-filled (the weights there are zero too, but 0 x NaN would not be).
  auto stage_x = [&](int chunk) {
    T* buf = xs + (chunk & 1) * S::kBufElems;
    const int64_t kc = k_begin + int64_t(chunk) * S::kChunkK;
    const int64_t left = (k_end - kc + S::kStageK - 1) / S::kStageK * S::kStageK;
    const int vecs = int(left < S::kChunkK ? left : S::kChunkK) / 8;
    for (int i = tid; i < tokens * vecs; i += kThreads) {
      const int row = i / vecs, v = i % vecs;
      const int64_t k = kc + 8 * v;
      const bool valid = k < k_end;
      cp_async16(buf + row * S::kStride + 8 * v, valid ? x + row * K + k : x, valid);
    }
  };
  auto load_w = [&](Stage& wv, int stage) {
    const int64_t k0 = k_begin + int64_t(stage) * S::kStageK;
#pragma unroll
    for (int q = 0; q < U; ++q) {
      const int64_t k = k0 + 32 * q;
      const bool k_ok = k + 8 * t < k_end;
#pragma unroll
      for (int h = 0; h < 2; ++h) wv[q][h] = k_ok && row_ok[h] ? ldg16(wrow[h] + k) : uint4{0, 0, 0, 0};
    }
  };

  float acc[MT][4];
#pragma unroll
  for (int j = 0; j < MT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

  auto compute = [&](const Stage& wv, int stage) {
    const T* xb = xs + ((stage / S::kStagesPerChunk) & 1) * S::kBufElems + (stage % S::kStagesPerChunk) * S::kStageK + 8 * t;
#pragma unroll
    for (int q = 0; q < U; ++q) {
      const uint4 lo = wv[q][0], hi = wv[q][1];
      const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};  // k = 8t + {0,1} and {2,3}
      const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};  // k = 8t + {4,5} and {6,7}
#pragma unroll
      for (int j = 0; j < MT; ++j) {
        // Rows past the last token are never staged: zeros (their outputs are not stored either).
        const uint4 xv = 8 * j + g < tokens ? *reinterpret_cast<const uint4*>(xb + (8 * j + g) * S::kStride + 32 * q) : uint4{0, 0, 0, 0};
        mma_16816<T>(acc[j], a0, xv.x, xv.y);
        mma_16816<T>(acc[j], a1, xv.z, xv.w);
      }
    }
  };

  // One stage: at a chunk's first stage, the chunk's x must have landed and the next chunk's
  // copies start (into the buffer the previous chunk used: hence the barrier first); then the
  // next stage's weights are requested before this stage's mma's.
  auto step = [&](int s, const Stage& cur, Stage& next) {
    if (s % S::kStagesPerChunk == 0) {
      const int chunk = s / S::kStagesPerChunk;
      __syncthreads();
      if (chunk + 1 < chunks) stage_x(chunk + 1);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
    }
    if (s + 1 < stages) load_w(next, s + 1);
    compute(cur, s);
  };

  // The weights are never written while a forward runs, so the first stage's may be requested
  // before the kernel before this one has finished (pdl.cuh): at one token most blocks hold a single
  // stage, so their whole share of the weight is then on the way while they wait. x is that
  // kernel's output: it is read only after the wait.
  Stage wa, wb;
  if (early_weights) load_w(wa, 0);
  pdl_wait();
  stage_x(0);
  cp_async_commit();
  if (!early_weights) load_w(wa, 0);
  // Two stages per trip, the buffers swapping roles, so no register copy waits on a load.
  for (int s = 0; s < stages; s += 2) {
    step(s, wa, wb);
    if (s + 1 < stages) step(s + 1, wb, wa);
  }
  cp_async_wait<0>();

  // acc[j] holds rows (g, g + 8) of the warp's 16 for tokens 8j + 2t and 8j + 2t + 1.
  auto each_output = [&](auto&& sink) {
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t n = n_block + warp * 16 + (e >> 1) * 8 + g;
        const int m = 8 * j + 2 * t + (e & 1);
        if (n < N && m < tokens) sink(int64_t(m) * N + n, acc[j][e]);
      }
  };
  if (splits == 1) {
    each_output([&](int64_t at, float v) { stg(out + at, from_f<OutT>(v)); });
    return;
  }

  // Split K: this block's partial, then the row block's last block sums all of them in split order.
  float* mine = partials + split * M * N;
  each_output([&](int64_t at, float v) { stg(mine + at, v); });
  fence_gpu();
  __syncthreads();
  if (tid == 0) {
    const bool last = atomic_add(counters + blockIdx.x, 1u) == uint32_t(splits - 1);
    if (last) stg(counters + blockIdx.x, 0u);  // ready for the next launch
    *last_flag = last ? 1u : 0u;
  }
  __syncthreads();
  if (*last_flag == 0) return;
  fence_gpu();
  // Eight splits' loads issued before their adds, four outputs a thread where N allows 16-byte
  // loads: this one SM reads splits x 128 x M floats, so bytes in flight set its pace.
  constexpr int kUnroll = 8;
  if (N % 4 == 0) {
    constexpr int kQuads = S::kRows / 4;
    for (int i = tid; i < kQuads * tokens; i += kThreads) {
      const int m = i / kQuads;
      const int64_t n = n_block + 4 * (i % kQuads);
      if (n >= N) continue;  // N and n multiples of 4: n + 3 < N too
      const float* p = partials + int64_t(m) * N + n;
      float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int64_t s0 = 0; s0 < splits; s0 += kUnroll) {
        float v[kUnroll][4];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (s0 + u < splits) ld_coherent4(p + (s0 + u) * M * N, v[u]);
          else v[u][0] = v[u][1] = v[u][2] = v[u][3] = 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
#pragma unroll
          for (int c = 0; c < 4; ++c) sum[c] += v[u][c];
      }
#pragma unroll
      for (int c = 0; c < 4; ++c) stg(out + int64_t(m) * N + n + c, from_f<OutT>(sum[c]));
    }
    return;
  }
  for (int i = tid; i < S::kRows * tokens; i += kThreads) {
    const int m = i / S::kRows;
    const int64_t n = n_block + i % S::kRows;
    if (n >= N) continue;
    const float* p = partials + int64_t(m) * N + n;
    float sum = 0.0f;
    for (int64_t s0 = 0; s0 < splits; s0 += kUnroll) {
      float v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) v[u] = s0 + u < splits ? ld_coherent(p + (s0 + u) * M * N) : 0.0f;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) sum += v[u];
    }
    stg(out + int64_t(m) * N + n, from_f<OutT>(sum));
  }
}

// AIOS_GEMM_EARLY_WEIGHTS=0..1: whether a block requests its first stage of weights before waiting
// for the kernel before it (pdl.cuh), for timing the two on a card (unset: 1).
inline bool gemm_early_weights() {
  static const bool early = timing_switch("AIOS_GEMM_EARLY_WEIGHTS", 0, 1, 1) == 1;
  return early;
}

template <class F> void dispatch_tiles(int token_tiles, F&& body) {
  switch (token_tiles) {
    case 1: body(std::integral_constant<int, 1>{}); return;
    case 2: body(std::integral_constant<int, 2>{}); return;
    case 4: body(std::integral_constant<int, 4>{}); return;
    case 8: body(std::integral_constant<int, 8>{}); return;
    default: throw Error("gemm_small: no kernel for " + std::to_string(token_tiles) + " token tiles");
  }
}

}  // namespace
}  // namespace flash

gemm_small::Plan gemm_small_plan(int64_t M, int64_t N, int64_t K, DType in_dt, DType out_dt, int64_t splits) {
  using namespace flash;
  const std::string why = gemm_small::unsupported(M, N, K, in_dt, out_dt);
  if (!why.empty()) throw Error("gemm_small: " + why);
  // One wave of resident blocks (the occupancy of the kernel this call launches).
  int64_t resident = 0;
  dispatch_half(in_dt, [&](auto in_tag) {
    using T = decltype(in_tag);
    dispatch_any(out_dt, [&](auto out_tag) {
      using O = decltype(out_tag);
      dispatch_tiles(gemm_small::token_tiles(M), [&](auto mt) {
        constexpr int MT = decltype(mt)::value;
        resident = resident_blocks(gemm_small_kernel<T, O, MT>, kThreads, Tile<MT>::template smem<T>(), "gemm_small");
      });
    });
  });
  return gemm_small::make_plan(M, N, K, resident, splits);
}

void gemm_small(flash::Stream st, const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K, DType in_dt,
                DType out_dt, const gemm_small::Plan& plan, void* workspace) {
  using namespace flash;
  const std::string why = gemm_small::unsupported(M, N, K, in_dt, out_dt);
  if (!why.empty()) throw Error("gemm_small: " + why);
  if (plan.token_tiles != gemm_small::token_tiles(M) || plan.row_blocks * gemm_small::kRowsPerBlock < N ||
      plan.splits * plan.k_per_split < K || plan.k_per_split % gemm_small::kStageK != 0)
    throw Error("gemm_small: the plan was not made for M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (plan.splits > 1 && !workspace) throw Error("gemm_small: a split plan needs the workspace");
  float* partials = static_cast<float*>(workspace);
  uint32_t* counters = plan.splits > 1 ? reinterpret_cast<uint32_t*>(static_cast<char*>(workspace) + gemm_small::kPartialBytes) : nullptr;
  const dim3 grid(unsigned(plan.row_blocks), unsigned(plan.splits));
  dispatch_half(in_dt, [&](auto in_tag) {
    using T = decltype(in_tag);
    dispatch_any(out_dt, [&](auto out_tag) {
      using O = decltype(out_tag);
      dispatch_tiles(plan.token_tiles, [&](auto mt) {
        constexpr int MT = decltype(mt)::value;
        launch(gemm_small_kernel<T, O, MT>, grid, dim3(kThreads), Tile<MT>::template smem<T>(), st, "gemm_small",
               static_cast<const T*>(x), static_cast<const T*>(w), static_cast<O*>(out), M, N, K, plan.k_per_split, partials,
               counters, gemm_early_weights());
      });
    });
  });
}

}  // namespace aios::AIOS_FLASH_NS
