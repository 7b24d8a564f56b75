// A question asked of the card before the engine changes: a decode step's GEMMs at small batch
// read 4-13 MB of weights each and run far below the DRAM's rate (lesson 11's course step: four
// cuBLAS GEMMs ~6.5 us each a layer, ~1.7 TB/s). If the small kernel one GEMM ahead of each GEMM
// asked the L2 for that GEMM's weights (Hopper's cp.async.bulk.prefetch.L2, one instruction per
// 32 KB, nothing waited on), would the GEMM find them there and run shorter?
//
// The probe times Qwen3-0.6B's 28 layers of GEMMs (q/k/v, o, gate/up, down; bf16, cuBLAS) with a
// small elementwise kernel before each GEMM, captured as one CUDA graph and replayed, three ways:
//   none     the small kernels prefetch nothing (lesson 11 today)
//   ahead    each small kernel prefetches the weights of the GEMM after the next one
//   resident every layer uses layer 0's weights (an upper bound: the weights already in L2)
// and optionally with a stand-in for the attention between q/k/v and o (a kernel that streams
// `attn_mb` MB of fresh memory a layer, as the course step's KV reads do, ~46 MB a layer).
// Not part of the engine: engine-core/scripts/gpu-l2-probe.sh builds and runs it on the GPU host.
//
// Build: nvcc -O3 -arch=sm_90 -std=c++17 l2_prefetch_probe.cu -lcublas -o l2_prefetch_probe
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define CK(x)                                                                               \
  do {                                                                                      \
    cudaError_t e_ = (x);                                                                   \
    if (e_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)
#define CB(x)                                                              \
  do {                                                                     \
    cublasStatus_t s_ = (x);                                               \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                     \
      std::fprintf(stderr, "%s:%d %s: status %d\n", __FILE__, __LINE__, #x, int(s_)); \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)

constexpr unsigned kPrefetchPiece = 32 * 1024;  // bytes a bulk prefetch instruction asks for

// y = x * 1.0001 over n elements, and, from thread 0 of each block, this block's share of
// [pf, pf + pf_bytes) asked of the L2 (fire and forget: the kernel does not wait for it).
__global__ void glue_kernel(__nv_bfloat16* y, const __nv_bfloat16* x, int n, const char* pf, unsigned long long pf_bytes) {
  if (pf != nullptr && threadIdx.x == 0) {
    const unsigned long long share = (pf_bytes + gridDim.x - 1) / gridDim.x;
    const unsigned long long begin = share * blockIdx.x;
    const unsigned long long end = pf_bytes < begin + share ? pf_bytes : begin + share;
    for (unsigned long long at = begin & ~15ull; at < end; at += kPrefetchPiece) {
      unsigned size = unsigned(end - at < kPrefetchPiece ? end - at : kPrefetchPiece);
      size = (size + 15u) & ~15u;
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(pf + at), "r"(size) : "memory");
    }
  }
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(x[i]) * 1.0001f);
}

// Streams `n16` 16-byte words (the attention's KV reads, in bytes only), keeping a sum so the loads stay.
__global__ void stream_kernel(const uint4* p, long long n16, unsigned* sink) {
  unsigned acc = 0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n16; i += (long long)gridDim.x * blockDim.x) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) atomicAdd(sink, 1u);
}

struct Gemm {
  int n, k;
  std::vector<__nv_bfloat16*> w;  // one per layer
};

int main(int argc, char** argv) {
  const int layers = 28, replays = argc > 2 ? std::atoi(argv[2]) : 30;
  const std::vector<int> batches = {1, 8, 32, 64, 256};
  const int attn_mb = argc > 1 ? std::atoi(argv[1]) : 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("l2_prefetch_probe: %s, %d SMs, L2 %d MB; Qwen3-0.6B GEMMs x %d layers, attention stand-in %d MB a layer\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, layers, attn_mb);
  std::vector<Gemm> g = {{4096, 1024, {}}, {1024, 2048, {}}, {6144, 1024, {}}, {1024, 3072, {}}};
  size_t weight_bytes = 0;
  for (auto& gm : g)
    for (int l = 0; l < layers; ++l) {
      __nv_bfloat16* p;
      const size_t bytes = size_t(gm.n) * gm.k * 2;
      CK(cudaMalloc(&p, bytes));
      CK(cudaMemset(p, 0x11, bytes));  // small finite bf16 values
      gm.w.push_back(p);
      weight_bytes += bytes;
    }
  const int max_m = 256, max_width = 6144;
  __nv_bfloat16 *act_a, *act_b;
  CK(cudaMalloc(&act_a, size_t(max_m) * max_width * 2));
  CK(cudaMalloc(&act_b, size_t(max_m) * max_width * 2));
  CK(cudaMemset(act_a, 0x11, size_t(max_m) * max_width * 2));
  CK(cudaMemset(act_b, 0x11, size_t(max_m) * max_width * 2));
  uint4* kv = nullptr;
  const size_t kv_bytes = size_t(attn_mb) << 20;
  if (attn_mb > 0) {
    CK(cudaMalloc(&kv, kv_bytes * layers));
    CK(cudaMemset(kv, 0, kv_bytes * layers));
  }
  unsigned* sink;
  CK(cudaMalloc(&sink, 4));
  cublasHandle_t h;
  CB(cublasCreate(&h));
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  CB(cublasSetStream(h, st));
  void* cublas_ws;
  CK(cudaMalloc(&cublas_ws, 64 << 20));
  CB(cublasSetWorkspace(h, cublas_ws, 64 << 20));
  std::printf("weights %.1f MB over %d layers (%.2f MB a layer); the step's weight-read bound at 4.18 TB/s: %.1f us\n",
              weight_bytes / 1e6, layers, weight_bytes / 1e6 / layers, weight_bytes / 4.18e12 * 1e6);

  const float alpha = 1.0f, beta = 0.0f;
  auto gemm = [&](int m, const Gemm& gm, int layer, const __nv_bfloat16* x, __nv_bfloat16* y) {
    // y[m, n] = x[m, k] w[n, k]^T, row-major, as column-major y^T = w x^T
    CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, gm.n, m, gm.k, &alpha, gm.w[layer], CUDA_R_16BF, gm.k, x, CUDA_R_16BF,
                    gm.k, &beta, y, CUDA_R_16BF, gm.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  const char* modes[] = {"none", "ahead", "resident"};
  for (int m : batches) {
    for (int mode = 0; mode < 3; ++mode) {
      auto wl = [&](int l) { return mode == 2 ? 0 : l; };
      auto step = [&]() {
        for (int l = 0; l < layers; ++l)
          for (int i = 0; i < 4; ++i) {
            // the small kernel before GEMM i prefetches GEMM i+1's weights (the next layer's after the last)
            const int ni = (i + 1) % 4, nl = i == 3 ? l + 1 : l;
            const char* pf = nullptr;
            unsigned long long pf_bytes = 0;
            if (mode == 1 && nl < layers) {
              pf = reinterpret_cast<const char*>(g[ni].w[nl]);
              pf_bytes = (unsigned long long)g[ni].n * g[ni].k * 2;
            }
            const int width = g[i].k;
            glue_kernel<<<132, 256, 0, st>>>(act_a, act_b, m * width, pf, pf_bytes);
            CK(cudaGetLastError());
            if (i == 1 && kv != nullptr) {
              stream_kernel<<<132 * 4, 256, 0, st>>>(kv + (kv_bytes / 16) * l, (long long)(kv_bytes / 16), sink);
              CK(cudaGetLastError());
            }
            gemm(m, g[i], wl(l), act_a, act_b);
          }
      };
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      step();
      CK(cudaStreamEndCapture(st, &graph));
      CK(cudaGraphInstantiate(&exec, graph, 0));
      for (int w = 0; w < 5; ++w) CK(cudaGraphLaunch(exec, st));
      CK(cudaStreamSynchronize(st));
      std::vector<float> ms;
      cudaEvent_t a, b;
      CK(cudaEventCreate(&a));
      CK(cudaEventCreate(&b));
      for (int r = 0; r < replays; ++r) {
        CK(cudaEventRecord(a, st));
        CK(cudaGraphLaunch(exec, st));
        CK(cudaEventRecord(b, st));
        CK(cudaEventSynchronize(b));
        float t;
        CK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      const float med = ms[ms.size() / 2];
      std::printf("M %3d  %-8s  step %7.1f us (min %7.1f, max %7.1f)  %5.2f us a layer  weights at %.2f TB/s\n", m,
                  modes[mode], med * 1e3, ms.front() * 1e3, ms.back() * 1e3, med * 1e3 / layers,
                  mode == 2 ? 0.0 : weight_bytes / (med * 1e-3) / 1e12);
      CK(cudaEventDestroy(a));
      CK(cudaEventDestroy(b));
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(graph));
    }
  }
  return 0;
}
