// A small fixed pool of threads for calls that may block (fsync-backed flush, FUA writes), so one
// slow call does not stall the event loop and every other connection on it.
//
// Threading: submit() from any thread. Tasks run in FIFO order across the pool's threads; a task
// hands its result back to its connection's loop itself (Connection::post). stop() joins; tasks
// still queued are destroyed without running.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace arbor::net {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(std::function<void()> task);
  void stop();

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace arbor::net
