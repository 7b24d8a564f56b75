// out[M, N] = x[M, K] @ w[N, K]^T through cuBLASLt, bf16/f16/f32 in, float32
// accumulation. This is the only file that needs cuBLAS; where cuBLAS is not
// installed the addon is built without it and has_matmul() is false.
//
// Row-major out[M, N] is column-major out^T [N, M] = w (col-major K x N,
// transposed) times x^T (col-major K x M): so A = w with op T, B = x with op N.
//
// A few tokens through a narrow, deep weight go to our own weight-streaming kernel
// instead (gemm_small.cu), where it measured faster than cuBLASLt's choice on the
// H200 (bench-gemm at 976771f, docs/measurements/bench-gemm-h200-976771f.log, kernels
// replayed from a CUDA graph over weights not in L2): Qwen3-0.6B's o projection
// (1024 x 2048) at one token 4.8 us against 12.6 (cuBLASLt's split-K reads the weight
// at 8% of the card's bandwidth), its down projection (1024 x 3072) 5.9 against 6.7;
// at 8 tokens 1.08x and 1.05x. Elsewhere cuBLASLt was as fast or faster: 0.8-0.95x on
// the wide projections at one token, 0.34-0.46x at 64 tokens. AIOS_SMALL_GEMM (read
// once): unset = that rule, 1 = every shape the kernel takes (1-64 tokens), 0 = never,
// so a lesson or the bench can be timed every way.
//
// Lesson 11 times cuBLASLt's candidates: while matmul_tune is on for a device (lesson 11 turns it
// on around the eager forward it runs before capturing each bucket's graph), the first call of a
// shape outside a capture runs each of the heuristic's first kTuneCandidates algorithms
// kTuneRuns times on the call's own operands (beta is 0, so a rerun rewrites the same output),
// each run after a write that evicts the weight from L2 as a decode step finds it, and keeps the
// fastest. A shape first met inside a capture keeps the heuristic's first choice for good (the
// graph holds it, and an eager call must compute what the replay does). Off unless AIOS_GEMM_TUNE=1:
// on Qwen3-0.6B it gained nothing against the heuristic's first choice (docs/measurements/
// gemm-tune-h200-3537bf5.log); lesson 14 measures it on Qwen3-8B's halved shapes, where cuBLASLt's
// first choice reads qkv's and o's weights at 42-44% of the copy bandwidth at 256 tokens.
#include <cublasLt.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "common.cuh"
#include "gemm_small.h"

namespace aios::cuda {

namespace {

void check_lt(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLASLt error in ") + what + ": status " + std::to_string(int(st)));
}

cudaDataType_t cuda_type(DType dt) {
  switch (dt) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    case DType::F32: return CUDA_R_32F;
    default: throw Error(std::string("matmul: unsupported dtype ") + dtype_name(dt));
  }
}

// A plan per shape: the layouts and the heuristic's chosen algorithm, made once
// so the decode loop only calls cublasLtMatmul.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  std::vector<cublasLtMatmulAlgo_t> candidates;  // the heuristic's, best-ranked first
  bool settled = false;                          // timed, or used inside a capture: algo is final
};

constexpr int kTuneCandidates = 8;
constexpr int kTuneRuns = 5;
constexpr size_t kTuneEvictBytes = size_t(96) << 20;  // past the H200's 60 MiB of L2

using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int, int>;

struct DeviceLt {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = size_t(32) << 20;  // cuBLAS's own recommendation for Hopper
  std::map<ShapeKey, Plan> plans;
  // The small-M kernel's split-K partials and row-block counters: made with the cuBLASLt
  // workspace (never inside a graph capture: lesson 11 runs a forward eagerly first), the
  // counters zeroed once on the device's stream; each launch leaves them zero again.
  void* small_workspace = nullptr;
  std::map<ShapeKey, gemm_small::Plan> small_plans;
  bool tune = false;               // matmul_tune(device, true): time the candidates of new shapes
  int64_t tuned_shapes = 0;        // shapes whose algorithm was timed
  double tune_seconds = 0.0;       // host time spent timing them
  void* evict = nullptr;           // kTuneEvictBytes written between timed runs (made on first use)
  cudaEvent_t ev[2 * kTuneRuns] = {};
};

DeviceLt& device_lt() {
  static std::map<int, DeviceLt> per_device;
  static std::mutex mu;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mu);
  DeviceLt& lt = per_device[dev];
  if (!lt.handle) {
    check_lt(cublasLtCreate(&lt.handle), "cublasLtCreate");
    Context& ctx = context(dev);
    lt.workspace = ctx.allocator.allocate(lt.workspace_bytes);
    if (!lt.workspace) throw Error("matmul: could not allocate the cuBLASLt workspace");
    lt.small_workspace = ctx.allocator.allocate(size_t(gemm_small::kWorkspaceBytes));
    if (!lt.small_workspace) throw Error("matmul: could not allocate the small-M GEMM's workspace");
    check(cudaMemsetAsync(static_cast<char*>(lt.small_workspace) + gemm_small::kPartialBytes, 0,
                          size_t(gemm_small::kCounters) * 4, ctx.stream),
          "matmul: zeroing the small-M GEMM's counters");
  }
  return lt;
}

enum class SmallGemm { Never, Measured, Always };

SmallGemm small_gemm_mode() {
  static const SmallGemm mode = [] {
    const char* v = std::getenv("AIOS_SMALL_GEMM");
    if (!v || !*v) return SmallGemm::Measured;
    if (std::strcmp(v, "0") == 0) return SmallGemm::Never;
    if (std::strcmp(v, "1") == 0) return SmallGemm::Always;
    throw Error(std::string("AIOS_SMALL_GEMM must be 0, 1 or unset, got \"") + v + "\"");
  }();
  return mode;
}

// The measured rule (the header says where): at most 8 tokens, N < K, a weight of at most 32 MiB.
bool small_gemm_wins(int64_t M, int64_t N, int64_t K, DType in_dt) {
  return M <= 8 && N < K && N * K * int64_t(dtype_size(in_dt)) <= (int64_t(32) << 20);
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Whether the small-M kernel takes this call: its shapes and dtypes, and 16-byte loads of x and w.
bool small_gemm_takes(const void* x, const void* w, const void* out, int64_t M, int64_t N, int64_t K, DType in_dt,
                      DType out_dt) {
  const SmallGemm mode = small_gemm_mode();
  if (mode == SmallGemm::Never || (mode == SmallGemm::Measured && !small_gemm_wins(M, N, K, in_dt))) return false;
  return gemm_small::unsupported(M, N, K, in_dt, out_dt).empty() && aligned(x, 16) && aligned(w, 16) &&
         aligned(out, dtype_size(out_dt));
}

Plan& plan_for(DeviceLt& lt, int64_t M, int64_t N, int64_t K, DType in_dt, DType out_dt) {
  const ShapeKey key = std::make_tuple(M, N, K, int(in_dt), int(out_dt));
  auto it = lt.plans.find(key);
  if (it != lt.plans.end()) return it->second;
  Plan p;
  const cudaDataType_t ab = cuda_type(in_dt), c = cuda_type(out_dt);
  // f32 inputs keep full f32 math (no TF32), so the f32 path is a true reference.
  const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  check_lt(cublasLtMatmulDescCreate(&p.op, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "set TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "set TRANSB");
  check_lt(cublasLtMatrixLayoutCreate(&p.a, ab, uint64_t(K), uint64_t(N), K), "layout A");
  check_lt(cublasLtMatrixLayoutCreate(&p.b, ab, uint64_t(K), uint64_t(M), K), "layout B");
  check_lt(cublasLtMatrixLayoutCreate(&p.c, c, uint64_t(N), uint64_t(M), N), "layout C");
  cublasLtMatmulPreference_t pref;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "preference");
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.workspace_bytes,
                                                sizeof(lt.workspace_bytes)),
           "preference workspace");
  cublasLtMatmulHeuristicResult_t results[kTuneCandidates] = {};
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt.handle, p.op, p.a, p.b, p.c, p.c, pref, kTuneCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check_lt(st, "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    throw Error("matmul: cuBLASLt found no algorithm for M=" + std::to_string(M) + " N=" + std::to_string(N) +
                " K=" + std::to_string(K));
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back(results[i].algo);
  if (p.candidates.empty()) p.candidates.push_back(results[0].algo);
  p.algo = p.candidates[0];
  return lt.plans.emplace(key, p).first->second;
}

bool tuning_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("AIOS_GEMM_TUNE");
    if (!v || !*v || std::strcmp(v, "0") == 0) return false;
    if (std::strcmp(v, "1") == 0) return true;
    throw Error(std::string("AIOS_GEMM_TUNE must be 0, 1 or unset, got \"") + v + "\"");
  }();
  return allowed;
}

bool capturing(cudaStream_t st) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(st, &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

cublasStatus_t run_algo(DeviceLt& lt, const Plan& p, const cublasLtMatmulAlgo_t& algo, cudaStream_t st, const void* x,
                        const void* w, void* out) {
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(lt.handle, p.op, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &algo, lt.workspace,
                        lt.workspace_bytes, st);
}

// Times each candidate on these operands (the header says how) and keeps the fastest; the last
// run is the chosen algorithm's, so `out` holds what every later call of this shape computes.
void tune(DeviceLt& lt, Plan& p, cudaStream_t st, const void* x, const void* w, void* out) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!lt.evict) {
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    lt.evict = context(dev).allocator.allocate(kTuneEvictBytes);
    if (!lt.evict) throw Error("matmul tuning: could not allocate the L2-evicting buffer");
    for (cudaEvent_t& e : lt.ev) check(cudaEventCreate(&e), "matmul tuning: cudaEventCreate");
  }
  float best_ms = 0.0f;
  size_t best = 0;
  for (size_t c = 0; c < p.candidates.size(); ++c) {
    if (run_algo(lt, p, p.candidates[c], st, x, w, out) != CUBLAS_STATUS_SUCCESS) continue;  // warm-up; a refusal skips it
    for (int r = 0; r < kTuneRuns; ++r) {
      check(cudaMemsetAsync(lt.evict, r, kTuneEvictBytes, st), "matmul tuning: evicting L2");
      check(cudaEventRecord(lt.ev[2 * r], st), "matmul tuning: cudaEventRecord");
      check_lt(run_algo(lt, p, p.candidates[c], st, x, w, out), "cublasLtMatmul (tuning)");
      check(cudaEventRecord(lt.ev[2 * r + 1], st), "matmul tuning: cudaEventRecord");
    }
    check(cudaEventSynchronize(lt.ev[2 * kTuneRuns - 1]), "matmul tuning: cudaEventSynchronize");
    float total = 0.0f;
    for (int r = 0; r < kTuneRuns; ++r) {
      float ms = 0.0f;
      check(cudaEventElapsedTime(&ms, lt.ev[2 * r], lt.ev[2 * r + 1]), "matmul tuning: cudaEventElapsedTime");
      total += ms;
    }
    if (c == 0 || total < best_ms) {
      best_ms = total;
      best = c;
    }
  }
  p.algo = p.candidates[best];
  check_lt(run_algo(lt, p, p.algo, st, x, w, out), "cublasLtMatmul");
  lt.tuned_shapes += 1;
  lt.tune_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

bool has_matmul() { return true; }

void matmul_nt(cudaStream_t st, const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K,
               DType in_dt, DType out_dt) {
  if (M == 0 || N == 0) return;
  if (K == 0) { fill(st, out, out_dt, M * N, 0.0); return; }
  DeviceLt& lt = device_lt();
  if (small_gemm_takes(x, w, out, M, N, K, in_dt, out_dt)) {
    const ShapeKey key = std::make_tuple(M, N, K, int(in_dt), int(out_dt));
    auto it = lt.small_plans.find(key);
    if (it == lt.small_plans.end()) it = lt.small_plans.emplace(key, gemm_small_plan(M, N, K, in_dt, out_dt)).first;
    gemm_small(st, x, w, out, M, N, K, in_dt, out_dt, it->second, lt.small_workspace);
    return;
  }
  Plan& p = plan_for(lt, M, N, K, in_dt, out_dt);
  if (!p.settled) {
    if (capturing(st)) {
      p.settled = true;  // the graph keeps this algorithm: eager calls must match it
    } else if (lt.tune && tuning_allowed() && p.candidates.size() > 1) {
      tune(lt, p, st, x, w, out);
      p.settled = true;
      return;
    }
  }
  check_lt(run_algo(lt, p, p.algo, st, x, w, out), "cublasLtMatmul");
}

int64_t matmul_tune(int device, bool on) {
  make_current(device);
  DeviceLt& lt = device_lt();
  lt.tune = on;
  return lt.tuned_shapes;
}

}  // namespace aios::cuda
