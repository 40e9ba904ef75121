#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/human_size.h"

namespace arbor::cli {

Progress::Progress(std::string label, uint64_t total_bytes)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

void Progress::update(uint64_t done_bytes) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && (total_ == 0 || done_bytes < total_)) return;
  last_draw_ = now;
  draw(done_bytes);
}

void Progress::draw(uint64_t done) {
  double secs_so_far = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (total_ == 0) {  // unknown length (a pipe): bytes and rate only
    uint64_t r = secs_so_far > 0 ? uint64_t(double(done) / secs_so_far) : 0;
    std::fprintf(stderr, "\r\033[K%s %s  %s/s", label_.c_str(), format_size_bytes(done).c_str(),
                 format_size_bytes(r).c_str());
    std::fflush(stderr);
    return;
  }
  constexpr int kWidth = 30;
  double fraction = total_ ? double(done) / double(total_) : 1.0;
  int filled = int(fraction * kWidth);
  std::string bar(size_t(filled), '=');
  if (filled < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  uint64_t rate = secs > 0 ? uint64_t(double(done) / secs) : 0;
  std::fprintf(stderr, "\r\033[K%s %3d%% [%s] %s / %s  %s/s", label_.c_str(), int(fraction * 100),
               bar.c_str(), format_size_bytes(done).c_str(), format_size_bytes(total_).c_str(),
               format_size_bytes(rate).c_str());
  std::fflush(stderr);
}

double Progress::finish() {
  if (enabled_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

}  // namespace arbor::cli
