// A host buffer of one dtype's values as raw bytes, for the emulator tests (flash_emu_test.cc,
// gemm_emu_test.cc): what a kernel reads and writes as device memory, set and read as floats.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "../src/aios.h"
#include "../src/cpu/numeric.h"

namespace aios::emutest {

struct Buf {
  std::vector<unsigned char> bytes;
  DType dt;
  size_t n;
  Buf(size_t n_, DType dt_) : bytes(n_ * aios::dtype_size(dt_)), dt(dt_), n(n_) {}
  void set(size_t i, float v) {
    if (dt == DType::F32) std::memcpy(&bytes[i * 4], &v, 4);
    else if (dt == DType::BF16) { auto h = aios::cpu::bf16_from(v); std::memcpy(&bytes[i * 2], &h, 2); }
    else { auto h = aios::cpu::f16_from(v); std::memcpy(&bytes[i * 2], &h, 2); }
  }
  float get(size_t i) const {
    if (dt == DType::F32) { float v; std::memcpy(&v, &bytes[i * 4], 4); return v; }
    uint16_t h;
    std::memcpy(&h, &bytes[i * 2], 2);
    return dt == DType::BF16 ? aios::cpu::to_float(aios::cpu::bf16{h}) : aios::cpu::to_float(aios::cpu::f16{h});
  }
  void poison() { std::memset(bytes.data(), 0xff, bytes.size()); }  // NaN in every float format
};

}  // namespace aios::emutest
