// The small-M GEMM (native/src/cuda/gemm_small.cu) run on the CPU emulator
// (emu.h) and checked against a plain double-precision loop on fresh random
// inputs: 1..64 tokens (each token-tile kernel, tokens not filling their
// tile), N off the 16-row warp tile and the 128-row block, K a multiple of 8
// but not of the 32-wide k-step or the 128-wide stage, several x chunks, one
// split and many (forced and automatic), bf16/f16 in, bf16/f16/f32 out. Every
// output starts as NaN, so an unwritten element fails. Split runs are done
// twice (a different thread order) and must give the same bits, and must
// leave the row-block counters at zero for the next launch.
//
//   gemm_emu [--seed N] [--verbose]
//
// Prints one line per case and exits 1 if any failed. Run by
// engine-core/test/gemm-emu.test.ts (CI, no GPU needed).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/aios.h"
#include "../src/cpu/numeric.h"
#include "../src/cuda/gemm_small.h"
#include "emu.h"
#include "test_buffer.h"

namespace aios::emu {
gemm_small::Plan gemm_small_plan(int64_t M, int64_t N, int64_t K, DType in_dt, DType out_dt, int64_t splits);
void gemm_small(int st, const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K, DType in_dt, DType out_dt,
                const gemm_small::Plan& plan, void* workspace);
}  // namespace aios::emu

namespace {

using aios::DType;

struct Case {
  int64_t M, N, K;
  DType in, out;
  int64_t splits;  // 0: the automatic plan
};

using aios::emutest::Buf;

/** One unit in the last place of `v` stored as `dt` (0 for f32: only the accumulation's error is allowed). */
double out_ulp(double v, DType dt) {
  if (dt == DType::F32) return 0;
  const int mantissa = dt == DType::BF16 ? 7 : 10;
  int e = 0;
  std::frexp(std::fabs(v), &e);  // |v| in [2^(e-1), 2^e)
  const int min_exp = dt == DType::BF16 ? -126 : -14;
  return std::ldexp(1.0, std::max(e - 1, min_exp) - mantissa);
}

int failures = 0, runs = 0;
bool verbose = false;

std::string case_name(const Case& c, const aios::gemm_small::Plan& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "M=%-2lld N=%-4lld K=%-4lld %s->%s splits %lld%s (k %lld, %lld row blocks)", (long long)c.M,
                (long long)c.N, (long long)c.K, aios::dtype_name(c.in), aios::dtype_name(c.out), (long long)p.splits,
                c.splits ? " forced" : " auto", (long long)p.k_per_split, (long long)p.row_blocks);
  return buf;
}

void run_case(const Case& c, std::mt19937& rng) {
  const size_t M = size_t(c.M), N = size_t(c.N), K = size_t(c.K);
  std::uniform_real_distribution<float> U(-1.0f, 1.0f);
  Buf x(M * K, c.in), w(N * K, c.in), out(M * N, c.out), again(M * N, c.out);
  for (size_t i = 0; i < x.n; ++i) x.set(i, U(rng));
  for (size_t i = 0; i < w.n; ++i) w.set(i, U(rng));
  // The reference on the values as stored, in double; |x||w| summed for the accumulation's error bound.
  std::vector<double> ref(M * N), mag(M * N);
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) {
      double s = 0, a = 0;
      for (size_t k = 0; k < K; ++k) {
        const double p = double(x.get(m * K + k)) * double(w.get(n * K + k));
        s += p;
        a += std::fabs(p);
      }
      ref[m * N + n] = s;
      mag[m * N + n] = a;
    }

  const aios::gemm_small::Plan plan = aios::emu::gemm_small_plan(c.M, c.N, c.K, c.in, c.out, c.splits);
  std::vector<unsigned char> ws(size_t(aios::gemm_small::kWorkspaceBytes), 0xff);  // partials NaN...
  std::memset(ws.data() + aios::gemm_small::kPartialBytes, 0, size_t(aios::gemm_small::kCounters) * 4);  // ...counters zero
  const std::string name = case_name(c, plan);

  auto launch_once = [&](Buf& dst, unsigned order_seed, std::string& error) {
    dst.poison();
    aios::emurt::seed_order(order_seed);
    aios::emurt::clear_buffers();
    aios::emurt::register_buffer(x.bytes.data(), x.bytes.size(), "x", false);
    aios::emurt::register_buffer(w.bytes.data(), w.bytes.size(), "w", false);
    aios::emurt::register_buffer(dst.bytes.data(), dst.bytes.size(), "out", true);
    aios::emurt::register_buffer(ws.data(), ws.size(), "workspace", true);
    try {
      aios::emu::gemm_small(0, x.bytes.data(), w.bytes.data(), dst.bytes.data(), c.M, c.N, c.K, c.in, c.out, plan,
                            plan.splits > 1 ? ws.data() : nullptr);
    } catch (const std::exception& e) {
      error = e.what();
    }
    return aios::emurt::take_errors();
  };

  const auto t0 = std::chrono::steady_clock::now();
  std::string error;
  std::string emu_errors = launch_once(out, unsigned(rng()), error);
  // Another thread order: a split launch must give the same bits; every launch leaves the counters at zero.
  bool same = true, counters_zero = true;
  if (plan.splits > 1 && error.empty()) {
    emu_errors += launch_once(again, unsigned(rng()), error);
    same = std::memcmp(out.bytes.data(), again.bytes.data(), out.bytes.size()) == 0;
  }
  for (int64_t i = 0; i < aios::gemm_small::kCounters; ++i) {
    uint32_t v;
    std::memcpy(&v, ws.data() + aios::gemm_small::kPartialBytes + size_t(i) * 4, 4);
    if (v != 0) counters_zero = false;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  size_t nan = 0, bad = 0, worst = 0;
  double worst_excess = -1, max_abs = 0;
  for (size_t i = 0; i < out.n; ++i) {
    const double o = out.get(i);
    if (std::isnan(o)) { ++nan; continue; }
    const double err = std::fabs(o - ref[i]);
    const double tol = out_ulp(ref[i], c.out) + std::ldexp(mag[i], -20);
    max_abs = std::max(max_abs, err);
    if (err > tol) ++bad;
    if (err - tol > worst_excess) { worst_excess = err - tol; worst = i; }
  }
  const bool ok = error.empty() && emu_errors.empty() && nan == 0 && bad == 0 && same && counters_zero;
  ++runs;
  if (!ok) ++failures;
  std::printf("%s %s: max_abs %.2e, out of tolerance %zu, unwritten/NaN %zu%s%s  [%.2fs]\n", ok ? "PASS" : "FAIL", name.c_str(), max_abs,
              bad, nan, same ? "" : ", NOT bit-identical across runs", counters_zero ? "" : ", counters left nonzero", secs);
  if (!ok) {
    if (!error.empty()) std::printf("    threw: %s\n", error.c_str());
    if (!emu_errors.empty()) std::printf("    emulator: %s", emu_errors.c_str());
    if (bad || nan)
      std::printf("    worst at token %zu, feature %zu: got %g, want %.6g (tolerance %.3g)\n", worst / N, worst % N,
                  double(out.get(worst)), ref[worst], out_ulp(ref[worst], c.out) + std::ldexp(mag[worst], -20));
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned seed = unsigned(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--seed" && i + 1 < argc) seed = unsigned(std::stoul(argv[++i]));
    else if (arg == "--verbose") verbose = true;
    else {
      std::fprintf(stderr, "usage: gemm_emu [--seed N] [--verbose]\n");
      return 2;
    }
  }
  std::printf("gemm_emu: seed %u\n", seed);
  std::mt19937 rng(seed);
  const DType B = DType::BF16, H = DType::F16, F = DType::F32;
  const std::vector<Case> cases = {
      // one token: a single split and the automatic split (K 1032: the last split holds one 8-wide vector)
      {1, 200, 1032, B, B, 1},
      {1, 200, 1032, B, B, 0},
      {3, 77, 8, H, F, 1},          // K = 8: one vector per row, the rest of the stage zero
      {3, 77, 24, B, H, 0},         // K off the 32-wide k-step
      {8, 136, 3072, B, F, 0},      // a full token tile, many splits
      {16, 40, 1032, H, H, 3},      // two token tiles, N under one warp tile per warp
      {2, 300, 4104, B, B, 1},      // several x chunks in one block (2,048 columns each at 1 token tile)
      {2, 300, 4104, B, B, 2},
      {17, 150, 3072, B, B, 1},     // four token tiles, 17 used; 512-column chunks
      {17, 150, 3072, B, B, 0},
      {33, 72, 1032, B, B, 0},      // eight token tiles, 33 used
      {64, 130, 3072, B, F, 1},     // a full 64, 256-column chunks
      {64, 24, 1032, H, B, 5},
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (const Case& c : cases) run_case(c, rng);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (verbose) {  // the automatic plans of the Qwen3 projection shapes, as on a 132-SM GPU at two blocks per SM
    const int64_t shapes[][2] = {{4096, 1024}, {1024, 2048}, {6144, 1024}, {1024, 3072}, {6144, 4096}, {4096, 4096}, {24576, 4096}, {4096, 12288}};
    for (int64_t M : {1, 8, 16, 32, 64})
      for (const auto& s : shapes) {
        const auto p = aios::gemm_small::make_plan(M, s[0], s[1], 264);
        std::printf("plan M=%-2lld N=%-5lld K=%-5lld: %lld row blocks x %lld splits of %lld\n", (long long)M, (long long)s[0], (long long)s[1],
                    (long long)p.row_blocks, (long long)p.splits, (long long)p.k_per_split);
      }
  }
  const auto& k = aios::emurt::counters();
  std::printf("gemm_emu: %d of %d runs failed (seed %u, %.1f s; emulated %llu blocks, %llu mma, %llu cp.async)\n", failures, runs, seed,
              secs, (unsigned long long)k.blocks, (unsigned long long)k.mma, (unsigned long long)k.cp_async);
  return failures ? 1 : 0;
}
