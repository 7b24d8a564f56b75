// Lesson 14: an all-reduce for the small messages of a decode step, between the
// GPUs of one process, over NVLink with peer access: no NCCL in the way.
//
// Why: a decode step of Qwen3-8B on two ranks all-reduces 73 activations of
// tokens x 4096 bf16 (8 KiB at batch 1, 2 MiB at 256). NCCL's ring measured
// 11-28 us per call at those sizes on the H200 pair (lesson 14's all-reduce
// bench), most of it fixed cost, not bytes: 2 MiB crosses NVLink in ~5 us.
//
// One-shot, as vLLM's custom all-reduce does for small messages (our own code):
//   1. each block copies its share of the rank's tensor into the rank's staging
//      buffer (device memory every peer can read, its address handed out once);
//   2. the block tells every peer "block b of rank r is staged" (a flag written
//      into the peer's signal array over NVLink, release at system scope) and
//      waits for the same flag from every peer (acquire);
//   3. the block reads its share of every rank's staging buffer, sums in rank
//      order (so every rank gets the same bits) and writes the tensor in place.
// Block b only ever meets block b of the other ranks: every call of every rank
// launches the same grid, max_blocks (the smallest SM count of the ranks' GPUs,
// agreed at connect()), whatever its size; blocks past the message's share only
// meet. So no grid-wide barrier is needed.
//
// Reuse without a second barrier: calls alternate between two staging halves
// (the epoch's parity). Epochs count per block in device memory (`counters`), so
// a CUDA graph replays the kernel with the same arguments and the flags still
// advance; since every block takes part in every call, every block's epoch moves
// on every call, and a call's half is the same in all its blocks however the two
// kernels share the message out (elements or rows). A rank writes a half again
// two calls later; by then it has met every peer at the call in between, and a
// peer's kernels run in stream order, so the peer finished reading that half.
// (With a grid sized to each message, a block skipped by small calls kept an
// older parity, and a block could overwrite rows another block of a peer was
// still reading from the call before.)
//
// A peer that never arrives (a dead rank): the waiting thread gives up after
// the timeout (the GPU's global timer), sets an error word in pinned host memory
// and lets the kernel finish with wrong sums; check() (after the stream is
// drained) turns the word into an exception naming the rank. The GPU is never
// left spinning forever.
#include <cstdint>
#include <cstring>
#include <string>

#include "../tp.h"
#include "backend.h"
#include "common.cuh"

namespace aios::peer {

namespace {

constexpr int kThreads = 512;

struct KernelArgs {
  void* data;
  int64_t vecs;  // 16-byte vectors of the tensor
  int rank, nranks;
  char* staging[kMaxRanks];      // every rank's staging buffer (two halves of `capacity` bytes)
  uint32_t* signals[kMaxRanks];  // every rank's flags: [kMaxBlocks][kMaxRanks], (block, from rank)
  uint32_t* counters;            // this rank's epochs, one per block
  int64_t capacity;
  uint32_t* error;  // pinned host word (mapped): 1 + the rank that did not arrive
  uint64_t timeout_ns;
};

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void store_release_sys(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t load_acquire_sys(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Block b's meeting with block b of every other rank: thread p announces this rank's staged
// share to rank p and waits for rank p's announcement (at most the timeout; past it the error
// word names p and the block goes on). Every thread of the block calls it.
__device__ void meet_peers(const KernelArgs& a, int b, uint32_t epoch) {
  const int tid = int(threadIdx.x);
  if (tid < a.nranks) {
    const int p = tid;
    store_release_sys(a.signals[p] + b * kMaxRanks + a.rank, epoch);
    if (p != a.rank) {
      const uint32_t* flag = a.signals[a.rank] + b * kMaxRanks + p;
      const uint64_t start = global_ns();
      // int32 difference: the epochs may wrap around after 2^32 calls.
      while (int32_t(load_acquire_sys(flag) - epoch) < 0) {
        if (global_ns() - start > a.timeout_ns) {
          atomicCAS(a.error, 0u, uint32_t(1 + p));
          break;
        }
      }
    }
  }
  __syncthreads();
}

// This block's epoch (one more than its last call's); every thread gets it.
__device__ uint32_t next_epoch(const KernelArgs& a, int b) {
  __shared__ uint32_t epoch_s;
  if (threadIdx.x == 0) epoch_s = a.counters[b] + 1;
  __syncthreads();
  return epoch_s;
}

template <class T>
__global__ void __launch_bounds__(kThreads) peer_all_reduce_kernel(KernelArgs a) {
  const int b = int(blockIdx.x), tid = int(threadIdx.x);
  const uint32_t epoch = next_epoch(a, b);
  const int64_t half = int64_t(epoch & 1) * a.capacity;
  const int64_t stride = int64_t(gridDim.x) * kThreads;

  // 1. Stage this block's share.
  const uint4* src = static_cast<const uint4*>(a.data);
  uint4* mine = reinterpret_cast<uint4*>(a.staging[a.rank] + half);
  for (int64_t i = int64_t(b) * kThreads + tid; i < a.vecs; i += stride) mine[i] = src[i];
  __threadfence_system();  // the staged bytes before the flag that announces them, for readers on other GPUs
  __syncthreads();

  // 2. Meet block b of every other rank.
  meet_peers(a, b, epoch);

  // 3. Sum every rank's share in rank order; L2 only (ld.global.cg): a stale L1 line of an
  // earlier call must never be read.
  using V = cuda::Vec16<T>;
  uint4* dst = static_cast<uint4*>(a.data);
  for (int64_t i = int64_t(b) * kThreads + tid; i < a.vecs; i += stride) {
    float acc[V::N], x[V::N];
    V::load(__ldcg(reinterpret_cast<const uint4*>(a.staging[0] + half) + i), acc);
    for (int r = 1; r < a.nranks; ++r) {
      V::load(__ldcg(reinterpret_cast<const uint4*>(a.staging[r] + half) + i), x);
      for (int e = 0; e < V::N; ++e) acc[e] += x[e];
    }
    dst[i] = V::store(acc);
  }
  if (tid == 0) a.counters[b] = epoch;
}


// The all-reduce fused with what follows it in a Qwen3 layer (lesson 10's addRmsnorm): block b
// takes whole rows (b, b + grid, ...), stages them, meets its peers, then per row sums the ranks'
// shares in rank order (rounded to T, as the all-reduce would store it), adds the row into the
// residual (rounded, stored) and writes the row RMS-normalized times the weight: the same
// roundings as allReduce then addRmsnorm, one kernel and one pass where they take two.
constexpr int kNormVecs = 4;  // 16-byte vectors per thread: rows up to 4 x 512 x 8 elements
template <class T>
__global__ void __launch_bounds__(kThreads) peer_all_reduce_add_rmsnorm_kernel(KernelArgs a, T* residual, const T* weight, T* out,
                                                                                int64_t rows, int64_t dim, float eps) {
  __shared__ float scratch[32];
  const int b = int(blockIdx.x), tid = int(threadIdx.x), nt = int(blockDim.x);
  const uint32_t epoch = next_epoch(a, b);
  const int64_t half = int64_t(epoch & 1) * a.capacity, vecs = dim / 8;
  const uint4* src = static_cast<const uint4*>(a.data);
  uint4* mine = reinterpret_cast<uint4*>(a.staging[a.rank] + half);
  for (int64_t r = b; r < rows; r += gridDim.x)
    for (int64_t v = tid; v < vecs; v += nt) mine[r * vecs + v] = src[r * vecs + v];
  __threadfence_system();
  __syncthreads();
  meet_peers(a, b, epoch);
  using V = cuda::Vec16<T>;
  for (int64_t r = b; r < rows; r += gridDim.x) {
    float h[kNormVecs][8];
    float sum_sq = 0.0f;
    for (int j = 0; j < kNormVecs; ++j) {
      const int64_t v = tid + int64_t(j) * nt;
      if (v >= vecs) break;
      const int64_t i = r * vecs + v;
      float acc[8], x[8], res[8];
      V::load(__ldcg(reinterpret_cast<const uint4*>(a.staging[0] + half) + i), acc);
      for (int q = 1; q < a.nranks; ++q) {
        V::load(__ldcg(reinterpret_cast<const uint4*>(a.staging[q] + half) + i), x);
        for (int e = 0; e < 8; ++e) acc[e] += x[e];
      }
      V::load(V::store(acc), acc);  // the all-reduce's result as T
      uint4* res_p = reinterpret_cast<uint4*>(residual) + i;
      V::load(*res_p, res);
      for (int e = 0; e < 8; ++e) res[e] = acc[e] + res[e];
      const uint4 stored = V::store(res);
      *res_p = stored;
      V::load(stored, h[j]);  // read back as T, as addRmsnorm normalizes what it stored
      for (int e = 0; e < 8; ++e) sum_sq += h[j][e] * h[j][e];
    }
    sum_sq = cuda::block_reduce<false>(sum_sq, scratch);
    const float inv_rms = rsqrtf(sum_sq / float(dim) + eps);
    for (int j = 0; j < kNormVecs; ++j) {
      const int64_t v = tid + int64_t(j) * nt;
      if (v >= vecs) break;
      float wv[8], o[8];
      V::load(reinterpret_cast<const uint4*>(weight)[v], wv);
      for (int e = 0; e < 8; ++e) o[e] = h[j][e] * inv_rms * wv[e];
      reinterpret_cast<uint4*>(out)[r * vecs + v] = V::store(o);
    }
  }
  if (tid == 0) a.counters[b] = epoch;
}

}  // namespace

struct PeerAllReduce {
  int device = 0, rank = 0, nranks = 0, max_blocks = 1;
  int64_t capacity = 0;
  double timeout_ms = 0;
  char* staging = nullptr;       // 2 x capacity
  uint32_t* signals = nullptr;   // [kMaxBlocks][kMaxRanks]
  uint32_t* counters = nullptr;  // [kMaxBlocks]
  uint32_t* error_host = nullptr;
  uint32_t* error_dev = nullptr;
  char* peer_staging[kMaxRanks] = {};
  uint32_t* peer_signals[kMaxRanks] = {};
  bool connected = false;
};

namespace {

std::string where(const PeerAllReduce* p) {
  return "peer all-reduce, rank " + std::to_string(p->rank) + " of " + std::to_string(p->nranks) + " (cuda:" +
         std::to_string(p->device) + ")";
}

void release(PeerAllReduce* p) {
  cuda::make_current(p->device);
  if (p->staging) cudaFree(p->staging);
  if (p->signals) cudaFree(p->signals);
  if (p->counters) cudaFree(p->counters);
  if (p->error_host) cudaFreeHost(p->error_host);
  p->staging = nullptr;
  p->signals = p->counters = p->error_host = p->error_dev = nullptr;
}

}  // namespace

bool can_access_peer(int device, int peer) {
  if (device == peer) return true;
  int ok = 0;
  cuda::check(cudaDeviceCanAccessPeer(&ok, device, peer), "cudaDeviceCanAccessPeer");
  return ok != 0;
}

PeerAllReduce* create(int device, int rank, int nranks, int64_t capacity_bytes, double timeout_ms) {
  if (nranks < 2 || nranks > kMaxRanks) throw Error("peer all-reduce: 2.." + std::to_string(kMaxRanks) + " ranks, got " + std::to_string(nranks));
  if (rank < 0 || rank >= nranks) throw Error("peer all-reduce: rank " + std::to_string(rank) + " of " + std::to_string(nranks));
  if (capacity_bytes <= 0 || capacity_bytes % 16 != 0) throw Error("peer all-reduce: the capacity must be a positive multiple of 16 bytes");
  if (!(timeout_ms > 0)) throw Error("peer all-reduce: the timeout must be positive");
  auto* p = new PeerAllReduce();
  p->device = device;
  p->rank = rank;
  p->nranks = nranks;
  p->capacity = capacity_bytes;
  p->timeout_ms = timeout_ms;
  try {
    cuda::make_current(device);
    const cuda::DeviceInfo info = cuda::device_info(device);
    // At most one block per SM (connect() takes the smallest count over the ranks' GPUs): every
    // block of the grid is resident at once, so a block that waits for its peer never keeps
    // another block of its own grid from running.
    p->max_blocks = info.sm_count < kMaxBlocks ? info.sm_count : kMaxBlocks;
    if (p->max_blocks < 1) p->max_blocks = 1;
    cuda::check(cudaMalloc(&p->staging, size_t(2 * capacity_bytes)), "cudaMalloc (peer all-reduce staging)");
    cuda::check(cudaMalloc(&p->signals, sizeof(uint32_t) * kMaxBlocks * kMaxRanks), "cudaMalloc (peer all-reduce flags)");
    cuda::check(cudaMalloc(&p->counters, sizeof(uint32_t) * kMaxBlocks), "cudaMalloc (peer all-reduce epochs)");
    cuda::check(cudaMemset(p->signals, 0, sizeof(uint32_t) * kMaxBlocks * kMaxRanks), "cudaMemset (peer all-reduce flags)");
    cuda::check(cudaMemset(p->counters, 0, sizeof(uint32_t) * kMaxBlocks), "cudaMemset (peer all-reduce epochs)");
    cuda::check(cudaHostAlloc(&p->error_host, sizeof(uint32_t), cudaHostAllocMapped | cudaHostAllocPortable),
                "cudaHostAlloc (peer all-reduce error word)");
    *p->error_host = 0;
    cuda::check(cudaHostGetDevicePointer(reinterpret_cast<void**>(&p->error_dev), p->error_host, 0),
                "cudaHostGetDevicePointer (peer all-reduce error word)");
    cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (peer all-reduce set-up)");
  } catch (...) {
    release(p);
    delete p;
    throw;
  }
  return p;
}

void addresses(const PeerAllReduce* p, uint64_t out[2]) {
  out[0] = reinterpret_cast<uint64_t>(p->staging);
  out[1] = reinterpret_cast<uint64_t>(p->signals);
}

void connect(PeerAllReduce* p, const int* devices, const uint64_t* staging, const uint64_t* signals) {
  cuda::make_current(p->device);
  for (int r = 0; r < p->nranks; ++r) {
    if (r != p->rank) {
      if (devices[r] == p->device) throw Error(where(p) + ": rank " + std::to_string(r) + " is on the same GPU");
      if (!can_access_peer(p->device, devices[r]))
        throw Error(where(p) + ": cuda:" + std::to_string(p->device) + " cannot access cuda:" + std::to_string(devices[r]) +
                    "'s memory (no peer access between them): use NCCL's all-reduce");
      const cudaError_t st = cudaDeviceEnablePeerAccess(devices[r], 0);
      if (st == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();  // enabled by an earlier group: fine
      else cuda::check(st, "cudaDeviceEnablePeerAccess");
    }
    p->peer_staging[r] = reinterpret_cast<char*>(staging[r]);
    p->peer_signals[r] = reinterpret_cast<uint32_t*>(signals[r]);
    // Every rank launches the same grid: the smallest SM count of the group's GPUs.
    const int sms = cuda::device_info(devices[r]).sm_count;
    if (sms >= 1 && sms < p->max_blocks) p->max_blocks = sms;
  }
  if (p->peer_staging[p->rank] != p->staging || p->peer_signals[p->rank] != p->signals)
    throw Error(where(p) + ": the addresses handed back for this rank are not its own");
  p->connected = true;
}

int64_t capacity(const PeerAllReduce* p) { return p->capacity; }

namespace {

// The kernel arguments of one call over `bytes` bytes at data (checked against the staging buffer).
KernelArgs kernel_args(PeerAllReduce* p, void* data, int64_t bytes) {
  if (!p->connected) throw Error(where(p) + ": connect() the ranks first");
  if (bytes > p->capacity) throw Error(where(p) + ": " + std::to_string(bytes) + " bytes exceed the staging buffer's " + std::to_string(p->capacity));
  if (bytes % 16 != 0 || reinterpret_cast<uintptr_t>(data) % 16 != 0)
    throw Error(where(p) + ": the tensor must be whole 16-byte vectors, 16-byte aligned (" + std::to_string(bytes) + " bytes)");
  KernelArgs a{};
  a.data = data;
  a.vecs = bytes / 16;
  a.rank = p->rank;
  a.nranks = p->nranks;
  for (int r = 0; r < p->nranks; ++r) {
    a.staging[r] = p->peer_staging[r];
    a.signals[r] = p->peer_signals[r];
  }
  a.counters = p->counters;
  a.capacity = p->capacity;
  a.error = p->error_dev;
  a.timeout_ns = uint64_t(p->timeout_ms * 1e6);
  return a;
}

}  // namespace

void all_reduce_sum(PeerAllReduce* p, cudaStream_t st, void* data, int64_t count, DType dt) {
  const KernelArgs a = kernel_args(p, data, count * int64_t(dtype_size(dt)));
  if (a.vecs == 0) return;
  // The same grid for every call on every rank (the header says why).
  const dim3 grid{unsigned(p->max_blocks)}, block{unsigned(kThreads)};
  switch (dt) {
    case DType::BF16: peer_all_reduce_kernel<__nv_bfloat16><<<grid, block, 0, st>>>(a); break;
    case DType::F16: peer_all_reduce_kernel<__half><<<grid, block, 0, st>>>(a); break;
    case DType::F32: peer_all_reduce_kernel<float><<<grid, block, 0, st>>>(a); break;
    default: throw Error(where(p) + ": sums bf16, f16 or f32, got " + dtype_name(dt));
  }
  cuda::check(cudaGetLastError(), "peer all-reduce launch");
}

bool fits_add_rmsnorm(const PeerAllReduce* p, int64_t rows, int64_t dim, DType dt) {
  return (dt == DType::BF16 || dt == DType::F16) && dim % 8 == 0 && dim / 8 <= int64_t(kNormVecs) * kThreads &&
         rows * dim * int64_t(dtype_size(dt)) <= p->capacity;
}

void all_reduce_add_rmsnorm(PeerAllReduce* p, cudaStream_t st, void* x, void* residual, const void* weight, void* out,
                            int64_t rows, int64_t dim, float eps, DType dt) {
  if (!fits_add_rmsnorm(p, rows, dim, dt))
    throw Error(where(p) + ": the fused add+RMSNorm takes bf16/f16 rows of a multiple of 8 elements, at most " +
                std::to_string(kNormVecs * kThreads * 8) + ", within the staging buffer; got " + std::to_string(rows) + " x " +
                std::to_string(dim) + " " + dtype_name(dt));
  for (const void* q : {static_cast<const void*>(residual), weight, static_cast<const void*>(out)})
    if (reinterpret_cast<uintptr_t>(q) % 16 != 0) throw Error(where(p) + ": residual, weight and out must be 16-byte aligned");
  const KernelArgs a = kernel_args(p, x, rows * dim * int64_t(dtype_size(dt)));
  if (rows == 0) return;
  // Whole rows per block, the same grid for every call on every rank (the header says why).
  const int64_t vecs = dim / 8;
  const int threads = vecs >= kThreads ? kThreads : int((vecs + 31) / 32 * 32);
  const dim3 grid{unsigned(p->max_blocks)}, block{unsigned(threads)};
  if (dt == DType::BF16)
    peer_all_reduce_add_rmsnorm_kernel<__nv_bfloat16><<<grid, block, 0, st>>>(a, static_cast<__nv_bfloat16*>(residual),
        static_cast<const __nv_bfloat16*>(weight), static_cast<__nv_bfloat16*>(out), rows, dim, eps);
  else
    peer_all_reduce_add_rmsnorm_kernel<__half><<<grid, block, 0, st>>>(a, static_cast<__half*>(residual),
        static_cast<const __half*>(weight), static_cast<__half*>(out), rows, dim, eps);
  cuda::check(cudaGetLastError(), "peer all-reduce + add + RMSNorm launch");
}

void check(PeerAllReduce* p) {
  const uint32_t e = *reinterpret_cast<volatile uint32_t*>(p->error_host);
  if (e != 0)
    throw Error(where(p) + ": rank " + std::to_string(e - 1) + " did not arrive within " + std::to_string(int64_t(p->timeout_ms)) +
                " ms (a peer rank may have died or stopped calling the same collectives); the sums since are wrong");
}

void destroy(PeerAllReduce* p) {
  if (!p) return;
  release(p);
  delete p;
}

}  // namespace aios::peer
