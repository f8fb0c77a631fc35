#include "caching_allocator.h"

#include "error.h"

namespace hkt::cuda {

CachingAllocator::CachingAllocator(std::function<void*(std::size_t)> raw_allocate, std::function<void(void*)> raw_free,
                                   std::function<std::size_t()> free_memory)
    : raw_allocate_(std::move(raw_allocate)), raw_free_(std::move(raw_free)), free_memory_(std::move(free_memory)) {}

CachingAllocator::~CachingAllocator() {
  // Blocks still in use belong to tensors that outlive the allocator (static
  // destruction order): leave them; the process is ending.
  std::lock_guard<std::mutex> lock(mutex_);
  release_cache_locked();
}

void* CachingAllocator::allocate(std::size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const std::size_t size = (nbytes + kRound - 1) / kRound * kRound;
  std::lock_guard<std::mutex> lock(mutex_);
  if (guard_mode_) {  // a fresh raw block with a guard zone on each side, never cached
    auto* base = static_cast<unsigned char*>(raw_allocate_(size + 2 * kGuard));
    check(base != nullptr, "cuda allocate: out of memory asking for " + std::to_string(nbytes) + " bytes (guard mode)");
    guard_set_(base, kGuardByte, kGuard);
    guard_set_(base + kGuard + nbytes, kGuardByte, size - nbytes + kGuard);  // the rounding slack is guarded too
    void* ptr = base + kGuard;
    in_use_.emplace(ptr, Block{nbytes, true});
    reserved_ += size + 2 * kGuard;
    allocated_ += size;
    if (allocated_ > peak_) peak_ = allocated_;
    return ptr;
  }
  // Best fit among cached blocks no larger than twice the request (a bigger one would
  // waste more than half of itself).
  auto it = cache_.lower_bound(size);
  void* ptr = nullptr;
  std::size_t got = size;
  if (it != cache_.end() && it->first <= 2 * size) {
    ptr = it->second;
    got = it->first;
    cache_.erase(it);
  } else {
    ptr = raw_allocate_(size);
    if (!ptr && !cache_.empty()) {  // memory may be held by the cache: give it back, retry
      release_cache_locked();
      ptr = raw_allocate_(size);
    }
    if (!ptr) {
      const std::string free_now = free_memory_ ? std::to_string(free_memory_()) : std::string("unknown");
      throw Error("cuda allocate: out of memory asking for " + std::to_string(nbytes) + " bytes; device free memory " +
                  free_now + " bytes; this process holds " + std::to_string(allocated_) + " bytes in tensors and " +
                  std::to_string(reserved_ - allocated_) + " bytes cached");
    }
    reserved_ += size;
  }
  in_use_.emplace(ptr, Block{got, false});
  allocated_ += got;
  if (allocated_ > peak_) peak_ = allocated_;
  return ptr;
}

void CachingAllocator::free(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(ptr);
  check(it != in_use_.end(), "cuda free: pointer was not allocated by this allocator (or freed twice)");
  const Block block = it->second;
  in_use_.erase(it);
  if (block.guarded) {
    const std::size_t size = (block.size + kRound - 1) / kRound * kRound;
    auto* base = static_cast<unsigned char*>(ptr) - kGuard;
    std::vector<unsigned char> before(kGuard), after(size - block.size + kGuard);
    guard_read_(before.data(), base, before.size());
    guard_read_(after.data(), base + kGuard + block.size, after.size());
    std::size_t bad_before = 0, bad_after = 0;
    for (unsigned char b : before) bad_before += b != kGuardByte;
    for (unsigned char b : after) bad_after += b != kGuardByte;
    if (bad_before)
      guard_violations_.push_back("a block of " + std::to_string(block.size) + " bytes: " + std::to_string(bad_before) +
                                  " bytes written before its start");
    if (bad_after)
      guard_violations_.push_back("a block of " + std::to_string(block.size) + " bytes: " + std::to_string(bad_after) +
                                  " bytes written after its end");
    raw_free_(base);
    reserved_ -= size + 2 * kGuard;
    allocated_ -= size;
    return;
  }
  allocated_ -= block.size;
  cache_.emplace(block.size, ptr);
}

void CachingAllocator::set_guard_io(std::function<void(void*, unsigned char, std::size_t)> set,
                                    std::function<void(void*, const void*, std::size_t)> read) {
  std::lock_guard<std::mutex> lock(mutex_);
  guard_set_ = std::move(set);
  guard_read_ = std::move(read);
}

void CachingAllocator::set_guard_mode(bool on) {
  std::lock_guard<std::mutex> lock(mutex_);
  check(!on || (guard_set_ && guard_read_), "cuda allocator: guard mode needs set_guard_io first");
  guard_mode_ = on;
}

std::vector<std::string> CachingAllocator::take_guard_violations() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  out.swap(guard_violations_);
  return out;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cache_locked();
}

void CachingAllocator::release_cache_locked() {
  for (auto& [size, ptr] : cache_) {
    raw_free_(ptr);
    reserved_ -= size;
  }
  cache_.clear();
}

std::size_t CachingAllocator::allocated_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return allocated_;
}
std::size_t CachingAllocator::peak_allocated_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}
void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = allocated_;
}
std::size_t CachingAllocator::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reserved_;
}
std::size_t CachingAllocator::cached_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_.size();
}

}  // namespace hkt::cuda
