// A one-line progress bar on stderr, drawn only when stderr is a terminal, at most 10 times a
// second: " importing db   42% [========>           ] 1.2 GiB / 3.0 GiB  812 MiB/s".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace arbor::cli {

class Progress {
 public:
  Progress(std::string label, uint64_t total_bytes);
  void update(uint64_t done_bytes);
  // Clears the bar. Returns seconds elapsed since construction.
  double finish();

 private:
  void draw(uint64_t done_bytes);
  std::string label_;
  uint64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace arbor::cli
