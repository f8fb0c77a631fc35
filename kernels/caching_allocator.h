// caching_allocator.h: keeps freed device blocks for reuse, so a training step does not
// call cudaMalloc/cudaFree (each a device synchronisation, tens of microseconds) for
// every intermediate tensor. The idea is PyTorch's CUDA caching allocator, much reduced:
// one stream, so a block freed by a tensor may be handed to the next allocation at once
// (work on one stream runs in order: the new owner's kernels run after the old one's).
//
// Plain C++ over two functions (raw allocate, raw free), so it is tested on the CPU with
// malloc (tests/test_caching_allocator.cpp) and used on the GPU with cudaMalloc.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace hkt::cuda {

class CachingAllocator {
 public:
  /// raw_allocate returns nullptr when memory is exhausted (it must not throw for
  /// that); raw_free gives a block back; free_memory (optional) reports the device's
  /// free bytes for error messages.
  CachingAllocator(std::function<void*(std::size_t)> raw_allocate, std::function<void(void*)> raw_free,
                   std::function<std::size_t()> free_memory = nullptr);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  /// A block of at least nbytes (rounded up to kRound), reused from the cache when one of
  /// at most twice the size is free. When the raw allocator fails, the cache is emptied
  /// and the allocation retried once; then hkt::Error names the size asked for, the free
  /// device memory, and the bytes in use and cached. nbytes == 0 gives nullptr.
  void* allocate(std::size_t nbytes);
  /// Returns a block from allocate() to the cache (nullptr is ignored). Throws
  /// hkt::Error for a pointer this allocator did not hand out.
  void free(void* ptr);
  /// Gives every cached (unused) block back through raw_free.
  void empty_cache();

  static constexpr std::size_t kRound = 512;  // bytes: keeps blocks aligned for any dtype and vector load

  // ---- guard mode (the consistency harness) ----------------------------------------
  // While on, each new block gets kGuard bytes of kGuardByte before and after it, and
  // free() checks them: a kernel that wrote outside its output is caught when that
  // output is freed. Guarded blocks are never cached. Needs the two functions below.
  static constexpr std::size_t kGuard = 512;
  static constexpr unsigned char kGuardByte = 0xA5;
  /// set(ptr, byte, n) fills n device bytes; read(host, device, n) copies them back.
  void set_guard_io(std::function<void(void*, unsigned char, std::size_t)> set,
                    std::function<void(void*, const void*, std::size_t)> read);
  void set_guard_mode(bool on);
  /// What free() found since the last call (e.g. "a block of 96 bytes: 4 bytes written
  /// after its end"), and clears the list.
  std::vector<std::string> take_guard_violations();

  std::size_t allocated_bytes() const;       ///< in blocks handed out now
  std::size_t peak_allocated_bytes() const;  ///< the most handed out at once
  void reset_peak();                         ///< sets the peak to what is handed out now
  std::size_t reserved_bytes() const;        ///< from the raw allocator: handed out + cached
  std::size_t cached_blocks() const;         ///< free blocks kept for reuse

 private:
  void release_cache_locked();
  std::function<void*(std::size_t)> raw_allocate_;
  std::function<void(void*)> raw_free_;
  std::function<std::size_t()> free_memory_;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> cache_;  // size -> free block
  struct Block {
    std::size_t size;  // usable bytes
    bool guarded;      // the raw allocation starts kGuard bytes earlier
  };
  std::unordered_map<void*, Block> in_use_;  // block handed out -> its size
  std::function<void(void*, unsigned char, std::size_t)> guard_set_;
  std::function<void(void*, const void*, std::size_t)> guard_read_;
  bool guard_mode_ = false;
  std::vector<std::string> guard_violations_;
  std::size_t allocated_ = 0, peak_ = 0, reserved_ = 0;
};

}  // namespace hkt::cuda
