// Lesson 14's communicator: NCCL, set up so that the host never sits inside NCCL
// waiting for a peer that may be gone, and so that a collective costs the host
// only what NCCL's own enqueue costs.
//
//   set-up     a blocking communicator (ncclCommInitRankConfig, blocking = 1) made on a
//              helper thread, waited for with a deadline: a peer that never joins ends
//              in a timeout and a message (the helper thread is left inside NCCL).
//              Connections are made during set-up
//              (NCCL_RUNTIME_CONNECT=0 unless the caller set it), so that no later
//              collective waits on the host for a peer to connect; captured collectives
//              do not register buffers (NCCL_GRAPH_REGISTER=0, connect_at_setup says why).
//   collectives on the blocking communicator. Why not a non-blocking one: NCCL
//              (2.28, src/group.cc) runs every group of a non-blocking communicator on
//              a thread it creates for that call and returns ncclInProgress; the caller
//              must poll until the thread is done. That thread per call is what
//              measured 60-75 us per all-reduce of 8 KiB..2 MiB (lesson 14's README),
//              where NVLink needs ~10-20 us, and it puts the kernel launch on another
//              thread than the one capturing a CUDA graph. On the blocking communicator a
//              collective is enqueued on the calling thread and returns.
//   waits      wait() polls the stream (cudaStreamQuery) until a deadline: a peer
//              that stopped calling the same collectives ends in a timeout.
//   abort      ncclCommAbort tells the rank's kernels to quit, then frees the
//              communicator; the freeing waits until every CUDA graph that captured
//              its collectives is destroyed (NCCL's commDestroySync), so it runs on a
//              helper thread and is waited for with a bound: an error path must not
//              hang because a graph is still alive.
//   destroy    the same bound: finalize + destroy (or abort) on a helper thread; if it
//              does not finish (a graph that captured this communicator is still
//              alive), it is left running and the call throws, saying so.
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "../tp.h"
#include "backend.h"

namespace aios::nccl {

struct Comm {
  ncclComm_t comm = nullptr;  // blocking: the collectives
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

// Runs `work` on a helper thread and waits for it at most `bound`; true if it finished.
// Past the bound the thread is left to finish on its own (it holds only what it copied).
template <class F>
bool run_bounded(F work, std::chrono::milliseconds bound) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread([work, done]() mutable {
    work();
    done->store(true, std::memory_order_release);
  }).detach();
  const auto deadline = Clock::now() + bound;
  while (!done->load(std::memory_order_acquire)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// How long an abort or a destroy may take before the caller stops waiting for it.
constexpr std::chrono::milliseconds kTeardownBound{10'000};

const char* kGraphsAlive =
    "NCCL frees a communicator only once every CUDA graph that captured its collectives is destroyed: "
    "dispose the graphs (the model) before the communicator";

// Aborts the communicator; false if freeing it did not finish within the bound.
bool abort_bounded(Comm* c) {
  if (c->aborted) return true;
  c->aborted = true;
  ncclComm_t comm = c->comm;
  return run_bounded([comm] {
    if (comm) ncclCommAbort(comm);
  }, kTeardownBound);
}

[[noreturn]] void abort_and_throw(Comm* c, const std::string& msg) {
  const bool freed = abort_bounded(c);
  throw Error("NCCL " + where(c) + ": " + msg + "; the communicator was aborted" +
              (freed ? "" : std::string(" (its freeing is still waiting: ") + kGraphsAlive + ")"));
}

// Sleeps a little between polls once the first thousand have failed: a decode step's
// wait is milliseconds (a 20 us nap adds little); a peer's set-up can take seconds.
void backoff(int polls) {
  if (polls < 1000) std::this_thread::yield();
  else std::this_thread::sleep_for(std::chrono::microseconds(20));
}

// A collective on the blocking communicator: it returns once enqueued. (ncclInProgress only if
// NCCL_COMM_BLOCKING=0 in the environment overrode its config: then poll until the call is done.)
void enqueued(Comm* c, ncclResult_t first, const char* what, double timeout_ms) {
  if (first == ncclSuccess) return;
  if (first != ncclInProgress) abort_and_throw(c, std::string(what) + " failed: " + describe(first));
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

// NCCL's settings for this process, unless its environment sets them (read once, at the
// first communicator):
//   NCCL_RUNTIME_CONNECT=0  connections made at set-up, under its deadline, rather than by
//                           the first collective of each algorithm (which, on a blocking
//                           communicator, would wait for the peer without a bound);
//   NCCL_GRAPH_REGISTER=0   a collective captured in a CUDA graph goes through NCCL's own
//                           buffers as an eager one does, instead of registering the user's
//                           buffers with the peers at capture (src/register/coll_reg.cc: an
//                           IPC exchange through the peers' proxies, one more host-side step
//                           inside a capture, for ranks that are threads of one process and
//                           buffers from cudaMalloc). Decode's all-reduces are small: the copy
//                           registration saves does not matter there.
void connect_at_setup() {
  setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  setenv("NCCL_GRAPH_REGISTER", "0", /*overwrite=*/0);
}

}  // namespace

std::string version() {
  int v = 0;
  ncclGetVersion(&v);
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

void unique_id(uint8_t out[kUniqueIdBytes]) {
  static_assert(sizeof(ncclUniqueId) == kUniqueIdBytes, "NCCL_UNIQUE_ID_BYTES changed");
  connect_at_setup();
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) throw Error("NCCL: ncclGetUniqueId failed: " + describe(r));
  std::memcpy(out, &id, kUniqueIdBytes);
}

Comm* init(int device, int nranks, int rank, const uint8_t id_bytes[kUniqueIdBytes], double timeout_ms) {
  if (nranks < 1 || rank < 0 || rank >= nranks)
    throw Error("NCCL: rank " + std::to_string(rank) + " is outside [0, " + std::to_string(nranks) + ")");
  connect_at_setup();
  cuda::make_current(device);  // NCCL binds the communicator to the calling thread's current device
  auto* c = new Comm{nullptr, device, nranks, rank, false};
  // A blocking communicator, made on a helper thread that this one waits for with the
  // deadline: a peer that never joins leaves that thread inside NCCL (detached; there is
  // no communicator yet to abort) and this call throws. A non-blocking parent split into
  // a blocking child was the first design; NCCL 2.28 returned no child from the split
  // (measured on the x2 host at commit a65cf75).
  // 0: waiting; 1: the set-up returned; 2: the caller gave up (then the thread frees what it made).
  struct Pending {
    std::atomic<int> state{0};
    ncclComm_t comm = nullptr;
    ncclResult_t result = ncclSuccess;
    std::string error;
  };
  auto pending = std::make_shared<Pending>();
  ncclUniqueId id;
  std::memcpy(&id, id_bytes, kUniqueIdBytes);
  std::thread([pending, id, device, nranks, rank] {
    try {
      cuda::make_current(device);  // NCCL binds the communicator to the calling thread's current device
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 1;
      pending->result = ncclCommInitRankConfig(&pending->comm, nranks, id, rank, &config);
    } catch (const std::exception& e) {
      pending->error = e.what();
      pending->result = ncclInternalError;
    }
    int waiting = 0;
    if (!pending->state.compare_exchange_strong(waiting, 1, std::memory_order_acq_rel) && pending->comm)
      ncclCommAbort(pending->comm);  // abandoned by the caller's deadline: nobody else will free it
  }).detach();
  const auto deadline = Clock::now() + std::chrono::duration<double, std::milli>(timeout_ms);
  while (pending->state.load(std::memory_order_acquire) != 1) {
    int waiting = 0;
    if (Clock::now() > deadline && pending->state.compare_exchange_strong(waiting, 2, std::memory_order_acq_rel)) {
      const std::string who = where(c);
      delete c;
      throw Error("NCCL " + who + ": communicator set-up did not finish within " + std::to_string(int64_t(timeout_ms)) +
                  " ms (a peer rank may have died or not joined); no communicator was made");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (pending->result != ncclSuccess || !pending->comm) {
    if (pending->comm) ncclCommAbort(pending->comm);
    delete c;
    throw Error("NCCL rank " + std::to_string(rank) + ": ncclCommInitRankConfig failed: " +
                (pending->error.empty() ? describe(pending->result) : pending->error));
  }
  c->comm = pending->comm;
  cuda::make_current(device);
  return c;
}

void all_reduce_sum(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, double timeout_ms) {
  check_count(c, count, "allReduce");
  cuda::make_current(c->device);  // a thread-local compare: cudaSetDevice only if another device was current
  enqueued(c, ncclAllReduce(send, recv, size_t(count), nccl_type(dt), ncclSum, c->comm, st), "allReduce", timeout_ms);
}

void all_gather(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, double timeout_ms) {
  check_count(c, count, "allGather");
  cuda::make_current(c->device);
  enqueued(c, ncclAllGather(send, recv, size_t(count), nccl_type(dt), c->comm, st), "allGather", timeout_ms);
}

void broadcast(Comm* c, cudaStream_t st, const void* send, void* recv, int64_t count, DType dt, int root, double timeout_ms) {
  check_count(c, count, "broadcast");
  if (root < 0 || root >= c->nranks) throw Error("NCCL " + where(c) + ": broadcast root " + std::to_string(root) + " is not a rank");
  cuda::make_current(c->device);
  enqueued(c, ncclBroadcast(send, recv, size_t(count), nccl_type(dt), root, c->comm, st), "broadcast", timeout_ms);
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
  if (!abort_bounded(c)) throw Error("NCCL " + where(c) + ": the abort did not finish within 10 s: " + kGraphsAlive);
}

void destroy(Comm* c) {
  if (!c) return;
  const std::string who = where(c);
  bool finished = true;
  if (!c->aborted) {
    c->aborted = true;
    ncclComm_t comm = c->comm;
    finished = run_bounded([comm] {
      // Finalize flushes what is queued, then destroy; abort if the finalize fails.
      if (comm) {
        if (ncclCommFinalize(comm) == ncclSuccess) ncclCommDestroy(comm);
        else ncclCommAbort(comm);
      }
    }, kTeardownBound);
  }
  delete c;
  if (!finished) throw Error("NCCL " + who + ": freeing the communicator did not finish within 10 s (left running): " + kGraphsAlive);
}

}  // namespace aios::nccl
