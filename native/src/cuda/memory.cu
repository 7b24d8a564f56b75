// Data movement on the device: fill, strided copy with cast, embedding gather,
// row gather/scatter.
#include <cstring>

#include "common.cuh"

namespace aios::cuda {

namespace {

template <class T> __global__ void fill_kernel(T* out, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = value;
}

struct StridedLayout {
  int rank;
  int64_t shape[kMaxRank];
  int64_t src_strides[kMaxRank];
  int64_t dst_strides[kMaxRank];
};

template <class S> __device__ __forceinline__ float load_f(const S* p) { return to_f(*p); }
__device__ __forceinline__ float load_f(const int32_t* p) { return float(*p); }
__device__ __forceinline__ float load_f(const int64_t* p) { return float(*p); }
template <class D> __device__ __forceinline__ void store_f(D* p, float v) { *p = from_f<D>(v); }
__device__ __forceinline__ void store_f(int32_t* p, float v) { *p = int32_t(v); }
__device__ __forceinline__ void store_f(int64_t* p, float v) { *p = int64_t(v); }

template <class S, class D> __device__ __forceinline__ void convert(const S* s, D* d) { store_f(d, load_f(s)); }
template <class T> __device__ __forceinline__ void convert(const T* s, T* d) { *d = *s; }  // bit copy
__device__ __forceinline__ void convert(const int64_t* s, int32_t* d) { *d = int32_t(*s); }
__device__ __forceinline__ void convert(const int32_t* s, int64_t* d) { *d = *s; }

template <class S, class D> __global__ void copy_strided_kernel(const S* src, D* dst, StridedLayout L, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, so = 0, doff = 0;
    for (int d = L.rank - 1; d >= 0; --d) {  // unravel the linear index, last dim fastest
      int64_t c = rest % L.shape[d];
      rest /= L.shape[d];
      so += c * L.src_strides[d];
      doff += c * L.dst_strides[d];
    }
    convert(src + so, dst + doff);
  }
}

template <class F> void dispatch_any(DType dt, F&& body) {
  switch (dt) {
    case DType::BF16: body(__nv_bfloat16{}); return;
    case DType::F16: body(__half{}); return;
    case DType::F32: body(float{}); return;
    case DType::I32: body(int32_t{}); return;
    case DType::I64: body(int64_t{}); return;
  }
}

bool contiguous(const int64_t* strides, const int64_t* shape, int rank) {
  int64_t expect = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

template <class T> __global__ void embedding_kernel(const T* table, const void* ids, bool ids64, T* out,
                                                    int64_t vocab, int64_t dim) {
  const int64_t row = blockIdx.x;
  const int64_t id = load_index(ids, ids64, row);
  const bool valid = id >= 0 && id < vocab;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
    out[row * dim + c] = valid ? table[id * dim + c] : from_f<T>(0.0f);
}

// One block per row; copies in 16-byte words when the rows allow it.
template <class W> __global__ void move_rows_kernel(const char* src, char* dst, const void* idx, bool idx64,
                                                    int64_t limit, int64_t row_bytes, bool scatter) {
  const int64_t i = blockIdx.x;
  const int64_t r = load_index(idx, idx64, i);
  if (r < 0 || r >= limit) return;  // out-of-range rows are skipped (validated on the host where possible)
  const W* s = reinterpret_cast<const W*>(src + (scatter ? i : r) * row_bytes);
  W* d = reinterpret_cast<W*>(dst + (scatter ? r : i) * row_bytes);
  for (int64_t c = threadIdx.x; c < row_bytes / int64_t(sizeof(W)); c += blockDim.x) d[c] = s[c];
}

void move_rows(cudaStream_t st, const void* src, const void* idx, DType idx_dt, void* dst, int64_t limit,
               int64_t n_idx, int64_t row_bytes, bool scatter) {
  if (n_idx == 0 || row_bytes == 0) return;
  const bool idx64 = idx_dt == DType::I64;
  auto aligned = [&](size_t a) {
    return row_bytes % int64_t(a) == 0 && reinterpret_cast<uintptr_t>(src) % a == 0 &&
           reinterpret_cast<uintptr_t>(dst) % a == 0;
  };
  auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  unsigned grid = unsigned(n_idx);
  if (aligned(16)) move_rows_kernel<uint4><<<grid, 128, 0, st>>>(s, d, idx, idx64, limit, row_bytes, scatter);
  else if (aligned(4)) move_rows_kernel<uint32_t><<<grid, 128, 0, st>>>(s, d, idx, idx64, limit, row_bytes, scatter);
  else move_rows_kernel<uint8_t><<<grid, 128, 0, st>>>(s, d, idx, idx64, limit, row_bytes, scatter);
  check_launch(scatter ? "scatter_rows" : "gather_rows");
}

}  // namespace

void fill(cudaStream_t st, void* out, DType dt, int64_t n, double value) {
  if (n == 0) return;
  dispatch_any(dt, [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> || std::is_same_v<T, float>) v = T(value);
    else if constexpr (std::is_same_v<T, __half>) v = __float2half(float(value));
    else v = __float2bfloat16(float(value));
    fill_kernel<T><<<blocks_for(n, 256), 256, 0, st>>>(static_cast<T*>(out), n, v);
  });
  check_launch("fill");
}

void copy_strided(cudaStream_t st, const void* src, DType src_dt, const int64_t* src_strides, void* dst,
                  DType dst_dt, const int64_t* dst_strides, const int64_t* shape, int rank) {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  if (n == 0) return;
  if (src_dt == dst_dt && contiguous(src_strides, shape, rank) && contiguous(dst_strides, shape, rank)) {
    // The plain case is one DMA copy: the copy engine runs at full memory bandwidth.
    check(cudaMemcpyAsync(dst, src, size_t(n) * dtype_size(src_dt), cudaMemcpyDeviceToDevice, st), "cudaMemcpyAsync");
    return;
  }
  StridedLayout L{};
  L.rank = rank;
  for (int d = 0; d < rank; ++d) { L.shape[d] = shape[d]; L.src_strides[d] = src_strides[d]; L.dst_strides[d] = dst_strides[d]; }
  dispatch_any(src_dt, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_any(dst_dt, [&](auto d_tag) {
      using D = decltype(d_tag);
      copy_strided_kernel<S, D><<<blocks_for(n, 256), 256, 0, st>>>(static_cast<const S*>(src), static_cast<D*>(dst), L, n);
    });
  });
  check_launch("copy_strided");
}

void embedding(cudaStream_t st, const void* table, DType dt, const void* ids, DType id_dt, void* out,
               int64_t n_ids, int64_t vocab, int64_t dim) {
  if (n_ids == 0) return;
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<unsigned(n_ids), 256, 0, st>>>(static_cast<const T*>(table), ids, id_dt == DType::I64,
                                                         static_cast<T*>(out), vocab, dim);
  });
  check_launch("embedding");
}

void gather_rows(cudaStream_t st, const void* src, int64_t src_rows, const void* idx, DType idx_dt, void* out,
                 int64_t n_idx, int64_t row_bytes) {
  move_rows(st, src, idx, idx_dt, out, src_rows, n_idx, row_bytes, false);
}

void scatter_rows(cudaStream_t st, const void* src, const void* idx, DType idx_dt, void* dst, int64_t dst_rows,
                  int64_t n_idx, int64_t row_bytes) {
  move_rows(st, src, idx, idx_dt, dst, dst_rows, n_idx, row_bytes, true);
}

}  // namespace aios::cuda
