#include "util/human_size.h"

#include <cctype>
#include <cmath>
#include <cstdio>

namespace arbor {

Result<uint64_t> parse_size_bytes(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  if (s.empty()) return invalid_argument("size is empty");
  size_t i = 0;
  uint64_t whole = 0;
  bool any_digit = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (whole > (UINT64_MAX - 9) / 10) return invalid_argument("size '" + std::string(text) + "' is too large");
    whole = whole * 10 + uint64_t(s[i] - '0');
    any_digit = true;
    i++;
  }
  double fraction = 0;
  if (i < s.size() && s[i] == '.') {
    i++;
    double scale = 0.1;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      fraction += scale * (s[i] - '0');
      scale /= 10;
      any_digit = true;
      i++;
    }
  }
  if (!any_digit) return invalid_argument("size '" + std::string(text) + "' is not a number (try 10G, 512M)");
  std::string suffix;
  for (; i < s.size(); i++) suffix += char(std::toupper(static_cast<unsigned char>(s[i])));
  int shift = 0;
  if (suffix.empty() || suffix == "B") shift = 0;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB") shift = 10;
  else if (suffix == "M" || suffix == "MB" || suffix == "MIB") shift = 20;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB") shift = 30;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB") shift = 40;
  else if (suffix == "P" || suffix == "PB" || suffix == "PIB") shift = 50;
  else return invalid_argument("size '" + std::string(text) + "' has an unknown unit '" + suffix + "' (use K, M, G, T)");
  if (shift > 0 && whole > (UINT64_MAX >> shift)) return invalid_argument("size '" + std::string(text) + "' is too large");
  uint64_t bytes = whole << shift;
  if (fraction > 0) {
    double extra = fraction * std::ldexp(1.0, shift);
    if (extra != std::floor(extra)) return invalid_argument("size '" + std::string(text) + "' is not a whole number of bytes");
    bytes += uint64_t(extra);
  }
  return bytes;
}

std::string format_size_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  double v = double(bytes);
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    unit++;
  }
  char buf[32];
  if (unit == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else if (v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f %s", v, kUnits[unit]);
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace arbor
