#include "daemon/control_api.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/api_errors.h"
#include "daemon/export_routes.h"
#include "util/human_size.h"
#include "util/units.h"
#include "util/zero.h"

namespace arbor::daemon {
namespace {

constexpr size_t kChunkBytes = 1 << 20;  // import/export unit: 1 MiB

void send_json(httplib::Response& res, const Json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

void send_error(httplib::Response& res, const Status& st) {
  // One line: the message never carries a newline.
  std::string message = st.to_string();
  std::replace(message.begin(), message.end(), '\n', ' ');
  Json body{{"error", {{"code", api_error_code(st.code())}, {"message", message}}}};
  send_json(res, body, http_status_for(st.code()));
}

void reply(httplib::Response& res, const Result<Json>& result, int ok_status = 200) {
  if (result) {
    send_json(res, result.value(), ok_status);
  } else {
    send_error(res, result.status());
  }
}

Result<Json> parse_body(const httplib::Request& req) {
  if (req.body.empty()) return Json::object();
  Json j = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument("request body must be a JSON object");
  }
  return j;
}

Result<std::string> string_field(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return invalid_argument(std::string("missing string field \"") + key + "\"");
  }
  return it->get<std::string>();
}

// "size_bytes": 1073741824, or "size": "10G" / 1073741824.
Result<uint64_t> size_field(const Json& j) {
  for (const char* key : {"size_bytes", "size"}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (it->is_number_unsigned()) return it->get<uint64_t>();
    if (it->is_number_integer()) {
      if (it->get<int64_t>() < 0) return invalid_argument("size must not be negative");
      return uint64_t(it->get<int64_t>());
    }
    if (it->is_string()) return parse_size_bytes(it->get<std::string>());
    return invalid_argument(std::string("field \"") + key + "\" must be a number or a size string");
  }
  return invalid_argument("missing field \"size_bytes\" (or \"size\", e.g. \"10G\")");
}

Result<uint64_t> query_u64(const httplib::Request& req, const char* key, uint64_t fallback) {
  if (!req.has_param(key)) return fallback;
  std::string v = req.get_param_value(key);
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 19) {
    return invalid_argument(std::string("query parameter ") + key + " must be a byte count");
  }
  return std::stoull(v);
}

// Writes an import body into a volume: full 4 KiB blocks of zeros become write_zeroes (holes), the
// rest plain writes, coalesced into runs.
class ImportWriter {
 public:
  ImportWriter(Store& store, VolumeId id, uint64_t offset, uint64_t size)
      : store_(store), id_(id), offset_(offset), size_(size) {
    buf_.reserve(kChunkBytes);
  }
  bool add(const char* data, size_t len) {
    if (!status_.is_ok()) return false;
    received_ += len;
    if (offset_ > size_ || buf_.size() + len > size_ - offset_) {
      status_ = out_of_range("the data runs past the end of the volume (" +
                             format_size_bytes(size_) + ")");
      return false;
    }
    while (len > 0) {
      size_t take = std::min(len, kChunkBytes - buf_.size());
      buf_.insert(buf_.end(), data, data + take);
      data += take;
      len -= take;
      if (buf_.size() == kChunkBytes && !drain()) return false;
    }
    return true;
  }
  bool finish() { return drain(); }
  const Status& status() const { return status_; }
  uint64_t received() const { return received_; }
  uint64_t zero_bytes() const { return zero_bytes_; }

 private:
  bool drain() {
    const uint8_t* p = buf_.data();
    size_t n = buf_.size();
    size_t pos = 0;
    while (pos < n && status_.is_ok()) {
      size_t blk = std::min<size_t>(kBlockSizeBytes, n - pos);
      bool zero = blk == kBlockSizeBytes && is_all_zero(p + pos, blk);
      size_t run = blk;
      while (pos + run < n) {
        size_t next = std::min<size_t>(kBlockSizeBytes, n - pos - run);
        bool next_zero = next == kBlockSizeBytes && is_all_zero(p + pos + run, next);
        if (next_zero != zero) break;
        run += next;
      }
      if (zero) {
        status_ = store_.write_zeroes(id_, offset_ + pos, run, /*may_unmap=*/true);
        zero_bytes_ += run;
      } else {
        status_ = store_.write(id_, offset_ + pos, std::span<const uint8_t>(p + pos, run));
      }
      pos += run;
    }
    offset_ += n;
    buf_.clear();
    return status_.is_ok();
  }

  Store& store_;
  VolumeId id_;
  uint64_t offset_;
  uint64_t size_;
  std::vector<uint8_t> buf_;
  Status status_;
  uint64_t received_ = 0;
  uint64_t zero_bytes_ = 0;
};

// Keeps a volume open for the length of a transfer (so it cannot be deleted under it).
struct OpenVolume {
  OpenVolume(Store& s, VolumeId v) : store(s), id(v) {}
  OpenVolume(const OpenVolume&) = delete;
  OpenVolume& operator=(const OpenVolume&) = delete;
  ~OpenVolume() { store.close_volume(id); }
  Store& store;
  VolumeId id;
};

// httplib (0.11, built as a library) listens with a backlog of 5: a burst of clients (scripts
// running many arbor commands at once) then sees EAGAIN on connect. Find our listening socket and
// raise its backlog; listen() on a listening socket only updates the backlog.
void widen_backlog(const std::string& path) {
  for (int fd = 3; fd < 4096; fd++) {
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;
    if (addr.sun_family != AF_UNIX || path != addr.sun_path) continue;
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) == 0 && listening) {
      if (::listen(fd, 1024) != 0) spdlog::warn("cannot raise the control socket backlog: {}", std::strerror(errno));
      return;
    }
  }
  spdlog::warn("control socket not found to raise its backlog");
}

}  // namespace

struct ControlApi::Impl {
  explicit Impl(Daemon& d) : daemon(d) {}
  Daemon& daemon;
  httplib::Server server;
  std::string path;

  void routes();
  void import_data(const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader);
  void export_data(const httplib::Request& req, httplib::Response& res);
};

void ControlApi::Impl::routes() {
  auto& s = server;
  Daemon& d = daemon;
  const char* kName = "([^/]+)";
  auto path = [&](const std::string& fmt) {
    std::string p = fmt;
    size_t at = p.find("{name}");
    if (at != std::string::npos) p.replace(at, 6, kName);
    return p;
  };

  add_export_routes(s, d);  // /v1/exports... (export_routes.cc)
  s.Get("/v1/daemon/status", [&d](const httplib::Request&, httplib::Response& res) {
    reply(res, d.status());
  });
  s.Post("/v1/daemon/stop", [&d](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    bool force = body->value("force", false);
    if (!force) {
      Status st = d.check_can_stop();
      if (!st.is_ok()) return send_error(res, st);
    }
    send_json(res, Json{{"stopping", true}});
    d.request_stop("POST /v1/daemon/stop");
  });
  s.Get("/v1/volumes", [&d](const httplib::Request& req, httplib::Response& res) {
    bool with_usage = req.has_param("usage") && req.get_param_value("usage") != "0";
    reply(res, d.list_volumes(with_usage));
  });
  s.Post("/v1/volumes", [&d](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto name = string_field(*body, "name");
    if (!name) return send_error(res, name.status());
    auto size = size_field(*body);
    if (!size) return send_error(res, size.status());
    reply(res, d.create_volume(*name, *size), 201);
  });
  s.Get(path("/v1/volumes/{name}"), [&d](const httplib::Request& req, httplib::Response& res) {
    reply(res, d.get_volume(req.matches[1]));
  });
  s.Delete(path("/v1/volumes/{name}"), [&d](const httplib::Request& req, httplib::Response& res) {
    reply(res, d.remove(req.matches[1]));
  });
  s.Get(path("/v1/volumes/{name}/usage"), [&d](const httplib::Request& req, httplib::Response& res) {
    reply(res, d.usage(req.matches[1]));
  });
  s.Post(path("/v1/volumes/{name}/resize"), [&d](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto size = size_field(*body);
    if (!size) return send_error(res, size.status());
    reply(res, d.resize(req.matches[1], *size));
  });
  s.Post(path("/v1/volumes/{name}/attach"), [&d](const httplib::Request& req, httplib::Response& res) {
    reply(res, d.attach(req.matches[1]));
  });
  s.Post(path("/v1/volumes/{name}/detach"), [&d](const httplib::Request& req, httplib::Response& res) {
    reply(res, d.detach(req.matches[1]));
  });
  s.Get("/v1/attachments", [&d](const httplib::Request&, httplib::Response& res) {
    reply(res, d.attachments());
  });
  s.Post("/v1/branches", [&d](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto name = string_field(*body, "name");
    if (!name) return send_error(res, name.status());
    auto from = string_field(*body, "from");
    if (!from) return send_error(res, from.status());
    reply(res, d.branch(*name, *from), 201);
  });
  s.Post("/v1/snapshots", [&d](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    auto name = string_field(*body, "name");
    if (!name) return send_error(res, name.status());
    reply(res, d.snapshot(*name), 201);
  });
  s.Get("/v1/usage", [&d](const httplib::Request&, httplib::Response& res) {
    reply(res, d.usage(""));
  });
  s.Post("/v1/clean", [&d](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.status());
    double fraction = 0.5;
    if (auto it = body->find("max_live_fraction"); it != body->end()) {
      if (!it->is_number()) return send_error(res, invalid_argument("max_live_fraction must be a number"));
      fraction = it->get<double>();
    }
    reply(res, d.clean(fraction));
  });
  s.Post("/v1/flush", [&d](const httplib::Request&, httplib::Response& res) { reply(res, d.flush()); });
  s.Post("/v1/checkpoint", [&d](const httplib::Request&, httplib::Response& res) {
    reply(res, d.checkpoint());
  });
  s.Put(path("/v1/volumes/{name}/data"),
        [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
          import_data(req, res, reader);
        });
  s.Get(path("/v1/volumes/{name}/data"), [this](const httplib::Request& req, httplib::Response& res) {
    export_data(req, res);
  });

  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      send_error(res, not_found("no such endpoint: " + req.method + " " + req.path));
      res.status = 404;
    }
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unexpected exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, internal_error(what));
  });
  s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });
}

void ControlApi::Impl::import_data(const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& reader) {
  auto discard = [&] { reader([](const char*, size_t) { return true; }); };
  std::string name = req.matches[1];
  auto offset = query_u64(req, "offset", 0);
  if (!offset) return discard(), send_error(res, offset.status());
  auto info = daemon.lookup(name);
  if (!info) return discard(), send_error(res, info.status());
  if (info->snapshot) {
    return discard(), send_error(res, read_only("'" + name + "' is a snapshot; snapshots are read-only"));
  }
  if (req.has_header("Content-Length")) {
    uint64_t len = std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10);
    if (*offset > info->size_bytes || len > info->size_bytes - *offset) {
      return discard(), send_error(res, out_of_range("the data (" + format_size_bytes(len) +
                                                     ") does not fit in '" + name + "' (" +
                                                     format_size_bytes(info->size_bytes) + ")"));
    }
  }
  Store& store = daemon.store();
  auto id = store.open_volume(name);
  if (!id) return discard(), send_error(res, id.status());
  OpenVolume hold(store, *id);
  ImportWriter writer(store, *id, *offset, info->size_bytes);
  auto t0 = std::chrono::steady_clock::now();
  bool ok = reader([&](const char* data, size_t len) { return writer.add(data, len); });
  if (ok) ok = writer.finish();
  if (!writer.status().is_ok()) return send_error(res, writer.status());
  if (!ok) return send_error(res, io_error("the upload was cut short"));
  Status st = store.flush();
  if (!st.is_ok()) return send_error(res, st);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("imported {} bytes into {} at offset {}", writer.received(), name, *offset);
  send_json(res, Json{{"name", name},
                      {"offset_bytes", *offset},
                      {"bytes", writer.received()},
                      {"zero_bytes", writer.zero_bytes()},
                      {"duration_ns", ns}});
}

void ControlApi::Impl::export_data(const httplib::Request& req, httplib::Response& res) {
  std::string name = req.matches[1];
  auto info = daemon.lookup(name);
  if (!info) return send_error(res, info.status());
  auto offset = query_u64(req, "offset", 0);
  if (!offset) return send_error(res, offset.status());
  if (*offset > info->size_bytes) {
    return send_error(res, out_of_range("offset is past the end of '" + name + "'"));
  }
  auto length = query_u64(req, "length", info->size_bytes - *offset);
  if (!length) return send_error(res, length.status());
  if (*length > info->size_bytes - *offset) {
    return send_error(res, out_of_range("the range runs past the end of '" + name + "'"));
  }
  Store& store = daemon.store();
  auto id = store.open_volume(name);
  if (!id) return send_error(res, id.status());
  auto hold = std::make_shared<OpenVolume>(store, *id);
  auto buf = std::make_shared<std::vector<uint8_t>>(kChunkBytes);
  uint64_t base = *offset;
  std::string vol = name;
  res.set_content_provider(
      size_t(*length), "application/octet-stream",
      [hold, buf, base, vol](size_t off, size_t len, httplib::DataSink& sink) {
        size_t n = std::min(len, kChunkBytes);
        Status st = hold->store.read(hold->id, base + off, std::span<uint8_t>(buf->data(), n));
        if (!st.is_ok()) {
          spdlog::error("export of {} failed at {}: {}", vol, base + off, st.to_string());
          return false;
        }
        return sink.write(reinterpret_cast<const char*>(buf->data()), n);
      },
      [hold](bool) {});
}

ControlApi::ControlApi(Daemon& daemon) : impl_(std::make_unique<Impl>(daemon)) { impl_->routes(); }
ControlApi::~ControlApi() { stop(); }

Status ControlApi::listen(const std::string& path) {
  impl_->path = path;
  impl_->server.set_address_family(AF_UNIX);
  impl_->server.set_keep_alive_max_count(1000);
  impl_->server.set_keep_alive_timeout(1);  // bounds how long stop() waits for idle clients
  ::unlink(path.c_str());  // the store lock is ours, so any socket file here is stale
  bool bound = impl_->server.bind_to_port(path, 80);
  if (bound) widen_backlog(path);
  if (!bound) return io_error("cannot listen on " + path + ": " + std::strerror(errno));
  return Status::ok();
}

bool ControlApi::serve() { return impl_->server.listen_after_bind(); }

void ControlApi::stop() {
  if (impl_->server.is_running()) impl_->server.stop();
  if (!impl_->path.empty()) ::unlink(impl_->path.c_str());
}

}  // namespace arbor::daemon
