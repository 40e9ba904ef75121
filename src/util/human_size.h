// Human sizes: "10G", "512M", "4096", "1.5T" <-> bytes. Binary units (K = 1024), as lsblk prints.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace arbor {

// Parses a size such as "10G", "10GiB", "512m", "4096". Refuses negatives, fractions of a byte,
// unknown suffixes and overflow with a one-line message.
Result<uint64_t> parse_size_bytes(std::string_view text);
// Formats bytes as "10 GiB", "1.5 MiB", "512 B".
std::string format_size_bytes(uint64_t bytes);

}  // namespace arbor
