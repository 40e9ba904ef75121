// RwLock: a reader-writer lock that prefers writers. std::shared_mutex on glibc prefers readers,
// so a steady stream of reads (queue depth 32) can starve a write forever; here a waiting writer
// holds back new readers. Not recursive: a thread must not take the shared side twice.
// Works with std::unique_lock and std::shared_lock.
#pragma once

#include <pthread.h>

#include "util/check.h"

namespace arbor {

class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    ARBOR_CHECK(pthread_rwlock_init(&lock_, &attr) == 0);
    pthread_rwlockattr_destroy(&attr);
  }
  ~RwLock() { pthread_rwlock_destroy(&lock_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void lock() { ARBOR_CHECK(pthread_rwlock_wrlock(&lock_) == 0); }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { ARBOR_CHECK(pthread_rwlock_rdlock(&lock_) == 0); }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }
  // False when a writer holds the lock or (writers preferred) waits for it.
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }

 private:
  pthread_rwlock_t lock_;
};

}  // namespace arbor
