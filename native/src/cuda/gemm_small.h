// The small-M GEMM (gemm_small.cu): out[M, N] = x[M, K] @ w[N, K]^T for a
// handful of tokens, where reading the weight once is the whole cost. Plain
// host code shared by the CUDA launcher, matmul.cu's dispatch and the CPU
// emulator test (native/emu), so all three agree on tiles, splits and
// workspace sizes.
//
// The tiling, per thread block of 8 warps: each warp owns 16 output features
// (weight rows, the mma's A operand) and every token of the call (x, the B
// operand, 8 tokens per n-tile); the block's 128 weight rows are streamed once
// along its K range. When the row blocks alone do not fill the GPU (N = 1024
// gives 8 of them), K is split over blocks too: each block writes a float
// partial to a fixed workspace, and the last block of a row block to finish (a
// counter per row block) sums the partials in split order, so the result is
// the same bits on every run. A token's output depends on the plan's splits,
// never on how many other tokens share the launch.
#pragma once
#include <cstdint>
#include <string>

#include "../aios.h"

namespace aios::gemm_small {

constexpr int64_t kMaxM = 64;       // tokens one launch takes (8 n-tiles of 8)
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// The fixed workspace: float partials of the splits, and one counter per row block.
constexpr int64_t kPartialBytes = int64_t(8) << 20;
constexpr int64_t kCounters = 4096;
constexpr int64_t kWorkspaceBytes = kPartialBytes + kCounters * 4;
// The last block of a row block reads splits x 128 rows x M tokens of partials alone (one SM,
// about 100-200 GB/s from L2): at most 256 split-tokens (128 KB) keeps that near a microsecond.
constexpr int64_t kMaxSplitTokens = 256;

/** Token n-tiles of 8 a launch holds for M tokens: 1, 2, 4 or 8 (the kernel's template argument). */
inline int token_tiles(int64_t M) { return M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8; }
/** k-steps of 32 a warp loads per pipeline stage: 16 rows x 128 k = 4 KB of weights per warp in flight. */
constexpr int kStepsPerStage = 4;
constexpr int kStageK = 32 * kStepsPerStage;
constexpr int kRowsPerBlock = kWarps * 16;
/** K columns of x staged in shared memory at a time (two chunks, 66-74 KB: two blocks per SM). */
constexpr int chunk_k(int token_tiles) { return 2048 / token_tiles; }

/** "" when the kernel takes this call (alignment aside: the caller checks its pointers), else why not. */
inline std::string unsupported(int64_t M, int64_t N, int64_t K, DType in_dt, DType out_dt) {
  if (in_dt != DType::BF16 && in_dt != DType::F16) return std::string("inputs must be bf16 or f16, got ") + dtype_name(in_dt);
  if (out_dt != DType::BF16 && out_dt != DType::F16 && out_dt != DType::F32)
    return std::string("output must be bf16, f16 or f32, got ") + dtype_name(out_dt);
  if (M < 1 || M > kMaxM) return "M must be 1.." + std::to_string(kMaxM) + ", got " + std::to_string(M);
  if (N < 1 || N > (int64_t(1) << 31) - 1) return "N must be 1..2^31-1, got " + std::to_string(N);
  if (K < 8 || K % 8 != 0) return "K must be a positive multiple of 8 (16-byte loads), got " + std::to_string(K);
  return "";
}

/** How a launch divides the work; derived only from M, N, K and the GPU's resident block count. */
struct Plan {
  int token_tiles = 1;
  int64_t row_blocks = 0;   // grid.x
  int64_t splits = 1;       // grid.y: blocks along K
  int64_t k_per_split = 0;  // a multiple of the stage's K
};

/**
 * The plan for M x N x K. `splits` 0 picks it: the fewest splits whose blocks fill at least 90%
 * of the waves of `resident_blocks` they need (else the best filling), bounded by the K stages
 * and the partials' workspace: a long block in a last, mostly empty wave costs as much as a full
 * wave. A positive `splits` (tests) is used as given, within the same bounds (the workspace, the
 * last block's reading, the K stages).
 */
inline Plan make_plan(int64_t M, int64_t N, int64_t K, int64_t resident_blocks, int64_t splits = 0) {
  Plan p;
  p.token_tiles = token_tiles(M);
  p.row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  const int64_t stages = (K + kStageK - 1) / kStageK;
  int64_t most = stages;
  if (most > kPartialBytes / (M * N * 4)) most = kPartialBytes / (M * N * 4);
  if (most > kMaxSplitTokens / M) most = kMaxSplitTokens / M;
  if (most > 65535) most = 65535;
  if (p.row_blocks > kCounters || most < 1) most = 1;
  // Splits as launched: whole stages each, the last split never empty.
  auto actual = [&](int64_t s) {
    const int64_t per = (stages + s - 1) / s;
    return (stages + per - 1) / per;
  };
  if (splits <= 0) {
    const int64_t resident = resident_blocks > 0 ? resident_blocks : 1;
    double best = -1;
    for (int64_t s = 1; s <= most; ++s) {
      if (actual(s) != s) continue;
      const int64_t blocks = p.row_blocks * s, waves = (blocks + resident - 1) / resident;
      const double filled = double(blocks) / double(waves * resident);
      if (filled > best + 1e-9) {
        best = filled;
        splits = s;
      }
      if (filled >= 0.9) break;
    }
  }
  if (splits > most) splits = most;
  if (splits < 1) splits = 1;
  const int64_t stages_per_split = (stages + splits - 1) / splits;
  p.k_per_split = stages_per_split * kStageK;
  p.splits = (K + p.k_per_split - 1) / p.k_per_split;
  return p;
}

}  // namespace aios::gemm_small

// The launchers (gemm_small.cu), for matmul.cu; the emulator test declares its own (aios::emu).
struct CUstream_st;
namespace aios::cuda {
gemm_small::Plan gemm_small_plan(int64_t M, int64_t N, int64_t K, DType in_dt, DType out_dt, int64_t splits = 0);
/**
 * out[M, N] = x[M, K] @ w[N, K]^T with the plan's tiling. x and w 16-byte aligned; `workspace`
 * holds gemm_small::kWorkspaceBytes when plan.splits > 1, its counters (the last kCounters x 4
 * bytes) zero before the first launch (each launch leaves them zero again).
 */
void gemm_small(CUstream_st* st, const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K, DType in_dt,
                DType out_dt, const gemm_small::Plan& plan, void* workspace);
}  // namespace aios::cuda
