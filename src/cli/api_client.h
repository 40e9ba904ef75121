// ApiClient: arbord's control API (docs/api.md) over its unix socket, errors as Status.
//
// A non-2xx reply becomes a Status carrying the API's one-line message and the Code matching its
// error code; a connection failure is kIOError "cannot reach arbord at ...".
//
// Threading: one client per thread (it holds one keep-alive connection).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace arbor::cli {

using Json = nlohmann::json;

class ApiClient {
 public:
  explicit ApiClient(std::string socket_path);
  ~ApiClient();
  ApiClient(ApiClient&&) noexcept;

  Result<Json> get(const std::string& path);
  Result<Json> post(const std::string& path, const Json& body);
  Result<Json> del(const std::string& path);
  // PUT `length` bytes produced by `fill(offset, buf, len)`, which returns bytes filled (>0) or
  // -1 on error. `progress(bytes_sent)` is called as data goes out.
  Result<Json> upload(const std::string& path, uint64_t length,
                      std::function<ssize_t(uint64_t, char*, size_t)> fill,
                      std::function<void(uint64_t)> progress);
  // PUT a stream of unknown length (chunked): `read(buf, len)` returns bytes read, 0 at the end,
  // -1 on error.
  Result<Json> upload_stream(const std::string& path, std::function<ssize_t(char*, size_t)> read,
                             std::function<void(uint64_t)> progress);
  // GET raw bytes; `sink(data, len)` returns false to abort.
  Status download(const std::string& path, std::function<bool(const char*, size_t)> sink);

  const std::string& socket_path() const { return socket_path_; }

 private:
  struct Impl;
  std::string socket_path_;
  std::unique_ptr<Impl> impl_;
};

// "db@snap" -> "db%40snap": names as path segments.
std::string path_escape(const std::string& name);

}  // namespace arbor::cli
