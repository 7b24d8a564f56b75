// Lesson 09's CUDA kernels, run on the CPU emulator (emu.h) and checked against
// the CPU reference aios::cpu::paged_attention on fresh random inputs: ragged
// lengths, lengths not a multiple of the tile or the block, cached prefixes,
// GQA groups 1..8, decode with forced and automatic splits, bf16/f16/f32, and
// lesson 13's cascade decode on steps whose sequences share their first blocks.
// Every output starts as NaN, so an unwritten element fails; NaN never passes.
//
//   flash_emu [--seed N] [--full] [--only prefill|decode|cascade] [--verbose]
//
// Prints one line per (case, version) and exits 1 if any failed. Run by
// engine-core/test/flash-emu.test.ts (CI, no GPU needed).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/aios.h"
#include "../src/cpu/numeric.h"
#include "../src/flash.h"
#include "emu.h"
#include "test_buffer.h"

namespace aios::emu {
void flash_prefill(int st, const PagedAttentionArgs& a, int version);
void flash_decode(int st, const PagedAttentionArgs& a, int version, const aios::flash::DecodePlan& plan, void* workspace,
                  int64_t workspace_bytes);
aios::flash::DecodePlan flash_decode_plan(const PagedAttentionArgs& a, int version, int64_t splits);
aios::flash::CascadePlan flash_cascade_plan(const PagedAttentionArgs& a);
void flash_cascade_decode(int st, const PagedAttentionArgs& a, const aios::flash::CascadePlan& plan, void* workspace,
                          int64_t workspace_bytes);
}  // namespace aios::emu

namespace {

using aios::DType;

struct Seq {
  int q_len, ctx;
};

struct Case {
  std::string name;
  std::vector<Seq> seqs;
  int kv_heads, group, head_dim, block_size;
  DType dt;
  float logit_boost = 1.0f;  // multiplies q: larger logits, peakier softmax
  bool decode = false;       // run the decode versions (else the prefill ones)
  std::vector<int64_t> splits = {0};
  // Lesson 13's cascade decode (instead of the versions): shared[b] leading blocks of sequence
  // b's table are sequence b-1's (a shared prefix); the CPU cascade reference is checked too.
  bool cascade = false;
  std::vector<int> shared;
};

using aios::emutest::Buf;

double tolerance(DType dt) { return dt == DType::F32 ? 1e-5 : dt == DType::F16 ? 3e-3 : 1.5e-2; }

struct Result {
  double rel_err = 0, max_abs = 0;
  size_t nan = 0, worst = 0;
};

Result compare(const Buf& out, const Buf& ref) {
  Result r;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.n; ++i) {
    const double o = out.get(i), x = ref.get(i);
    if (std::isnan(o)) { ++r.nan; continue; }
    num += (o - x) * (o - x);
    den += x * x;
    if (std::fabs(o - x) > r.max_abs) { r.max_abs = std::fabs(o - x); r.worst = i; }
  }
  r.rel_err = r.nan ? INFINITY : den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return r;
}

const char* dt_name(DType dt) { return aios::dtype_name(dt); }

int failures = 0, runs = 0;
bool verbose = false;

void report(bool ok, const char* what, const Case& c, const Result& r, const std::string& error, const std::string& emu_errors,
            double secs, const std::string& extra) {
  ++runs;
  if (!ok) ++failures;
  std::printf("%s %-7s %-5s %s%s: rel_err %.2e (tol %.0e) max_abs %.2e unwritten/NaN %zu  [%.2fs]\n", ok ? "PASS" : "FAIL", what,
              dt_name(c.dt), c.name.c_str(), extra.c_str(), r.rel_err, tolerance(c.dt), r.max_abs, r.nan, secs);
  if (!error.empty()) std::printf("    threw: %s\n", error.c_str());
  if (!emu_errors.empty()) std::printf("    emulator: %s", emu_errors.c_str());
  std::fflush(stdout);
}

// A fresh emulator run's buffers: the step's inputs and its output (the caller adds a workspace).
void register_step(const Buf& q, const Buf& k, const Buf& v, const Buf& out, const std::vector<int32_t>& cu,
                   const std::vector<int32_t>& ctx, const std::vector<int32_t>& table, const std::vector<int32_t>* order = nullptr) {
  aios::emurt::clear_buffers();
  aios::emurt::register_buffer(q.bytes.data(), q.bytes.size(), "q", false);
  aios::emurt::register_buffer(k.bytes.data(), k.bytes.size(), "k_cache", false);
  aios::emurt::register_buffer(v.bytes.data(), v.bytes.size(), "v_cache", false);
  aios::emurt::register_buffer(out.bytes.data(), out.bytes.size(), "out", true);
  aios::emurt::register_buffer(cu.data(), cu.size() * 4, "cu_seqlens_q", false);
  aios::emurt::register_buffer(ctx.data(), ctx.size() * 4, "context_lens", false);
  aios::emurt::register_buffer(table.data(), table.size() * 4, "block_tables", false);
  if (order) aios::emurt::register_buffer(order->data(), order->size() * 4, "seq_order", false);
}

// The cascade decode (CUDA kernels on the emulator, and the CPU cascade reference) vs paged_attention.
void run_cascade(const Case& c, aios::PagedAttentionArgs a, const Buf& q, const Buf& k, const Buf& v, const Buf& ref, Buf& out,
                 std::vector<int32_t>& cu, std::vector<int32_t>& ctx, std::vector<int32_t>& table) {
  int64_t plain_keys = 0;
  for (int32_t n : ctx) plain_keys += n;
  {  // the CPU reference of the cascade
    out.poison();
    a.out = out.bytes.data();
    std::string error;
    int64_t keys = -1;
    try {
      keys = aios::cpu::cascade_decode(a);
    } catch (const std::exception& e) {
      error = e.what();
    }
    const Result r = compare(out, ref);
    report(error.empty() && r.nan == 0 && r.rel_err < tolerance(c.dt), "cascade cpu", c, r, error, "", 0.0,
           " keys read " + std::to_string(keys) + " of " + std::to_string(plain_keys));
  }
  const std::string why = aios::flash::cascade_unsupported(a);
  if (!why.empty()) {
    if (verbose) std::printf("skip  cascade %s: %s\n", c.name.c_str(), why.c_str());
    return;
  }
  out.poison();
  a.out = out.bytes.data();
  const aios::flash::CascadePlan plan = aios::emu::flash_cascade_plan(a);
  std::vector<float> ws(size_t(plan.workspace_bytes / 4 + 1), NAN);
  register_step(q, k, v, out, cu, ctx, table);
  aios::emurt::register_buffer(ws.data(), size_t(plan.workspace_bytes), "workspace", true);
  const auto t0 = std::chrono::steady_clock::now();
  std::string error;
  try {
    aios::emu::flash_cascade_decode(0, a, plan, ws.data(), plan.workspace_bytes);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string emu_errors = aios::emurt::take_errors();
  const Result r = compare(out, ref);
  report(error.empty() && emu_errors.empty() && r.nan == 0 && r.rel_err < tolerance(c.dt), "cascade", c, r, error, emu_errors, secs,
         " splits " + std::to_string(plan.shared_splits) + " shared + " + std::to_string(plan.own.splits) + " own");
}

void run_case(const Case& c, std::mt19937& rng, const std::string& only) {
  if (!only.empty() && only != (c.cascade ? "cascade" : c.decode ? "decode" : "prefill")) return;
  const int S = int(c.seqs.size()), Hkv = c.kv_heads, Hq = Hkv * c.group, D = c.head_dim, bs = c.block_size;
  std::vector<int32_t> cu(static_cast<size_t>(S) + 1, 0), ctx(static_cast<size_t>(S));
  int max_q = 0, max_ctx = 0, max_blocks = 1;
  for (int b = 0; b < S; ++b) {
    cu[size_t(b) + 1] = cu[size_t(b)] + c.seqs[size_t(b)].q_len;
    ctx[size_t(b)] = c.seqs[size_t(b)].ctx;
    max_q = std::max(max_q, c.seqs[size_t(b)].q_len);
    max_ctx = std::max(max_ctx, c.seqs[size_t(b)].ctx);
    max_blocks = std::max(max_blocks, (c.seqs[size_t(b)].ctx + bs - 1) / bs);
  }
  const int T = cu[size_t(S)];
  // A pool with spare blocks, handed out in a random order: tables are not contiguous.
  int used = 0;
  for (int b = 0; b < S; ++b) used += (ctx[size_t(b)] + bs - 1) / bs;
  const int num_blocks = used + 3;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  for (int i = 0; i < num_blocks; ++i) ids[size_t(i)] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> table(size_t(S) * size_t(max_blocks), -1);  // unused entries are garbage the kernels must not read
  int next = 0;
  for (int b = 0; b < S; ++b)
    for (int j = 0; j < (ctx[size_t(b)] + bs - 1) / bs; ++j) {
      const bool from_prev = c.cascade && b > 0 && j < c.shared[size_t(b)];
      table[size_t(b) * size_t(max_blocks) + size_t(j)] =
          from_prev ? table[size_t(b - 1) * size_t(max_blocks) + size_t(j)] : ids[size_t(next++)];
    }
  const size_t slots = size_t(num_blocks) * size_t(bs);
  std::uniform_real_distribution<float> U(-1.0f, 1.0f);
  Buf q(size_t(T) * Hq * D, c.dt), k(slots * Hkv * D, c.dt), v(slots * Hkv * D, c.dt), ref(size_t(T) * Hq * D, c.dt),
      out(size_t(T) * Hq * D, c.dt);
  for (size_t i = 0; i < q.n; ++i) q.set(i, U(rng) * c.logit_boost);
  for (size_t i = 0; i < k.n; ++i) k.set(i, U(rng));
  for (size_t i = 0; i < v.n; ++i) v.set(i, U(rng));

  aios::PagedAttentionArgs a;
  a.q = q.bytes.data();
  a.k_cache = k.bytes.data();
  a.v_cache = v.bytes.data();
  a.cu_seqlens_q = cu.data();
  a.context_lens = ctx.data();
  a.block_tables = table.data();
  a.num_seqs = S;
  a.num_tokens = T;
  a.q_heads = Hq;
  a.kv_heads = Hkv;
  a.head_dim = D;
  a.block_size = bs;
  a.max_blocks_per_seq = max_blocks;
  a.num_slots = int64_t(slots);
  a.max_q_len = max_q;
  a.max_context_len = max_ctx;
  a.scale = 1.0f / std::sqrt(float(D));
  a.dt = c.dt;
  a.out = ref.bytes.data();
  aios::cpu::paged_attention(a);

  if (c.cascade) {
    run_cascade(c, a, q, k, v, ref, out, cu, ctx, table);
    return;
  }
  // Decode v3 runs with the engine's sequence order (longest context first, ties by index), the
  // other versions without one.
  std::vector<int32_t> order(static_cast<size_t>(S));
  for (int b = 0; b < S; ++b) order[size_t(b)] = b;
  std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return ctx[size_t(x)] > ctx[size_t(y)]; });
  const int versions = c.decode ? aios::flash::kDecodeVersions : aios::flash::kPrefillVersions;
  for (int ver = 1; ver <= versions; ++ver) {
    const bool ordered = c.decode && ver == 3;
    a.seq_order = ordered ? order.data() : nullptr;
    const std::string why = c.decode ? aios::flash::decode_unsupported(a, ver) : aios::flash::prefill_unsupported(a, ver);
    if (!why.empty()) {
      if (verbose) std::printf("skip  %-8s v%d %s: %s\n", c.decode ? "decode" : "prefill", ver, c.name.c_str(), why.c_str());
      continue;
    }
    for (int64_t splits : (c.decode ? c.splits : std::vector<int64_t>{0})) {
      if (c.decode && ver == 1 && splits != 0) continue;
      out.poison();
      a.out = out.bytes.data();
      aios::flash::DecodePlan plan;
      if (c.decode) plan = aios::emu::flash_decode_plan(a, ver, splits);
      std::vector<float> ws(size_t(plan.workspace_bytes / 4 + 1), NAN);
      register_step(q, k, v, out, cu, ctx, table, ordered ? &order : nullptr);
      if (plan.workspace_bytes) aios::emurt::register_buffer(ws.data(), size_t(plan.workspace_bytes), "workspace", true);
      const auto t0 = std::chrono::steady_clock::now();
      std::string error;
      try {
        if (c.decode) aios::emu::flash_decode(0, a, ver, plan, ws.data(), plan.workspace_bytes);
        else aios::emu::flash_prefill(0, a, ver);
      } catch (const std::exception& e) {
        error = e.what();
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const std::string emu_errors = aios::emurt::take_errors();
      const Result r = compare(out, ref);
      const bool ok = error.empty() && emu_errors.empty() && r.nan == 0 && r.rel_err < tolerance(c.dt);
      ++runs;
      if (!ok) ++failures;
      char split_txt[48] = "";
      if (c.decode) std::snprintf(split_txt, sizeof split_txt, " splits %lld/%lld%s", (long long)splits, (long long)plan.splits, ordered ? " ordered" : "");
      std::printf("%s %-7s v%d %-5s %s%s: rel_err %.2e (tol %.0e) max_abs %.2e unwritten/NaN %zu  [%.2fs]\n", ok ? "PASS" : "FAIL",
                  c.decode ? "decode" : "prefill", ver, dt_name(c.dt), c.name.c_str(), split_txt, r.rel_err, tolerance(c.dt),
                  r.max_abs, r.nan, secs);
      if (!ok) {
        if (!error.empty()) std::printf("    threw: %s\n", error.c_str());
        if (!emu_errors.empty()) std::printf("    emulator: %s", emu_errors.c_str());
        if (r.nan || r.rel_err >= tolerance(c.dt)) {
          // where the first bad element is: token, head, dim
          size_t i = r.worst;
          for (size_t j = 0; j < out.n; ++j)
            if (std::isnan(out.get(j))) { i = j; break; }
          const size_t tok = i / (size_t(Hq) * D), head = i / D % Hq, d = i % D;
          int seq = 0;
          while (seq + 1 < S && size_t(cu[size_t(seq) + 1]) <= tok) ++seq;
          std::printf("    worst at token %zu (sequence %d, query %zu of %d, context %d) head %zu dim %zu: got %g, want %g\n",
                      tok, seq, tok - size_t(cu[size_t(seq)]), c.seqs[size_t(seq)].q_len, ctx[size_t(seq)], head, d,
                      double(out.get(i)), double(ref.get(i)));
        }
      }
      std::fflush(stdout);
    }
  }
}

std::string seqs_name(const std::vector<Seq>& s) {
  std::string n = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) n += " ";
    n += std::to_string(s[i].q_len) + "/" + std::to_string(s[i].ctx);
    if (i == 5 && s.size() > 7) { n += " ..." + std::to_string(s.size()) + " seqs"; break; }
  }
  return n + "]";
}

Case make(std::vector<Seq> seqs, int kvh, int group, int D, int bs, DType dt, bool decode, std::vector<int64_t> splits = {0},
          float boost = 1.0f) {
  Case c;
  c.seqs = std::move(seqs);
  c.kv_heads = kvh;
  c.group = group;
  c.head_dim = D;
  c.block_size = bs;
  c.dt = dt;
  c.decode = decode;
  c.splits = std::move(splits);
  c.logit_boost = boost;
  c.name = seqs_name(c.seqs) + " kvh" + std::to_string(kvh) + " g" + std::to_string(group) + " D" + std::to_string(D) + " bs" +
           std::to_string(bs) + (boost != 1.0f ? " x" + std::to_string(int(boost)) : "");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned seed = unsigned(std::chrono::steady_clock::now().time_since_epoch().count());
  bool full = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--seed" && i + 1 < argc) seed = unsigned(std::stoul(argv[++i]));
    else if (arg == "--full") full = true;
    else if (arg == "--verbose") verbose = true;
    else if (arg == "--only" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: flash_emu [--seed N] [--full] [--only prefill|decode|cascade] [--verbose]\n");
      return 2;
    }
  }
  std::printf("flash_emu: seed %u\n", seed);
  std::mt19937 rng(seed);
  aios::emurt::seed_order(seed);
  const DType B = DType::BF16, H = DType::F16, F = DType::F32;
  std::vector<Case> cases = {
      // prefill: ragged, lengths off the 32/64 tiles and off the block size, GQA 1..8
      make({{37, 37}, {1, 1}, {70, 70}}, 2, 2, 128, 16, B, false),
      make({{65, 65}, {3, 3}}, 1, 4, 128, 5, H, false),
      make({{20, 20}}, 1, 8, 64, 7, B, false, {0}, 6.0f),
      make({{33, 33}, {9, 9}}, 2, 1, 128, 16, F, false),
      // cached prefixes: the queries are the last q_len of a longer context
      make({{17, 150}, {64, 100}, {1, 90}}, 1, 2, 128, 16, B, false, {0}, 4.0f),
      make({{5, 5}, {0, 12}, {40, 200}}, 2, 3, 64, 32, H, false),
      // cached prefixes that put a warp's first query one, two and three keys before a 64-key tile's
      // end, and a warp's last query (4 rows, g4) on a tile's first key (v5 masks and skips per warp)
      make({{64, 126}, {40, 101}, {96, 159}}, 1, 1, 128, 16, B, false),
      make({{10, 67}}, 1, 4, 128, 16, B, false),
      // decode: contexts around the 64-key tile and the partitions, forced and automatic splits
      make({{1, 1}, {1, 63}, {1, 64}, {1, 65}, {1, 300}}, 2, 4, 128, 16, B, true, {0, 1, 3, 7}),
      make({{1, 700}, {1, 2}, {0, 9}}, 1, 8, 128, 11, H, true, {0, 5}, 5.0f),
      make({{1, 129}, {1, 40}}, 2, 1, 64, 16, F, true, {0, 2}),
      make({{2, 90}, {1, 33}, {2, 2}}, 1, 4, 128, 16, B, true, {0, 3}),  // two queries per sequence (rows 8)
      make({{1, 77}}, 1, 2, 256, 8, B, true, {0, 2}),
      // one long context setting the launch's bound beside short ones: the split is cut for the
      // bound, so the short sequences fill only their first split(s) and leave the rest empty, and
      // the combine must count the same ones (a per-sequence cut, tried at 9086c02, was caught here)
      make({{1, 1000}, {1, 70}, {1, 130}, {1, 200}, {1, 333}, {1, 400}, {1, 129}, {1, 1}}, 2, 2, 128, 16, B, true, {0, 3, 9}),
  };
  // Lesson 13's cascade decode: groups of adjacent sequences sharing their first blocks
  // (block size 16: a 256-key split is 16 blocks), groups of one, members diverging inside a
  // split, a member whose context stops short of a shared split, a sequence with no query.
  auto cascade = [&](std::vector<Seq> seqs, std::vector<int> shared, int kvh, int group, int D, int bs, DType dt, float boost = 1.0f) {
    Case c = make(std::move(seqs), kvh, group, D, bs, dt, true, {0}, boost);
    c.cascade = true;
    c.shared = std::move(shared);
    c.name = "shared " + [&] {
      std::string n;
      for (size_t i = 0; i < c.shared.size() && i < 8; ++i) n += std::to_string(c.shared[i]) + ",";
      return n + (c.shared.size() > 8 ? "..." : "");
    }() + " " + c.name;
    return c;
  };
  cases.push_back(cascade({{1, 530}, {1, 600}, {1, 513}, {1, 90}, {1, 300}, {1, 700}}, {0, 32, 32, 0, 0, 18}, 2, 2, 128, 16, B));
  cases.push_back(cascade({{1, 300}, {1, 280}, {1, 256}, {0, 260}, {1, 257}, {1, 40}}, {0, 16, 16, 16, 16, 0}, 1, 4, 64, 16, H, 4.0f));
  cases.push_back(cascade({{1, 520}, {1, 515}, {1, 777}}, {0, 16, 10}, 1, 2, 128, 32, B));
  {  // a group of 40: more than one 64-row chunk of the shared block (2 query heads per KV head)
    std::vector<Seq> seqs(40, Seq{1, 0});
    std::vector<int> shared(40, 16);
    shared[0] = 0;
    for (int i = 0; i < 40; ++i) seqs[size_t(i)].ctx = 258 + 7 * i;
    cases.push_back(cascade(seqs, shared, 1, 2, 128, 16, B));
  }
  // contexts within 4 tiles: two own splits of 2 tiles (the automatic split's floor), members sharing a whole split
  cases.push_back(cascade({{1, 256}, {1, 256}, {1, 200}, {1, 256}, {1, 100}, {0, 50}}, {0, 16, 12, 0, 0, 0}, 2, 4, 128, 16, B));
  // contexts within 2 tiles: one own split, so the sequences (sharing nothing) get decode v3's output directly
  cases.push_back(cascade({{1, 128}, {1, 128}, {1, 100}, {1, 65}, {0, 50}}, {0, 4, 0, 0, 0}, 2, 4, 128, 16, B));
  {  // 20 groups of 3: windows of 32 sequences with several leaders, groups across a window's edge
    std::vector<Seq> seqs;
    std::vector<int> shared;
    for (int i = 0; i < 60; ++i) {
      seqs.push_back(Seq{1, 256 + int(rng() % 300)});
      shared.push_back(i % 3 == 0 ? 0 : 16);
    }
    cases.push_back(cascade(seqs, shared, 2, 2, 128, 16, B, 3.0f));
  }
  if (full) {
    cases.push_back(make({{130, 130}, {64, 64}, {63, 63}}, 2, 2, 128, 16, B, false));
    cases.push_back(make({{100, 300}}, 1, 5, 128, 16, B, false));
    cases.push_back(make({{48, 48}}, 2, 2, 256, 16, F, false));
    cases.push_back(make({{1, 2000}, {1, 1500}}, 1, 4, 128, 16, B, true, {0, 4, 13}));
    cases.push_back(make({{3, 300}, {1, 64}}, 1, 5, 128, 32, B, true, {0, 2}));  // rows 15: v3 only
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (const Case& c : cases) run_case(c, rng, only);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& k = aios::emurt::counters();
  std::printf("flash_emu: %d of %d runs failed (seed %u, %.1f s; emulated %llu blocks, %llu mma, %llu cp.async)\n", failures, runs,
              seed, secs, (unsigned long long)k.blocks, (unsigned long long)k.mma, (unsigned long long)k.cp_async);
  return failures ? 1 : 0;
}
