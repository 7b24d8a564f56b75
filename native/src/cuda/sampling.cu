// One categorical draw per logits row on the device, so that only the token id
// comes back to the host: softmax(x / t) sampled by inverse CDF against a
// uniform number the host drew (its per-request generator keeps seeds
// meaningful). One block of 1024 threads per row, in two steps:
//   1. one read of the row: warp w owns the w-th of 32 contiguous segments and
//      reads it coalesced (16-byte loads where the row allows), keeping the
//      argmax and the online sum of exp((x - m) / t) with its running max m;
//      warp 0 then scans the 32 segment sums (rescaled to the row's max) and
//      finds the segment where the cumulative sum crosses u x total;
//   2. the whole block re-reads only that segment (from L2: 1/32 of the row),
//      each thread a contiguous piece, scans the pieces' sums, and the thread
//      whose piece crosses walks it (later pieces claim too; the lowest index wins).
// Temperature 0 is the argmax. Lesson 12 replaces this with top-k/top-p/min-p
// filters and counter-based random numbers generated on the device.
#include <climits>

#include "common.cuh"

namespace aios::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kSegmentAlign = 128;  // a segment starts at a multiple of 128 floats (16-byte loads of 32 lanes)

// A running (max m, sum of exp((x - m) * inv_t)) gains x. Weight-0 entries (-inf) change nothing;
// a NaN poisons the sum, which is fine: a row with a NaN takes its argmax (the NaN) before any sum is read.
__device__ __forceinline__ void running_add(float& m, float& s, float x, float inv_t) {
  if (x > m) {
    s = s * expf((m - x) * inv_t) + 1.0f;
    m = x;
  } else if (x != -INFINITY) {
    s += expf((x - m) * inv_t);
  }
}
__device__ __forceinline__ void running_merge(float& m, float& s, float om, float os, float inv_t) {
  const float mm = fmaxf(m, om);
  if (mm == -INFINITY) return;  // both empty
  s = (m == -INFINITY ? 0.0f : s * expf((m - mm) * inv_t)) + (om == -INFINITY ? 0.0f : os * expf((om - mm) * inv_t));
  m = mm;
}

// Inclusive prefix sum over the warp's lanes.
__device__ __forceinline__ float warp_inclusive_sum(float v) {
  const int lane = threadIdx.x & 31;
  for (int o = 1; o < 32; o <<= 1) {
    const float u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += u;
  }
  return v;
}

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(const float* x, const float* temperature,
                                                                const float* uniform, int32_t* out, int64_t n, bool vec4) {
  __shared__ float best_v[kWarps];
  __shared__ int64_t best_i[kWarps];
  __shared__ float seg_m[kWarps], seg_s[kWarps], piece_sum[kWarps];
  __shared__ int64_t last_nonzero_s[kWarps];
  __shared__ int chosen_segment;
  __shared__ float before_s, target_s, mx_s;
  __shared__ int pick_s;  // the lowest index a claiming thread found
  const int64_t r = blockIdx.x;
  const float* row = x + r * n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float t = temperature[r];
  const bool sampled = t > 0.0f;
  const float inv_t = sampled ? 1.0f / t : 0.0f;

  // 1. The argmax (the greedy answer) and each segment's running sum, in one read.
  const int64_t seg = ((n + kWarps - 1) / kWarps + kSegmentAlign - 1) / kSegmentAlign * kSegmentAlign;
  const int64_t seg_begin = int64_t(warp) * seg < n ? int64_t(warp) * seg : n;
  const int64_t seg_end = seg_begin + seg < n ? seg_begin + seg : n;
  float bv = -INFINITY, m = -INFINITY, sum = 0.0f;
  int64_t bi = n;
  auto visit = [&](float v, int64_t i) {
    if (better(v, i, bv, bi)) { bv = v; bi = i; }
    if (sampled) running_add(m, sum, v, inv_t);
  };
  if (vec4) {  // seg_begin and n are multiples of 4: whole float4s
#pragma unroll 2
    for (int64_t i = seg_begin + 4 * lane; i < seg_end; i += 128) {
      const float4 q = __ldg(reinterpret_cast<const float4*>(row + i));
      visit(q.x, i);
      visit(q.y, i + 1);
      visit(q.z, i + 2);
      visit(q.w, i + 3);
    }
  } else {
#pragma unroll 4
    for (int64_t i = seg_begin + lane; i < seg_end; i += 32) visit(__ldg(row + i), i);
  }
  warp_best(bv, bi);
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, sum, o);
    running_merge(m, sum, om, os, inv_t);
  }
  if (lane == 0) {
    best_v[warp] = bv;
    best_i[warp] = bi;
    seg_m[warp] = m;
    seg_s[warp] = sum;
  }
  __syncthreads();
  if (warp == 0) {
    bv = best_v[lane];
    bi = best_i[lane];
    warp_best(bv, bi);
    const float mx = bv;
    // The argmax first: a sampled row keeps it if no crossing is found below (a NaN or an
    // infinity in the row: never the previous step's token).
    if (lane == 0) out[r] = int32_t(bi < n ? bi : 0);
    int segment = -1;
    float before = 0.0f, target = 0.0f;
    if (sampled && !isnan(mx) && mx != -INFINITY && mx != INFINITY) {
      const float w = seg_m[lane] == -INFINITY ? 0.0f : seg_s[lane] * expf((seg_m[lane] - mx) * inv_t);
      const float cum = warp_inclusive_sum(w);
      const float total = __shfl_sync(0xffffffffu, cum, 31);
      target = uniform[r] * total;
      const unsigned crossing = __ballot_sync(0xffffffffu, cum >= target && w > 0.0f);
      // None when rounding leaves the target past every sum: the last segment with weight.
      segment = crossing ? __ffs(crossing) - 1 : 31 - __clz(__ballot_sync(0xffffffffu, w > 0.0f));
      before = __shfl_sync(0xffffffffu, cum - w, segment < 0 ? 0 : segment);
    }
    if (lane == 0) {
      chosen_segment = segment;
      before_s = before;
      target_s = target;
      mx_s = mx;
      pick_s = INT_MAX;
    }
  }
  __syncthreads();
  const int segment = chosen_segment;
  if (segment < 0) return;  // greedy, or a row whose answer is its argmax

  // 2. The chosen segment again, each thread a contiguous piece of it.
  const float mx = mx_s, before = before_s, target = target_s;
  const int64_t b0 = int64_t(segment) * seg, b1 = b0 + seg < n ? b0 + seg : n;
  const int64_t piece = (b1 - b0 + kThreads - 1) / kThreads;
  const int64_t p0 = b0 + int64_t(threadIdx.x) * piece < b1 ? b0 + int64_t(threadIdx.x) * piece : b1;
  const int64_t p1 = p0 + piece < b1 ? p0 + piece : b1;
  float own = 0.0f;
  int64_t last_nonzero = -1;
  for (int64_t i = p0; i < p1; ++i) {
    const float w = expf((__ldg(row + i) - mx) * inv_t);
    if (w > 0.0f) last_nonzero = i;
    own += w;
  }
  // Exclusive prefix of the pieces' sums over the block: within the warp, then the warps' totals.
  const float incl = warp_inclusive_sum(own);
  for (int o = 16; o > 0; o >>= 1) {
    const int64_t other = __shfl_xor_sync(0xffffffffu, last_nonzero, o);
    last_nonzero = other > last_nonzero ? other : last_nonzero;
  }
  if (lane == 31) piece_sum[warp] = incl;
  if (lane == 0) last_nonzero_s[warp] = last_nonzero;
  __syncthreads();
  if (warp == 0) {
    const float tw = piece_sum[lane];
    piece_sum[lane] = warp_inclusive_sum(tw) - tw;
  }
  __syncthreads();
  const float start = before + piece_sum[warp] + incl - own;
  // Every piece whose running sum reaches the target walks to its first weighted entry past it;
  // the lowest index wins (atomicMin). Pieces past the crossing claim too, but later, so rounding
  // (the segment's start recomputed one ulp past the target, say) never skips the first one.
  if (start + own >= target && own > 0.0f) {
    float run = start;
    for (int64_t i = p0; i < p1; ++i) {
      const float w = expf((__ldg(row + i) - mx) * inv_t);
      run += w;
      if (run >= target && w > 0.0f) {
        atomicMin(&pick_s, int(i));
        break;
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t pick = pick_s;
    if (pick == INT_MAX) {  // rounding hid the crossing: the segment's last entry with weight
      pick = -1;
      for (int k = 0; k < kWarps; ++k) pick = last_nonzero_s[k] > pick ? last_nonzero_s[k] : pick;
    }
    if (pick >= 0) out[r] = int32_t(pick);
  }
}

}  // namespace

void sample_rows(cudaStream_t st, const float* x, const float* temperature, const float* uniform, int32_t* out,
                 int64_t rows, int64_t n) {
  if (rows == 0) return;
  if (n == 0) throw Error("sample_rows: the rows are empty");
  if (rows > 0x7fffffffLL) throw Error("sample_rows: too many rows for one launch");
  const bool vec4 = n % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  sample_rows_kernel<<<unsigned(rows), kThreads, 0, st>>>(x, temperature, uniform, out, n, vec4);
  check_launch("sample_rows");
}

}  // namespace aios::cuda
