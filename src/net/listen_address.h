// Listen addresses for protocol servers: "tcp://HOST:PORT" and "unix:///absolute/path".
//
// Pure parsing and formatting, no sockets; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace arbor::net {

struct ListenAddress {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;  // kTcp: an IPv4 or IPv6 literal, or "localhost"
  uint16_t port = 0;  // kTcp: 0 asks the kernel for a free port (bound_port tells which)
  std::string path;  // kUnix: filesystem path of the socket

  // "tcp://127.0.0.1:10809", "tcp://[::1]:10809", "unix:///run/x.sock".
  std::string uri() const;
};

Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace arbor::net
