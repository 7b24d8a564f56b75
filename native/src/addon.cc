// The Node-API bindings: argument checking, storage objects, dispatch to the
// CPU or CUDA backend. No math here: every op is one call into aios::cpu or
// aios::cuda, which take plain pointers and shapes.
//
// Each op takes its scalars first, then (storage, byteOffset) pairs. Every
// pair is checked against its storage's live size before any kernel runs, so
// a wrong shape from JS is an exception, never an out-of-bounds access.
#include <napi.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "aios.h"
#include "allocator.h"
#include "flash.h"
#include "persistent.h"
#include "philox.h"
#include "tp.h"
#ifdef AIOS_WITH_CUDA
#include "cuda/backend.h"
#endif

namespace {

using aios::DType;
using aios::Error;

constexpr int kCpu = -1;  // the device number of host storage

aios::CachingAllocator& host_allocator() {
  static aios::CachingAllocator alloc([](size_t bytes) -> void* { return std::aligned_alloc(64, bytes); },
                                      [](void* p) { std::free(p); });
  return alloc;
}

bool cuda_usable() {
#if defined(AIOS_WITH_CUDA) && defined(AIOS_WITH_CUBLAS)
  static const bool usable = aios::cuda::device_count() > 0;
  return usable;
#else
  return false;
#endif
}

aios::CachingAllocator& allocator_for(int device) {
#ifdef AIOS_WITH_CUDA
  if (device != kCpu) return aios::cuda::context(device).allocator;
#endif
  if (device != kCpu) throw Error("this addon was built without CUDA");
  return host_allocator();
}

// ---------------------------------------------------------------- Storage

const napi_type_tag kStorageTag = {0x6a1d5c3e2b7f4a90ULL, 0x9e3779b97f4a7c15ULL};

// A block of bytes on one device. JS owns it: dispose() returns it to the
// caching allocator at once; if JS forgets, the garbage collector's finalizer does.
class Storage : public Napi::ObjectWrap<Storage> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Storage",
                       {InstanceAccessor<&Storage::NBytes>("nbytes"), InstanceAccessor<&Storage::Device>("device"),
                        InstanceAccessor<&Storage::Disposed>("disposed"), InstanceMethod<&Storage::Dispose>("dispose"),
                        InstanceMethod<&Storage::CopyFromHost>("copyFromHost"),
                        InstanceMethod<&Storage::CopyToHost>("copyToHost"),
                        InstanceMethod<&Storage::CopyToHostAsync>("copyToHostAsync")});
  }

  Storage(const Napi::CallbackInfo& info);
  ~Storage() override { Release(); }

  void* data = nullptr;
  int64_t nbytes = 0;
  int device = kCpu;

  void Release() {
    if (!data) return;
    try { allocator_for(device).release(data); } catch (...) {}  // a finalizer must not throw
    data = nullptr;
  }

 private:
  Napi::Value NBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(nbytes)); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), data == nullptr); }
  void Dispose(const Napi::CallbackInfo&) { Release(); }
  void CopyFromHost(const Napi::CallbackInfo& info);
  Napi::Value CopyToHost(const Napi::CallbackInfo& info);
  Napi::Value CopyToHostAsync(const Napi::CallbackInfo& info);
};

[[noreturn]] void throw_js(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

// Runs a binding body, turning C++ errors into JS exceptions.
template <class F> auto guarded(const Napi::CallbackInfo& info, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// A non-negative integer a double holds exactly (the range test first: int64_t(d) of a larger d
// is undefined). The hot path's test, without a message; to_i64 adds one.
bool whole(const Napi::Value& v, int64_t& out) {
  if (!v.IsNumber()) return false;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != double(int64_t(d))) return false;
  out = int64_t(d);
  return true;
}

int64_t to_i64(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw_js(env, std::string(what) + ": expected a number");
  int64_t out = 0;
  if (!whole(v, out))
    throw_js(env, std::string(what) + ": expected a non-negative integer, got " + std::to_string(v.As<Napi::Number>().DoubleValue()));
  return out;
}

Storage::Storage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Storage>(info) {
  guarded(info, [&] {
    Napi::Env env = info.Env();
    nbytes = to_i64(env, info[0], "Storage(nbytes)");
    device = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : kCpu;
    if (device != kCpu && !cuda_usable()) throw_js(env, "Storage: no usable CUDA device in this addon or machine");
    data = allocator_for(device).allocate(size_t(nbytes));
    if (!data)
      throw_js(env, "Storage: out of memory allocating " + std::to_string(nbytes) + " bytes on " +
                        (device == kCpu ? std::string("the host") : "CUDA device " + std::to_string(device)));
    info.This().As<Napi::Object>().TypeTag(&kStorageTag);
  });
}

struct HostView {
  char* data;
  int64_t bytes;
};

HostView host_view(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray() && !v.IsDataView() && !v.IsBuffer())
    throw_js(env, "expected a typed array, Buffer or DataView as the host side of the copy");
  // The info calls give the data pointer directly, which also works for views of a
  // SharedArrayBuffer (lesson 14's CPU ranks share their collectives' memory that way);
  // ArrayBuffer().Data() refuses those.
  void* data = nullptr;
  size_t bytes = 0;
  if (v.IsTypedArray()) {
    napi_typedarray_type type;
    size_t length = 0;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok) throw_js(env, "cannot read the typed array");
    bytes = v.As<Napi::TypedArray>().ByteLength();
  } else if (napi_get_dataview_info(env, v, &bytes, &data, nullptr, nullptr) != napi_ok) {
    throw_js(env, "cannot read the DataView");
  }
  return {static_cast<char*>(data), int64_t(bytes)};
}

void check_range(Napi::Env env, const Storage& s, int64_t offset, int64_t bytes, const char* what) {
  if (!s.data) throw_js(env, std::string(what) + ": the storage was disposed");
  if (offset + bytes > s.nbytes)
    throw_js(env, std::string(what) + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                      ") exceed the storage's " + std::to_string(s.nbytes) + " bytes");
}

void Storage::CopyFromHost(const Napi::CallbackInfo& info) {
  guarded(info, [&] {
    Napi::Env env = info.Env();
    HostView h = host_view(env, info[0]);
    int64_t offset = to_i64(env, info[1], "copyFromHost(offset)");
    check_range(env, *this, offset, h.bytes, "copyFromHost");
    char* dst = static_cast<char*>(data) + offset;
    if (device == kCpu) { std::memcpy(dst, h.data, size_t(h.bytes)); return; }
#ifdef AIOS_WITH_CUDA
    auto& ctx = aios::cuda::context(device);
    // The host array may be reused or collected as soon as we return, and it is pageable (a JS
    // typed array): CUDA has copied a pageable source into its staging memory by the time
    // cudaMemcpyAsync returns (the runtime's "API synchronization behavior"), so no stream sync
    // is needed, and none is taken: a small write queued behind a step's forward (the sampler's
    // parameters) does not wait for the forward. The driver may still wait for the stream
    // before staging a large one.
    aios::cuda::check(cudaMemcpyAsync(dst, h.data, size_t(h.bytes), cudaMemcpyHostToDevice, ctx.stream), "copyFromHost");
#endif
  });
}

void copy_to_host(Storage& s, char* dst, int64_t offset, int64_t bytes) {
  const char* src = static_cast<const char*>(s.data) + offset;
  if (s.device == kCpu) { std::memcpy(dst, src, size_t(bytes)); return; }
#ifdef AIOS_WITH_CUDA
  auto& ctx = aios::cuda::context(s.device);
  aios::cuda::check(cudaMemcpyAsync(dst, src, size_t(bytes), cudaMemcpyDeviceToHost, ctx.stream), "copyToHost");
  aios::cuda::check(cudaStreamSynchronize(ctx.stream), "copyToHost");
#endif
}

Napi::Value Storage::CopyToHost(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    HostView h = host_view(env, info[0]);
    int64_t offset = to_i64(env, info[1], "copyToHost(offset)");
    check_range(env, *this, offset, h.bytes, "copyToHost");
    copy_to_host(*this, h.data, offset, h.bytes);
    return env.Undefined();
  });
}

// Copies on a worker thread and resolves a promise: the event loop keeps
// running while the device finishes its queue.
class CopyToHostWorker : public Napi::AsyncWorker {
 public:
  CopyToHostWorker(Napi::Env env, Storage* s, Napi::Object storage_obj, Napi::Value host, HostView h, int64_t offset)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), storage_(s), h_(h), offset_(offset) {
    storage_ref_ = Napi::Persistent(storage_obj);
    host_ref_ = Napi::Persistent(host.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try { copy_to_host(*storage_, h_.data, offset_, h_.bytes); } catch (const std::exception& e) { SetError(e.what()); }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Storage* storage_;
  Napi::ObjectReference storage_ref_, host_ref_;  // both stay alive until the copy is done
  HostView h_;
  int64_t offset_;
};

Napi::Value Storage::CopyToHostAsync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    HostView h = host_view(env, info[0]);
    int64_t offset = to_i64(env, info[1], "copyToHostAsync(offset)");
    check_range(env, *this, offset, h.bytes, "copyToHostAsync");
    auto* w = new CopyToHostWorker(env, this, info.This().As<Napi::Object>(), info[0], h, offset);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  });
}

// ---------------------------------------------------------------- op arguments

struct Buf {
  void* ptr;
  int device;
  int64_t capacity = 0;  // bytes from ptr to the end of its storage
};

// Reads an op's arguments in order, checking each as it goes.
class Args {
 public:
  // Reads the call's arguments in order from `first` (a binding that reads the device itself starts past it).
  Args(const Napi::CallbackInfo& info, const char* op, size_t first = 0) : info_(info), op_(op), pos_(first) {}

  // The message's strings are built only when an argument is wrong: a decode step makes hundreds
  // of these calls, each with a dozen or more arguments.
  int64_t size(const char* name) {
    Napi::Value v = next();
    int64_t n;
    return whole(v, n) ? n : to_i64(info_.Env(), v, where(name).c_str());  // to_i64 throws, naming it
  }
  double number(const char* name) {
    Napi::Value v = next();
    if (!v.IsNumber()) fail(std::string(name) + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  bool flag(const char* name) {
    Napi::Value v = next();
    if (!v.IsBoolean()) fail(std::string(name) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  DType dtype(const char* name) {
    int64_t code = size(name);
    if (code >= aios::kNumDTypes) fail(std::string(name) + ": unknown dtype code " + std::to_string(code));
    return DType(code);
  }
  DType float_dtype(const char* name) {
    DType dt = dtype(name);
    if (!aios::is_float(dt)) fail(std::string(name) + " must be bf16, f16 or f32, got " + aios::dtype_name(dt));
    return dt;
  }
  DType index_dtype(const char* name) {
    DType dt = dtype(name);
    if (!aios::is_index(dt)) fail(std::string(name) + " must be i32 or i64, got " + aios::dtype_name(dt));
    return dt;
  }
  // A (storage, byteOffset) pair that must hold `bytes` bytes.
  Buf buffer(const char* name, int64_t bytes) {
    Napi::Value v = next();
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kStorageTag)) fail(std::string(name) + " is not a Storage");
    Storage* s = Storage::Unwrap(v.As<Napi::Object>());
    Napi::Value ov = next();
    int64_t offset;
    if (!whole(ov, offset)) to_i64(info_.Env(), ov, (where(name) + " offset").c_str());
    if (!s->data) fail(std::string(name) + " was disposed");
    if (offset + bytes > s->nbytes)
      fail(std::string(name) + " needs bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
           ") but its storage holds " + std::to_string(s->nbytes));
    if (device_ == kUnset) device_ = s->device;
    else if (device_ != s->device)
      fail(std::string(name) + " is on " + device_name(s->device) + " but an earlier argument is on " + device_name(device_));
    return {static_cast<char*>(s->data) + offset, s->device, s->nbytes - offset};
  }
  /** An optional (storage, byteOffset) pair: null when the storage is undefined (both are consumed). */
  const void* optional_buffer(const char* name, int64_t bytes) {
    if (pos_ < info_.Length() && info_[pos_].IsUndefined()) {
      pos_ += 2;
      return nullptr;
    }
    return buffer(name, bytes).ptr;
  }
  /** Whether an optional trailing argument was passed. */
  bool has_more() const { return pos_ < info_.Length() && !info_[pos_].IsUndefined(); }
  int device() const { return device_; }
  bool on_cpu() const { return device_ == kCpu; }
#ifdef AIOS_WITH_CUDA
  cudaStream_t stream() { return aios::cuda::context(device_).stream; }
#endif
  [[noreturn]] void fail(const std::string& msg) { throw_js(info_.Env(), std::string(op_) + ": " + msg); }

 private:
  static constexpr int kUnset = -2;
  Napi::Value next() {
    if (pos_ >= info_.Length()) fail("missing argument " + std::to_string(pos_));
    return info_[pos_++];
  }
  std::string where(const char* name) { return std::string(op_) + ": " + name; }
  static std::string device_name(int d) { return d == kCpu ? "cpu" : "cuda:" + std::to_string(d); }
  const Napi::CallbackInfo& info_;
  const char* op_;
  size_t pos_ = 0;
  int device_ = kUnset;
};

// Dispatches one op to the backend of its buffers.
#ifdef AIOS_WITH_CUDA
#define AIOS_DISPATCH(a, cpu_call, cuda_call)                                         \
  do {                                                                                \
    if ((a).on_cpu()) { aios::cpu::cpu_call; }                                        \
    else { cudaStream_t st = (a).stream(); aios::cuda::cuda_call; }                   \
  } while (0)
#else
#define AIOS_DISPATCH(a, cpu_call, cuda_call) \
  do { aios::cpu::cpu_call; } while (0)
#endif

template <class F> Napi::Value op(const Napi::CallbackInfo& info, const char* name, F&& body) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, name);
    body(a);
    return info.Env().Undefined();
  });
}

int64_t bytes_of(int64_t n, DType dt) { return n * int64_t(aios::dtype_size(dt)); }

// ---------------------------------------------------------------- ops

Napi::Value Fill(const Napi::CallbackInfo& info) {
  return op(info, "fill", [&](Args& a) {
    DType dt = a.dtype("dtype");
    int64_t n = a.size("n");
    double value = a.number("value");
    Buf out = a.buffer("out", bytes_of(n, dt));
    AIOS_DISPATCH(a, fill(out.ptr, dt, n, value), fill(st, out.ptr, dt, n, value));
  });
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  return op(info, "copy", [&](Args& a) {
    int rank = int(a.size("rank"));
    if (rank < 1 || rank > aios::kMaxRank) a.fail("rank must be in [1, " + std::to_string(aios::kMaxRank) + "]");
    int64_t shape[aios::kMaxRank], ss[aios::kMaxRank], ds[aios::kMaxRank];
    for (int d = 0; d < rank; ++d) shape[d] = a.size("shape");
    DType sdt = a.dtype("srcDtype");
    for (int d = 0; d < rank; ++d) ss[d] = a.size("srcStrides");
    // The furthest element each side touches, for the bounds check.
    int64_t s_extent = 1, d_extent = 1, n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    for (int d = 0; d < rank; ++d) s_extent += (shape[d] - 1) * ss[d];
    Buf src = a.buffer("src", n == 0 ? 0 : bytes_of(s_extent, sdt));
    DType ddt = a.dtype("dstDtype");
    for (int d = 0; d < rank; ++d) ds[d] = a.size("dstStrides");
    for (int d = 0; d < rank; ++d) d_extent += (shape[d] - 1) * ds[d];
    Buf dst = a.buffer("dst", n == 0 ? 0 : bytes_of(d_extent, ddt));
    if (n == 0) return;
    AIOS_DISPATCH(a, copy_strided(src.ptr, sdt, ss, dst.ptr, ddt, ds, shape, rank),
                  copy_strided(st, src.ptr, sdt, ss, dst.ptr, ddt, ds, shape, rank));
  });
}

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return op(info, "embedding", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    DType idt = a.index_dtype("idDtype");
    int64_t n = a.size("nIds"), vocab = a.size("vocab"), dim = a.size("dim");
    Buf table = a.buffer("table", bytes_of(vocab * dim, dt));
    Buf ids = a.buffer("ids", bytes_of(n, idt));
    Buf out = a.buffer("out", bytes_of(n * dim, dt));
    AIOS_DISPATCH(a, embedding(table.ptr, dt, ids.ptr, idt, out.ptr, n, vocab, dim),
                  embedding(st, table.ptr, dt, ids.ptr, idt, out.ptr, n, vocab, dim));
  });
}

Napi::Value MatmulNT(const Napi::CallbackInfo& info) {
  return op(info, "matmul", [&](Args& a) {
    DType in = a.float_dtype("inDtype"), out_dt = a.float_dtype("outDtype");
    int64_t M = a.size("M"), N = a.size("N"), K = a.size("K");
    Buf x = a.buffer("x", bytes_of(M * K, in));
    Buf w = a.buffer("w", bytes_of(N * K, in));
    Buf out = a.buffer("out", bytes_of(M * N, out_dt));
    AIOS_DISPATCH(a, matmul_nt(x.ptr, w.ptr, out.ptr, M, N, K, in, out_dt),
                  matmul_nt(st, x.ptr, w.ptr, out.ptr, M, N, K, in, out_dt));
  });
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return op(info, "rmsnorm", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t rows = a.size("rows"), dim = a.size("dim");
    float eps = float(a.number("eps"));
    Buf x = a.buffer("x", bytes_of(rows * dim, dt));
    Buf w = a.buffer("weight", bytes_of(dim, dt));
    Buf out = a.buffer("out", bytes_of(rows * dim, dt));
    AIOS_DISPATCH(a, rmsnorm(x.ptr, w.ptr, out.ptr, rows, dim, eps, dt),
                  rmsnorm(st, x.ptr, w.ptr, out.ptr, rows, dim, eps, dt));
  });
}

Napi::Value RopeNeox(const Napi::CallbackInfo& info) {
  return op(info, "rope", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t tokens = a.size("tokens"), heads = a.size("heads"), hd = a.size("headDim"), max_pos = a.size("maxPos");
    if (hd % 2 != 0) a.fail("headDim must be even");
    Buf x = a.buffer("x", bytes_of(tokens * heads * hd, dt));
    Buf out = a.buffer("out", bytes_of(tokens * heads * hd, dt));
    Buf pos = a.buffer("positions", bytes_of(tokens, DType::I32));
    Buf cos = a.buffer("cos", bytes_of(max_pos * (hd / 2), DType::F32));
    Buf sin = a.buffer("sin", bytes_of(max_pos * (hd / 2), DType::F32));
    auto* p = static_cast<const int32_t*>(pos.ptr);
    auto *c = static_cast<const float*>(cos.ptr), *s = static_cast<const float*>(sin.ptr);
    AIOS_DISPATCH(a, rope_neox(x.ptr, out.ptr, p, c, s, tokens, heads, hd, max_pos, dt),
                  rope_neox(st, x.ptr, out.ptr, p, c, s, tokens, heads, hd, max_pos, dt));
  });
}

Napi::Value Silu(const Napi::CallbackInfo& info) {
  return op(info, "silu", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t n = a.size("n");
    Buf x = a.buffer("x", bytes_of(n, dt));
    Buf out = a.buffer("out", bytes_of(n, dt));
    AIOS_DISPATCH(a, silu(x.ptr, out.ptr, n, dt), silu(st, x.ptr, out.ptr, n, dt));
  });
}

template <bool kMul> Napi::Value Binary(const Napi::CallbackInfo& info) {
  return op(info, kMul ? "mul" : "add", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t n = a.size("n");
    Buf x = a.buffer("a", bytes_of(n, dt));
    Buf y = a.buffer("b", bytes_of(n, dt));
    Buf out = a.buffer("out", bytes_of(n, dt));
    if (kMul) AIOS_DISPATCH(a, mul(x.ptr, y.ptr, out.ptr, n, dt), mul(st, x.ptr, y.ptr, out.ptr, n, dt));
    else AIOS_DISPATCH(a, add(x.ptr, y.ptr, out.ptr, n, dt), add(st, x.ptr, y.ptr, out.ptr, n, dt));
  });
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return op(info, "softmax", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t rows = a.size("rows"), n = a.size("n");
    if (n == 0 && rows > 0) a.fail("rows must not be empty");
    Buf x = a.buffer("x", bytes_of(rows * n, dt));
    Buf out = a.buffer("out", bytes_of(rows * n, dt));
    AIOS_DISPATCH(a, softmax(x.ptr, out.ptr, rows, n, dt), softmax(st, x.ptr, out.ptr, rows, n, dt));
  });
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  return op(info, "attention", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    aios::AttentionShape s{};
    s.q_len = a.size("qLen");
    s.kv_len = a.size("kvLen");
    s.q_heads = a.size("qHeads");
    s.kv_heads = a.size("kvHeads");
    s.head_dim = a.size("headDim");
    s.scale = float(a.number("scale"));
    s.causal = a.flag("causal");
    s.kv_rows = a.size("kvRows");
    if (s.kv_heads == 0 || s.q_heads % s.kv_heads != 0) a.fail("qHeads must be a positive multiple of kvHeads");
    if (s.head_dim == 0 || s.head_dim > 1024) a.fail("headDim must be in [1, 1024]");
    Buf q = a.buffer("q", bytes_of(s.q_len * s.q_heads * s.head_dim, dt));
    Buf k = a.buffer("k", bytes_of(s.kv_rows * s.kv_heads * s.head_dim, dt));
    Buf v = a.buffer("v", bytes_of(s.kv_rows * s.kv_heads * s.head_dim, dt));
    Buf out = a.buffer("out", bytes_of(s.q_len * s.q_heads * s.head_dim, dt));
    Buf scores = a.buffer("scores", bytes_of(s.q_heads * s.q_len * s.kv_len, DType::F32));
    // Paged when the optional (kvSlots, offset) pair follows.
    if (a.has_more()) {
      if (s.kv_rows == 0 && s.kv_len > 0) a.fail("kvSlots given for an empty pool (kvRows 0)");
      s.kv_slots = static_cast<const int32_t*>(a.buffer("kvSlots", bytes_of(s.kv_len, DType::I32)).ptr);
    } else if (s.kv_rows != s.kv_len) {
      a.fail("kvRows must equal kvLen without kvSlots");
    }
    auto* sc = static_cast<float*>(scores.ptr);
    AIOS_DISPATCH(a, attention(q.ptr, k.ptr, v.ptr, out.ptr, sc, s, dt),
                  attention(st, q.ptr, k.ptr, v.ptr, out.ptr, sc, s, dt));
  });
}

// The arguments of a packed paged-attention step (aios.h PagedAttentionArgs), in
// the order pagedAttention, flashPrefill and flashDecode share: dtype, the sizes,
// scale, then q, kCache, vCache, out, cuSeqlensQ, contextLens, blockTables, seqOrder (undefined: none).
aios::PagedAttentionArgs paged_args(Args& a) {
  aios::PagedAttentionArgs p{};
  p.dt = a.float_dtype("dtype");
  p.num_seqs = a.size("numSeqs");
  p.num_tokens = a.size("numTokens");
  p.q_heads = a.size("qHeads");
  p.kv_heads = a.size("kvHeads");
  p.head_dim = a.size("headDim");
  p.block_size = a.size("blockSize");
  p.max_blocks_per_seq = a.size("maxBlocksPerSeq");
  p.num_slots = a.size("numSlots");
  p.max_q_len = a.size("maxQLen");
  p.max_context_len = a.size("maxContextLen");
  p.scale = float(a.number("scale"));
  if (p.kv_heads == 0 || p.q_heads % p.kv_heads != 0) a.fail("qHeads must be a positive multiple of kvHeads");
  if (p.head_dim == 0 || p.head_dim % 16 != 0) a.fail("headDim must be a positive multiple of 16");
  if (p.block_size == 0 || p.num_slots % p.block_size != 0) a.fail("numSlots must be a whole number of blocks of blockSize");
  if (p.num_seqs == 0 && p.num_tokens > 0) a.fail("tokens without sequences");
  if (p.max_context_len > p.max_blocks_per_seq * p.block_size)
    a.fail("maxContextLen " + std::to_string(p.max_context_len) + " does not fit maxBlocksPerSeq x blockSize");
  const int64_t row = p.head_dim * int64_t(aios::dtype_size(p.dt));
  p.q = a.buffer("q", p.num_tokens * p.q_heads * row).ptr;
  p.k_cache = a.buffer("kCache", p.num_slots * p.kv_heads * row).ptr;
  p.v_cache = a.buffer("vCache", p.num_slots * p.kv_heads * row).ptr;
  p.out = a.buffer("out", p.num_tokens * p.q_heads * row).ptr;
  p.cu_seqlens_q = static_cast<const int32_t*>(a.buffer("cuSeqlensQ", bytes_of(p.num_seqs + 1, DType::I32)).ptr);
  p.context_lens = static_cast<const int32_t*>(a.buffer("contextLens", bytes_of(p.num_seqs, DType::I32)).ptr);
  p.block_tables = static_cast<const int32_t*>(a.buffer("blockTables", bytes_of(p.num_seqs * p.max_blocks_per_seq, DType::I32)).ptr);
  p.seq_order = static_cast<const int32_t*>(a.optional_buffer("seqOrder", bytes_of(p.num_seqs, DType::I32)));
  return p;
}

Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  return op(info, "pagedAttention", [&](Args& a) {
    aios::PagedAttentionArgs p = paged_args(a);
    AIOS_DISPATCH(a, paged_attention(p), paged_attention(st, p));
  });
}

Napi::Value AddRmsnorm(const Napi::CallbackInfo& info) {
  return op(info, "addRmsnorm", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t rows = a.size("rows"), dim = a.size("dim");
    float eps = float(a.number("eps"));
    Buf x = a.buffer("x", bytes_of(rows * dim, dt));
    Buf res = a.buffer("residual", bytes_of(rows * dim, dt));
    Buf w = a.buffer("weight", bytes_of(dim, dt));
    Buf out = a.buffer("out", bytes_of(rows * dim, dt));
    AIOS_DISPATCH(a, add_rmsnorm(x.ptr, res.ptr, w.ptr, out.ptr, rows, dim, eps, dt),
                  add_rmsnorm(st, x.ptr, res.ptr, w.ptr, out.ptr, rows, dim, eps, dt));
  });
}

Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  return op(info, "siluMul", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t rows = a.size("rows"), inter = a.size("inter");
    Buf gu = a.buffer("gateUp", bytes_of(rows * 2 * inter, dt));
    Buf out = a.buffer("out", bytes_of(rows * inter, dt));
    AIOS_DISPATCH(a, silu_mul(gu.ptr, out.ptr, rows, inter, dt), silu_mul(st, gu.ptr, out.ptr, rows, inter, dt));
  });
}

Napi::Value QkNormRopeStore(const Napi::CallbackInfo& info) {
  return op(info, "qkNormRopeStore", [&](Args& a) {
    aios::QkNormRopeStoreArgs p{};
    p.dt = a.float_dtype("dtype");
    p.tokens = a.size("tokens");
    p.q_heads = a.size("qHeads");
    p.kv_heads = a.size("kvHeads");
    p.head_dim = a.size("headDim");
    p.max_pos = a.size("maxPos");
    p.num_slots = a.size("numSlots");
    p.eps = float(a.number("eps"));
    if (p.head_dim == 0 || p.head_dim % 2 != 0) a.fail("headDim must be even and positive");
    const int64_t D = p.head_dim, heads = p.q_heads + 2 * p.kv_heads;
    p.qkv = a.buffer("qkv", bytes_of(p.tokens * heads * D, p.dt)).ptr;
    p.q_norm = a.buffer("qNorm", bytes_of(D, p.dt)).ptr;
    p.k_norm = a.buffer("kNorm", bytes_of(D, p.dt)).ptr;
    p.positions = static_cast<const int32_t*>(a.buffer("positions", bytes_of(p.tokens, DType::I32)).ptr);
    p.cos = static_cast<const float*>(a.buffer("cos", bytes_of(p.max_pos * (D / 2), DType::F32)).ptr);
    p.sin = static_cast<const float*>(a.buffer("sin", bytes_of(p.max_pos * (D / 2), DType::F32)).ptr);
    p.slot_mapping = static_cast<const int32_t*>(a.buffer("slotMapping", bytes_of(p.tokens, DType::I32)).ptr);
    p.q_out = a.buffer("qOut", bytes_of(p.tokens * p.q_heads * D, p.dt)).ptr;
    p.k_cache = a.buffer("kCache", bytes_of(p.num_slots * p.kv_heads * D, p.dt)).ptr;
    p.v_cache = a.buffer("vCache", bytes_of(p.num_slots * p.kv_heads * D, p.dt)).ptr;
    AIOS_DISPATCH(a, qk_norm_rope_store(p), qk_norm_rope_store(st, p));
  });
}

// Lesson 09's kernels read q, the pool and out 16 bytes at a time and assume a positive scale.
void check_flash_args(Args& a, const aios::PagedAttentionArgs& p) {
  const std::pair<const char*, const void*> ptrs[] = {{"q", p.q}, {"kCache", p.k_cache}, {"vCache", p.v_cache}, {"out", p.out}};
  for (const auto& [name, ptr] : ptrs)
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) a.fail(std::string(name) + " must start at a 16-byte aligned address");
  if (!(p.scale > 0.0f)) a.fail("scale must be positive, got " + std::to_string(p.scale));
  if (p.num_slots > INT32_MAX || p.max_context_len > INT32_MAX) a.fail("the pool's slots and the contexts must fit 32-bit indices");
}

// flashPrefill(version, <paged_args>): lesson 09's prefill kernel `version` on CUDA; the CPU reference on the host.
Napi::Value FlashPrefill(const Napi::CallbackInfo& info) {
  return op(info, "flashPrefill", [&](Args& a) {
    const int version = int(a.size("version"));
    aios::PagedAttentionArgs p = paged_args(a);
    check_flash_args(a, p);
    const std::string why = aios::flash::prefill_unsupported(p, version);
    if (!why.empty()) a.fail(why);
    AIOS_DISPATCH(a, paged_attention(p), flash_prefill(st, p, version));
  });
}

// flashDecode(version, splits, <paged_args>, workspace?, workspaceOffset?): lesson 09's decode kernel
// `version` with `splits` blocks per (sequence, KV head) (0: automatic), partial results in the
// caller's workspace when there is more than one split; the CPU reference on the host.
Napi::Value FlashDecode(const Napi::CallbackInfo& info) {
  return op(info, "flashDecode", [&](Args& a) {
    const int version = int(a.size("version"));
    [[maybe_unused]] const int64_t splits = a.size("splits");  // read by the CUDA path only
    aios::PagedAttentionArgs p = paged_args(a);
    check_flash_args(a, p);
    const std::string why = aios::flash::decode_unsupported(p, version);
    if (!why.empty()) a.fail(why);
    if (a.on_cpu()) {
      aios::cpu::paged_attention(p);
      return;
    }
#ifdef AIOS_WITH_CUDA
    cudaStream_t st = a.stream();  // also makes the device current, whose SM count the plan reads
    const aios::flash::DecodePlan plan = aios::cuda::flash_decode_plan(p, version, splits);  // once: sizes and launches
    const int64_t need = plan.workspace_bytes;
    void* ws = nullptr;
    if (need > 0) {
      if (!a.has_more()) a.fail("this launch splits the context and needs a workspace of " + std::to_string(need) + " bytes");
      ws = a.buffer("workspace", need).ptr;
    }
    aios::cuda::flash_decode(st, p, version, plan, ws, need);
#endif
  });
}

// flashCascadeDecode(<paged_args>, workspace?, workspaceOffset?): lesson 13's cascade decode of a
// decode step (the splits groups of sequences hold in the same blocks read once per group); CUDA
// needs the workspace of flashCascadePlan's workspaceBytes. Returns, on the CPU, the keys the
// reference read per KV head (the plain decode reads sum(contextLens)); on CUDA, -1.
Napi::Value FlashCascadeDecode(const Napi::CallbackInfo& info) {
  int64_t keys_read = -1;
  op(info, "flashCascadeDecode", [&](Args& a) {
    aios::PagedAttentionArgs p = paged_args(a);
    check_flash_args(a, p);
    if (p.max_q_len > 1) a.fail("a decode step has maxQLen 0 or 1, got " + std::to_string(p.max_q_len));
    if (a.on_cpu()) {
      keys_read = aios::cpu::cascade_decode(p);
      return;
    }
#ifdef AIOS_WITH_CUDA
    const std::string why = aios::flash::cascade_unsupported(p);
    if (!why.empty()) a.fail(why);
    cudaStream_t st = a.stream();  // also makes the device current, whose SM count the plan reads
    const aios::flash::CascadePlan plan = aios::cuda::flash_cascade_plan(p);
    if (!a.has_more()) a.fail("needs a workspace of " + std::to_string(plan.workspace_bytes) + " bytes");
    void* ws = a.buffer("workspace", plan.workspace_bytes).ptr;
    aios::cuda::flash_cascade_decode(st, p, plan, ws, plan.workspace_bytes);
#endif
  });
  return Napi::Number::New(info.Env(), double(keys_read));
}

int device_arg(const Napi::CallbackInfo& info, size_t i);

// flashDecodePlan(device, version, splits, numSeqs, numTokens, qHeads, kvHeads, headDim, maxQLen, maxContextLen):
// how flashDecode would split the contexts on that device, and the workspace it needs.
Napi::Value FlashDecodePlan(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int d = device_arg(info, 0);
    aios::PagedAttentionArgs p{};
    const int version = int(to_i64(env, info[1], "flashDecodePlan(version)"));
    [[maybe_unused]] const int64_t splits = to_i64(env, info[2], "flashDecodePlan(splits)");
    p.num_seqs = to_i64(env, info[3], "flashDecodePlan(numSeqs)");
    p.num_tokens = to_i64(env, info[4], "flashDecodePlan(numTokens)");
    p.q_heads = to_i64(env, info[5], "flashDecodePlan(qHeads)");
    p.kv_heads = to_i64(env, info[6], "flashDecodePlan(kvHeads)");
    p.head_dim = to_i64(env, info[7], "flashDecodePlan(headDim)");
    p.max_q_len = to_i64(env, info[8], "flashDecodePlan(maxQLen)");
    p.max_context_len = to_i64(env, info[9], "flashDecodePlan(maxContextLen)");
    if (p.kv_heads == 0 || p.q_heads % p.kv_heads != 0) throw_js(env, "flashDecodePlan: qHeads must be a positive multiple of kvHeads");
    if (version < 1 || version > aios::flash::kDecodeVersions)
      throw_js(env, "flashDecodePlan: decode version " + std::to_string(version) + " does not exist");
    aios::flash::DecodePlan plan;
    if (d == kCpu) plan = aios::flash::decode_plan(p, 1, 0, 1);  // the reference needs no split
#ifdef AIOS_WITH_CUDA
    else {
      aios::cuda::make_current(d);
      plan = aios::cuda::flash_decode_plan(p, version, splits);
    }
#endif
    Napi::Object o = Napi::Object::New(env);
    o.Set("splits", double(plan.splits));
    o.Set("partition", double(plan.partition));
    o.Set("workspaceBytes", double(plan.workspace_bytes));
    return o;
  });
}

// Lesson 11's persistent decode step (persistent.h): the plan for a shape on a device, and the launch.
aios::persistent::Shape persistent_shape(Args& a) {
  aios::persistent::Shape s;
  s.tokens = a.size("tokens");
  s.layers = a.size("layers");
  s.hidden = a.size("hidden");
  s.q_heads = a.size("qHeads");
  s.kv_heads = a.size("kvHeads");
  s.head_dim = a.size("headDim");
  s.inter = a.size("inter");
  return s;
}

Napi::Value PersistentDecodePlan(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int d = device_arg(info, 0);
    Args a(info, "persistentDecodePlan", 1);  // the shape after the device, read as persistentDecode reads it
    const aios::persistent::Shape s = persistent_shape(a);
    aios::persistent::Plan plan;
    if (d == kCpu) plan.why = "is a CUDA kernel (the CPU runs lesson 10's forward)";
#ifdef AIOS_WITH_CUDA
    else {
      aios::cuda::make_current(d);
      plan = aios::cuda::persistent_decode_plan(s);
    }
#else
    else plan.why = "is a CUDA kernel and this addon was built without CUDA";
#endif
    Napi::Object o = Napi::Object::New(env);
    o.Set("why", plan.why);
    o.Set("grid", double(plan.grid));
    o.Set("splits", double(plan.splits));
    o.Set("smem", double(plan.smem));
    o.Set("partialFloats", double(plan.partial_floats));
    o.Set("syncWords", double(plan.sync_words));
    return o;
  });
}

Napi::Value PersistentDecode(const Napi::CallbackInfo& info) {
  return op(info, "persistentDecode", [&](Args& a) {
    aios::PersistentDecodeArgs p{};
    p.dt = a.float_dtype("dtype");
    p.shape = persistent_shape(a);
    const aios::persistent::Shape& s = p.shape;
    p.max_pos = a.size("maxPos");
    p.num_slots = a.size("numSlots");
    p.block_size = a.size("blockSize");
    p.table_width = a.size("tableWidth");
    p.eps = float(a.number("eps"));
    p.scale = float(a.number("scale"));
    if (p.dt == DType::F32) a.fail("takes bf16 or f16 weights, got f32");
    if (s.kv_heads < 1 || s.q_heads % s.kv_heads != 0) a.fail("qHeads must be a positive multiple of kvHeads");
    if (p.block_size < 1 || p.num_slots % p.block_size != 0) a.fail("numSlots must be a whole number of blocks of blockSize");
    if (!(p.scale > 0.0f)) a.fail("scale must be positive");
    const int64_t L = s.layers, H = s.hidden, D = s.head_dim, I = s.inter, T = s.tokens;
    const int64_t QD = s.q_heads * D, QKV = (s.q_heads + 2 * s.kv_heads) * D;
    p.qkv_w = a.buffer("qkvWeight", bytes_of(L * QKV * H, p.dt)).ptr;
    p.o_w = a.buffer("oWeight", bytes_of(L * H * QD, p.dt)).ptr;
    p.gate_up_w = a.buffer("gateUpWeight", bytes_of(L * 2 * I * H, p.dt)).ptr;
    p.down_w = a.buffer("downWeight", bytes_of(L * H * I, p.dt)).ptr;
    p.input_norm = a.buffer("inputNorm", bytes_of(L * H, p.dt)).ptr;
    p.post_norm = a.buffer("postNorm", bytes_of(L * H, p.dt)).ptr;
    p.q_norm = a.buffer("qNorm", bytes_of(L * D, p.dt)).ptr;
    p.k_norm = a.buffer("kNorm", bytes_of(L * D, p.dt)).ptr;
    p.final_norm = a.buffer("finalNorm", bytes_of(H, p.dt)).ptr;
    p.cos = static_cast<const float*>(a.buffer("cos", bytes_of(p.max_pos * (D / 2), DType::F32)).ptr);
    p.sin = static_cast<const float*>(a.buffer("sin", bytes_of(p.max_pos * (D / 2), DType::F32)).ptr);
    p.kv_pool = a.buffer("kvPool", bytes_of(L * 2 * p.num_slots * s.kv_heads * D, p.dt)).ptr;
    p.positions = static_cast<const int32_t*>(a.buffer("positions", bytes_of(T, DType::I32)).ptr);
    p.slot_mapping = static_cast<const int32_t*>(a.buffer("slotMapping", bytes_of(T, DType::I32)).ptr);
    p.context_lens = static_cast<const int32_t*>(a.buffer("contextLens", bytes_of(T, DType::I32)).ptr);
    p.block_tables = static_cast<const int32_t*>(a.buffer("blockTables", bytes_of(T * p.table_width, DType::I32)).ptr);
    p.residual = a.buffer("residual", bytes_of(T * H, p.dt)).ptr;
    p.normed_out = a.buffer("normedOut", bytes_of(T * H, p.dt)).ptr;
    p.qkv = a.buffer("qkv", bytes_of(T * QKV, p.dt)).ptr;
    p.attn = a.buffer("attn", bytes_of(T * QD, p.dt)).ptr;
    p.act = a.buffer("act", bytes_of(T * I, p.dt)).ptr;
    // The scratch's sizes come from the plan, known only on the device: checked below.
    Buf partials = a.buffer("partials", 0);
    Buf sync = a.buffer("sync", 0);
    if (a.on_cpu()) a.fail("is a CUDA kernel: the CPU runs lesson 10's forward");
#ifdef AIOS_WITH_CUDA
    aios::cuda::make_current(a.device());
    const aios::persistent::Plan plan = aios::cuda::persistent_decode_plan(s);
    if (!plan.why.empty()) a.fail("cannot run this shape: it " + plan.why);
    if (partials.capacity < bytes_of(plan.partial_floats, DType::F32))
      a.fail("partials holds " + std::to_string(partials.capacity) + " bytes, the plan needs " + std::to_string(bytes_of(plan.partial_floats, DType::F32)));
    if (sync.capacity < bytes_of(plan.sync_words, DType::I32))
      a.fail("sync holds " + std::to_string(sync.capacity) + " bytes, the plan needs " + std::to_string(bytes_of(plan.sync_words, DType::I32)));
    p.partials = static_cast<float*>(partials.ptr);
    p.sync = static_cast<uint32_t*>(sync.ptr);
    aios::cuda::persistent_decode(a.stream(), p, plan);
#endif
  });
}

// flashCascadePlan(device, numSeqs, numTokens, qHeads, kvHeads, headDim, maxContextLen): the cascade's
// launch shapes on that device (host-known bounds only) and the workspace it needs (0 on the CPU).
Napi::Value FlashCascadePlan(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int d = device_arg(info, 0);
    aios::PagedAttentionArgs p{};
    p.num_seqs = to_i64(env, info[1], "flashCascadePlan(numSeqs)");
    p.num_tokens = to_i64(env, info[2], "flashCascadePlan(numTokens)");
    p.q_heads = to_i64(env, info[3], "flashCascadePlan(qHeads)");
    p.kv_heads = to_i64(env, info[4], "flashCascadePlan(kvHeads)");
    p.head_dim = to_i64(env, info[5], "flashCascadePlan(headDim)");
    p.max_context_len = to_i64(env, info[6], "flashCascadePlan(maxContextLen)");
    p.max_q_len = 1;
    p.dt = DType::BF16;  // the plan does not depend on bf16 vs f16
    if (p.kv_heads == 0 || p.q_heads % p.kv_heads != 0) throw_js(env, "flashCascadePlan: qHeads must be a positive multiple of kvHeads");
    aios::flash::CascadePlan plan;
    if (d == kCpu) {
      plan = aios::flash::cascade_plan(p, aios::flash::decode_plan(p, 1, 0, 1));
      plan.workspace_bytes = 0;  // the CPU reference keeps its partials itself
    }
#ifdef AIOS_WITH_CUDA
    else {
      const std::string why = aios::flash::cascade_unsupported(p);
      if (!why.empty()) throw_js(env, "flashCascadePlan: " + why);
      aios::cuda::make_current(d);
      plan = aios::cuda::flash_cascade_plan(p);
    }
#endif
    Napi::Object o = Napi::Object::New(env);
    o.Set("sharedSplits", double(plan.shared_splits));
    o.Set("ownSplits", double(plan.own.splits));
    o.Set("ownPartition", double(plan.own.partition));
    o.Set("workspaceBytes", double(plan.workspace_bytes));
    return o;
  });
}

Napi::Value SampleRows(const Napi::CallbackInfo& info) {
  return op(info, "sampleRows", [&](Args& a) {
    int64_t rows = a.size("rows"), n = a.size("n");
    if (n == 0 && rows > 0) a.fail("rows must not be empty");
    auto* x = static_cast<const float*>(a.buffer("logits", bytes_of(rows * n, DType::F32)).ptr);
    auto* t = static_cast<const float*>(a.buffer("temperature", bytes_of(rows, DType::F32)).ptr);
    auto* u = static_cast<const float*>(a.buffer("uniform", bytes_of(rows, DType::F32)).ptr);
    auto* o = static_cast<int32_t*>(a.buffer("out", bytes_of(rows, DType::I32)).ptr);
    AIOS_DISPATCH(a, sample_rows(x, t, u, o, rows, n), sample_rows(st, x, t, u, o, rows, n));
  });
}

// Lesson 12. sampleTokens(rows, n, numPenalties, anyFiltered, anyLogprobs, indexBase, shard, logits,
// params, penalties, out, workspace): the buffers' sizes follow from the counts (aios.h). shard (lesson
// 14): the logits are entries indexBase.. of each row, and out takes each row's best (score bits,
// global index) instead of the token output.
Napi::Value SampleTokens(const Napi::CallbackInfo& info) {
  return op(info, "sampleTokens", [&](Args& a) {
    aios::SampleTokensArgs s;
    s.rows = a.size("rows");
    s.n = a.size("n");
    s.num_penalties = a.size("numPenalties");
    s.any_filtered = a.flag("anyFiltered");
    s.any_logprobs = a.flag("anyLogprobs");
    s.index_base = a.size("indexBase");
    const bool shard = a.flag("shard");
    if (s.n == 0 && s.rows > 0) a.fail("rows must not be empty");
    s.logits = static_cast<float*>(a.buffer("logits", bytes_of(s.rows * s.n, DType::F32)).ptr);
    s.params = static_cast<const aios::SampleRowParams*>(a.buffer("params", s.rows * int64_t(sizeof(aios::SampleRowParams))).ptr);
    s.penalties = static_cast<const aios::SamplePenalty*>(a.buffer("penalties", s.num_penalties * int64_t(sizeof(aios::SamplePenalty))).ptr);
    int32_t* out = static_cast<int32_t*>(a.buffer("out", bytes_of(shard ? 2 * s.rows : aios::sample_out_words(s.rows), DType::I32)).ptr);
    (shard ? s.shard_out : s.out) = out;
    s.workspace = a.buffer("workspace", aios::sample_workspace_bytes(s.rows, s.n, s.num_penalties)).ptr;
    AIOS_DISPATCH(a, sample_tokens(s), sample_tokens(st, s));
  });
}

Napi::Value SampleWorkspaceBytes(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const int64_t rows = to_i64(env, info[0], "sampleWorkspaceBytes: rows"), n = to_i64(env, info[1], "sampleWorkspaceBytes: n");
    const int64_t entries = to_i64(env, info[2], "sampleWorkspaceBytes: numPenalties");
    return Napi::Number::New(env, double(aios::sample_workspace_bytes(rows, n, entries)));
  });
}

// philox4x32_10(c0, c1, c2, c3, k0, k1) -> [4 words]: the generator the sampler draws from, for its known-answer test.
Napi::Value Philox4x32(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    uint32_t w[6];
    for (int i = 0; i < 6; ++i) {
      const int64_t v = to_i64(env, info[size_t(i)], "philox4x32: word");
      if (v > 0xffffffffLL) throw_js(env, "philox4x32: word " + std::to_string(i) + " is over 32 bits");
      w[i] = uint32_t(v);
    }
    const aios::philox::Words4 r = aios::philox::philox4x32_10(w[0], w[1], w[2], w[3], w[4], w[5]);
    Napi::Array out = Napi::Array::New(env, 4);
    for (uint32_t i = 0; i < 4; ++i) out.Set(i, Napi::Number::New(env, double(r.v[i])));
    return out;
  });
}

Napi::Value Argmax(const Napi::CallbackInfo& info) {
  return op(info, "argmax", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    int64_t rows = a.size("rows"), n = a.size("n");
    if (n == 0 && rows > 0) a.fail("rows must not be empty");
    Buf x = a.buffer("x", bytes_of(rows * n, dt));
    Buf out = a.buffer("out", bytes_of(rows, DType::I32));
    auto* o = static_cast<int32_t*>(out.ptr);
    AIOS_DISPATCH(a, argmax(x.ptr, o, rows, n, dt), argmax(st, x.ptr, o, rows, n, dt));
  });
}

template <bool kScatter> Napi::Value MoveRows(const Napi::CallbackInfo& info) {
  return op(info, kScatter ? "scatterRows" : "gatherRows", [&](Args& a) {
    DType idt = a.index_dtype("idxDtype");
    int64_t rows = a.size(kScatter ? "dstRows" : "srcRows"), n = a.size("nIdx"), row_bytes = a.size("rowBytes");
    Buf src = a.buffer("src", kScatter ? n * row_bytes : rows * row_bytes);
    Buf idx = a.buffer("idx", bytes_of(n, idt));
    Buf dst = a.buffer(kScatter ? "dst" : "out", kScatter ? rows * row_bytes : n * row_bytes);
    if (kScatter)
      AIOS_DISPATCH(a, scatter_rows(src.ptr, idx.ptr, idt, dst.ptr, rows, n, row_bytes),
                    scatter_rows(st, src.ptr, idx.ptr, idt, dst.ptr, rows, n, row_bytes));
    else
      AIOS_DISPATCH(a, gather_rows(src.ptr, rows, idx.ptr, idt, dst.ptr, n, row_bytes),
                    gather_rows(st, src.ptr, rows, idx.ptr, idt, dst.ptr, n, row_bytes));
  });
}

// ---------------------------------------------------------------- devices, streams, events

void tensor_parallel_info(Napi::Object o);  // lesson 14, below

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef AIOS_WITH_CUDA
  o.Set("cudaCompiled", true);
  o.Set("deviceCount", aios::cuda::device_count());
  o.Set("driverVersion", aios::cuda::driver_version());
  o.Set("runtimeVersion", aios::cuda::runtime_version());
#else
  o.Set("cudaCompiled", false);
  o.Set("deviceCount", 0);
#endif
#ifdef AIOS_WITH_CUBLAS
  o.Set("cublas", true);
#else
  o.Set("cublas", false);
#endif
  o.Set("cudaUsable", cuda_usable());
  tensor_parallel_info(o);
#ifdef AIOS_CUDA_ARCHS
  o.Set("cudaArchitectures", AIOS_CUDA_ARCHS);
#endif
  return o;
}

int device_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw_js(info.Env(), "expected a device number");
  int d = info[i].As<Napi::Number>().Int32Value();
  if (d != kCpu && !cuda_usable()) throw_js(info.Env(), "no usable CUDA device (device " + std::to_string(d) + ")");
  return d;
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
#ifdef AIOS_WITH_CUDA
    int d = device_arg(info, 0);
    if (d == kCpu) throw_js(env, "deviceInfo: expected a CUDA device number");
    auto p = aios::cuda::device_info(d);
    int64_t free_b = 0, total_b = 0;
    aios::cuda::mem_get_info(d, &free_b, &total_b);
    o.Set("name", p.name);
    o.Set("computeCapability", std::to_string(p.major) + "." + std::to_string(p.minor));
    o.Set("smCount", p.sm_count);
    o.Set("totalMemory", double(p.total_memory));
    o.Set("freeMemory", double(free_b));
    o.Set("l2Bytes", double(p.l2_bytes));
    o.Set("sharedPerBlockOptin", double(p.shared_per_block_optin));
    o.Set("memoryBusBits", p.memory_bus_bits);
    o.Set("memoryClockKHz", p.memory_clock_khz);
#else
    throw_js(env, "deviceInfo: this addon was built without CUDA");
#endif
    return o;
  });
}

Napi::Value MemGetInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
#ifdef AIOS_WITH_CUDA
    int d = device_arg(info, 0);
    int64_t f = 0, t = 0;
    aios::cuda::mem_get_info(d, &f, &t);
    o.Set("free", double(f));
    o.Set("total", double(t));
#else
    throw_js(env, "memGetInfo: this addon was built without CUDA");
#endif
    return o;
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
#ifdef AIOS_WITH_CUDA
    if (d != kCpu) {
      auto& ctx = aios::cuda::context(d);
      aios::cuda::check(cudaStreamSynchronize(ctx.stream), "synchronize");
    }
#endif
    (void)d;
    return info.Env().Undefined();
  });
}

class SyncWorker : public Napi::AsyncWorker {
 public:
  SyncWorker(Napi::Env env, int device) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), device_(device) {
#ifdef AIOS_WITH_CUDA
    if (device_ != kCpu) stream_ = aios::cuda::context(device_).stream;  // resolved on the JS thread
#endif
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
#ifdef AIOS_WITH_CUDA
    if (device_ != kCpu) {
      cudaError_t st = cudaStreamSynchronize(stream_);
      if (st != cudaSuccess) SetError(std::string("synchronize: ") + cudaGetErrorString(st));
    }
#endif
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int device_;
#ifdef AIOS_WITH_CUDA
  cudaStream_t stream_ = nullptr;
#endif
};

Napi::Value SynchronizeAsync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
    auto* w = new SyncWorker(info.Env(), d);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  });
}

Napi::Value AllocatorStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto s = allocator_for(device_arg(info, 0)).stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("rawAllocs", double(s.raw_allocs));
    o.Set("rawFrees", double(s.raw_frees));
    o.Set("requests", double(s.requests));
    o.Set("cacheHits", double(s.cache_hits));
    o.Set("bytesReserved", double(s.bytes_reserved));
    o.Set("bytesInUse", double(s.bytes_in_use));
    o.Set("peakBytesInUse", double(s.peak_bytes_in_use));
    return o;
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
#ifdef AIOS_WITH_CUDA
    // Blocks in the cache may still be read by queued kernels: finish them first.
    if (d != kCpu) aios::cuda::check(cudaStreamSynchronize(aios::cuda::context(d).stream), "emptyCache");
#endif
    allocator_for(d).empty_cache();
    return info.Env().Undefined();
  });
}

Napi::Value ResetPeakStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    allocator_for(device_arg(info, 0)).reset_peak();
    return info.Env().Undefined();
  });
}

Napi::Value StreamHandle(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
#ifdef AIOS_WITH_CUDA
    if (d != kCpu)
      return Napi::BigInt::New(info.Env(), uint64_t(reinterpret_cast<uintptr_t>(aios::cuda::context(d).stream)));
#endif
    (void)d;
    return Napi::BigInt::New(info.Env(), uint64_t(0));  // the host has no stream: work is done on return
  });
}

// Host microseconds per empty-kernel launch, n launches from C++ (CUDA only).
Napi::Value LaunchOverheadUs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
    int64_t n = to_i64(info.Env(), info[1], "launchOverheadUs(n)");
    if (d == kCpu || n == 0) throw_js(info.Env(), "launchOverheadUs: needs a CUDA device and n > 0");
#ifdef AIOS_WITH_CUDA
    return Napi::Number::New(info.Env(), aios::cuda::launch_overhead_us(d, n));
#else
    return info.Env().Undefined();  // not reached: device_arg accepts no CUDA device in a CPU-only build
#endif
  });
}

// Profiler capture on/off (a no-op without CUDA): Nsight Compute started with
// --profile-from-start off profiles only what runs in between.
Napi::Value Profiler(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw_js(info.Env(), "profiler: expected a boolean");
#ifdef AIOS_WITH_CUDA
    if (cuda_usable()) aios::cuda::profiler(info[0].As<Napi::Boolean>().Value());
#endif
    return info.Env().Undefined();
  });
}

// What the addon keeps per JavaScript environment. The addon is loaded once per
// environment (the main thread and every worker thread of lesson 14's ranks):
// a constructor reference belongs to the environment that made it, so it lives
// here, not in a static.
struct EnvData {
  Napi::FunctionReference graph;
};

EnvData& env_data(Napi::Env env) { return *env.GetInstanceData<EnvData>(); }

// An executable CUDA graph (lesson 11): graphBegin(device) starts recording the
// device's stream, graphEnd(device) returns one of these; launch() replays it on
// the stream, dispose() frees it (the finalizer does if JS forgets).
class Graph : public Napi::ObjectWrap<Graph> {
 public:
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "Graph", {InstanceMethod<&Graph::Launch>("launch"), InstanceMethod<&Graph::Dispose>("dispose"),
                                                  InstanceAccessor<&Graph::Disposed>("disposed")});
    env_data(env).graph = Napi::Persistent(f);
    return f;
  }
  Graph(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Graph>(info) {}
  ~Graph() override { Release(); }
#ifdef AIOS_WITH_CUDA
  cudaGraphExec_t exec = nullptr;
#endif
  int device = kCpu;

 private:
  void Release() {
#ifdef AIOS_WITH_CUDA
    aios::cuda::graph_destroy(exec);
    exec = nullptr;
#endif
  }
  Napi::Value Launch(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      if (!exec) throw_js(info.Env(), "Graph.launch: the graph was disposed");
      aios::cuda::graph_launch(device, exec);
#endif
      return info.Env().Undefined();
    });
  }
  void Dispose(const Napi::CallbackInfo&) { Release(); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
#ifdef AIOS_WITH_CUDA
    return Napi::Boolean::New(info.Env(), exec == nullptr);
#else
    return Napi::Boolean::New(info.Env(), true);
#endif
  }
};

Napi::Value GraphBegin(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
    if (d == kCpu) throw_js(info.Env(), "graphBegin: CUDA graphs need a CUDA device");
#ifdef AIOS_WITH_CUDA
    aios::cuda::graph_begin(d);
#endif
    return info.Env().Undefined();
  });
}

Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
    if (d == kCpu) throw_js(info.Env(), "graphEnd: CUDA graphs need a CUDA device");
    Napi::Object obj = env_data(info.Env()).graph.New({});
    Graph* g = Graph::Unwrap(obj);
    g->device = d;
#ifdef AIOS_WITH_CUDA
    g->exec = aios::cuda::graph_end(d);
#endif
    return obj;
  });
}

Napi::Value GraphAbort(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int d = device_arg(info, 0);
#ifdef AIOS_WITH_CUDA
    if (d != kCpu) aios::cuda::graph_abort(d);
#endif
    (void)d;
    return info.Env().Undefined();
  });
}

// A CUDA event on a device's stream: record() marks the stream's current
// position; elapsedMs(later) is the device time between two marks.
class Event : public Napi::ObjectWrap<Event> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Event",
                       {InstanceMethod<&Event::Record>("record"), InstanceMethod<&Event::Sync>("synchronize"),
                        InstanceMethod<&Event::ElapsedMs>("elapsedMs")});
  }
  Event(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Event>(info) {
    guarded(info, [&] {
      device_ = device_arg(info, 0);
      if (device_ == kCpu) throw_js(info.Env(), "Event: events exist on CUDA devices only");
#ifdef AIOS_WITH_CUDA
      aios::cuda::context(device_);
      aios::cuda::check(cudaEventCreate(&event_), "cudaEventCreate");
#endif
    });
  }
  ~Event() override {
#ifdef AIOS_WITH_CUDA
    if (event_) cudaEventDestroy(event_);
#endif
  }

 private:
  Napi::Value Record(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      aios::cuda::check(cudaEventRecord(event_, aios::cuda::context(device_).stream), "cudaEventRecord");
#endif
      return info.This();
    });
  }
  Napi::Value Sync(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      aios::cuda::check(cudaEventSynchronize(event_), "cudaEventSynchronize");
#endif
      return info.Env().Undefined();
    });
  }
  Napi::Value ElapsedMs(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      if (!info[0].IsObject()) throw_js(info.Env(), "elapsedMs: expected an Event");
      Event* end = Event::Unwrap(info[0].As<Napi::Object>());
      float ms = 0;
#ifdef AIOS_WITH_CUDA
      aios::cuda::check(cudaEventSynchronize(end->event_), "cudaEventSynchronize");
      aios::cuda::check(cudaEventElapsedTime(&ms, event_, end->event_), "cudaEventElapsedTime");
#endif
      (void)end;
      return Napi::Number::New(info.Env(), ms);
    });
  }
  int device_ = kCpu;
#ifdef AIOS_WITH_CUDA
  cudaEvent_t event_ = nullptr;
#endif
};

// ---------------------------------------------------------------- tensor parallelism (lesson 14)

Napi::Value EmbeddingShard(const Napi::CallbackInfo& info) {
  return op(info, "embeddingShard", [&](Args& a) {
    DType dt = a.float_dtype("dtype");
    DType idt = a.index_dtype("idDtype");
    int64_t n = a.size("nIds"), vocab = a.size("vocab"), start = a.size("start"), rows = a.size("rows"), dim = a.size("dim");
    if (start + rows > vocab) a.fail("rows [" + std::to_string(start) + ", " + std::to_string(start + rows) + ") exceed the vocabulary of " + std::to_string(vocab));
    Buf table = a.buffer("table", bytes_of(rows * dim, dt));
    Buf ids = a.buffer("ids", bytes_of(n, idt));
    Buf out = a.buffer("out", bytes_of(n * dim, dt));
    AIOS_DISPATCH(a, embedding_shard(table.ptr, dt, ids.ptr, idt, out.ptr, n, vocab, start, rows, dim),
                  embedding_shard(st, table.ptr, dt, ids.ptr, idt, out.ptr, n, vocab, start, rows, dim));
  });
}

[[noreturn]] void no_nccl(Napi::Env env, const char* what) {
  throw_js(env, std::string(what) + ": this addon was built without NCCL (no nccl.h / libnccl found at build time; "
                                    "install NCCL, or set NCCL_HOME, and rebuild the addon)");
}

// ncclUniqueId(): the 128 bytes rank 0 makes and hands to the other ranks.
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_NCCL
    auto out = Napi::Uint8Array::New(info.Env(), aios::nccl::kUniqueIdBytes);
    aios::nccl::unique_id(out.Data());
    return out;
#else
    no_nccl(info.Env(), "ncclUniqueId");
#endif
  });
}

// new NcclComm(device, nranks, rank, idBytes, timeoutMs): this thread's rank of a
// communicator. Its set-up gives up after timeoutMs; collectives are enqueued on
// the device's stream and return; wait() gives up after timeoutMs, aborting the
// communicator (see nccl_comm.cc).
class NcclComm : public Napi::ObjectWrap<NcclComm> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NcclComm",
                       {InstanceMethod<&NcclComm::AllReduce>("allReduce"), InstanceMethod<&NcclComm::AllGather>("allGather"),
                        InstanceMethod<&NcclComm::Broadcast>("broadcast"), InstanceMethod<&NcclComm::Wait>("wait"),
                        InstanceMethod<&NcclComm::Abort>("abort"), InstanceMethod<&NcclComm::Dispose>("dispose"),
                        InstanceAccessor<&NcclComm::Disposed>("disposed")});
  }
  NcclComm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NcclComm>(info) {
    guarded(info, [&] {
      Napi::Env env = info.Env();
#ifdef AIOS_WITH_NCCL
      device_ = device_arg(info, 0);
      if (device_ == kCpu) throw_js(env, "NcclComm: NCCL needs a CUDA device");
      const int64_t nranks = to_i64(env, info[1], "NcclComm(nranks)"), rank = to_i64(env, info[2], "NcclComm(rank)");
      if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().ByteLength() != size_t(aios::nccl::kUniqueIdBytes))
        throw_js(env, "NcclComm(id): expected the 128-byte Uint8Array that ncclUniqueId() returned");
      timeout_ms_ = timeout_arg(env, info[4], "NcclComm(timeoutMs)");
      auto id = info[3].As<Napi::Uint8Array>();
      comm_ = aios::nccl::init(device_, int(nranks), int(rank), id.Data(), timeout_ms_);
#else
      no_nccl(env, "NcclComm");
#endif
    });
  }
  ~NcclComm() override { Release(); }

 private:
  void Release() {
#ifdef AIOS_WITH_NCCL
    if (comm_) { try { aios::nccl::destroy(comm_); } catch (...) {} }
    comm_ = nullptr;
#endif
  }
#ifdef AIOS_WITH_NCCL
  aios::nccl::Comm* live(Args& a) {
    if (!comm_) a.fail("the communicator was disposed");
    return comm_;
  }
  // A collective's last arguments: send (send_count elements) and recv (recv_count), on the communicator's device.
  std::pair<void*, void*> operands(Args& a, DType dt, int64_t send_count, int64_t recv_count) {
    Buf send = a.buffer("send", bytes_of(send_count, dt));
    Buf recv = a.buffer("recv", bytes_of(recv_count, dt));
    if (a.device() != device_) a.fail("the buffers are on device " + std::to_string(a.device()) + ", the communicator on cuda:" + std::to_string(device_));
    return {send.ptr, recv.ptr};
  }
  static double timeout_arg(Napi::Env env, const Napi::Value& v, const char* what) {
    if (!v.IsNumber() || !(v.As<Napi::Number>().DoubleValue() > 0)) throw_js(env, std::string(what) + ": expected a positive number");
    return v.As<Napi::Number>().DoubleValue();
  }
#endif
  // allReduce(dtype, count, send, sendOffset, recv, recvOffset): recv = the sum over ranks of send.
  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    return op(info, "allReduce", [&](Args& a) {
#ifdef AIOS_WITH_NCCL
      DType dt = a.dtype("dtype");
      int64_t n = a.size("count");
      const auto [send, recv] = operands(a, dt, n, n);
      aios::nccl::all_reduce_sum(live(a), a.stream(), send, recv, n, dt, timeout_ms_);
#else
      no_nccl(info.Env(), "allReduce");
#endif
    });
  }
  // allGather(dtype, countPerRank, nranks, send, sendOffset, recv, recvOffset): recv [nranks x countPerRank].
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    return op(info, "allGather", [&](Args& a) {
#ifdef AIOS_WITH_NCCL
      DType dt = a.dtype("dtype");
      int64_t n = a.size("countPerRank"), ranks = a.size("nranks");
      const auto [send, recv] = operands(a, dt, n, n * ranks);
      aios::nccl::all_gather(live(a), a.stream(), send, recv, n, dt, timeout_ms_);
#else
      no_nccl(info.Env(), "allGather");
#endif
    });
  }
  // broadcast(dtype, count, root, send, sendOffset, recv, recvOffset): every rank's recv = root's send.
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    return op(info, "broadcast", [&](Args& a) {
#ifdef AIOS_WITH_NCCL
      DType dt = a.dtype("dtype");
      int64_t n = a.size("count"), root = a.size("root");
      const auto [send, recv] = operands(a, dt, n, n);
      aios::nccl::broadcast(live(a), a.stream(), send, recv, n, dt, int(root), timeout_ms_);
#else
      no_nccl(info.Env(), "broadcast");
#endif
    });
  }
  // wait(timeoutMs?): the communicator's timeout unless a shorter one is given (start-up checks).
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_NCCL
      if (!comm_) throw_js(info.Env(), "NcclComm.wait: the communicator was disposed");
      double timeout_ms = timeout_ms_;
      if (info.Length() > 0 && !info[0].IsUndefined()) timeout_ms = timeout_arg(info.Env(), info[0], "NcclComm.wait(timeoutMs)");
      aios::nccl::wait(comm_, aios::cuda::context(device_).stream, timeout_ms);
#endif
      return info.Env().Undefined();
    });
  }
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_NCCL
      if (comm_) aios::nccl::abort(comm_);
#endif
      return info.Env().Undefined();
    });
  }
  // dispose(): frees the communicator; throws (once freed or left running) if NCCL's freeing
  // did not finish in time, e.g. because a CUDA graph that captured it is still alive.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_NCCL
      aios::nccl::Comm* c = comm_;
      comm_ = nullptr;
      if (c) aios::nccl::destroy(c);
#endif
      return info.Env().Undefined();
    });
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
#ifdef AIOS_WITH_NCCL
    return Napi::Boolean::New(info.Env(), comm_ == nullptr);
#else
    return Napi::Boolean::New(info.Env(), true);
#endif
  }
  int device_ = kCpu;
  double timeout_ms_ = 0;
#ifdef AIOS_WITH_NCCL
  aios::nccl::Comm* comm_ = nullptr;
#endif
};

// new PeerAllReduce(device, rank, nranks, capacityBytes, timeoutMs): this thread's rank of a
// one-shot all-reduce over peer access between the GPUs of this process (peer_allreduce.cu):
// addresses() go to the other ranks, connect() takes every rank's, then allReduce() is
// enqueued on the device's stream (and may be captured in a CUDA graph); check() throws
// if a kernel gave up waiting for a peer. No math here: the kernel is in peer_allreduce.cu.
class PeerAllReduce : public Napi::ObjectWrap<PeerAllReduce> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "PeerAllReduce",
                       {InstanceMethod<&PeerAllReduce::Addresses>("addresses"), InstanceMethod<&PeerAllReduce::Connect>("connect"),
                        InstanceMethod<&PeerAllReduce::AllReduce>("allReduce"), InstanceMethod<&PeerAllReduce::Check>("check"),
                        InstanceMethod<&PeerAllReduce::AllReduceAddRmsnorm>("allReduceAddRmsnorm"),
                        InstanceMethod<&PeerAllReduce::FitsAddRmsnorm>("fitsAddRmsnorm"),
                        InstanceMethod<&PeerAllReduce::Dispose>("dispose"), InstanceAccessor<&PeerAllReduce::Capacity>("capacity"),
                        InstanceAccessor<&PeerAllReduce::Disposed>("disposed")});
  }
  PeerAllReduce(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PeerAllReduce>(info) {
    guarded(info, [&] {
      Napi::Env env = info.Env();
#ifdef AIOS_WITH_CUDA
      device_ = device_arg(info, 0);
      if (device_ == kCpu) throw_js(env, "PeerAllReduce: needs a CUDA device");
      const int64_t rank = to_i64(env, info[1], "PeerAllReduce(rank)"), nranks = to_i64(env, info[2], "PeerAllReduce(nranks)");
      const int64_t capacity = to_i64(env, info[3], "PeerAllReduce(capacityBytes)");
      if (!info[4].IsNumber()) throw_js(env, "PeerAllReduce(timeoutMs): expected a positive number");
      impl_ = aios::peer::create(device_, int(rank), int(nranks), capacity, info[4].As<Napi::Number>().DoubleValue());
      nranks_ = int(nranks);
#else
      throw_js(env, "PeerAllReduce: this addon was built without CUDA");
#endif
    });
  }
  ~PeerAllReduce() override { Release(); }

 private:
  void Release() {
#ifdef AIOS_WITH_CUDA
    if (impl_) { try { aios::peer::destroy(impl_); } catch (...) {} }
    impl_ = nullptr;
#endif
  }
#ifdef AIOS_WITH_CUDA
  aios::peer::PeerAllReduce* live(Napi::Env env, const char* what) {
    if (!impl_) throw_js(env, std::string("PeerAllReduce.") + what + ": disposed");
    return impl_;
  }
#endif
  // addresses(): BigUint64Array [staging, flags] of this rank.
  Napi::Value Addresses(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      uint64_t a[2];
      aios::peer::addresses(live(info.Env(), "addresses"), a);
      auto out = Napi::BigUint64Array::New(info.Env(), 2);
      out[0] = a[0];
      out[1] = a[1];
      return out;
#else
      return info.Env().Undefined();
#endif
    });
  }
  // connect(devices: Int32Array, staging: BigUint64Array, flags: BigUint64Array): every rank's, by rank.
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      Napi::Env env = info.Env();
      auto* p = live(env, "connect");
      if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
          !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
          !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array)
        throw_js(env, "PeerAllReduce.connect(devices, staging, flags): expected an Int32Array and two BigUint64Arrays");
      auto devices = info[0].As<Napi::Int32Array>();
      auto staging = info[1].As<Napi::BigUint64Array>(), flags = info[2].As<Napi::BigUint64Array>();
      if (devices.ElementLength() != size_t(nranks_) || staging.ElementLength() != size_t(nranks_) || flags.ElementLength() != size_t(nranks_))
        throw_js(env, "PeerAllReduce.connect: expected one device, staging address and flags address per rank (" + std::to_string(nranks_) + ")");
      aios::peer::connect(p, devices.Data(), staging.Data(), flags.Data());
#endif
      return info.Env().Undefined();
    });
  }
  // allReduce(dtype, count, data, dataOffset): data = the sum over ranks, in place.
  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    return op(info, "PeerAllReduce.allReduce", [&](Args& a) {
#ifdef AIOS_WITH_CUDA
      DType dt = a.dtype("dtype");
      int64_t n = a.size("count");
      Buf data = a.buffer("data", bytes_of(n, dt));
      if (a.device() != device_) a.fail("the tensor is on device " + std::to_string(a.device()) + ", this rank on cuda:" + std::to_string(device_));
      aios::peer::all_reduce_sum(live(info.Env(), "allReduce"), a.stream(), data.ptr, n, dt);
#endif
    });
  }
  // allReduceAddRmsnorm(dtype, rows, dim, eps, x, xOff, residual, resOff, weight, wOff, out, outOff):
  // x summed over the ranks, residual += it, out = RMSNorm(residual) * weight (x left as it was).
  Napi::Value AllReduceAddRmsnorm(const Napi::CallbackInfo& info) {
    return op(info, "PeerAllReduce.allReduceAddRmsnorm", [&](Args& a) {
#ifdef AIOS_WITH_CUDA
      DType dt = a.dtype("dtype");
      const int64_t rows = a.size("rows"), dim = a.size("dim");
      const float eps = float(a.number("eps"));
      Buf x = a.buffer("x", bytes_of(rows * dim, dt));
      Buf res = a.buffer("residual", bytes_of(rows * dim, dt));
      Buf w = a.buffer("weight", bytes_of(dim, dt));
      Buf out = a.buffer("out", bytes_of(rows * dim, dt));
      if (a.device() != device_) a.fail("the tensors are on device " + std::to_string(a.device()) + ", this rank on cuda:" + std::to_string(device_));
      aios::peer::all_reduce_add_rmsnorm(live(info.Env(), "allReduceAddRmsnorm"), a.stream(), x.ptr, res.ptr, w.ptr, out.ptr, rows, dim, eps, dt);
#endif
    });
  }
  // fitsAddRmsnorm(rows, dim, dtype): whether allReduceAddRmsnorm takes this shape.
  Napi::Value FitsAddRmsnorm(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      Napi::Env env = info.Env();
      const int64_t rows = to_i64(env, info[0], "fitsAddRmsnorm(rows)"), dim = to_i64(env, info[1], "fitsAddRmsnorm(dim)");
      const int64_t code = to_i64(env, info[2], "fitsAddRmsnorm(dtype)");
      if (code >= aios::kNumDTypes) throw_js(env, "fitsAddRmsnorm: unknown dtype code " + std::to_string(code));
      return Napi::Boolean::New(env, aios::peer::fits_add_rmsnorm(live(env, "fitsAddRmsnorm"), rows, dim, DType(code)));
#else
      return Napi::Boolean::New(info.Env(), false);
#endif
    });
  }
  Napi::Value Check(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
      aios::peer::check(live(info.Env(), "check"));
#endif
      return info.Env().Undefined();
    });
  }
  void Dispose(const Napi::CallbackInfo&) { Release(); }
  Napi::Value Capacity(const Napi::CallbackInfo& info) {
#ifdef AIOS_WITH_CUDA
    return Napi::Number::New(info.Env(), impl_ ? double(aios::peer::capacity(impl_)) : 0.0);
#else
    return Napi::Number::New(info.Env(), 0);
#endif
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
#ifdef AIOS_WITH_CUDA
    return Napi::Boolean::New(info.Env(), impl_ == nullptr);
#else
    return Napi::Boolean::New(info.Env(), true);
#endif
  }
  int device_ = kCpu, nranks_ = 0;
#ifdef AIOS_WITH_CUDA
  aios::peer::PeerAllReduce* impl_ = nullptr;
#endif
};

// canAccessPeer(device, peer): whether device can read peer's memory directly (NVLink or PCIe P2P).
Napi::Value CanAccessPeer(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
#ifdef AIOS_WITH_CUDA
    const int d = device_arg(info, 0), p = device_arg(info, 1);
    if (d == kCpu || p == kCpu) return Napi::Boolean::New(info.Env(), false);
    return Napi::Boolean::New(info.Env(), aios::peer::can_access_peer(d, p));
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
  });
}

// backendInfo's NCCL fields and the exports above.
void InitTensorParallel(Napi::Env env, Napi::Object exports) {
  exports.Set("PeerAllReduce", PeerAllReduce::Init(env));
  exports.Set("canAccessPeer", Napi::Function::New(env, CanAccessPeer));
  exports.Set("embeddingShard", Napi::Function::New(env, EmbeddingShard));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId));
  exports.Set("NcclComm", NcclComm::Init(env));
}

void tensor_parallel_info(Napi::Object o) {
#ifdef AIOS_WITH_NCCL
  o.Set("nccl", true);
  o.Set("ncclVersion", aios::nccl::version());
#else
  o.Set("nccl", false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new EnvData());
  exports.Set("Storage", Storage::Init(env));
  exports.Set("Event", Event::Init(env));
  exports.Set("Graph", Graph::Init(env));
  exports.Set("graphBegin", Napi::Function::New(env, GraphBegin));
  exports.Set("graphEnd", Napi::Function::New(env, GraphEnd));
  exports.Set("graphAbort", Napi::Function::New(env, GraphAbort));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo));
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo));
  exports.Set("memGetInfo", Napi::Function::New(env, MemGetInfo));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("synchronizeAsync", Napi::Function::New(env, SynchronizeAsync));
  exports.Set("allocatorStats", Napi::Function::New(env, AllocatorStats));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
  exports.Set("resetPeakStats", Napi::Function::New(env, ResetPeakStats));
  exports.Set("streamHandle", Napi::Function::New(env, StreamHandle));
  exports.Set("launchOverheadUs", Napi::Function::New(env, LaunchOverheadUs));
  exports.Set("profiler", Napi::Function::New(env, Profiler));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("copyStrided", Napi::Function::New(env, CopyStrided));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("matmulNT", Napi::Function::New(env, MatmulNT));
  exports.Set("rmsnorm", Napi::Function::New(env, RmsNorm));
  exports.Set("ropeNeox", Napi::Function::New(env, RopeNeox));
  exports.Set("silu", Napi::Function::New(env, Silu));
  exports.Set("add", Napi::Function::New(env, Binary<false>));
  exports.Set("mul", Napi::Function::New(env, Binary<true>));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("pagedAttention", Napi::Function::New(env, PagedAttention));
  exports.Set("flashPrefill", Napi::Function::New(env, FlashPrefill));
  exports.Set("flashDecode", Napi::Function::New(env, FlashDecode));
  exports.Set("flashDecodePlan", Napi::Function::New(env, FlashDecodePlan));
  exports.Set("persistentDecodePlan", Napi::Function::New(env, PersistentDecodePlan));
  exports.Set("persistentDecode", Napi::Function::New(env, PersistentDecode));
  exports.Set("flashCascadeDecode", Napi::Function::New(env, FlashCascadeDecode));
  exports.Set("flashCascadePlan", Napi::Function::New(env, FlashCascadePlan));
  exports.Set("argmax", Napi::Function::New(env, Argmax));
  exports.Set("sampleRows", Napi::Function::New(env, SampleRows));
  exports.Set("sampleTokens", Napi::Function::New(env, SampleTokens));
  exports.Set("sampleWorkspaceBytes", Napi::Function::New(env, SampleWorkspaceBytes));
  exports.Set("philox4x32", Napi::Function::New(env, Philox4x32));
  exports.Set("addRmsnorm", Napi::Function::New(env, AddRmsnorm));
  exports.Set("siluMul", Napi::Function::New(env, SiluMul));
  exports.Set("qkNormRopeStore", Napi::Function::New(env, QkNormRopeStore));
  exports.Set("gatherRows", Napi::Function::New(env, MoveRows<false>));
  exports.Set("scatterRows", Napi::Function::New(env, MoveRows<true>));
  InitTensorParallel(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(aios_native, Init)
