// The CPU emulator of CUDA thread blocks (see emu.h): one ucontext fiber per
// thread, a round-robin scheduler that switches only at barriers and warp-level
// operations, and deadlock detection when no fiber can move.
#include "emu.h"

#include <ucontext.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <numeric>
#include <random>
#include <vector>

#include "../src/cpu/numeric.h"

namespace aios::emurt {

namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxErrors = 20;

struct Copy {
  void* dst;
  const void* src;
  bool valid;
};

struct Fiber {
  ucontext_t ctx{};
  std::vector<char> stack;
  dim3 tid;
  int warp = 0, lane = 0;
  bool done = false;
  std::vector<Copy> open;                 // cp.async not yet committed
  std::deque<std::vector<Copy>> groups;   // committed, oldest first
};

enum class Op : int { none, shfl, vote, ldmatrix, ldmatrix_trans, mma_bf16, mma_f16 };
const char* op_name(Op op) {
  switch (op) {
    case Op::shfl: return "shfl_xor";
    case Op::vote: return "any_sync";
    case Op::ldmatrix: return "ldmatrix";
    case Op::ldmatrix_trans: return "ldmatrix.trans";
    case Op::mma_bf16: return "mma.bf16";
    case Op::mma_f16: return "mma.f16";
    default: return "none";
  }
}

struct Warp {
  int arrived = 0;
  uint64_t gen = 0;
  Op op = Op::none;
  int arg = 0;                // the shuffle's lane mask: every lane must pass the same
  unsigned char in[32][64];
  unsigned char out[32][64];
};

struct Buffer {
  const unsigned char* begin;
  size_t bytes;
  std::string name;
  bool writable;
};

struct Runtime {
  ucontext_t sched{};
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int block_arrived = 0;
  uint64_t block_gen = 0;
  Fiber* cur = nullptr;
  dim3 bidx, bdim, gdim;
  std::vector<unsigned char> smem;
  size_t smem_bytes = 0;
  uint64_t events = 0;
  const std::function<void()>* body = nullptr;
  const char* kernel = "";
  std::vector<Buffer> buffers;
  std::string errors;
  int n_errors = 0;
  Counters counters;
  std::mt19937 order_rng{12345};  // the order threads run in between synchronization points
  std::vector<int> order;
};

Runtime R;

std::string where() {
  char buf[160];
  if (R.cur)
    std::snprintf(buf, sizeof buf, "%s block (%u,%u,%u) thread %u", R.kernel, R.bidx.x, R.bidx.y, R.bidx.z, R.cur->tid.x);
  else
    std::snprintf(buf, sizeof buf, "%s block (%u,%u,%u)", R.kernel, R.bidx.x, R.bidx.y, R.bidx.z);
  return buf;
}

void error(const std::string& what) {
  if (++R.n_errors > kMaxErrors) return;
  R.errors += where() + ": " + what + "\n";
}

void yield() { swapcontext(&R.cur->ctx, &R.sched); }

void trampoline() {
  (*R.body)();
  Fiber* f = R.cur;
  size_t pending = f->open.size();
  for (auto& g : f->groups) pending += g.size();
  if (pending) error(std::to_string(pending) + " cp.async copies still pending at thread exit");
  f->done = true;
  R.events++;
  // returning resumes uc_link, the scheduler
}

bool in_smem(const void* p, size_t bytes) {
  auto* c = static_cast<const unsigned char*>(p);
  return c >= R.smem.data() && c + bytes <= R.smem.data() + R.smem_bytes;
}

// A warp-level operation: every lane leaves its input and waits; the last to
// arrive computes every lane's output.
template <class F> void warp_op(Op op, int arg, const void* in, size_t in_bytes, void* out, size_t out_bytes, F compute) {
  Warp& w = R.warps[size_t(R.cur->warp)];
  const int lane = R.cur->lane;
  if (w.arrived == 0) {
    w.op = op;
    w.arg = arg;
  } else if (w.op != op || w.arg != arg) {
    error(std::string("lanes of warp ") + std::to_string(R.cur->warp) + " diverged: " + op_name(w.op) + " and " + op_name(op));
  }
  std::memcpy(w.in[lane], in, in_bytes);
  const uint64_t gen = w.gen;
  R.events++;
  if (++w.arrived == 32) {
    compute(w);
    w.arrived = 0;
    w.gen++;
    R.counters.warp_ops++;
  } else {
    while (w.gen == gen) yield();
  }
  std::memcpy(out, w.out[lane], out_bytes);
}

uint16_t half_at(uintptr_t row, int elem) {
  uint16_t v;
  std::memcpy(&v, reinterpret_cast<const void*>(row + uintptr_t(elem) * 2), 2);
  return v;
}

float half_to_float(uint16_t bits, bool bf16) {
  return bf16 ? aios::cpu::to_float(aios::cpu::bf16{bits}) : aios::cpu::to_float(aios::cpu::f16{bits});
}

}  // namespace

const dim3& thread_idx() { return R.cur->tid; }
const dim3& block_idx() { return R.bidx; }
const dim3& block_dim() { return R.bdim; }
const dim3& grid_dim() { return R.gdim; }
unsigned char* shared_base() { return R.smem.data(); }
Counters& counters() { return R.counters; }

void syncthreads() {
  const uint64_t gen = R.block_gen;
  R.events++;
  R.counters.barriers++;
  if (++R.block_arrived == int(R.fibers.size())) {
    R.block_arrived = 0;
    R.block_gen++;
    return;
  }
  while (R.block_gen == gen) yield();
}

float shfl_xor(float v, int lane_mask) {
  float out;
  warp_op(Op::shfl, lane_mask, &v, 4, &out, 4, [](Warp& w) {
    for (int l = 0; l < 32; ++l) std::memcpy(w.out[l], w.in[l ^ w.arg], 4);
  });
  return out;
}

bool warp_any(bool p) {
  const int in = p ? 1 : 0;
  int out = 0;
  warp_op(Op::vote, 0, &in, 4, &out, 4, [](Warp& w) {
    int any = 0;
    for (int l = 0; l < 32; ++l) {
      int v;
      std::memcpy(&v, w.in[l], 4);
      any |= v;
    }
    for (int l = 0; l < 32; ++l) std::memcpy(w.out[l], &any, 4);
  });
  return out != 0;
}

void ldmatrix_x4(uint32_t* r, const void* smem_row, bool trans) {
  if (!in_smem(smem_row, 16)) error("ldmatrix row address outside shared memory");
  if (reinterpret_cast<uintptr_t>(smem_row) % 16) error("ldmatrix row address not 16-byte aligned");
  const uintptr_t addr = in_smem(smem_row, 16) ? reinterpret_cast<uintptr_t>(smem_row) : reinterpret_cast<uintptr_t>(R.smem.data());
  warp_op(trans ? Op::ldmatrix_trans : Op::ldmatrix, 0, &addr, sizeof addr, r, 16, [trans](Warp& w) {
    uintptr_t rows[32];
    for (int l = 0; l < 32; ++l) std::memcpy(&rows[l], w.in[l], sizeof(uintptr_t));
    for (int l = 0; l < 32; ++l) {
      uint32_t regs[4];
      for (int m = 0; m < 4; ++m) {
        uint16_t e0, e1;
        if (!trans) {  // row l/4 of matrix m, columns 2(l%4) and 2(l%4)+1
          e0 = half_at(rows[m * 8 + l / 4], 2 * (l % 4));
          e1 = half_at(rows[m * 8 + l / 4], 2 * (l % 4) + 1);
        } else {       // the transpose: rows 2(l%4) and 2(l%4)+1 of matrix m, column l/4
          e0 = half_at(rows[m * 8 + 2 * (l % 4)], l / 4);
          e1 = half_at(rows[m * 8 + 2 * (l % 4) + 1], l / 4);
        }
        regs[m] = uint32_t(e0) | (uint32_t(e1) << 16);
      }
      std::memcpy(w.out[l], regs, 16);
    }
  });
}

void mma_16816(float* d, const uint32_t* a, const uint32_t* b, bool bf16) {
  struct In {
    uint32_t a[4], b[2];
    float c[4];
  } in;
  std::memcpy(in.a, a, 16);
  std::memcpy(in.b, b, 8);
  std::memcpy(in.c, d, 16);
  R.counters.mma++;
  warp_op(bf16 ? Op::mma_bf16 : Op::mma_f16, 0, &in, sizeof in, d, 16, [bf16](Warp& w) {
    float A[16][16], B[16][8], C[16][8];
    auto lo = [](uint32_t v) { return uint16_t(v & 0xffffu); };
    auto hi = [](uint32_t v) { return uint16_t(v >> 16); };
    for (int l = 0; l < 32; ++l) {
      In x;
      std::memcpy(&x, w.in[l], sizeof x);
      const int g = l / 4, t = l % 4;
      // A (row-major 16x16): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
      const int ar[4] = {g, g + 8, g, g + 8}, ac[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
      for (int i = 0; i < 4; ++i) {
        A[ar[i]][ac[i]] = half_to_float(lo(x.a[i]), bf16);
        A[ar[i]][ac[i] + 1] = half_to_float(hi(x.a[i]), bf16);
      }
      // B (16x8, "col"): b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
      B[2 * t][g] = half_to_float(lo(x.b[0]), bf16);
      B[2 * t + 1][g] = half_to_float(hi(x.b[0]), bf16);
      B[2 * t + 8][g] = half_to_float(lo(x.b[1]), bf16);
      B[2 * t + 9][g] = half_to_float(hi(x.b[1]), bf16);
      // C/D (16x8): c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
      C[g][2 * t] = x.c[0];
      C[g][2 * t + 1] = x.c[1];
      C[g + 8][2 * t] = x.c[2];
      C[g + 8][2 * t + 1] = x.c[3];
    }
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      const int rr[4] = {g, g, g + 8, g + 8}, cc[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
      float out[4];
      for (int i = 0; i < 4; ++i) {
        float acc = C[rr[i]][cc[i]];
        for (int k = 0; k < 16; ++k) acc += A[rr[i]][k] * B[k][cc[i]];
        out[i] = acc;
      }
      std::memcpy(w.out[l], out, 16);
    }
  });
}

void cp_async16(void* smem, const void* gmem, bool valid) {
  R.counters.cp_async++;
  if (!in_smem(smem, 16) || reinterpret_cast<uintptr_t>(smem) % 16) {
    error("cp.async destination outside shared memory or not 16-byte aligned");
    return;
  }
  if (valid && (reinterpret_cast<uintptr_t>(gmem) % 16 || !check_global(gmem, 16, false))) {
    if (reinterpret_cast<uintptr_t>(gmem) % 16) error("cp.async source not 16-byte aligned");
    valid = false;
  }
  std::memset(smem, 0xff, 16);  // not there yet: NaN until the wait
  R.cur->open.push_back({smem, gmem, valid});
}

void cp_async_commit() {
  R.cur->groups.push_back(std::move(R.cur->open));
  R.cur->open.clear();
}

void cp_async_wait(int n) {
  auto& gs = R.cur->groups;
  while (int(gs.size()) > n) {
    for (const Copy& c : gs.front()) {
      if (c.valid) std::memcpy(c.dst, c.src, 16);
      else std::memset(c.dst, 0, 16);
    }
    gs.pop_front();
  }
}

bool check_global(const void* p, size_t bytes, bool write) {
  auto* c = static_cast<const unsigned char*>(p);
  for (const Buffer& b : R.buffers)
    if (c >= b.begin && c + bytes <= b.begin + b.bytes) {
      if (write && !b.writable) {
        error("write into read-only buffer " + b.name);
        return false;
      }
      return true;
    }
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s of %zu bytes at %p outside every buffer", write ? "write" : "read", bytes, p);
  std::string msg = buf;
  for (const Buffer& b : R.buffers)
    if (c >= b.begin - 4096 && c < b.begin + b.bytes + 4096)
      msg += " (near " + b.name + ", offset " + std::to_string(c - b.begin) + " of " + std::to_string(b.bytes) + ")";
  error(msg);
  return false;
}

void launch(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body) {
  const int nthreads = int(block.x * block.y * block.z);
  R.kernel = name;
  if (block.y != 1 || block.z != 1 || nthreads % 32 != 0 || nthreads > 1024) {
    error("the emulator runs 1-d blocks of whole warps only");
    return;
  }
  R.gdim = grid;
  R.bdim = block;
  R.body = &body;
  R.fibers.resize(size_t(nthreads));
  R.warps.assign(size_t(nthreads / 32), Warp{});
  R.smem_bytes = smem_bytes;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        R.bidx = dim3(bx, by, bz);
        R.smem.assign(smem_bytes + 16, 0xff);  // NaN everywhere until written
        R.block_arrived = 0;
        R.counters.blocks++;
        for (auto& w : R.warps) w.arrived = 0;
        for (int t = 0; t < nthreads; ++t) {
          Fiber& f = R.fibers[size_t(t)];
          f.tid = dim3(unsigned(t), 0, 0);
          f.warp = t / 32;
          f.lane = t % 32;
          f.done = false;
          f.open.clear();
          f.groups.clear();
          if (f.stack.empty()) f.stack.resize(kStackBytes);
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &R.sched;
          makecontext(&f.ctx, trampoline, 0);
        }
        // Threads run in a random order between synchronization points, a fresh one per block,
        // so a read that misses a barrier meets unwritten (NaN) data in some runs.
        R.order.resize(size_t(nthreads));
        std::iota(R.order.begin(), R.order.end(), 0);
        std::shuffle(R.order.begin(), R.order.end(), R.order_rng);
        for (;;) {
          bool all_done = true;
          const uint64_t before = R.events;
          for (int idx : R.order) {
            Fiber& f = R.fibers[size_t(idx)];
            if (f.done) continue;
            all_done = false;
            R.cur = &f;
            swapcontext(&R.sched, &f.ctx);
          }
          R.cur = nullptr;
          if (all_done) break;
          if (R.events == before) {
            int waiting_barrier = 0, finished = 0;
            for (auto& f : R.fibers) finished += f.done;
            waiting_barrier = R.block_arrived;
            error("deadlock: " + std::to_string(finished) + " threads finished, " + std::to_string(waiting_barrier) +
                  " wait at __syncthreads, the rest at warp operations");
            break;  // the fibers are abandoned; their stacks are reused by the next block
          }
        }
        if (R.n_errors > kMaxErrors) return;
      }
}

void register_buffer(const void* p, size_t bytes, const std::string& name, bool writable) {
  R.buffers.push_back({static_cast<const unsigned char*>(p), bytes, name, writable});
}
void clear_buffers() { R.buffers.clear(); }
void seed_order(unsigned seed) { R.order_rng.seed(seed); }

std::string take_errors() {
  std::string e = R.errors;
  if (R.n_errors > kMaxErrors) e += "(" + std::to_string(R.n_errors - kMaxErrors) + " more errors)\n";
  R.errors.clear();
  R.n_errors = 0;
  return e;
}

}  // namespace aios::emurt
