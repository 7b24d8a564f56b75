// Tensor parallelism (lesson 14): the one op a sharded model needs beyond the
// others (a vocab-parallel embedding lookup) and the NCCL communicator the ranks
// sum and gather through. Kept apart from aios.h so that lesson 14's additions
// stay in their own files.
#pragma once
#include <cstdint>
#include <string>

#include "aios.h"

namespace aios {

namespace cpu {
// One rank's part of a vocab-parallel embedding: the rank holds rows [start,
// start + rows) of the [vocab, dim] table. out[i, :] = table[ids[i] - start, :]
// where ids[i] falls in the rank's rows, else zeros (another rank holds that
// row; the all-reduce that follows sums the ranks' outputs into the full lookup).
// An id outside [0, vocab) throws, as the plain embedding does.
void embedding_shard(const void* table, DType dt, const void* ids, DType id_dt, void* out, int64_t n_ids,
                     int64_t vocab, int64_t start, int64_t rows, int64_t dim);
}  // namespace cpu

}  // namespace aios

#ifdef AIOS_WITH_CUDA
#include <cuda_runtime.h>

namespace aios::cuda {
// Same as the CPU's; an id outside [0, vocab) yields a zero row (the device cannot throw).
void embedding_shard(cudaStream_t st, const void* table, DType dt, const void* ids, DType id_dt, void* out,
                     int64_t n_ids, int64_t vocab, int64_t start, int64_t rows, int64_t dim);
}  // namespace aios::cuda

// A one-shot all-reduce between the GPUs of this process over peer access (NVLink),
// for a decode step's small activations (peer_allreduce.cu says how and why).
// Each rank creates its own, hands addresses() to the others (any channel), and
// connect()s with every rank's; all_reduce_sum is then enqueued on the rank's
// stream, in place, and may be captured in a CUDA graph. Every rank must make the
// same calls in the same order (as with NCCL). A peer that does not arrive within
// timeout_ms ends the kernel; check() (after the stream is drained) throws then.
namespace aios::peer {

constexpr int kMaxRanks = 8;
constexpr int kMaxBlocks = 256;

struct PeerAllReduce;
bool can_access_peer(int device, int peer);
PeerAllReduce* create(int device, int rank, int nranks, int64_t capacity_bytes, double timeout_ms);
void addresses(const PeerAllReduce* p, uint64_t out[2]);  // the staging buffer and the flags
void connect(PeerAllReduce* p, const int* devices, const uint64_t* staging, const uint64_t* signals);
int64_t capacity(const PeerAllReduce* p);
// count elements of dt (bf16, f16, f32) at data: bytes a multiple of 16, at most capacity().
void all_reduce_sum(PeerAllReduce* p, cudaStream_t st, void* data, int64_t count, DType dt);
// Lesson 10's addRmsnorm fused into the all-reduce: x [rows, dim] summed over the ranks (x itself
// is left as it was), residual += the sum, out = RMSNorm(residual) * weight; the roundings of
// all_reduce_sum then addRmsnorm. fits_add_rmsnorm: whether a shape can take it.
bool fits_add_rmsnorm(const PeerAllReduce* p, int64_t rows, int64_t dim, DType dt);
void all_reduce_add_rmsnorm(PeerAllReduce* p, cudaStream_t st, void* x, void* residual, const void* weight, void* out,
                            int64_t rows, int64_t dim, float eps, DType dt);
void check(PeerAllReduce* p);
void destroy(PeerAllReduce* p);

}  // namespace aios::peer
#endif

#ifdef AIOS_WITH_NCCL
namespace aios::nccl {

constexpr int kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

std::string version();
// A fresh id for a new communicator (rank 0 makes it and hands its bytes to the others).
void unique_id(uint8_t out[kUniqueIdBytes]);

// One rank's membership of a communicator, on one device. The set-up waits at
// most timeout_ms for the peers (a blocking communicator made on a helper thread:
// nccl_comm.cc says why). A collective is enqueued on the
// stream and returns; wait() waits at most timeout_ms for the stream. Past a
// deadline, or on an error, the communicator is aborted (so that no rank waits
// on it forever) and the call throws aios::Error naming the rank and what was
// being done.
struct Comm;
Comm* init(int device, int nranks, int rank, const uint8_t id[kUniqueIdBytes], double timeout_ms);
// Sum over the ranks, element-wise, in place allowed (send == recv).
void all_reduce_sum(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, double timeout_ms);
// recv [nranks x count]: rank r's `count` elements at r x count.
void all_gather(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, double timeout_ms);
void broadcast(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, int root, double timeout_ms);
// Waits until everything queued on the stream (collectives included) is done,
// polling so that a peer that never arrives ends in a timeout, not a hang.
void wait(Comm* c, cudaStream_t st, double timeout_ms);
// Both throw if NCCL's freeing does not finish within 10 s (it waits for every
// CUDA graph that captured the communicator to be destroyed): never a hang.
void abort(Comm* c);
void destroy(Comm* c);  // finalizes and frees (frees only, if aborted); c is gone after

}  // namespace aios::nccl
#endif
