// Human output: aligned tables and durations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace arbor::cli {

// Prints rows as left-aligned columns separated by two spaces; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows);
// "0.21 ms", "3.4 s".
std::string format_duration_ns(uint64_t ns);

}  // namespace arbor::cli
