// The CPU emulator of CUDA thread blocks (see emu.h): one ucontext fiber per
// thread, a round-robin scheduler that switches only at barriers, warp-level
// operations, atomics and acquire loads, and deadlock detection when no fiber
// can move.
#include "emu.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iterator>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "../src/cpu/numeric.h"

namespace aios::emurt {

namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr int kMaxErrors = 20;

struct Copy {
  void* dst;
  const void* src;
  bool valid;
};

// A fiber's stack, mapped rather than allocated: the pages are committed only
// as the fiber touches them (a grid of thousands of fibers uses a few pages
// each, not 256 KiB), and the inaccessible page below it turns an overflow
// into a fault instead of a write over a neighbour's stack.
struct StackUnmap {
  void operator()(char* p) const { munmap(p - kGuardBytes, kGuardBytes + kStackBytes); }
};
using Stack = std::unique_ptr<char, StackUnmap>;

Stack map_stack() {
  void* p = mmap(nullptr, kGuardBytes + kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  mprotect(p, kGuardBytes, PROT_NONE);
  return Stack(static_cast<char*>(p) + kGuardBytes);
}

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

// What a fiber is parked on, for the deadlock report.
enum class Wait : int { none, syncthreads, warp, grid_sync, poll, count };
const char* wait_name(Wait w) {
  switch (w) {
    case Wait::syncthreads: return "wait at __syncthreads";
    case Wait::warp: return "wait at warp operations";
    case Wait::grid_sync: return "wait at grid_sync";
    case Wait::poll: return "poll a value that does not change (load_acquire / atomic_add of 0)";
    default: return "run";
  }
}

// What one block owns: under launch a single one is reused for block after
// block; under launch_grid there is one per block of the grid.
struct Block {
  dim3 idx;
  std::vector<unsigned char> smem;
  std::vector<Warp> warps;
  int arrived = 0;            // at __syncthreads
  uint64_t gen = 0;
};

struct Fiber {
  ucontext_t ctx{};
  Stack stack;
  Block* block = nullptr;
  dim3 tid;
  int warp = 0, lane = 0;
  bool done = false;
  Wait wait = Wait::none;
  std::vector<Copy> open;                 // cp.async not yet committed
  std::deque<std::vector<Copy>> groups;   // committed, oldest first
  // The last values this thread polled (load_acquire, atomic_add of 0), a few
  // addresses' worth: reading one again unchanged is no progress.
  struct Seen {
    const void* p = nullptr;
    uint32_t v = 0;
  } seen[4];
  int seen_next = 0;
};

struct Buffer {
  const unsigned char* begin;
  size_t bytes;
  std::string name;
  bool writable;
};

struct Runtime {
  ucontext_t sched{};
  std::vector<Fiber> fibers;      // this launch's threads: one block's, or the whole grid's
  std::vector<Block> blocks;      // one, or one per block of the grid; never resized mid-launch (fibers point in)
  Fiber* cur = nullptr;
  Block* cur_block = nullptr;     // the block being run under launch, for errors raised outside a fiber
  bool grid_mode = false;
  int grid_arrived = 0;
  uint64_t grid_gen = 0;
  dim3 bdim, gdim;
  size_t smem_bytes = 0;
  uint64_t events = 0;            // moves any fiber made; a round without one is a deadlock
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
  if (R.cur) {
    const dim3& b = R.cur->block->idx;
    std::snprintf(buf, sizeof buf, "%s block (%u,%u,%u) thread %u", R.kernel, b.x, b.y, b.z, R.cur->tid.x);
  } else if (R.cur_block) {
    const dim3& b = R.cur_block->idx;
    std::snprintf(buf, sizeof buf, "%s block (%u,%u,%u)", R.kernel, b.x, b.y, b.z);
  } else {
    std::snprintf(buf, sizeof buf, "%s (grid)", R.kernel);
  }
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
  const auto& smem = R.cur->block->smem;
  return c >= smem.data() && c + bytes <= smem.data() + R.smem_bytes;
}

// A warp-level operation: every lane leaves its input and waits; the last to
// arrive computes every lane's output.
template <class F> void warp_op(Op op, int arg, const void* in, size_t in_bytes, void* out, size_t out_bytes, F compute) {
  Warp& w = R.cur->block->warps[size_t(R.cur->warp)];
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
    R.cur->wait = Wait::warp;
    while (w.gen == gen) yield();
    R.cur->wait = Wait::none;
  }
  std::memcpy(out, w.out[lane], out_bytes);
}

// A read of a value another thread may change (the thread lets the others run
// first): progress only when it differs from what this thread last read
// there, so a spin on a value nobody will change still ends in a deadlock
// report.
uint32_t poll(const uint32_t* p) {
  Fiber& f = *R.cur;
  f.wait = Wait::poll;
  yield();
  f.wait = Wait::none;
  if (!p) return 0;  // the address failed its check: a switch point still, but never progress
  uint32_t v = 0;
  std::memcpy(&v, p, 4);
  for (auto& s : f.seen)
    if (s.p == p) {
      if (s.v != v) R.events++;
      s.v = v;
      return v;
    }
  f.seen[f.seen_next] = {p, v};
  f.seen_next = (f.seen_next + 1) % int(std::size(f.seen));
  R.events++;
  return v;
}

bool check_word(const void* p, bool write, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 4) {
    error(std::string(what) + " address not 4-byte aligned");
    return false;
  }
  return check_global(p, 4, write);
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
const dim3& block_idx() { return R.cur->block->idx; }
const dim3& block_dim() { return R.bdim; }
const dim3& grid_dim() { return R.gdim; }
unsigned char* shared_base() { return R.cur->block->smem.data(); }
Counters& counters() { return R.counters; }

void syncthreads() {
  Block& b = *R.cur->block;
  const uint64_t gen = b.gen;
  R.events++;
  R.counters.barriers++;
  if (++b.arrived == int(R.bdim.x)) {
    b.arrived = 0;
    b.gen++;
    return;
  }
  R.cur->wait = Wait::syncthreads;
  while (b.gen == gen) yield();
  R.cur->wait = Wait::none;
}

void grid_sync() {
  if (!R.grid_mode) {
    error("grid_sync under a plain launch (only launch_grid runs the whole grid at once)");
    return;
  }
  const uint64_t gen = R.grid_gen;
  R.events++;
  if (++R.grid_arrived == int(R.fibers.size())) {
    R.grid_arrived = 0;
    R.grid_gen++;
    R.counters.grid_syncs++;
    return;
  }
  R.cur->wait = Wait::grid_sync;
  while (R.grid_gen == gen) yield();
  R.cur->wait = Wait::none;
}

uint32_t atomic_add_u32(uint32_t* p, uint32_t v) {
  if (!check_word(p, true, "atomic_add")) return poll(nullptr);
  // Adding 0 is how a kernel reads a flag atomically: progress only if the value changed.
  if (v == 0) return poll(p);
  uint32_t old;
  std::memcpy(&old, p, 4);
  const uint32_t next = old + v;
  std::memcpy(p, &next, 4);
  R.events++;
  yield();  // nothing else is atomic here, so the others run right after it
  return old;
}

uint32_t load_acquire_u32(const uint32_t* p) {
  return poll(check_word(p, false, "load_acquire") ? p : nullptr);
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
  const uintptr_t addr = in_smem(smem_row, 16) ? reinterpret_cast<uintptr_t>(smem_row) : reinterpret_cast<uintptr_t>(shared_base());
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

namespace {

/** Checks what both launches need; false (an error recorded) when the emulator cannot run it. */
bool begin_launch(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body, bool grid_mode) {
  R.kernel = name;
  R.cur = nullptr;
  R.cur_block = nullptr;
  const int nthreads = int(block.x * block.y * block.z);
  if (block.y != 1 || block.z != 1 || nthreads % 32 != 0 || nthreads > 1024) {
    error("the emulator runs 1-d blocks of whole warps only");
    return false;
  }
  R.grid_mode = grid_mode;
  R.grid_arrived = 0;
  R.gdim = grid;
  R.bdim = block;
  R.body = &body;
  R.smem_bytes = smem_bytes;
  return true;
}

void start_block(Block& b, dim3 idx) {
  b.idx = idx;
  b.smem.assign(R.smem_bytes + 16, 0xff);  // NaN everywhere until written
  b.warps.resize(R.bdim.x / 32);
  for (auto& w : b.warps) w.arrived = 0;
  b.arrived = 0;
  R.counters.blocks++;
}

/** Fiber f becomes thread t of block b, about to enter the kernel; false when its stack cannot be mapped. */
bool start_fiber(Fiber& f, Block& b, int t) {
  f.block = &b;
  f.tid = dim3(unsigned(t), 0, 0);
  f.warp = t / 32;
  f.lane = t % 32;
  f.done = false;
  f.wait = Wait::none;
  f.open.clear();
  f.groups.clear();
  for (auto& s : f.seen) s = {};
  if (!f.stack && !(f.stack = map_stack())) return false;
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.get();
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = &R.sched;
  makecontext(&f.ctx, trampoline, 0);
  return true;
}

/** "0-2,5,7" for sorted block numbers, cut short after a few runs. */
std::string ranges(const std::vector<unsigned>& v) {
  std::string s;
  int runs = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (++runs > 8) return s + ",...";
    if (!s.empty()) s += ',';
    s += std::to_string(v[i]);
    if (j > i) s += "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return s;
}

/** The deadlock error: how many threads are parked on what (and, for a grid, in which blocks). */
void report_deadlock() {
  constexpr int kWaits = int(Wait::count);
  int n[kWaits + 1] = {};  // the last slot: finished
  std::vector<unsigned> blocks[kWaits + 1];
  for (const Fiber& f : R.fibers) {
    const int k = f.done ? kWaits : int(f.wait);
    ++n[k];
    const unsigned b = unsigned(f.block - R.blocks.data());
    if (blocks[k].empty() || blocks[k].back() != b) blocks[k].push_back(b);
  }
  std::string msg = "deadlock: no thread can move; " + std::to_string(n[kWaits]) + " threads finished";
  if (R.grid_mode && n[kWaits]) msg += " (blocks " + ranges(blocks[kWaits]) + ")";
  for (int k = 0; k < kWaits; ++k) {
    if (!n[k]) continue;
    msg += ", " + std::to_string(n[k]) + " " + wait_name(Wait(k));
    if (R.grid_mode) msg += " (blocks " + ranges(blocks[k]) + ")";
  }
  if (R.grid_mode && n[kWaits] && n[int(Wait::grid_sync)])
    msg += "; grid_sync needs every thread of the grid, and exited threads never arrive";
  error(msg);
}

// Runs R.fibers in rounds, each fiber up to its next switch point, until all
// have finished or none can move. A round with no progress can still have
// changed memory (plain stores between two polls) that a thread earlier in
// that round polls next time, so two such rounds in a row make a deadlock.
void run_fibers(bool reshuffle_each_round) {
  R.order.resize(R.fibers.size());
  std::iota(R.order.begin(), R.order.end(), 0);
  std::shuffle(R.order.begin(), R.order.end(), R.order_rng);
  int still = 0;
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
    if (all_done) return;
    if (R.events != before) still = 0;
    else if (++still == 2) {
      report_deadlock();
      return;  // the fibers are abandoned; their stacks are reused or unmapped
    }
    if (reshuffle_each_round) std::shuffle(R.order.begin(), R.order.end(), R.order_rng);
  }
}

}  // namespace

void launch(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body) {
  if (!begin_launch(grid, block, smem_bytes, name, body, false)) return;
  const int nthreads = int(block.x);
  R.blocks.resize(1);
  Block& b = R.blocks[0];
  R.fibers.resize(size_t(nthreads));  // kept, stacks and all, for the next launch
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        start_block(b, dim3(bx, by, bz));
        R.cur_block = &b;
        for (int t = 0; t < nthreads; ++t)
          if (!start_fiber(R.fibers[size_t(t)], b, t)) {
            error("cannot map the threads' stacks");
            return;
          }
        // Threads run in a random order between synchronization points, a fresh one per block,
        // so a read that misses a barrier meets unwritten (NaN) data in some runs.
        run_fibers(false);
        R.cur_block = nullptr;
        if (R.n_errors > kMaxErrors) return;
      }
}

void launch_grid(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body) {
  if (!begin_launch(grid, block, smem_bytes, name, body, true)) return;
  const size_t nthreads = block.x, nblocks = size_t(grid.x) * grid.y * grid.z;
  if (nblocks * nthreads > kMaxGridThreads) {
    error("launch_grid of " + std::to_string(nblocks) + " blocks of " + std::to_string(nthreads) + " threads: the emulator holds at most " +
          std::to_string(kMaxGridThreads) + " threads at once");
    R.grid_mode = false;
    return;
  }
  R.blocks.clear();  // fresh, so nothing points at a moved Block
  R.blocks.resize(nblocks);
  R.fibers.clear();
  R.fibers.resize(nblocks * nthreads);
  bool mapped = true;
  size_t i = 0;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx, ++i) {
        Block& b = R.blocks[i];
        start_block(b, dim3(bx, by, bz));
        for (size_t t = 0; t < nthreads && mapped; ++t) mapped = start_fiber(R.fibers[i * nthreads + t], b, int(t));
      }
  if (mapped) run_fibers(true);  // reshuffled every round: which block's thread goes first keeps changing
  const size_t n = R.fibers.size();
  // A grid's worth of stacks is not kept for the next launch.
  R.fibers.clear();
  R.fibers.shrink_to_fit();
  R.blocks.clear();
  R.grid_mode = false;
  if (!mapped) error("cannot map " + std::to_string(n) + " thread stacks");  // once they are unmapped: the error needs memory too
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
