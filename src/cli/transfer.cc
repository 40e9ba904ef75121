// arbor import / export: stream a file into or out of a volume through the daemon
// (PUT/GET /v1/volumes/NAME/data). Import sends every byte and the daemon turns 4 KiB blocks of
// zeros into holes; export writes a regular output file sparsely (zero blocks are skipped, the file
// is sized with ftruncate), so both directions keep thin volumes thin.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/daemon_launcher.h"
#ifdef ARBOR_CLI_HAVE_LIBNBD
#include "cli/nbd_transfer.h"
#endif
#include "cli/progress.h"
#include "util/human_size.h"
#include "util/units.h"
#include "util/zero.h"

namespace arbor::cli {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::string rate(uint64_t bytes, double secs) {
  return format_size_bytes(secs > 0 ? uint64_t(double(bytes) / secs) : bytes) + "/s";
}

// The NBD unix socket to move data through, "" for HTTP.
Result<std::string> data_socket(const Context& ctx, ApiClient& api) {
  if (ctx.via == "http") return std::string();
  if (ctx.via != "auto" && ctx.via != "nbd") {
    return invalid_argument("--via " + ctx.via + ": use auto, nbd or http");
  }
#ifdef ARBOR_CLI_HAVE_LIBNBD
  ASSIGN_OR_RETURN(auto status, api.get("/v1/daemon/status"));
  const std::string prefix = "nbd+unix:///?socket=";
  for (const auto& e : status["endpoints"]) {
    std::string uri = e.value("uri", "");
    if (uri.rfind(prefix, 0) == 0) return uri.substr(prefix.size());
  }
  if (ctx.via == "nbd") return not_supported("arbord serves no NBD unix socket (--via nbd)");
  return std::string();
#else
  if (ctx.via == "nbd") return not_supported("this arbor was built without libnbd (--via nbd)");
  return std::string();
#endif
}

Status finish_export(const Context& ctx, const std::string& name, const std::string& file, int fd,
                     uint64_t length, bool sparse, double secs, const std::string& via) {
  if (sparse && ftruncate(fd, off_t(length)) != 0) return errno_status(errno, "cannot size " + file);
  if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) return errno_status(errno, "cannot sync " + file);
  FILE* report = file == "-" ? stderr : stdout;  // stdout carries the data then
  if (ctx.json) {
    Json j{{"name", name}, {"file", file}, {"bytes", length}, {"seconds", secs}, {"via", via}};
    std::fprintf(report, "%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::fprintf(report, "exported %s (%s) to %s in %.2f s (%s, via %s)\n", name.c_str(),
              format_size_bytes(length).c_str(), file.c_str(), secs, rate(length, secs).c_str(),
              via.c_str());
  return Status::ok();
}

// The volume an import writes into: NAME as it is, or, when missing, created with the size
// `size_if_new` gives (which may refuse). Snapshots are refused: they are read-only.
struct ImportTarget {
  Json volume;
  bool created = false;
};
Result<ImportTarget> open_import_target(ApiClient& api, const std::string& name,
                                        const std::function<Result<uint64_t>()>& size_if_new) {
  ImportTarget t;
  auto existing = api.get("/v1/volumes/" + path_escape(name));
  if (existing) {
    t.volume = std::move(existing).value();
  } else {
    if (existing.status().code() != Code::kNotFound || name.find('@') != std::string::npos) {
      return existing.status();
    }
    ASSIGN_OR_RETURN(uint64_t bytes, size_if_new());
    ASSIGN_OR_RETURN(t.volume, api.post("/v1/volumes", Json{{"name", name}, {"size_bytes", bytes}}));
    t.created = true;
  }
  if (t.volume.value("read_only", false)) return read_only("'" + name + "' is a snapshot; snapshots are read-only");
  return t;
}

// `arbor import NAME -`: a stream of unknown length from stdin, sent chunked over HTTP.
Status import_stdin(const Context& ctx, const std::string& name, const std::string& size,
                    uint64_t offset) {
  if (ctx.via == "nbd") return invalid_argument("import from stdin goes over HTTP, not --via nbd");
  if (isatty(STDIN_FILENO)) return invalid_argument("stdin is a terminal; pipe the data in");
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  std::string path = "/v1/volumes/" + path_escape(name);
  ASSIGN_OR_RETURN(ImportTarget target, open_import_target(api, name, [&]() -> Result<uint64_t> {
    if (size.empty()) return invalid_argument("'" + name + "' does not exist; give --size to create it from stdin");
    auto parsed = parse_size_bytes(size);
    if (!parsed) return invalid_argument("--size " + size + ": " + parsed.status().message());
    return *parsed;
  }));
  const bool created = target.created;
  Progress progress("importing " + name, 0);
  auto r = api.upload_stream(
      path + "/data?offset=" + std::to_string(offset),
      [](char* buf, size_t len) -> ssize_t {
        size_t got = 0;
        while (got < len) {
          ssize_t n = read(STDIN_FILENO, buf + got, len - got);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return -1;
          if (n == 0) break;
          got += size_t(n);
        }
        return ssize_t(got);
      },
      [&](uint64_t done) { progress.update(done); });
  double secs = progress.finish();
  if (!r) return r.status();
  uint64_t bytes = r->value("bytes", uint64_t(0));
  if (ctx.json) {
    Json j = *r;
    j["created"] = created;
    j["seconds"] = secs;
    j["via"] = "http";
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::printf("imported %s from stdin into %s%s in %.2f s (%s, via http)\n",
              format_size_bytes(bytes).c_str(), name.c_str(), created ? " (new volume)" : "", secs,
              rate(bytes, secs).c_str());
  return Status::ok();
}

}  // namespace

Status import_file(const Context& ctx, const std::string& name, const std::string& file,
                   const std::string& size, const std::string& offset_text) {
  uint64_t offset = 0;
  if (!offset_text.empty()) {
    auto parsed = parse_size_bytes(offset_text);
    if (!parsed) return invalid_argument("--offset " + offset_text + ": " + parsed.status().message());
    offset = *parsed;
  }
  if (file == "-") return import_stdin(ctx, name, size, offset);
  Fd in;
  in.fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (in.fd < 0) return errno_status(errno, "cannot open " + file);
  struct stat st;
  if (fstat(in.fd, &st) != 0) return errno_status(errno, "cannot stat " + file);
  uint64_t length = uint64_t(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(in.fd, 0, SEEK_END);
    if (end < 0) return errno_status(errno, "cannot size " + file);
    length = uint64_t(end);
  } else if (!S_ISREG(st.st_mode)) {
    return invalid_argument(file + " is not a regular file or block device");
  }
  posix_fadvise(in.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  std::string path = "/v1/volumes/" + path_escape(name);
  ASSIGN_OR_RETURN(ImportTarget target, open_import_target(api, name, [&]() -> Result<uint64_t> {
    // A new volume sized for the file (or --size), rounded up to whole blocks.
    uint64_t bytes = (offset + length + kBlockSizeBytes - 1) / kBlockSizeBytes * kBlockSizeBytes;
    if (!size.empty()) {
      auto parsed = parse_size_bytes(size);
      if (!parsed) return invalid_argument("--size " + size + ": " + parsed.status().message());
      bytes = *parsed;
    }
    if (bytes == 0) return invalid_argument(file + " is empty; give --size to create an empty volume");
    return bytes;
  }));
  const bool created = target.created;
  const Json& v = target.volume;
  uint64_t volume_size = v.value("size_bytes", uint64_t(0));
  if (offset + length > volume_size) {
    return out_of_range(file + " (" + format_size_bytes(length) + ") does not fit in '" + name +
                        "' (" + format_size_bytes(volume_size) + ") at offset " +
                        std::to_string(offset) + "; grow it with arbor resize");
  }

  ASSIGN_OR_RETURN(std::string socket, data_socket(ctx, api));
  Progress progress("importing " + name, length);
  Json result;
#ifdef ARBOR_CLI_HAVE_LIBNBD
  if (!socket.empty()) {
    auto r = nbd_import(socket, name, in.fd, offset, length, [&](uint64_t done) { progress.update(done); });
    if (!r) return progress.finish(), r.status();
    result = Json{{"name", name}, {"offset_bytes", offset}, {"bytes", r->bytes},
                  {"zero_bytes", r->zero_bytes}, {"via", "nbd"}};
  }
#endif
  if (socket.empty()) {
    int fd = in.fd;
    auto r = api.upload(
        path + "/data?offset=" + std::to_string(offset), length,
        [fd](uint64_t off, char* buf, size_t len) -> ssize_t {
          size_t got = 0;
          while (got < len) {
            ssize_t n = pread(fd, buf + got, len - got, off_t(off + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += size_t(n);
          }
          return got == 0 ? -1 : ssize_t(got);
        },
        [&](uint64_t done) { progress.update(done); });
    if (!r) return progress.finish(), r.status();
    result = *r;
    result["via"] = "http";
  }
  double secs = progress.finish();
  if (ctx.json) {
    Json j = result;
    j["created"] = created;
    j["seconds"] = secs;
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::printf("imported %s into %s%s in %.2f s (%s, via %s)\n", format_size_bytes(length).c_str(),
              name.c_str(), created ? " (new volume)" : "", secs, rate(length, secs).c_str(),
              result.value("via", "").c_str());
  return Status::ok();
}

Status export_file(const Context& ctx, const std::string& name, const std::string& file) {
  ASSIGN_OR_RETURN(auto api, connect(ctx.store_dir, true));
  std::string path = "/v1/volumes/" + path_escape(name);
  ASSIGN_OR_RETURN(auto v, api.get(path));
  uint64_t length = v.value("size_bytes", uint64_t(0));

  Fd out;
  bool to_stdout = file == "-";
  if (to_stdout) {
    if (isatty(STDOUT_FILENO)) return invalid_argument("stdout is a terminal; redirect it or give a FILE");
    out.fd = dup(STDOUT_FILENO);
  } else {
    out.fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  }
  if (out.fd < 0) return errno_status(errno, "cannot open " + file);
  struct stat st;
  if (fstat(out.fd, &st) != 0) return errno_status(errno, "cannot stat " + file);
  bool sparse = S_ISREG(st.st_mode);
  if (sparse && ftruncate(out.fd, 0) != 0) return errno_status(errno, "cannot truncate " + file);

  ASSIGN_OR_RETURN(std::string socket, data_socket(ctx, api));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    // A pipe or character device takes the bytes in order: the sequential HTTP stream.
    if (ctx.via == "nbd") return invalid_argument("export to a pipe goes over HTTP, not --via nbd");
    socket.clear();
  }
  std::string via = socket.empty() ? "http" : "nbd";
  Progress progress("exporting " + name, length);
#ifdef ARBOR_CLI_HAVE_LIBNBD
  if (!socket.empty()) {
    auto r = nbd_export(socket, name, out.fd, length, sparse, [&](uint64_t done) { progress.update(done); });
    if (!r) return progress.finish(), r.status();
    return finish_export(ctx, name, file, out.fd, length, sparse, progress.finish(), via);
  }
#endif
  uint64_t pos = 0;
  std::string carry;  // bytes of a block split across two receives
  Status write_status;
  auto put = [&](const char* data, size_t len) -> bool {
    if (sparse && len == kBlockSizeBytes && is_all_zero(data, len)) {
      pos += len;
      return true;
    }
    while (len > 0) {
      ssize_t n = sparse || S_ISBLK(st.st_mode) ? pwrite(out.fd, data, len, off_t(pos)) : write(out.fd, data, len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        write_status = errno_status(errno, "cannot write " + file);
        return false;
      }
      data += n;
      len -= size_t(n);
      pos += uint64_t(n);
    }
    return true;
  };
  uint64_t received = 0;
  Status st2 = api.download(path + "/data", [&](const char* data, size_t len) {
    received += len;
    progress.update(received);
    // Re-block the stream on 4 KiB boundaries so zero blocks can be skipped.
    if (!carry.empty()) {
      size_t take = std::min(len, kBlockSizeBytes - carry.size());
      carry.append(data, take);
      data += take;
      len -= take;
      if (carry.size() == kBlockSizeBytes) {
        if (!put(carry.data(), carry.size())) return false;
        carry.clear();
      }
    }
    while (len >= kBlockSizeBytes) {
      if (!put(data, kBlockSizeBytes)) return false;
      data += kBlockSizeBytes;
      len -= kBlockSizeBytes;
    }
    if (len > 0) carry.append(data, len);
    return true;
  });
  if (st2.is_ok() && !carry.empty() && !put(carry.data(), carry.size())) st2 = write_status;
  double secs = progress.finish();
  if (!write_status.is_ok()) return write_status;
  RETURN_IF_ERROR(st2);
  if (received != length) {
    return io_error("the export of " + name + " stopped at " + std::to_string(received) + " of " +
                    std::to_string(length) + " bytes");
  }
  return finish_export(ctx, name, file, out.fd, length, sparse, secs, via);
}

}  // namespace arbor::cli
