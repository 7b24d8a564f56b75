// Programmatic dependent launch (Hopper; on unless AIOS_PDL=0). In a CUDA graph, as in a
// stream, a kernel starts only once the one before it has finished: its blocks
// are scheduled after the last block of the previous kernel exits, and at one
// token a decode step is ~300 kernels of a few microseconds each. Launched with
// the programmatic stream serialization attribute, a kernel's blocks may be
// scheduled while the previous kernel still runs (once every block of that
// kernel has said so with griddepcontrol.launch_dependents); they then wait at
// griddepcontrol.wait until the previous kernel has completed and its writes are
// visible. pdl_begin() does both, first thing: every kernel launched with the
// attribute calls it before it touches memory, so what it reads is what it read
// without the attribute (a kernel completes only after the one before it, so
// waiting on the previous kernel covers every earlier one). The one exception is
// memory no kernel writes while a forward runs, the weights: the small-M GEMM
// (gemm_small.cu) calls pdl_trigger(), requests its first weights, and only then
// pdl_wait(), so its blocks, resident while the kernel before still runs, have
// their weights on the way when the wait ends (AIOS_GEMM_EARLY_WEIGHTS).
//
// Launched this way: lesson 09's attention kernels (flash_prefill.cu,
// flash_decode.cu), lesson 10's fused kernels (fused.cu) and the small-M GEMM
// (gemm_small.cu), in prefill as in decode. Everything else launches plainly
// (cuBLASLt's GEMMs, the embedding, the sampler, the elementwise kernels, the
// peer all-reduce, which needs every block resident at once): such a kernel
// starts only when the one before it has finished, and the attributed kernel
// after it waits for it all the same.
//
// Measured on one H200, lesson 11, with against without in the same call, three
// calls (docs/measurements/pdl-h200-0533c60.log, gemv-pdl-h200-b35d9bd.log,
// decode-knobs-h200-ed6f212.log), in ms a step waiting for the device: batch 1
// 1.30 vs 1.33, 1.21 vs 1.23-1.25 and 1.21 vs 1.23; the course 1.93 vs 1.95, 1.93
// vs 1.95-1.96 and 1.90 vs 1.93; the throughput workload 5.65 vs 5.67 and 5.50 vs
// 5.51. Small (0.02-0.04 ms over the ~220 such launches of a batch-1 step), and
// the same sign every time: on by default.
#pragma once
#include <cuda_runtime.h>

#include "backend.h"

namespace aios::cuda {

// AIOS_PDL (read once): unset or 1 = the kernels launched through launch_pdl get the attribute; 0 = none (for timing).
bool pdl_enabled();

#ifdef __CUDACC__
/** The next kernel may be scheduled now. */
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/** Wait until the previous kernel has completed and its writes are visible. */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
/** Both, first thing in a kernel that reads nothing before the previous kernel is done. */
__device__ __forceinline__ void pdl_begin() {
  pdl_trigger();
  pdl_wait();
}
#endif

// kernel<<<grid, block, smem, st>>>(args...), with the attribute when pdl_enabled(); the kernel must call pdl_begin(),
// or pdl_trigger() and then pdl_wait() before it reads what an earlier kernel writes.
// A failed launch throws with `name`.
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, const char* name, A... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  check(cudaLaunchKernelEx(&cfg, kernel, P(args)...), name);
}

}  // namespace aios::cuda
