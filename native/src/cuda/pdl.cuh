// Programmatic dependent launch (Hopper; AIOS_PDL=1). In a CUDA graph, as in a
// stream, a kernel starts only once the one before it has finished: its blocks
// are scheduled after the last block of the previous kernel exits, and at one
// token a decode step is ~300 kernels of a few microseconds each, so those
// start-up gaps are a large part of the step. Launched with the programmatic
// stream serialization attribute, a kernel's blocks may be scheduled while the
// previous kernel still runs (once every block of that kernel has said so with
// griddepcontrol.launch_dependents); they then wait at griddepcontrol.wait until
// the previous kernel has completed and its writes are visible. pdl_begin() does
// both, first thing: a kernel launched with the attribute calls it before it
// touches memory, so what it reads is what it read without the attribute. The
// one exception is the small-M GEMM for up to 16 tokens (gemm_small.cu,
// gemv_kernel): it loads its share of the WEIGHT first (no kernel of the step
// writes weights), then pdl_wait() before it reads x, then pdl_trigger(): so
// the weight stream, the bulk of its time, runs under the kernel before it. Every
// kernel launched with the attribute must reach pdl_wait() (pdl_begin calls it):
// a kernel completes only after the one before it, so waiting on the previous
// kernel covers every earlier one. A kernel launched without the attribute
// (cuBLAS's, the peer all-reduce, which needs every block resident at once)
// still waits for everything before it.
#pragma once
#include <cuda_runtime.h>

#include "backend.h"

namespace aios::cuda {

// AIOS_PDL (read once): 1 = the kernels launched through launch_pdl get the attribute; 0 or unset = none.
bool pdl_enabled();

#ifdef __CUDACC__
/** The next kernel in the stream may be scheduled now (it still waits for this one to complete). */
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/** Returns once the previous kernel in the stream has completed and its writes are visible (at once without the attribute). */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
/** Both, first thing in a kernel that reads nothing before its predecessor is done. */
__device__ __forceinline__ void pdl_begin() {
  pdl_trigger();
  pdl_wait();
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
