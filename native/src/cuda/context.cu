// Devices, their streams and their caching allocators.
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include <cuda_profiler_api.h>

#include "backend.h"
#include "../switches.h"
#include "pdl.cuh"

namespace aios::cuda {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear a sticky launch error so the next call starts clean
    throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(status) + " (" +
                cudaGetErrorString(status) + ")");
  }
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

int driver_version() { int v = 0; cudaDriverGetVersion(&v); return v; }
int runtime_version() { int v = 0; cudaRuntimeGetVersion(&v); return v; }

DeviceInfo device_info(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  DeviceInfo info;
  info.name = p.name;
  info.major = p.major;
  info.minor = p.minor;
  info.sm_count = p.multiProcessorCount;
  info.total_memory = int64_t(p.totalGlobalMem);
  info.l2_bytes = p.l2CacheSize;
  info.shared_per_block_optin = int64_t(p.sharedMemPerBlockOptin);
  info.memory_bus_bits = p.memoryBusWidth;
  int clock = 0;  // cudaDeviceProp::memoryClockRate is gone in CUDA 13: ask the attribute
  cudaDeviceGetAttribute(&clock, cudaDevAttrMemoryClockRate, device);
  info.memory_clock_khz = clock;
  return info;
}

bool pdl_enabled() {
  static const bool on = timing_switch("AIOS_PDL", 0, 1, 1) == 1;
  return on;
}

// The current device is per thread (as CUDA's is): lesson 14 runs one rank per
// worker thread, each on its own device, in one process.
static thread_local int current_device = -1;

void make_current(int device) {
  if (device != current_device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    current_device = device;
  }
}

void mem_get_info(int device, int64_t* free_bytes, int64_t* total_bytes) {
  make_current(device);
  size_t f = 0, t = 0;
  check(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
  *free_bytes = int64_t(f);
  *total_bytes = int64_t(t);
}

Context::Context(int dev, cudaStream_t s)
    : device(dev),
      stream(s),
      allocator(
          [dev](size_t bytes) -> void* {
            void* p = nullptr;
            int prev = -1;
            cudaGetDevice(&prev);
            if (prev != dev) cudaSetDevice(dev);
            cudaError_t st = cudaMalloc(&p, bytes);
            if (prev != dev && prev >= 0) cudaSetDevice(prev);
            if (st != cudaSuccess) { cudaGetLastError(); return nullptr; }
            return p;
          },
          [dev](void* p) {
            int prev = -1;
            cudaGetDevice(&prev);
            if (prev != dev) cudaSetDevice(dev);
            cudaFree(p);
            if (prev != dev && prev >= 0) cudaSetDevice(prev);
          }) {}

__global__ void empty_kernel() {}

void launch_empty(cudaStream_t st, int64_t n) {
  for (int64_t i = 0; i < n; ++i) empty_kernel<<<1, 32, 0, st>>>();
  check(cudaGetLastError(), "launch_empty");
}

double launch_overhead_us(int dev, int64_t n) {
  Context& ctx = context(dev);
  check(cudaStreamSynchronize(ctx.stream), "launch_overhead_us");
  const auto t0 = std::chrono::steady_clock::now();
  launch_empty(ctx.stream, n);
  const auto t1 = std::chrono::steady_clock::now();
  check(cudaStreamSynchronize(ctx.stream), "launch_overhead_us");
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / double(n);
}

Context& context(int device) {
  static std::vector<std::unique_ptr<Context>> contexts;
  static std::mutex mu;
  static const int n = device_count();  // asked once: this sits on every op's path
  if (device < 0 || device >= n)
    throw Error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)");
  make_current(device);
  std::lock_guard<std::mutex> lock(mu);
  if (contexts.size() < size_t(n)) contexts.resize(size_t(n));
  if (!contexts[device]) {
    cudaStream_t s;
    // A non-blocking stream: no implicit sync with the legacy default stream.
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    contexts[device] = std::make_unique<Context>(device, s);
  }
  return *contexts[device];
}

void graph_begin(int device) {
  auto& ctx = context(device);
  check(cudaStreamBeginCapture(ctx.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}

cudaGraphExec_t graph_end(int device) {
  auto& ctx = context(device);
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(ctx.stream, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t st = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(st, "cudaGraphInstantiate");
  return exec;
}

void graph_abort(int device) {
  auto& ctx = context(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(ctx.stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(ctx.stream, &graph);  // an invalidated capture returns an error here: nothing to keep
    if (graph) cudaGraphDestroy(graph);
  }
  cudaGetLastError();  // clear the error the failed capture left
}

void graph_launch(int device, cudaGraphExec_t exec) { check(cudaGraphLaunch(exec, context(device).stream), "cudaGraphLaunch"); }

void graph_destroy(cudaGraphExec_t exec) {
  if (exec) cudaGraphExecDestroy(exec);
}

void profiler(bool on) { check(on ? cudaProfilerStart() : cudaProfilerStop(), on ? "cudaProfilerStart" : "cudaProfilerStop"); }

}  // namespace aios::cuda
