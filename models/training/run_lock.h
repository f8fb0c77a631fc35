// run_lock.h: an exclusive lock on a run directory, so that two processes writing the
// same directory (two `hkt train` on one --out, two resumes, two experiments) refuse at
// once instead of interleaving their files.
#pragma once

#include <string>

namespace hkt {

/// Holds an exclusive flock(2) on DIR/.lock for its lifetime and writes the holder's
/// process id and command into it. The kernel drops the lock when the holder exits, even
/// by kill -9, so a stale .lock file never blocks a later run. Throws hkt::Error naming
/// the directory and the holder ("... is in use by hkt train (process 1234) ...") when
/// another process holds it, or when the lock file cannot be created.
class RunLock {
 public:
  RunLock(const std::string& dir, const std::string& command);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace hkt
