// A caching allocator: freed blocks go to a cache keyed by their rounded size
// and are handed out again for the next request of that size, so a steady-state
// loop that allocates the same shapes every step makes no cudaMalloc (or malloc)
// call at all. The counters let a test check exactly that.
//
// All device work runs on one stream per device, so a block freed here may be
// reused at once: any kernel that still reads it was queued before the kernel
// that will overwrite it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

namespace aios {

struct AllocatorStats {
  int64_t raw_allocs = 0;      // calls to the underlying allocator (cudaMalloc / aligned_alloc)
  int64_t raw_frees = 0;       // blocks returned to the underlying allocator
  int64_t requests = 0;        // allocate() calls
  int64_t cache_hits = 0;      // requests served from the cache
  int64_t bytes_reserved = 0;  // held from the underlying allocator (in use + cached)
  int64_t bytes_in_use = 0;    // handed out and not yet freed (rounded sizes)
  int64_t peak_bytes_in_use = 0;
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;  // returns nullptr when out of memory
  using RawFree = std::function<void(void*)>;

  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free) : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}
  ~CachingAllocator() = default;  // device memory is released with the context at exit

  // Returns nullptr if the underlying allocator fails even after the cache is emptied.
  void* allocate(size_t bytes);
  void release(void* ptr);
  void empty_cache();  // gives every cached block back to the underlying allocator
  AllocatorStats stats();
  void reset_peak();
  static size_t round_size(size_t bytes);

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  std::mutex mu_;  // finalizers and async workers may free from other threads
  std::multimap<size_t, void*> cached_;          // rounded size -> free block
  std::unordered_map<void*, size_t> live_;       // block -> rounded size
  AllocatorStats stats_;
};

}  // namespace aios
