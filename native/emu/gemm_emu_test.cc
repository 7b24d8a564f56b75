// The small-M GEMM (native/src/cuda/gemm_small.cu) run on the CPU emulator
// (emu.h) and checked against a plain double-precision loop on fresh random
// inputs: 1..64 tokens (each token-tile kernel, tokens not filling their
// tile), N off the 16-row warp tile and the 128-row block, K a multiple of 8
// but not of the 32-wide k-step or the 128-wide stage, several x chunks, one
// split and many (forced and automatic), bf16/f16 in, bf16/f16/f32 out. Every
// output starts as NaN, so an unwritten element fails. Split runs are done
// twice (a different thread order) and must give the same bits, and must
// leave the row-block counters at zero for the next launch. Then the
// emulator's own grid-wide mode (launch_grid, grid_sync, the atomics), which
// no GEMM kernel uses: blocks exchanging data across grid barriers, and the
// misuses (a block exiting past a grid_sync, a spin nobody ends) reported as
// errors rather than hanging.
//
//   gemm_emu [--seed N] [--verbose]
//
// Prints one line per case and exits 1 if any failed. Run by
// engine-core/test/gemm-emu.test.ts (CI, no GPU needed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
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

// ---- the emulator's grid-wide mode (launch_grid, grid_sync, atomic_add_u32, load_acquire_u32)

void report(bool ok, const std::string& name, const std::string& detail, const std::string& emu_errors = "") {
  ++runs;
  if (!ok) ++failures;
  std::printf("%s grid mode: %s: %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok && !emu_errors.empty()) std::printf("    emulator: %s", emu_errors.c_str());
  std::fflush(stdout);
}

/** An expected error's first line, with --verbose (two spaces in: not a failure line). */
void show_expected(const std::string& errors) {
  if (!verbose || errors.empty()) return;
  const size_t eol = errors.find('\n');
  const long more = long(std::count(errors.begin(), errors.end(), '\n')) - 1;
  std::printf("  reported: %s%s\n", errors.substr(0, eol).c_str(), more > 0 ? (" (and " + std::to_string(more) + " more line" + (more > 1 ? "s)" : ")")).c_str() : "");
}

/**
 * Every block writes one value per thread, grid_sync, and reads the next
 * block's; thread 0 of each block adds 1 to a counter, and after another
 * grid_sync every thread must see the grid's size. Shared memory must start as
 * NaN, be the block's own (distinct per block, untouched by the others), and
 * hold across the grid barriers. Without the first grid_sync, some thread must
 * read a neighbour's value before it is written (the order mixes the blocks).
 */
void grid_exchange(unsigned blocks, unsigned threads, bool sync_before_read, std::mt19937& rng) {
  namespace rt = aios::emurt;
  const uint32_t kPoison = 0xffffffffu;
  std::vector<uint32_t> vals(size_t(blocks) * threads, kPoison), counter(1, 0);
  std::vector<const unsigned char*> smem(blocks, nullptr);
  size_t wrong = 0, stale = 0, ahead = 0, smem_wrong = 0, block_wrong = 0, finished = 0;
  const size_t smem_bytes = size_t(threads) * 4 + 100;
  rt::seed_order(unsigned(rng()));
  rt::clear_buffers();
  rt::register_buffer(vals.data(), vals.size() * 4, "vals", true);
  rt::register_buffer(counter.data(), 4, "counter", true);
  const uint64_t syncs0 = rt::counters().grid_syncs;
  rt::launch_grid(dim3(blocks), dim3(threads), smem_bytes, "grid_exchange", [&] {
    const unsigned b = rt::block_idx().x, t = rt::thread_idx().x, G = rt::grid_dim().x, T = rt::block_dim().x;
    auto value = [](unsigned blk, unsigned thr) { return 0x10000u * (blk + 1) + thr; };
    auto* sm = reinterpret_cast<uint32_t*>(rt::shared_base());
    if (sm[t] != kPoison) ++smem_wrong;  // fresh shared memory is NaN
    sm[t] = value(b, t) ^ 0x5a5a5a5au;
    if (t == 0) smem[b] = rt::shared_base();
    vals[size_t(b) * T + t] = value(b, t);
    if (sync_before_read) rt::grid_sync();
    const unsigned nb = (b + 1) % G;
    // A plain load, so only grid_sync orders it after the write (load_acquire lets the others run
    // before it reads, which would hide a missing barrier).
    const uint32_t got = vals[size_t(nb) * T + t];
    if (got == kPoison) ++stale;
    else if (got != value(nb, t)) ++wrong;
    else if (nb > b) ++ahead;  // a later block's thread ran first: the blocks are not run one after another
    if (!sync_before_read) return;
    if (t == 0) rt::atomic_add_u32(counter.data(), 1);
    rt::syncthreads();
    rt::grid_sync();
    if (rt::load_acquire_u32(counter.data()) != G) ++wrong;
    if (sm[t] != (value(b, t) ^ 0x5a5a5a5au)) ++smem_wrong;  // no other block wrote this block's shared memory
    if (rt::block_idx().x != b) ++block_wrong;
    ++finished;
  });
  const std::string errors = rt::take_errors();
  std::vector<const unsigned char*> sorted(smem);
  std::sort(sorted.begin(), sorted.end());
  bool distinct = sorted.front() != nullptr;
  for (size_t i = 1; i < sorted.size(); ++i) distinct = distinct && sorted[i] >= sorted[i - 1] + smem_bytes;
  const uint64_t syncs = rt::counters().grid_syncs - syncs0;
  char name[64], detail[240];
  std::snprintf(name, sizeof name, "%u blocks x %u threads%s", blocks, threads, sync_before_read ? "" : ", no grid_sync");
  if (sync_before_read) {
    const bool ok = errors.empty() && wrong == 0 && stale == 0 && smem_wrong == 0 && block_wrong == 0 && distinct &&
                    finished == vals.size() && counter[0] == blocks && syncs == 2;
    std::snprintf(detail, sizeof detail, "wrong %zu, unwritten %zu, shared memory wrong %zu%s, block index wrong %zu, finished %zu, counter %u, grid syncs %llu",
                  wrong, stale, smem_wrong, distinct ? "" : " (NOT distinct per block)", block_wrong, finished, counter[0],
                  (unsigned long long)syncs);
    report(ok, name, detail, errors);
  } else {
    // Each thread writes, then reads its neighbour's slot with no switch point between, so around
    // the ring of blocks at least one per thread index reads before the neighbour wrote. Blocks run
    // one after another would give exactly that; threads of all blocks mixed also let some read a
    // later block's value already written.
    const bool ok = errors.empty() && wrong == 0 && stale >= threads && ahead > 0;
    std::snprintf(detail, sizeof detail, "%zu of %zu reads saw the neighbour's value unwritten (at least %u expected), %zu saw a later block's written",
                  stale, vals.size(), threads, ahead);
    report(ok, name, detail, errors);
  }
}

/** A kernel that must end in a recorded error (a deadlock, a misuse), not a hang or a crash. */
void expect_error(const std::string& name, const char* must_contain, const std::function<void()>& launch_it) {
  namespace rt = aios::emurt;
  const auto t0 = std::chrono::steady_clock::now();
  launch_it();
  const std::string errors = rt::take_errors();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool ok = errors.find(must_contain) != std::string::npos;
  char detail[160];
  std::snprintf(detail, sizeof detail, "%s \"%s\"  [%.2fs]", ok ? "reported" : "did NOT report", must_contain, secs);
  report(ok, name, detail, errors.empty() ? "(no error recorded)\n" : errors);
  show_expected(errors);
}

void grid_mode_tests(std::mt19937& rng) {
  namespace rt = aios::emurt;
  grid_exchange(5, 64, true, rng);
  grid_exchange(6, 256, true, rng);  // 1,536 fibers at once
  grid_exchange(5, 64, false, rng);

  // A producer and a consumer in different blocks: the consumer's spin on load_acquire must let the producer run.
  {
    std::vector<uint32_t> flag(2, 0);
    uint32_t seen = 0;
    rt::seed_order(unsigned(rng()));
    rt::clear_buffers();
    rt::register_buffer(flag.data(), 8, "flag", true);
    rt::launch_grid(dim3(2), dim3(32), 0, "spin_handoff", [&] {
      if (rt::thread_idx().x != 0) return;
      if (rt::block_idx().x == 1) {
        flag[1] = 42;  // the payload, then the flag
        rt::atomic_add_u32(&flag[0], 1);
      } else {
        while (rt::load_acquire_u32(&flag[0]) == 0) {}
        seen = flag[1];
      }
    });
    const std::string errors = rt::take_errors();
    report(errors.empty() && seen == 42, "spin on load_acquire across blocks", "consumer saw payload " + std::to_string(seen), errors);
  }

  expect_error("a block that exits without grid_sync", "deadlock", [&] {
    rt::seed_order(unsigned(rng()));
    rt::launch_grid(dim3(4), dim3(64), 64, "early_exit", [] {
      if (rt::block_idx().x == 2) return;
      rt::grid_sync();
    });
  });
  expect_error("grid_sync in half a block, __syncthreads in the other half", "deadlock", [&] {
    rt::seed_order(unsigned(rng()));
    rt::launch_grid(dim3(2), dim3(64), 0, "split_barrier", [] {
      if (rt::thread_idx().x < 32) rt::grid_sync();
      else rt::syncthreads();
    });
  });
  expect_error("a spin on a flag nobody sets", "deadlock", [&] {
    std::vector<uint32_t> flag(1, 0);
    rt::clear_buffers();
    rt::register_buffer(flag.data(), 4, "flag", true);
    rt::launch_grid(dim3(2), dim3(32), 0, "spin_forever", [&] {
      while (rt::load_acquire_u32(flag.data()) == 0) {}
    });
  });
  expect_error("__syncthreads in half a block under a plain launch", "wait at __syncthreads", [&] {
    rt::seed_order(unsigned(rng()));
    rt::launch(dim3(2), dim3(64), 0, "half_barrier", [] {
      if (rt::thread_idx().x < 32) rt::syncthreads();
    });
  });
  expect_error("grid_sync under a plain launch", "grid_sync under a plain launch", [] {
    rt::launch(dim3(2), dim3(32), 0, "plain_grid_sync", [] { rt::grid_sync(); });
  });
  {
    uint32_t stray = 7, old = 1;
    expect_error("atomic_add_u32 outside every buffer", "outside every buffer", [&] {
      rt::clear_buffers();
      rt::launch_grid(dim3(1), dim3(32), 0, "stray_atomic", [&] {
        if (rt::thread_idx().x == 0) old = rt::atomic_add_u32(&stray, 1);
      });
    });
    report(stray == 7 && old == 0, "atomic_add_u32 outside every buffer", "word left " + std::to_string(stray) + ", returned " + std::to_string(old));
  }
  rt::clear_buffers();
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
  grid_mode_tests(rng);
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
  std::printf("gemm_emu: %d of %d runs failed (seed %u, %.1f s; emulated %llu blocks, %llu mma, %llu cp.async, %llu grid syncs)\n", failures,
              runs, seed, secs, (unsigned long long)k.blocks, (unsigned long long)k.mma, (unsigned long long)k.cp_async,
              (unsigned long long)k.grid_syncs);
  return failures ? 1 : 0;
}
