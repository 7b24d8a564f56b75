// Host-side storage types for bf16 and f16 and their float conversions.
// Conversions round to nearest even, as the GPU's __float2bfloat16 does,
// so the CPU reference and the CUDA kernels see the same rounded inputs.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../aios.h"

namespace aios::cpu {

struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };

inline float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float to_float(bf16 v) { return bits_to_float(uint32_t(v.bits) << 16); }
inline bf16 bf16_from(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                                // round to nearest even
  return bf16{uint16_t(u >> 16)};
}

inline float to_float(f16 v) {
  uint32_t sign = uint32_t(v.bits & 0x8000u) << 16, exp = (v.bits >> 10) & 0x1f, man = v.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));      // inf / NaN
  if (exp == 0) {                                                               // zero / subnormal
    float r = std::ldexp(float(man), -24);
    return sign ? -r : r;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}
inline f16 f16_from(float f) {
  uint32_t u = float_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{uint16_t(sign | 0x7e00u)};                    // NaN
  if (a >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00u)};                   // overflow -> inf
  if (a < 0x38800000u) {                                                        // subnormal or zero
    float mag = bits_to_float(a);
    float scaled = std::nearbyint(mag * 16777216.0f);                           // units of 2^-24, ties to even
    return f16{uint16_t(sign | uint16_t(scaled))};
  }
  uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
  return f16{uint16_t(sign | ((rounded - 0x38000000u) >> 13))};
}

inline float to_float(float v) { return v; }
inline float to_float(int32_t v) { return float(v); }
inline float to_float(int64_t v) { return float(v); }

template <class T> inline T from_float(float f);
template <> inline float from_float<float>(float f) { return f; }
template <> inline bf16 from_float<bf16>(float f) { return bf16_from(f); }
template <> inline f16 from_float<f16>(float f) { return f16_from(f); }

// Calls body.template operator()<T>() with T the storage type of a float dtype.
template <class F> inline void dispatch_float(DType dt, F&& body) {
  switch (dt) {
    case DType::BF16: body(bf16{}); return;
    case DType::F16: body(f16{}); return;
    case DType::F32: body(float{}); return;
    default: throw Error(std::string("expected a float dtype (bf16, f16, f32), got ") + dtype_name(dt));
  }
}

inline int64_t load_index(const void* idx, DType dt, int64_t i) {
  return dt == DType::I32 ? int64_t(static_cast<const int32_t*>(idx)[i]) : static_cast<const int64_t*>(idx)[i];
}

}  // namespace aios::cpu
