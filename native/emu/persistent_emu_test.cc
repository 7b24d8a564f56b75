// Lesson 11's persistent decode step (native/src/cuda/persistent_decode.cu)
// compiled as C++ and run on the CPU emulator's grid-wide mode (every block at
// once, grid barriers, atomics), checked against a plain loop of lesson 10's
// fused forward with the same roundings to bf16: a small Qwen3-like shape with
// 2 layers (hidden 1024, intermediate 1536: gate/up tiles in 2 column chunks,
// down tiles in 3), GQA (2 query heads per KV head), contexts over several pool blocks
// in shuffled block tables, 1 to 3 rows, the context split 5, 3, 2 and 1 ways (the
// merge by the last unit to arrive, splits with no keys, and the direct write), a padding row (slot
// -1: nothing stored), and every block owning a different number of chunks of
// each weight. What is compared: the final norm (the LM head's input), the
// residual stream, and the K/V the step stored; every other pool slot must be
// untouched. Each case runs twice in different thread orders and must give the
// same bits (the splits are merged in a fixed order, whoever merges).
// First, the plan's rules alone: each refusal names its reason, and Qwen3-0.6B on
// an H200's 132 SMs gets the splits and chunk sizes the kernel was designed for.
//
//   persistent_emu [--seed N] [--verbose]
//
// Prints one line per case and exits 1 if any failed. Run by
// engine-core/test/persistent-emu.test.ts (CI, no GPU needed).
#define AIOS_EMU 1
#include "../src/cuda/persistent_decode.cu"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_buffer.h"

namespace {

using aios::DType;
using aios::emutest::Buf;
namespace pst = aios::persistent;

float bf(float v) { return aios::cpu::to_float(aios::cpu::bf16_from(v)); }

struct Model {
  int64_t L = 2, H = 1024, Hq = 4, Hkv = 2, D = 128, I = 1536, max_pos = 512;  // gate/up in 2 chunks a tile, down in 3
  int64_t block_size = 16, num_blocks = 40;
  int64_t slots() const { return block_size * num_blocks; }
  int64_t qkv_rows() const { return (Hq + 2 * Hkv) * D; }
};

struct Case {
  std::vector<int64_t> ctx;  // context length of each row once its new key is stored; 0: a padding row
  int grid;
};

int failures = 0, runs = 0;
bool verbose = false;

// The fused forward of lesson 10, one decode row at a time, in float with its roundings.
struct Reference {
  const Model& m;
  const Buf &qkv_w, &o_w, &gu_w, &down_w, &in_norm, &post_norm, &q_norm, &k_norm, &final_norm;
  const std::vector<float>&cos, &sin;

  static void norm(const std::vector<float>& x, const Buf& w, int64_t off, std::vector<float>& out, float eps = 1e-6f) {
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const float inv = 1.0f / std::sqrt(float(ss / x.size()) + eps);
    out.resize(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = bf(x[i] * inv * w.get(size_t(off) + i));
  }
  static std::vector<float> matvec(const Buf& w, int64_t off, int64_t n, const std::vector<float>& x) {
    std::vector<float> y(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      double s = 0;
      for (size_t k = 0; k < x.size(); ++k) s += double(w.get(size_t(off + r * int64_t(x.size())) + k)) * x[k];
      y[size_t(r)] = bf(float(s));
    }
    return y;
  }
  std::vector<float> norm_rope(const std::vector<float>& x, const Buf& w, int64_t off, int64_t pos) const {
    std::vector<float> v;
    norm(x, w, off, v);
    std::vector<float> o(static_cast<size_t>(m.D));
    for (int64_t i = 0; i < m.D / 2; ++i) {
      const float c = cos[size_t(pos * 64 + i)], s = sin[size_t(pos * 64 + i)];
      o[size_t(i)] = bf(v[size_t(i)] * c - v[size_t(i + 64)] * s);
      o[size_t(i + 64)] = bf(v[size_t(i + 64)] * c + v[size_t(i)] * s);
    }
    return o;
  }

  // One row: residual in/out, the pool updated at `slot`, the final norm returned.
  std::vector<float> row(std::vector<float>& res, Buf& pool, const std::vector<int32_t>& table, int64_t ctx, int64_t slot) const {
    const int64_t D = m.D, G = m.Hq / m.Hkv, pos = ctx - 1;
    auto pool_at = [&](int64_t layer, int kv, int64_t sl, int64_t h) { return size_t(((layer * 2 + kv) * m.slots() + sl) * m.Hkv + h) * size_t(D); };
    std::vector<float> x;
    for (int64_t l = 0; l < m.L; ++l) {
      norm(res, in_norm, l * m.H, x);
      const std::vector<float> qkv = matvec(qkv_w, l * m.qkv_rows() * m.H, m.qkv_rows(), x);
      auto head = [&](int64_t h) { return std::vector<float>(qkv.begin() + h * D, qkv.begin() + (h + 1) * D); };
      for (int64_t kh = 0; kh < m.Hkv; ++kh) {
        const std::vector<float> k = norm_rope(head(m.Hq + kh), k_norm, l * D, pos), v = head(m.Hq + m.Hkv + kh);
        for (int64_t d = 0; d < D; ++d) pool.set(pool_at(l, 0, slot, kh) + size_t(d), k[size_t(d)]), pool.set(pool_at(l, 1, slot, kh) + size_t(d), v[size_t(d)]);
      }
      std::vector<float> attn(size_t(m.Hq * D));
      for (int64_t qh = 0; qh < m.Hq; ++qh) {
        const std::vector<float> q = norm_rope(head(qh), q_norm, l * D, pos);
        const int64_t kh = qh / G;
        std::vector<double> p(static_cast<size_t>(ctx));
        double mx = -1e300;
        for (int64_t key = 0; key < ctx; ++key) {
          const int64_t sl = table[size_t(key / m.block_size)] * m.block_size + key % m.block_size;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += double(q[size_t(d)]) * pool.get(pool_at(l, 0, sl, kh) + size_t(d));
          p[size_t(key)] = s / std::sqrt(double(D));
          mx = std::max(mx, p[size_t(key)]);
        }
        double sum = 0;
        for (auto& v : p) sum += (v = std::exp(v - mx));
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t key = 0; key < ctx; ++key) {
            const int64_t sl = table[size_t(key / m.block_size)] * m.block_size + key % m.block_size;
            o += p[size_t(key)] * pool.get(pool_at(l, 1, sl, kh) + size_t(d));
          }
          attn[size_t(qh * D + d)] = bf(float(o / sum));
        }
      }
      const std::vector<float> o = matvec(o_w, l * m.H * m.Hq * D, m.H, attn);
      for (int64_t i = 0; i < m.H; ++i) res[size_t(i)] = bf(res[size_t(i)] + o[size_t(i)]);
      norm(res, post_norm, l * m.H, x);
      const std::vector<float> g = matvec(gu_w, l * 2 * m.I * m.H, m.I, x), u = matvec(gu_w, (l * 2 * m.I + m.I) * m.H, m.I, x);
      std::vector<float> act(size_t(m.I));
      for (int64_t i = 0; i < m.I; ++i) act[size_t(i)] = bf(bf(g[size_t(i)] / (1.0f + std::exp(-g[size_t(i)]))) * u[size_t(i)]);
      const std::vector<float> dn = matvec(down_w, l * m.H * m.I, m.H, act);
      for (int64_t i = 0; i < m.H; ++i) res[size_t(i)] = bf(res[size_t(i)] + dn[size_t(i)]);
    }
    std::vector<float> out;
    norm(res, final_norm, 0, out);
    return out;
  }
};

void fill(Buf& b, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> U(lo, hi);
  for (size_t i = 0; i < b.n; ++i) b.set(i, U(rng));
}

void run_case(const Case& c, std::mt19937& rng) {
  const Model m;
  const int64_t T = int64_t(c.ctx.size());
  pst::Shape shape{T, m.L, m.H, m.Hq, m.Hkv, m.D, m.I};
  const pst::Plan plan = pst::plan(shape, c.grid, 227 * 1024);
  char name[160];
  std::snprintf(name, sizeof name, "rows %lld, grid %d, splits %d, contexts", (long long)T, c.grid, plan.splits);
  std::string label = name;
  for (int64_t L : c.ctx) label += " " + (L ? std::to_string(L) : std::string("pad"));
  if (!plan.why.empty()) {
    std::printf("FAIL %s: the plan refused: %s\n", label.c_str(), plan.why.c_str());
    ++failures;
    return;
  }
  const float s_h = 1.0f / std::sqrt(float(m.H)), s_q = 1.0f / std::sqrt(float(m.Hq * m.D)), s_i = 1.0f / std::sqrt(float(m.I));
  Buf qkv_w(size_t(m.L * m.qkv_rows() * m.H), DType::BF16), o_w(size_t(m.L * m.H * m.Hq * m.D), DType::BF16);
  Buf gu_w(size_t(m.L * 2 * m.I * m.H), DType::BF16), down_w(size_t(m.L * m.H * m.I), DType::BF16);
  Buf in_norm(size_t(m.L * m.H), DType::BF16), post_norm(size_t(m.L * m.H), DType::BF16), q_norm(size_t(m.L * m.D), DType::BF16),
      k_norm(size_t(m.L * m.D), DType::BF16), final_norm(size_t(m.H), DType::BF16);
  fill(qkv_w, rng, -2 * s_h, 2 * s_h), fill(o_w, rng, -2 * s_q, 2 * s_q), fill(gu_w, rng, -2 * s_h, 2 * s_h), fill(down_w, rng, -2 * s_i, 2 * s_i);
  for (Buf* b : {&in_norm, &post_norm, &q_norm, &k_norm, &final_norm}) fill(*b, rng, 0.8f, 1.2f);
  std::vector<float> cos(size_t(m.max_pos * 64)), sin(cos.size());
  for (int64_t p = 0; p < m.max_pos; ++p)
    for (int64_t i = 0; i < 64; ++i) {
      const double a = double(p) * std::pow(1e6, -double(i) / 64.0);
      cos[size_t(p * 64 + i)] = float(std::cos(a)), sin[size_t(p * 64 + i)] = float(std::sin(a));
    }
  Buf pool(size_t(m.L * 2 * m.slots() * m.Hkv * m.D), DType::BF16);
  fill(pool, rng, -1.5f, 1.5f);
  // Block tables: each row its own blocks, shuffled; width for the longest context.
  int64_t width = 1;
  for (int64_t L : c.ctx) width = std::max(width, (L + m.block_size - 1) / m.block_size);
  std::vector<int32_t> blocks(size_t(m.num_blocks));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = int32_t(i);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<int32_t> tables(static_cast<size_t>(T * width), 0), positions(static_cast<size_t>(T)), slots(static_cast<size_t>(T)), ctx(static_cast<size_t>(T));
  size_t next_block = 0;
  for (int64_t b = 0; b < T; ++b) {
    const int64_t L = c.ctx[size_t(b)];
    if (L == 0) {  // padding, as StepInputBuffer.buildFixed writes it: position 0, one key of block 0, nothing stored
      positions[size_t(b)] = 0, slots[size_t(b)] = -1, ctx[size_t(b)] = 1;
      continue;
    }
    for (int64_t j = 0; j < (L + m.block_size - 1) / m.block_size; ++j) tables[size_t(b * width + j)] = blocks[next_block++];
    positions[size_t(b)] = int32_t(L - 1), ctx[size_t(b)] = int32_t(L);
    slots[size_t(b)] = int32_t(tables[size_t(b * width + (L - 1) / m.block_size)] * m.block_size + (L - 1) % m.block_size);
  }
  Buf residual(size_t(T * m.H), DType::BF16);
  fill(residual, rng, -1.0f, 1.0f);
  const Buf residual_in = residual, pool_in = pool;

  // The reference.
  Reference ref{m, qkv_w, o_w, gu_w, down_w, in_norm, post_norm, q_norm, k_norm, final_norm, cos, sin};
  Buf pool_ref = pool_in;
  std::vector<std::vector<float>> want_out(static_cast<size_t>(T)), want_res(static_cast<size_t>(T));
  for (int64_t b = 0; b < T; ++b) {
    if (c.ctx[size_t(b)] == 0) continue;
    std::vector<float> res(size_t(m.H));
    for (int64_t i = 0; i < m.H; ++i) res[size_t(i)] = residual_in.get(size_t(b * m.H + i));
    const std::vector<int32_t> table(tables.begin() + b * width, tables.begin() + (b + 1) * width);
    want_out[size_t(b)] = ref.row(res, pool_ref, table, c.ctx[size_t(b)], slots[size_t(b)]);
    want_res[size_t(b)] = res;
  }

  // The kernel, twice.
  std::vector<std::vector<unsigned char>> runs_out, runs_res, runs_pool;
  for (int run = 0; run < 2; ++run) {
    ++runs;
    aios::emurt::seed_order(unsigned(rng()));
    Buf res = residual_in, pl = pool_in, normed(size_t(T * m.H), DType::BF16), qkv(size_t(T * m.qkv_rows()), DType::BF16);
    Buf attn(size_t(T * m.Hq * m.D), DType::BF16), act(size_t(T * m.I), DType::BF16), partials(size_t(plan.partial_floats), DType::F32);
    normed.poison(), qkv.poison(), attn.poison(), act.poison(), partials.poison();
    std::vector<uint32_t> sync(size_t(plan.sync_words), 0xdeadbeefu);
    aios::emurt::clear_buffers();
    auto reg = [](const void* p, size_t n, const char* nm, bool wr) { aios::emurt::register_buffer(p, n, nm, wr); };
    reg(qkv_w.bytes.data(), qkv_w.bytes.size(), "qkv_w", false), reg(o_w.bytes.data(), o_w.bytes.size(), "o_w", false);
    reg(gu_w.bytes.data(), gu_w.bytes.size(), "gate_up_w", false), reg(down_w.bytes.data(), down_w.bytes.size(), "down_w", false);
    reg(in_norm.bytes.data(), in_norm.bytes.size(), "input_norm", false), reg(post_norm.bytes.data(), post_norm.bytes.size(), "post_norm", false);
    reg(q_norm.bytes.data(), q_norm.bytes.size(), "q_norm", false), reg(k_norm.bytes.data(), k_norm.bytes.size(), "k_norm", false);
    reg(final_norm.bytes.data(), final_norm.bytes.size(), "final_norm", false);
    reg(cos.data(), cos.size() * 4, "cos", false), reg(sin.data(), sin.size() * 4, "sin", false);
    reg(pl.bytes.data(), pl.bytes.size(), "kv_pool", true);
    reg(positions.data(), positions.size() * 4, "positions", false), reg(slots.data(), slots.size() * 4, "slot_mapping", false);
    reg(ctx.data(), ctx.size() * 4, "context_lens", false), reg(tables.data(), tables.size() * 4, "block_tables", false);
    reg(res.bytes.data(), res.bytes.size(), "residual", true), reg(normed.bytes.data(), normed.bytes.size(), "normed_out", true);
    reg(qkv.bytes.data(), qkv.bytes.size(), "qkv", true), reg(attn.bytes.data(), attn.bytes.size(), "attn", true);
    reg(act.bytes.data(), act.bytes.size(), "act", true), reg(partials.bytes.data(), partials.bytes.size(), "partials", true);
    reg(sync.data(), sync.size() * 4, "sync", true);
    aios::PersistentDecodeArgs a{};
    a.qkv_w = qkv_w.bytes.data(), a.o_w = o_w.bytes.data(), a.gate_up_w = gu_w.bytes.data(), a.down_w = down_w.bytes.data();
    a.input_norm = in_norm.bytes.data(), a.post_norm = post_norm.bytes.data(), a.q_norm = q_norm.bytes.data(), a.k_norm = k_norm.bytes.data();
    a.final_norm = final_norm.bytes.data(), a.cos = cos.data(), a.sin = sin.data(), a.kv_pool = pl.bytes.data();
    a.positions = positions.data(), a.slot_mapping = slots.data(), a.context_lens = ctx.data(), a.block_tables = tables.data();
    a.residual = res.bytes.data(), a.normed_out = normed.bytes.data(), a.qkv = qkv.bytes.data(), a.attn = attn.bytes.data(), a.act = act.bytes.data();
    a.partials = reinterpret_cast<float*>(partials.bytes.data()), a.sync = sync.data();
    a.shape = {T, m.L, m.H, m.Hq, m.Hkv, m.D, m.I};
    a.max_pos = m.max_pos, a.num_slots = m.slots(), a.block_size = m.block_size, a.table_width = width;
    a.eps = 1e-6f, a.scale = 1.0f / std::sqrt(float(m.D)), a.dt = DType::BF16;
    aios::emu::persistent_decode_emu(a, plan);
    const std::string errors = aios::emurt::take_errors();
    if (!errors.empty()) {
      std::printf("FAIL %s: the emulator reported:\n%s", label.c_str(), errors.c_str());
      ++failures;
      return;
    }
    for (size_t i = 1; i < sync.size(); ++i)
      if (sync[i] != 0) {
        std::printf("FAIL %s: the merge counter of (row, KV head) %zu is %u after the launch, not 0\n", label.c_str(), i - 1, sync[i]);
        ++failures;
        return;
      }
    // Against the reference: relative to the largest value of each.
    auto compare = [&](const char* what, const std::vector<float>& want, const Buf& got, size_t off) {
      double mx = 0, err = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        mx = std::max(mx, double(std::fabs(want[i])));
        const double g = got.get(off + i);
        err = std::isfinite(g) ? std::max(err, std::fabs(g - want[i])) : 1e30;
      }
      return err / std::max(mx, 1e-6);
    };
    double worst = 0;
    for (int64_t b = 0; b < T; ++b) {
      if (c.ctx[size_t(b)] == 0) continue;
      worst = std::max(worst, compare("normed_out", want_out[size_t(b)], normed, size_t(b * m.H)));
      worst = std::max(worst, compare("residual", want_res[size_t(b)], res, size_t(b * m.H)));
    }
    // The pool: the stored K/V against the reference's; every other slot as it was.
    double pool_err = 0, pool_max = 0;
    size_t changed_elsewhere = 0;
    const size_t per_slot = size_t(m.Hkv * m.D);
    for (size_t i = 0; i < pl.n; ++i) {
      const size_t slot = (i / per_slot) % size_t(m.slots());
      const bool stored = std::find(slots.begin(), slots.end(), int32_t(slot)) != slots.end();
      if (stored) {
        pool_max = std::max(pool_max, double(std::fabs(pool_ref.get(i))));
        pool_err = std::max(pool_err, double(std::fabs(pl.get(i) - pool_ref.get(i))));
      } else if (std::memcmp(&pl.bytes[i * 2], &pool_in.bytes[i * 2], 2) != 0) {
        ++changed_elsewhere;
      }
    }
    worst = std::max(worst, pool_err / std::max(pool_max, 1e-6));
    const bool ok = worst < 2e-2 && changed_elsewhere == 0;
    if (!ok || verbose)
      std::printf("%s %s (run %d): worst rel. error %.2e%s\n", ok ? "ok  " : "FAIL", label.c_str(), run, worst,
                  changed_elsewhere ? (", " + std::to_string(changed_elsewhere) + " pool elements changed outside the step's slots").c_str() : "");
    if (!ok) ++failures;
    runs_out.push_back(normed.bytes), runs_res.push_back(res.bytes), runs_pool.push_back(pl.bytes);
  }
  if (runs_out[0] != runs_out[1] || runs_res[0] != runs_res[1] || runs_pool[0] != runs_pool[1]) {
    std::printf("FAIL %s: two runs in different thread orders gave different bits\n", label.c_str());
    ++failures;
  } else {
    std::printf("ok   %s\n", label.c_str());
  }
}

// The plan's rules (native/src/persistent.h), no kernel run: what it refuses, and how it divides
// Qwen3-0.6B's step on an H200 (132 SMs, 227 KiB of shared memory a block).
void check_plan() {
  ++runs;
  const int sms = 132;
  const int64_t optin = 227 * 1024;
  const pst::Shape q06{1, 28, 1024, 16, 8, 128, 3072};
  std::vector<std::string> bad;
  auto refuses = [&](const char* what, pst::Shape s, int64_t smem, const char* needle) {
    const pst::Plan p = pst::plan(s, sms, smem);
    if (p.why.find(needle) == std::string::npos) bad.push_back(std::string(what) + ": why \"" + p.why + "\", expected it to say \"" + needle + "\"");
  };
  pst::Shape s = q06;
  s.tokens = 0, refuses("0 rows", s, optin, "takes 1 to 8 decode rows");
  s.tokens = 9, refuses("9 rows", s, optin, "takes 1 to 8 decode rows");
  s = q06, s.head_dim = 64, refuses("head_dim 64", s, optin, "needs head_dim 128");
  s = q06, s.q_heads = 16, s.kv_heads = 1, refuses("16 query heads a KV head", s, optin, "at most 8 query heads per KV head");
  s = q06, s.q_heads = 15, refuses("15 query heads over 8", s, optin, "multiple of kv_heads");
  s = q06, s.hidden = 1000, refuses("hidden 1000", s, optin, "multiples of 256");
  refuses("100 KiB of shared memory", q06, 100 * 1024, "bytes of shared memory a block");
  const pst::Plan one = pst::plan(q06, sms, optin);
  s = q06, s.tokens = 8;
  const pst::Plan eight = pst::plan(s, sms, optin);
  if (!one.why.empty() || !eight.why.empty()) bad.push_back("the 0.6B shape refused: " + one.why + eight.why);
  else {
    // One KV head's context over 16 blocks at one row (8 x 16 = 128 units of 132 blocks), 2 at eight rows.
    if (one.splits != 16 || eight.splits != 2) bad.push_back("splits " + std::to_string(one.splits) + "/" + std::to_string(eight.splits) + ", expected 16/2");
    // 16 KiB chunks: 8 rows x 1024 columns (qkv, o, down), 16 rows x 512 columns (gate/up).
    if (one.kc_qkv != 1024 || one.kc_o != 1024 || one.kc_gate_up != 512 || one.kc_down != 1024)
      bad.push_back("chunk columns " + std::to_string(one.kc_qkv) + "/" + std::to_string(one.kc_o) + "/" + std::to_string(one.kc_gate_up) + "/" +
                    std::to_string(one.kc_down) + ", expected 1024/1024/512/1024");
    if (eight.smem > optin || eight.smem <= one.smem) bad.push_back("shared memory " + std::to_string(one.smem) + " and " + std::to_string(eight.smem));
    if (one.grid != sms || one.sync_words != 1 + 8) bad.push_back("grid or counters wrong");
  }
  if (bad.empty()) {
    std::printf("ok   the plan: refusals named, Qwen3-0.6B divided as designed\n");
  } else {
    ++failures;
    for (const auto& b : bad) std::printf("FAIL the plan: %s\n", b.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned seed = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = unsigned(std::strtoul(argv[++i], nullptr, 10));
    else if (!std::strcmp(argv[i], "--verbose")) verbose = true;
    else {
      std::fprintf(stderr, "usage: persistent_emu [--seed N] [--verbose]\n");
      return 2;
    }
  }
  std::printf("persistent decode on the emulator, seed %u\n", seed);
  check_plan();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(2, 150);
  const Case cases[] = {
      {{130}, 10},                      // 5 splits of 26 keys (the last holds the new key)
      {{int64_t(len(rng)), 200}, 10},   // 2 splits each; the longer context spans 13 blocks
      {{45, 0, int64_t(len(rng))}, 10}, // one split: written directly; a padding row
      {{1}, 7},                         // a first token: one key, most splits empty
  };
  for (const Case& c : cases) run_case(c, rng);
  std::printf("persistent_emu: %d of %d runs failed\n", failures, runs);
  return failures ? 1 : 0;
}
