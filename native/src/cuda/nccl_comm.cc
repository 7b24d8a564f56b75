// Lesson 14's communicator: NCCL, in non-blocking mode, so that the host never
// sits inside NCCL waiting for a peer that may be gone. Every call returns at
// once (ncclInProgress) and is polled with ncclCommGetAsyncError until it is
// accepted or a deadline passes; the wait for the queued collectives polls the
// stream the same way. On an error or a timeout the communicator is aborted
// (ncclCommAbort), which also releases the peers' kernels stuck on it, and the
// call throws: a rank that dies ends the others with a message, not a hang.
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "../tp.h"
#include "backend.h"

namespace aios::nccl {

struct Comm {
  ncclComm_t comm = nullptr;
  int device = 0, nranks = 0, rank = 0;
  bool aborted = false;
};

namespace {

using Clock = std::chrono::steady_clock;

std::string where(const Comm* c) {
  return "rank " + std::to_string(c->rank) + " of " + std::to_string(c->nranks) + " (cuda:" + std::to_string(c->device) + ")";
}

std::string describe(ncclResult_t r) {
  std::string msg = ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);
  if (last && *last) msg += ": " + std::string(last);
  return msg;
}

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::F32: return ncclFloat32;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
  }
  throw Error("NCCL: unknown dtype");
}

[[noreturn]] void abort_and_throw(Comm* c, const std::string& msg) {
  abort(c);
  throw Error("NCCL " + where(c) + ": " + msg + "; the communicator was aborted");
}

// Sleeps a little between polls once the first thousand have failed: collectives are
// accepted within microseconds and a decode step's wait is milliseconds (a 20 us nap
// adds little to either); a peer's set-up can take seconds.
void backoff(int polls) {
  if (polls < 1000) std::this_thread::yield();
  else std::this_thread::sleep_for(std::chrono::microseconds(20));
}

// Polls the communicator until the call that returned `first` is accepted.
void settle(Comm* c, ncclResult_t first, const char* what, double timeout_ms) {
  if (first != ncclSuccess && first != ncclInProgress) abort_and_throw(c, std::string(what) + " failed: " + describe(first));
  const auto deadline = Clock::now() + std::chrono::duration<double, std::milli>(timeout_ms);
  for (int polls = 0;; ++polls) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->comm, &state);
    if (r != ncclSuccess) abort_and_throw(c, std::string(what) + ": ncclCommGetAsyncError failed: " + describe(r));
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) abort_and_throw(c, std::string(what) + " failed: " + describe(state));
    if (Clock::now() > deadline)
      abort_and_throw(c, std::string(what) + " was not accepted within " + std::to_string(int64_t(timeout_ms)) +
                             " ms (a peer rank may have died or not joined)");
    backoff(polls);
  }
}

void check_count(Comm* c, int64_t count, const char* what) {
  if (c->aborted) throw Error("NCCL " + where(c) + ": " + what + " on an aborted communicator");
  if (count < 0) throw Error("NCCL " + where(c) + ": " + what + ": negative count");
}

}  // namespace

std::string version() {
  int v = 0;
  ncclGetVersion(&v);
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

void unique_id(uint8_t out[kUniqueIdBytes]) {
  static_assert(sizeof(ncclUniqueId) == kUniqueIdBytes, "NCCL_UNIQUE_ID_BYTES changed");
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) throw Error("NCCL: ncclGetUniqueId failed: " + describe(r));
  std::memcpy(out, &id, kUniqueIdBytes);
}

Comm* init(int device, int nranks, int rank, const uint8_t id_bytes[kUniqueIdBytes], double timeout_ms) {
  if (nranks < 1 || rank < 0 || rank >= nranks)
    throw Error("NCCL: rank " + std::to_string(rank) + " is outside [0, " + std::to_string(nranks) + ")");
  cuda::make_current(device);  // NCCL binds the communicator to the calling thread's current device
  auto* c = new Comm{nullptr, device, nranks, rank, false};
  ncclUniqueId id;
  std::memcpy(&id, id_bytes, kUniqueIdBytes);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t r = ncclCommInitRankConfig(&c->comm, nranks, id, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    if (c->comm) ncclCommAbort(c->comm);
    delete c;
    throw Error("NCCL rank " + std::to_string(rank) + ": ncclCommInitRankConfig failed: " + describe(r));
  }
  try {
    settle(c, r, "communicator set-up", timeout_ms);
  } catch (...) {
    delete c;
    throw;
  }
  return c;
}

int rank_of(const Comm* c) { return c->rank; }

void all_reduce_sum(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, double timeout_ms) {
  check_count(c, count, "allReduce");
  cuda::make_current(c->device);
  settle(c, ncclAllReduce(send, recv, size_t(count), nccl_type(dt), ncclSum, c->comm, st), "allReduce", timeout_ms);
}

void all_gather(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, double timeout_ms) {
  check_count(c, count, "allGather");
  cuda::make_current(c->device);
  settle(c, ncclAllGather(send, recv, size_t(count), nccl_type(dt), c->comm, st), "allGather", timeout_ms);
}

void broadcast(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, int root, double timeout_ms) {
  check_count(c, count, "broadcast");
  if (root < 0 || root >= c->nranks) throw Error("NCCL " + where(c) + ": broadcast root " + std::to_string(root) + " is not a rank");
  cuda::make_current(c->device);
  settle(c, ncclBroadcast(send, recv, size_t(count), nccl_type(dt), root, c->comm, st), "broadcast", timeout_ms);
}

void wait(Comm* c, cudaStream_t st, double timeout_ms) {
  if (c->aborted) throw Error("NCCL " + where(c) + ": wait on an aborted communicator");
  cuda::make_current(c->device);
  const auto deadline = Clock::now() + std::chrono::duration<double, std::milli>(timeout_ms);
  for (int polls = 0;; ++polls) {
    const cudaError_t q = cudaStreamQuery(st);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) {
      cudaGetLastError();
      abort_and_throw(c, std::string("the stream failed: ") + cudaGetErrorString(q));
    }
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(c->comm, &state);
    if (state != ncclSuccess && state != ncclInProgress) abort_and_throw(c, "a collective failed: " + describe(state));
    if (Clock::now() > deadline)
      abort_and_throw(c, "the queued collectives did not finish within " + std::to_string(int64_t(timeout_ms)) +
                             " ms (a peer rank may have died or stopped calling the same collectives)");
    backoff(polls);
  }
}

void abort(Comm* c) {
  if (c->aborted || !c->comm) return;
  c->aborted = true;
  ncclCommAbort(c->comm);
}

void destroy(Comm* c) {
  if (!c) return;
  if (!c->aborted && c->comm) {
    // Finalize flushes what is queued; it is non-blocking too, so poll it with a bound.
    const ncclResult_t r = ncclCommFinalize(c->comm);
    bool ok = r == ncclSuccess || r == ncclInProgress;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (int polls = 0; ok; ++polls) {
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(c->comm, &state);
      if (state == ncclSuccess) break;
      if (state != ncclInProgress || Clock::now() > deadline) ok = false;
      else backoff(polls);
    }
    if (ok) ncclCommDestroy(c->comm);
    else ncclCommAbort(c->comm);
  }
  delete c;
}

}  // namespace aios::nccl
