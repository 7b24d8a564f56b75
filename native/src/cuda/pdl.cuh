// Programmatic dependent launch (Hopper; on unless AIOS_PDL=0). In a CUDA graph, as in a
// stream, a kernel starts only once the one before it has finished: its blocks
// are scheduled after the last block of the previous kernel exits, and at one
// token a decode step is ~300 kernels of a few microseconds each, so those
// start-up gaps are a large part of the step. Launched with the programmatic
// stream serialization attribute, a kernel's blocks may be scheduled while the
// previous kernel still runs (once every block of that kernel has said so with
// griddepcontrol.launch_dependents); they then wait at griddepcontrol.wait until
// the previous kernel has completed and its writes are visible. pdl_begin() does
// both, first thing: every kernel launched with the attribute calls it before it
// touches memory, so what it reads is what it read without the attribute (a
// kernel completes only after the one before it, so waiting on the previous
// kernel covers every earlier one). A kernel launched without the attribute
// (cuBLAS's, the peer all-reduce, which needs every block resident at once)
// still waits for everything before it, and a kernel after it launches only when
// it has finished (it never triggers), so the all-reduce starts on an idle GPU.
//
// Measured on one H200, lesson 11, with against without in the same call, three
// calls (docs/measurements/pdl-h200-0533c60.log, gemv-pdl-h200-b35d9bd.log,
// decode-knobs-h200-ed6f212.log): batch 1 1.30 vs 1.33, 1.21 vs 1.23-1.25 and 1.21
// vs 1.23 ms a step; the course 1.93 vs 1.95, 1.93 vs 1.95-1.96 and 1.90 vs 1.93;
// the throughput workload as fast (22,052 vs 22,077 tok/s; 5.50 vs 5.51 ms a step).
// Small (a kernel's start hidden under the end of the one before, ~0.5 us of a
// 4-5 us kernel), and the same sign every time: on by default.
#pragma once
#include <cuda_runtime.h>

#include "backend.h"

namespace aios::cuda {

// AIOS_PDL (read once): unset or 1 = the kernels launched through launch_pdl get the attribute; 0 = none (for timing).
bool pdl_enabled();

#ifdef __CUDACC__
/** The next kernel may be scheduled now; then wait until the previous one has completed and its writes are visible. */
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
#endif

// kernel<<<grid, block, smem, st>>>(args...), with the attribute when pdl_enabled(); the kernel must call pdl_begin().
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, A... args) {
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
  check(cudaLaunchKernelEx(&cfg, kernel, P(args)...), "cudaLaunchKernelEx");
}

}  // namespace aios::cuda
