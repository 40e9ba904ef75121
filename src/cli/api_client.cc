#include "cli/api_client.h"

#include <sys/socket.h>

#include <chrono>
#include <httplib.h>
#include <thread>

namespace arbor::cli {
namespace {

Code code_from_api(const std::string& code) {
  static const std::pair<const char*, Code> table[] = {
      {"not_found", Code::kNotFound},         {"already_exists", Code::kAlreadyExists},
      {"invalid_argument", Code::kInvalidArgument}, {"out_of_range", Code::kOutOfRange},
      {"read_only", Code::kReadOnly},         {"busy", Code::kBusy},
      {"no_space", Code::kNoSpace},           {"io_error", Code::kIOError},
      {"corruption", Code::kCorruption},      {"not_supported", Code::kNotSupported},
  };
  for (const auto& [name, c] : table)
    if (code == name) return c;
  return Code::kInternal;
}

}  // namespace

std::string path_escape(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.') {
      out.push_back(char(c));
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

struct ApiClient::Impl {
  explicit Impl(const std::string& path) : http(path) {
    http.set_address_family(AF_UNIX);
    http.set_keep_alive(false);  // a CLI call makes few requests; idle keep-alives delay daemon stop
    http.set_connection_timeout(5, 0);
    http.set_read_timeout(3600, 0);  // an import's final flush or a large clean may take a while
    http.set_write_timeout(3600, 0);
  }
  httplib::Client http;
  std::string socket;

  // A connect that fails while the socket exists is a busy daemon (EAGAIN), not a missing one:
  // retry it briefly. The request was not sent, so retrying is safe for every method.
  template <typename F>
  httplib::Result with_retry(F&& send) {
    httplib::Result r = send();
    for (int attempt = 0; !r && r.error() == httplib::Error::Connection && attempt < 100; attempt++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10 + attempt));
      r = send();
    }
    return r;
  }

  Result<Json> finish(const httplib::Result& r) {
    if (!r) {
      return io_error("cannot reach arbord at " + socket + " (" + httplib::to_string(r.error()) + ")");
    }
    Json body = Json::parse(r->body, nullptr, false);
    if (r->status >= 200 && r->status < 300) {
      if (body.is_discarded()) return internal_error("arbord sent a reply that is not JSON");
      return body;
    }
    if (!body.is_discarded() && body.contains("error") && body["error"].is_object()) {
      const Json& e = body["error"];
      return Status(code_from_api(e.value("code", "")), e.value("message", "unknown error"));
    }
    return internal_error("arbord replied HTTP " + std::to_string(r->status));
  }
};

ApiClient::ApiClient(std::string socket_path)
    : socket_path_(std::move(socket_path)), impl_(std::make_unique<Impl>(socket_path_)) {
  impl_->socket = socket_path_;
}
ApiClient::~ApiClient() = default;
ApiClient::ApiClient(ApiClient&&) noexcept = default;

Result<Json> ApiClient::get(const std::string& path) {
  return impl_->finish(impl_->with_retry([&] { return impl_->http.Get(path); }));
}

Result<Json> ApiClient::post(const std::string& path, const Json& body) {
  std::string text = body.dump();
  return impl_->finish(impl_->with_retry([&] { return impl_->http.Post(path, text, "application/json"); }));
}

Result<Json> ApiClient::del(const std::string& path) {
  return impl_->finish(impl_->with_retry([&] { return impl_->http.Delete(path); }));
}

Result<Json> ApiClient::upload(const std::string& path, uint64_t length,
                               std::function<ssize_t(uint64_t, char*, size_t)> fill,
                               std::function<void(uint64_t)> progress) {
  auto buf = std::make_shared<std::vector<char>>(1 << 20);
  bool failed = false;
  auto r = impl_->http.Put(
      path, size_t(length),
      [&](size_t offset, size_t len, httplib::DataSink& sink) {
        size_t want = std::min(len, buf->size());
        ssize_t n = fill(offset, buf->data(), want);
        if (n <= 0) {
          failed = true;
          return false;
        }
        if (!sink.write(buf->data(), size_t(n))) return false;
        if (progress) progress(offset + uint64_t(n));
        return true;
      },
      "application/octet-stream");
  if (failed) return io_error("reading the input failed");
  return impl_->finish(r);
}

Result<Json> ApiClient::upload_stream(const std::string& path,
                                      std::function<ssize_t(char*, size_t)> read,
                                      std::function<void(uint64_t)> progress) {
  auto buf = std::make_shared<std::vector<char>>(1 << 20);
  bool failed = false;
  auto r = impl_->http.Put(
      path,
      [&](size_t offset, httplib::DataSink& sink) {
        ssize_t n = read(buf->data(), buf->size());
        if (n < 0) {
          failed = true;
          return false;
        }
        if (n == 0) {
          sink.done();
          return true;
        }
        if (!sink.write(buf->data(), size_t(n))) return false;
        if (progress) progress(offset + uint64_t(n));
        return true;
      },
      "application/octet-stream");
  if (failed) return io_error("reading the input failed");
  return impl_->finish(r);
}

Status ApiClient::download(const std::string& path, std::function<bool(const char*, size_t)> sink) {
  int status = 0;
  std::string error_body;
  auto r = impl_->http.Get(
      path,
      [&](const httplib::Response& res) {
        status = res.status;
        return true;
      },
      [&](const char* data, size_t len) {
        if (status >= 300) {
          error_body.append(data, len);
          return true;
        }
        return sink(data, len);
      });
  if (status >= 300) {
    Json body = Json::parse(error_body, nullptr, false);
    if (!body.is_discarded() && body.contains("error")) {
      return Status(code_from_api(body["error"].value("code", "")),
                    body["error"].value("message", "unknown error"));
    }
    return internal_error("arbord replied HTTP " + std::to_string(status));
  }
  if (!r) {
    if (r.error() == httplib::Error::Canceled) return io_error("writing the output failed");
    return io_error("the transfer from arbord broke off (" + httplib::to_string(r.error()) + ")");
  }
  return Status::ok();
}

}  // namespace arbor::cli
