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
// so a lesson or the bench can be timed every way. Sending it the wide projections too at
// up to 8 tokens, now that its first weights load before the PDL wait (gemm_small.cu),
// still lost: batch 1 1.22 ms a step against 1.16 (15dcccc, decode-knobs-h200-15dcccc.log).
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "../switches.h"
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
};

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

// AIOS_SMALL_GEMM, read once (the header says what each is for).
enum class SmallGemm { Never = 0, Always = 1, Measured = 2 };

SmallGemm small_gemm_mode() {
  static const SmallGemm mode = SmallGemm(timing_switch("AIOS_SMALL_GEMM", 0, 1, int64_t(SmallGemm::Measured)));
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
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt.handle, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check_lt(st, "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    throw Error("matmul: cuBLASLt found no algorithm for M=" + std::to_string(M) + " N=" + std::to_string(N) +
                " K=" + std::to_string(K));
  p.algo = result.algo;
  return lt.plans.emplace(key, p).first->second;
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
  const float alpha = 1.0f, beta = 0.0f;
  check_lt(cublasLtMatmul(lt.handle, p.op, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &p.algo, lt.workspace,
                          lt.workspace_bytes, st),
           "cublasLtMatmul");
}

}  // namespace aios::cuda
