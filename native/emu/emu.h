// A small CPU emulator of CUDA thread blocks, enough to run lesson 09's
// kernels (native/src/cuda/flash_*.cu compiled as C++ with AIOS_EMU) on a
// machine with no GPU and check their logic against the CPU reference.
//
// What it models: every thread of a block is a fiber; blocks run one after
// another, their threads in a random (seeded) order between synchronization
// points. launch_grid instead runs every block of the grid at once, their
// threads interleaved, for persistent kernels whose blocks meet at grid-wide
// barriers (grid_sync) and talk through global atomics and acquire loads.
// __syncthreads waits for the whole block; warp-level operations
// (shuffles, ldmatrix, mma.sync m16n8k16) wait for all 32 lanes and exchange
// their registers exactly as the PTX manual lays the fragments out.
// cp.async poisons its destination at once and copies only when the thread
// waits for its group, so a read before the wait sees NaN. Shared memory
// starts as NaN. Every global access goes through the checked ldg/stg of
// flash_common.cuh and must fall inside a buffer the test registered.
// What it does not model: timing, memory ordering between threads (each runs
// to its next switch point, a barrier, warp operation, atomic or acquire
// load, before another starts, so every access is seen at once and fences
// are nothing), or the hardware's exact rounding in mma.
#pragma once
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint4 {
  uint32_t x, y, z, w;
};

namespace aios::emurt {

const dim3& thread_idx();
const dim3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
unsigned char* shared_base();
void syncthreads();
float shfl_xor(float v, int lane_mask);
bool warp_any(bool p);
void ldmatrix_x4(uint32_t* r, const void* smem_row, bool trans);
void mma_16816(float* d, const uint32_t* a, const uint32_t* b, bool bf16);
void cp_async16(void* smem, const void* gmem, bool valid);
void cp_async_commit();
void cp_async_wait(int n);
/** False (and an error recorded) when [p, p + bytes) is not inside one registered buffer (writable, for a write). */
bool check_global(const void* p, size_t bytes, bool write);

/** Runs body once per thread of every block of the grid, one block after another. */
void launch(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body);

// ---- grid-wide mode (a cooperative launch of a persistent kernel)
/**
 * Like launch, but every thread of every block exists at once (one fiber
 * each, stacks mapped for this launch and unmapped after), each block with its
 * own shared memory, __syncthreads barrier and warps, and the random order
 * between synchronization points mixes the threads of all blocks (reshuffled
 * every round). Costs one fiber per thread of the grid: keep grids small
 * (a few blocks); at most kMaxGridThreads threads.
 */
void launch_grid(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body);
constexpr unsigned kMaxGridThreads = 16384;  // each stack and its guard page are two of the process's ~65,000 memory mappings
/**
 * cooperative_groups::this_grid().sync(): returns once every thread of the
 * grid has called it, so it is also a __syncthreads of each block, and every
 * write before it (plain or atomic) is seen by every thread after it. Every
 * thread must call it: a thread that has exited, or one waiting at
 * __syncthreads for a thread that is here, makes it a deadlock, reported as
 * an error. Under plain launch it records an error and returns at once.
 */
void grid_sync();
/**
 * atomicAdd on a registered writable buffer; returns the old value (0, and an
 * error recorded, when the address is not one or not 4-byte aligned). Other
 * threads run right after it, so every atomic is a point where the order can
 * change. Adding 0 (an atomic read of a flag) behaves as load_acquire_u32.
 */
uint32_t atomic_add_u32(uint32_t* p, uint32_t v);
/**
 * ld.acquire.gpu of a registered buffer (0, and an error recorded, outside
 * one). Other threads run before the value is read, so a loop spinning on it
 * lets them make progress; a thread that keeps reading the same value is
 * counted as stuck, so a spin that can never end is reported as a deadlock.
 */
uint32_t load_acquire_u32(const uint32_t* p);

// ---- the test's side
void register_buffer(const void* p, size_t bytes, const std::string& name, bool writable);
void clear_buffers();
/** Seeds the random order threads run in between synchronization points. */
void seed_order(unsigned seed);
/** Errors recorded since the last call, one per line ("" when none). */
std::string take_errors();

/** barriers counts each thread's __syncthreads call; grid_syncs counts grid-wide barriers completed. */
struct Counters {
  uint64_t blocks = 0, barriers = 0, warp_ops = 0, mma = 0, cp_async = 0, grid_syncs = 0;
};
Counters& counters();

}  // namespace aios::emurt
