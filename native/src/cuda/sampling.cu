// One categorical draw per logits row on the device, so that only the token id
// comes back to the host: softmax(x / t) sampled by inverse CDF against a
// uniform number the host drew (its per-request generator keeps seeds
// meaningful). One block of 1024 threads per row; each thread owns a
// contiguous chunk of the vocabulary, the chunk sums are scanned in shared
// memory, and the one thread whose chunk holds the crossing point walks it.
// Temperature 0 is the argmax. Lesson 12 replaces this with top-k/top-p/min-p
// filters and counter-based random numbers generated on the device.
#include "common.cuh"

namespace aios::cuda {

namespace {

constexpr int kThreads = 1024;

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(const float* x, const float* temperature,
                                                                const float* uniform, int32_t* out, int64_t n) {
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  __shared__ float scan[kThreads];
  __shared__ int64_t s_last_nonzero[32];
  const int64_t r = blockIdx.x;
  const float* row = x + r * n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // 1. The maximum (and its first index, the greedy answer).
  float bv = -INFINITY;
  int64_t bi = n;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = row[i];
    if (better(v, i, bv, bi)) { bv = v; bi = i; }
  }
  warp_best(bv, bi);
  if (lane == 0) { best_v[warp] = bv; best_i[warp] = bi; }
  __syncthreads();
  if (warp == 0) {
    bv = best_v[lane];
    bi = best_i[lane];
    warp_best(bv, bi);
    if (lane == 0) { best_v[0] = bv; best_i[0] = bi; }
  }
  __syncthreads();
  const float mx = best_v[0];
  const int64_t argmax = best_i[0] < n ? best_i[0] : 0;
  // The argmax first: a sampled row keeps it if no thread finds the crossing below
  // (a NaN in the row, or a uniform of 1): never the previous step's token. The
  // barriers of step 2 order this write before the crossing thread's.
  if (threadIdx.x == 0) out[r] = int32_t(argmax);
  const float t = temperature[r];
  if (!(t > 0.0f)) return;
  const float inv_t = 1.0f / t;

  // 2. Each thread's chunk sum, then an inclusive scan over the threads.
  const int64_t chunk = (n + kThreads - 1) / kThreads;
  const int64_t begin = int64_t(threadIdx.x) * chunk, end = begin + chunk < n ? begin + chunk : n;
  float sum = 0.0f;
  int64_t last_nonzero = -1;
  for (int64_t i = begin; i < end; ++i) {
    const float w = expf((row[i] - mx) * inv_t);
    if (w > 0.0f) last_nonzero = i;
    sum += w;
  }
  scan[threadIdx.x] = sum;
  __syncthreads();
  for (int off = 1; off < kThreads; off <<= 1) {
    const float add = threadIdx.x >= off ? scan[threadIdx.x - off] : 0.0f;
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
  // The last index with weight, for a target that rounding leaves past every sum.
  for (int o = 16; o > 0; o >>= 1) {
    const int64_t other = __shfl_xor_sync(0xffffffffu, last_nonzero, o);
    last_nonzero = other > last_nonzero ? other : last_nonzero;
  }
  if (lane == 0) s_last_nonzero[warp] = last_nonzero;
  __syncthreads();

  // 3. The thread whose chunk crosses the target walks it.
  const float total = scan[kThreads - 1];
  const float target = uniform[r] * total;
  const float before = threadIdx.x == 0 ? 0.0f : scan[threadIdx.x - 1];
  if (scan[threadIdx.x] >= target && (threadIdx.x == 0 || before < target)) {
    float run = before;
    int64_t pick = -1;
    for (int64_t i = begin; i < n; ++i) {  // past the chunk only when rounding hides the crossing in it
      const float w = expf((row[i] - mx) * inv_t);
      run += w;
      if (run >= target && w > 0.0f) { pick = i; break; }
    }
    if (pick < 0) {
      for (int k = 0; k < 32; ++k) pick = s_last_nonzero[k] > pick ? s_last_nonzero[k] : pick;
      if (pick < 0) pick = argmax;
    }
    out[r] = int32_t(pick);
  }
}

}  // namespace

void sample_rows(cudaStream_t st, const float* x, const float* temperature, const float* uniform, int32_t* out,
                 int64_t rows, int64_t n) {
  if (rows == 0) return;
  if (n == 0) throw Error("sample_rows: the rows are empty");
  if (rows > 0x7fffffffLL) throw Error("sample_rows: too many rows for one launch");
  sample_rows_kernel<<<unsigned(rows), kThreads, 0, st>>>(x, temperature, uniform, out, n);
  check_launch("sample_rows");
}

}  // namespace aios::cuda
