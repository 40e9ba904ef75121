#include "cli/format.h"

#include <algorithm>
#include <cstdio>

namespace arbor::cli {

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); i++) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); i++) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string format_duration_ns(uint64_t ns) {
  char buf[32];
  if (ns < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.3f ms", double(ns) / 1e6);
  } else if (ns < 10'000'000'000ull) {
    std::snprintf(buf, sizeof buf, "%.1f ms", double(ns) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", double(ns) / 1e9);
  }
  return buf;
}

}  // namespace arbor::cli
