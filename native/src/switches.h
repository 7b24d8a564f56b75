// The kernels' timing switches (AIOS_* environment variables): an integer in a range, read once by
// each caller (a static), so a run cannot change it half-way. Plain host code, shared by the CUDA
// launchers and the CPU emulator's builds of them.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>

#include "aios.h"

namespace aios {

/** The integer in environment variable `name`, lo..hi, or `unset` when it is unset or empty; anything else throws naming it. */
inline int64_t timing_switch(const char* name, int64_t lo, int64_t hi, int64_t unset = 0) {
  const char* v = std::getenv(name);
  if (!v || !*v) return unset;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi)
    throw Error(std::string(name) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got \"" + v + "\"");
  return int64_t(n);
}

}  // namespace aios
