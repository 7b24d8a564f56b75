#include "allocator.h"

#include <algorithm>

namespace aios {

size_t CachingAllocator::round_size(size_t bytes) {
  // Small blocks round to 512 B, large ones to 2 MiB: few distinct sizes, so
  // cache hits are likely, at a bounded waste (< 2 MiB per large block).
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kLargeFrom = size_t(1) << 20;
  if (bytes == 0) bytes = 1;
  size_t unit = bytes < kLargeFrom ? kSmall : kLarge;
  return (bytes + unit - 1) / unit * unit;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.requests++;
  void* ptr = nullptr;
  auto it = cached_.find(size);
  if (it != cached_.end()) {
    ptr = it->second;
    cached_.erase(it);
    stats_.cache_hits++;
  } else {
    ptr = raw_alloc_(size);
    if (!ptr && !cached_.empty()) {  // out of memory: give the cache back and try once more
      for (auto& [sz, p] : cached_) { raw_free_(p); stats_.raw_frees++; stats_.bytes_reserved -= int64_t(sz); }
      cached_.clear();
      ptr = raw_alloc_(size);
    }
    if (!ptr) return nullptr;
    stats_.raw_allocs++;
    stats_.bytes_reserved += int64_t(size);
  }
  live_[ptr] = size;
  stats_.bytes_in_use += int64_t(size);
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return ptr;
}

void CachingAllocator::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return;  // not ours, or already released: never free twice
  cached_.emplace(it->second, ptr);
  stats_.bytes_in_use -= int64_t(it->second);
  live_.erase(it);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, ptr] : cached_) {
    raw_free_(ptr);
    stats_.raw_frees++;
    stats_.bytes_reserved -= int64_t(size);
  }
  cached_.clear();
}

AllocatorStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
}

}  // namespace aios
