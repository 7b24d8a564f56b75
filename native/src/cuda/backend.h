// The CUDA backend's C++ API: the same functions as aios::cpu, on device
// pointers, queued on a stream. Included by addon.cc only when the addon is
// built with CUDA (AIOS_WITH_CUDA).
#pragma once
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "../aios.h"
#include "../allocator.h"
#include "../flash.h"
#include "../persistent.h"

namespace aios::cuda {

// Throws aios::Error naming the call when a CUDA call fails.
void check(cudaError_t status, const char* what);

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0, sm_count = 0;
  int64_t total_memory = 0, l2_bytes = 0, shared_per_block_optin = 0;
  int memory_bus_bits = 0, memory_clock_khz = 0;
};

int device_count();  // 0 when there is no driver or no device
int driver_version();
int runtime_version();
DeviceInfo device_info(int device);
void mem_get_info(int device, int64_t* free_bytes, int64_t* total_bytes);

// One per device, created on first use: the device's only stream (every op is
// queued on it, so ops are ordered without events) and its caching allocator.
struct Context {
  int device;
  cudaStream_t stream;
  CachingAllocator allocator;
  Context(int device, cudaStream_t stream);
};
Context& context(int device);  // also makes `device` current on this thread
void make_current(int device);

// Launches an empty kernel n times from C++: the floor under any op's launch
// cost, with no JavaScript or N-API in the way (lesson 00 measures it).
void launch_empty(cudaStream_t st, int64_t n);
// Host microseconds per launch of n empty kernels on device dev's stream (the stream drained before and after).
double launch_overhead_us(int dev, int64_t n);

// Starts or stops the profiler's capture (Nsight Compute with --profile-from-start off
// profiles only the kernels launched in between: one engine step, say).
void profiler(bool on);

// CUDA graphs (lesson 11): the device's stream records instead of running
// between graph_begin and graph_end; the recorded work is instantiated into an
// executable graph that graph_launch replays on the stream in one call. Capture
// is thread-local: a synchronizing or allocating call during it is an error
// (the forward being captured must do neither). graph_abort ends a failed
// capture so the stream runs normally again.
void graph_begin(int device);
cudaGraphExec_t graph_end(int device);
void graph_abort(int device);
void graph_launch(int device, cudaGraphExec_t exec);
void graph_destroy(cudaGraphExec_t exec);

// ---- ops: same semantics as aios::cpu (see aios.h)
void fill(cudaStream_t st, void* out, DType dt, int64_t n, double value);
void copy_strided(cudaStream_t st, const void* src, DType src_dt, const int64_t* src_strides, void* dst,
                  DType dst_dt, const int64_t* dst_strides, const int64_t* shape, int rank);
// An id outside [0, vocab) yields a zero row (the device cannot throw; callers validate).
void embedding(cudaStream_t st, const void* table, DType dt, const void* ids, DType id_dt, void* out,
               int64_t n_ids, int64_t vocab, int64_t dim);
void matmul_nt(cudaStream_t st, const void* x, const void* w, void* out, int64_t M, int64_t N, int64_t K,
               DType in_dt, DType out_dt);
bool has_matmul();  // false where the addon was built without cuBLAS
void rmsnorm(cudaStream_t st, const void* x, const void* weight, void* out, int64_t rows, int64_t dim, float eps,
             DType dt);
void rope_neox(cudaStream_t st, const void* x, void* out, const int32_t* positions, const float* cos,
               const float* sin, int64_t tokens, int64_t heads, int64_t head_dim, int64_t max_pos, DType dt);
void silu(cudaStream_t st, const void* x, void* out, int64_t n, DType dt);
void add(cudaStream_t st, const void* a, const void* b, void* out, int64_t n, DType dt);
void mul(cudaStream_t st, const void* a, const void* b, void* out, int64_t n, DType dt);
void softmax(cudaStream_t st, const void* x, void* out, int64_t rows, int64_t n, DType dt);
void attention(cudaStream_t st, const void* q, const void* k, const void* v, void* out, float* scores,
               const AttentionShape& s, DType dt);
void paged_attention(cudaStream_t st, const PagedAttentionArgs& a);
void add_rmsnorm(cudaStream_t st, const void* x, void* residual, const void* weight, void* out, int64_t rows, int64_t dim,
                 float eps, DType dt);
void silu_mul(cudaStream_t st, const void* gate_up, void* out, int64_t rows, int64_t inter, DType dt);
void qk_norm_rope_store(cudaStream_t st, const QkNormRopeStoreArgs& a);
// Lesson 09 (flash_prefill.cu, flash_decode.cu; ../flash.h lists the versions and what each supports).
void flash_prefill(cudaStream_t st, const PagedAttentionArgs& a, int version);
::aios::flash::DecodePlan flash_decode_plan(const PagedAttentionArgs& a, int version, int64_t splits);
void flash_decode(cudaStream_t st, const PagedAttentionArgs& a, int version, const ::aios::flash::DecodePlan& plan,
                  void* workspace, int64_t workspace_bytes);
// Lesson 11: the persistent decode step (../persistent.h). The plan says whether this device runs
// the shape (why is "" then) and how; persistent_decode zeroes a.sync and launches one block per SM.
::aios::persistent::Plan persistent_decode_plan(const ::aios::persistent::Shape& s);
void persistent_decode(cudaStream_t st, const PersistentDecodeArgs& a, const ::aios::persistent::Plan& p);
// Lesson 13 (flash_decode.cu): the cascade decode and its plan (lesson 09's v3 plan for the own keys).
::aios::flash::CascadePlan flash_cascade_plan(const PagedAttentionArgs& a);
void flash_cascade_decode(cudaStream_t st, const PagedAttentionArgs& a, const ::aios::flash::CascadePlan& plan, void* workspace,
                          int64_t workspace_bytes);
void argmax(cudaStream_t st, const void* x, int32_t* out, int64_t rows, int64_t n, DType dt);
void sample_rows(cudaStream_t st, const float* x, const float* temperature, const float* uniform, int32_t* out,
                 int64_t rows, int64_t n);
void sample_tokens(cudaStream_t st, const SampleTokensArgs& a);
void gather_rows(cudaStream_t st, const void* src, int64_t src_rows, const void* idx, DType idx_dt, void* out,
                 int64_t n_idx, int64_t row_bytes);
void scatter_rows(cudaStream_t st, const void* src, const void* idx, DType idx_dt, void* dst, int64_t dst_rows,
                  int64_t n_idx, int64_t row_bytes);

}  // namespace aios::cuda
