// A small CPU emulator of CUDA thread blocks, enough to run lesson 09's
// kernels (native/src/cuda/flash_*.cu compiled as C++ with AIOS_EMU) on a
// machine with no GPU and check their logic against the CPU reference.
//
// What it models: every thread of a block is a fiber; blocks run one after
// another, their threads in a random (seeded) order between synchronization points. __syncthreads waits for the whole block; warp-level operations
// (shuffles, ldmatrix, mma.sync m16n8k16) wait for all 32 lanes and exchange
// their registers exactly as the PTX manual lays the fragments out.
// cp.async poisons its destination at once and copies only when the thread
// waits for its group, so a read before the wait sees NaN. Shared memory
// starts as NaN. Every global access goes through the checked ldg/stg of
// flash_common.cuh and must fall inside a buffer the test registered.
// What it does not model: timing, memory ordering between threads (each runs
// to its next synchronization point before another starts), or the hardware's
// exact rounding in mma.
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

/** Runs body once per thread of every block of the grid. */
void launch(dim3 grid, dim3 block, size_t smem_bytes, const char* name, const std::function<void()>& body);

// ---- the test's side
void register_buffer(const void* p, size_t bytes, const std::string& name, bool writable);
void clear_buffers();
/** Seeds the random order threads run in between synchronization points. */
void seed_order(unsigned seed);
/** Errors recorded since the last call, one per line ("" when none). */
std::string take_errors();

struct Counters {
  uint64_t blocks = 0, barriers = 0, warp_ops = 0, mma = 0, cp_async = 0;
};
Counters& counters();

}  // namespace aios::emurt
