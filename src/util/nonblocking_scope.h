// NonBlockingScope: marks the calls a thread makes as "must not wait".
//
// An event loop serves many requests on one thread; a read that waits for the device (its blocks
// are not in the page cache) or for the store lock (a writer holds it) would stall every other
// request on that loop, so that at queue depth 32 a cold volume would be read one block at a time.
// Inside this scope such a call returns Code::kWouldBlock instead. The loop then plans the read
// (Store::plan_read) and reads its blocks on its own io_uring, or, where even planning would wait,
// hands the request to a worker thread, where the same call is made again without the scope. A
// hit (the common case) costs the loop nothing extra.
//
// Honoured by: io::pread_full (RWF_NOWAIT: the kernel starts the device read and returns EAGAIN),
// Store::read (try-lock of the store lock). Any layer in between passes the status through.
// Scopes nest; the flag is per thread.
#pragma once

namespace arbor {

class NonBlockingScope {
 public:
  NonBlockingScope() : outer_(active_) { active_ = true; }
  ~NonBlockingScope() { active_ = outer_; }
  NonBlockingScope(const NonBlockingScope&) = delete;
  NonBlockingScope& operator=(const NonBlockingScope&) = delete;

  static bool active() { return active_; }

 private:
  bool outer_;
  static inline thread_local bool active_ = false;
};

}  // namespace arbor
