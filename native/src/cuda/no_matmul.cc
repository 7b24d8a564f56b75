// Built instead of matmul.cu when cuBLAS is not installed: the addon still has
// every other CUDA op, and matmul says clearly why it is missing.
#include "backend.h"

namespace aios::cuda {

bool has_matmul() { return false; }

void matmul_nt(cudaStream_t, const void*, const void*, void*, int64_t, int64_t, int64_t, DType, DType) {
  throw Error("matmul: this addon was built without cuBLAS (install the CUDA toolkit's cuBLAS and rebuild native/)");
}

}  // namespace aios::cuda
