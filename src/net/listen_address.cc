#include "net/listen_address.h"

#include <charconv>

namespace arbor::net {

std::string ListenAddress::uri() const {
  if (kind == Kind::kUnix) return "unix://" + path;
  bool v6 = host.find(':') != std::string::npos;
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
  ListenAddress a;
  constexpr std::string_view kUnix = "unix://", kTcp = "tcp://";
  if (text.substr(0, kUnix.size()) == kUnix) {
    a.kind = ListenAddress::Kind::kUnix;
    a.path = std::string(text.substr(kUnix.size()));
    if (a.path.empty() || a.path[0] != '/') return invalid_argument("unix socket path must be absolute: " + std::string(text));
    if (a.path.size() >= 108) return invalid_argument("unix socket path too long: " + a.path);
    return a;
  }
  if (text.substr(0, kTcp.size()) != kTcp) return invalid_argument("listen address must start with tcp:// or unix://: " + std::string(text));
  std::string_view rest = text.substr(kTcp.size());
  std::string_view host, port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return invalid_argument("bad IPv6 listen address: " + std::string(text));
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return invalid_argument("listen address needs a port: " + std::string(text));
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return invalid_argument("listen address needs a host: " + std::string(text));
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return invalid_argument("bad port in listen address: " + std::string(text));
  a.host = std::string(host);
  a.port = uint16_t(value);
  return a;
}

}  // namespace arbor::net
