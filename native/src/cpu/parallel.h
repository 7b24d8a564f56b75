// Splits [0, n) over the machine's cores. The CPU backend is a reference, but
// the tests and the CPU lessons run real models on it, so the two heavy loops
// (matmul, attention) use every core.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace aios::cpu {

template <class F> void parallel_for(int64_t n, int64_t min_per_thread, F&& body) {
  int64_t threads = std::max<int64_t>(1, std::min<int64_t>(std::thread::hardware_concurrency(), n / std::max<int64_t>(1, min_per_thread)));
  if (threads <= 1) { body(int64_t(0), n); return; }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(threads);
  int64_t chunk = (n + threads - 1) / threads;
  for (int64_t t = 0; t < threads; ++t) {
    int64_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back([&, t, begin, end] {
      try { body(begin, end); } catch (...) { errors[t] = std::current_exception(); }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors) if (e) std::rethrow_exception(e);
}

}  // namespace aios::cpu
