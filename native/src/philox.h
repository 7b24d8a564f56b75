// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
// "Parallel Random Numbers: As Easy as 1, 2, 3" (SC11), written from the paper's
// description: a 128-bit counter goes through 10 rounds of a Feistel-like
// network keyed by 64 bits; each round multiplies two of the four words by the
// constants M0, M1 (keeping both halves of the 64-bit products) and xors the
// high halves with the other two words and the round key; the key is bumped by
// the Weyl constants W0, W1 between rounds. No state: the same (counter, key)
// always gives the same four words, so any thread can draw any number.
//
// Shared by the CPU reference (src/cpu/sampling.cc) and the CUDA kernels
// (src/cuda/sample_tokens.cu) so both draw the same bits.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define AIOS_HD __host__ __device__ __forceinline__
#else
#define AIOS_HD inline
#endif

namespace aios::philox {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt(3) - 1)
constexpr int kRounds = 10;

struct Words4 {
  uint32_t v[4];
};

AIOS_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

// counter (c0, c1, c2, c3) and key (k0, k1) -> four uniformly distributed words.
AIOS_HD Words4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < kRounds; ++round) {
    if (round > 0) { k0 += kW0; k1 += kW1; }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  return Words4{{c0, c1, c2, c3}};
}

// A uniform float strictly inside (0, 1) from 23 of the word's bits: (2j + 1) / 2^24,
// exact in float32, never 0 (whose log is -inf) nor 1 (whose -log is 0).
AIOS_HD float open_uniform(uint32_t bits) { return (float(bits >> 9) + 0.5f) * (1.0f / 8388608.0f); }

// The sampler's random stream: vocabulary entry i of a request at token position p
// uses word (i % 4) of philox(counter = (i / 4, p, 0, 0), key = the request's seed).
// One call serves four consecutive entries, so a thread reading a float4 of the
// row makes one call.
AIOS_HD Words4 sample_bits(uint32_t seed_lo, uint32_t seed_hi, uint32_t position, uint32_t group) {
  return philox4x32_10(group, position, 0u, 0u, seed_lo, seed_hi);
}

}  // namespace aios::philox

namespace aios::sample_rules {

// The penalties of one (row, token) pair, in vLLM's order: the repetition penalty (CTRL:
// a positive logit divided by it, a negative one multiplied) for a token seen in the prompt
// or the output, then OpenAI's presence and frequency penalties over the output's count.
AIOS_HD float penalized_logit(float x, float repetition, float presence, float frequency, int32_t output_count,
                              int32_t in_prompt) {
  if (repetition != 1.0f && (output_count > 0 || in_prompt != 0)) x = x > 0.0f ? x / repetition : x * repetition;
  return x - (presence * (output_count > 0 ? 1.0f : 0.0f) + frequency * float(output_count));
}

// Float -> uint32 whose unsigned order is the floats' order (-inf lowest, +inf highest);
// the radix select of the top-k / top-p thresholds works on these keys.
AIOS_HD uint32_t order_key(float v) {
#ifdef __CUDA_ARCH__
  const uint32_t u = __float_as_uint(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, 4);
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
AIOS_HD float key_value(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float v;
  std::memcpy(&v, &u, 4);
  return v;
#endif
}

}  // namespace aios::sample_rules
