// build.hpp: `kina-image build`: an OCI image (one gzip layer holding a
// directory tree, a config, a manifest) written into the store,
// deterministically: the same tree gives the same digests on every run.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "acl.hpp"
#include "archive_error.hpp"
#include "image.hpp"
#include "kina/diag.hpp"
#include "kina/fs.hpp"
#include "kina/json.hpp"
#include "layer.hpp"
#include "manifest.hpp"
#include "store.hpp"

namespace kina::image {

// What goes into the image besides the tree.
struct BuildSpec {
  fsys::path rootfs;
  Platform platform;
  std::map<std::string, std::string> labels, annotations;  // sorted: fixed key order
  std::optional<std::vector<std::string>> entrypoint, cmd;
  std::vector<std::string> env;
  std::string working_dir, user;
  std::optional<int64_t> source_date_epoch;  // SOURCE_DATE_EPOCH: clamps mtimes, is `created`
  uint64_t max_entries = 1u << 22;
  uint64_t max_bytes = 1ull << 40;
  int gzip_level = 6;
};

struct BuildResult {
  Digest manifest, config, layer, diff_id;
  uint64_t entries = 0, bytes = 0;
  int64_t layer_size = 0;
};

inline constexpr int kMaxBuildDepth = 256;
inline constexpr size_t kMaxXattrList = 64u << 10;
inline constexpr size_t kMaxXattrValue = 64u << 10;

// SOURCE_DATE_EPOCH (the reproducible-builds convention): unset or empty is
// none; anything but a decimal count of seconds up to year 9999 is refused.
inline Result<std::optional<int64_t>> source_date_epoch_from_env() {
  const char* v = std::getenv("SOURCE_DATE_EPOCH");
  if (!v || !*v) return std::optional<int64_t>();
  std::string_view s = v;
  int64_t n = 0;
  bool ok = s.size() <= 12;
  for (char c : s) ok = ok && c >= '0' && c <= '9', n = n * 10 + (c - '0');
  if (!ok || n > 253402300799LL)
    return make_error(Exit::usage, fmt::format("invalid SOURCE_DATE_EPOCH {}", shown(s)), "expected seconds since 1970 (digits only)");
  return std::optional<int64_t>(n);
}

// RFC 3339 in UTC, whole seconds.
inline std::string rfc3339_utc(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  ::gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// K=V with a non-empty K, for --label, --annotation, --env.
inline Status parse_key_value(std::string_view flag, const std::string& kv, std::map<std::string, std::string>* into) {
  size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(kv)), "expected KEY=VALUE with a non-empty KEY");
  if (into) (*into)[kv.substr(0, eq)] = kv.substr(eq + 1);
  return {};
}

namespace detail {

// The uncompressed tar stream: hashed (the DiffID), deflated into a gzip
// member with a fixed header (no name, no time, OS "Unix") and level, and
// written into the store as the layer blob. Hashing, compressing and writing
// run on a thread of their own, fed 1 MiB chunks through a short queue, so
// reading the tree and compressing it overlap (as `tar | gzip` do).
class GzipSink {
 public:
  GzipSink(BlobWriter& out, int level) : out_(out), buf_(1 << 18) {
    if (deflateInit2(&z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::bad_alloc();
    std::memset(&header_, 0, sizeof header_);
    header_.os = 3;  // Unix, whatever zlib was built for: the same bytes on every machine
    deflateSetHeader(&z_, &header_);
    cur_.reserve(kChunk);
    worker_ = std::thread([this] { run(); });
  }
  ~GzipSink() {
    stop();
    deflateEnd(&z_);
  }
  GzipSink(const GzipSink&) = delete;
  GzipSink& operator=(const GzipSink&) = delete;

  Status write(const void* p, size_t n) {
    tar_bytes_ += n;
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      size_t take = std::min(n, kChunk - cur_.size());
      cur_.insert(cur_.end(), c, c + take);
      c += take;
      n -= take;
      if (cur_.size() == kChunk)
        if (auto st = hand_off(); !st) return st;
    }
    return {};
  }
  Status finish() {
    if (!cur_.empty())
      if (auto st = hand_off(); !st) return st;
    stop();
    if (error_) return *error_;
    return pump(nullptr, 0, Z_FINISH);
  }
  Digest diff_id() { return Digest::of(diff_.finish()); }
  uint64_t tar_bytes() const { return tar_bytes_; }

 private:
  static constexpr size_t kChunk = 1u << 20;
  static constexpr size_t kQueue = 4;

  Status hand_off() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return queue_.size() < kQueue || error_; });
    if (error_) return *error_;
    queue_.push_back(std::move(cur_));
    cur_ = std::vector<char>();
    cur_.reserve(kChunk);
    cv_.notify_all();
    return {};
  }
  void stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
      cv_.notify_all();
    }
    if (worker_.joinable()) worker_.join();
  }
  void run() {
    for (;;) {
      std::vector<char> chunk;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        chunk = std::move(queue_.front());
        queue_.pop_front();
        cv_.notify_all();
      }
      diff_.update(chunk.data(), chunk.size());
      if (auto st = pump(chunk.data(), chunk.size(), Z_NO_FLUSH); !st) {
        std::lock_guard<std::mutex> l(mu_);
        error_ = st.error();
        queue_.clear();
        cv_.notify_all();
        return;
      }
    }
  }
  Status pump(const void* p, size_t n, int flush) {
    z_.next_in = static_cast<Bytef*>(const_cast<void*>(p));
    z_.avail_in = static_cast<uInt>(n);
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(buf_.data());
      z_.avail_out = static_cast<uInt>(buf_.size());
      int r = deflate(&z_, flush);
      if (r == Z_STREAM_ERROR) return make_error(Exit::internal, "compressing the layer", "zlib stream error");
      size_t have = buf_.size() - z_.avail_out;
      if (have)
        if (auto st = out_.write(buf_.data(), have); !st) return st;
      if (flush == Z_FINISH ? r == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out != 0)) return {};
    }
  }

  BlobWriter& out_;
  z_stream z_{};
  gz_header header_{};
  std::vector<char> buf_;
  Sha256 diff_;
  uint64_t tar_bytes_ = 0;
  std::vector<char> cur_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<char>> queue_;
  bool done_ = false;
  std::optional<Error> error_;
  std::thread worker_;
};

// Walks the tree below spec.rootfs and writes one tar entry per file.
class TreeWriter {
 public:
  TreeWriter(const BuildSpec& spec, archive* a) : spec_(spec), a_(a) {}

  Status run(int rootfd) {
    struct stat sb {};
    if (::fstat(rootfd, &sb) != 0) return os_error(fmt::format("reading {}", spec_.rootfs.string()));
    if (auto st = emit(rootfd, -1, nullptr, "./", sb); !st) return st;
    return walk(rootfd, "", 1);
  }
  uint64_t entries() const { return entries_; }
  uint64_t bytes() const { return bytes_; }

 private:
  std::string where(const std::string& rel) const {
    return (spec_.rootfs / (rel == "./" ? std::string() : rel)).string();
  }
  Error changed(const std::string& rel, std::string_view how) const {
    return make_error(Exit::data, fmt::format("reading {}", where(rel)), fmt::format("{} while it was read (the tree must not change during a build)", how));
  }

  Status walk(int dirfd, const std::string& prefix, int depth) {
    if (depth > kMaxBuildDepth)
      return make_error(Exit::data, fmt::format("reading {}", where(prefix)), fmt::format("deeper than {} levels", kMaxBuildDepth));
    std::vector<std::string> names;
    if (!list_dir(dirfd, names)) return os_error(fmt::format("listing {}", where(prefix)));
    std::sort(names.begin(), names.end());  // bytewise (char_traits<char>::compare is memcmp)
    for (const auto& name : names) {
      std::string rel = prefix + name;
      struct stat sb {};
      if (::fstatat(dirfd, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return changed(rel, "it was removed");
        return os_error(fmt::format("reading {}", where(rel)));
      }
      if (S_ISSOCK(sb.st_mode)) {
        warn("kina-image", fmt::format("{}: a socket, not stored in the image", where(rel)));
        continue;
      }
      if (S_ISDIR(sb.st_mode)) {
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) return os_error(fmt::format("opening {}", where(rel)), errno, errno == ENOENT ? Exit::data : Exit::os);
        struct stat now {};
        if (::fstat(sub.get(), &now) != 0 || now.st_ino != sb.st_ino || now.st_dev != sb.st_dev) return changed(rel, "it was replaced");
        if (auto st = emit(sub.get(), dirfd, name.c_str(), rel + "/", sb); !st) return st;
        if (auto st = walk(sub.get(), rel + "/", depth + 1); !st) return st;
        continue;
      }
      if (auto st = emit(-1, dirfd, name.c_str(), rel, sb); !st) return st;
    }
    return {};
  }

  // The entry's extended attributes, sorted by name: from fd when given, else
  // from name in dirfd without following a symlink.
  Result<std::vector<std::pair<std::string, std::string>>> xattrs(int fd, int dirfd, const char* name, const std::string& rel) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string path = fd >= 0 ? std::string() : proc_fd_path(dirfd, name);
    auto what = [&] { return fmt::format("reading the extended attributes of {}", where(rel)); };
    std::string list(4096, '\0');
    ssize_t n;
    for (;;) {
      n = fd >= 0 ? ::flistxattr(fd, list.data(), list.size()) : ::llistxattr(path.c_str(), list.data(), list.size());
      if (n >= 0) break;
      if (errno == ENOTSUP) return out;
      if (errno != ERANGE) return os_error(what());
      if (list.size() >= kMaxXattrList) return make_error(Exit::data, what(), fmt::format("the name list is longer than {} bytes", kMaxXattrList));
      list.resize(list.size() * 4);
    }
    list.resize(static_cast<size_t>(n));
    std::vector<std::string> names;
    for (size_t i = 0; i < list.size();) {
      size_t end = list.find('\0', i);
      if (end == std::string::npos) end = list.size();
      std::string x = list.substr(i, end - i);
      i = end + 1;
      if (x.empty()) continue;
      bool known = x.rfind("user.", 0) == 0 || x.rfind("security.", 0) == 0 || x.rfind("trusted.", 0) == 0 || x == kAclAccess ||
                   x == kAclDefault;
      if (!known) {
        warn("kina-image", fmt::format("{}: extended attribute {} not stored (only user.*, security.*, trusted.* and POSIX ACLs are)",
                                       where(rel), shown(x)));
        continue;
      }
      names.push_back(std::move(x));
    }
    std::sort(names.begin(), names.end());
    for (auto& x : names) {
      std::string v(256, '\0');
      ssize_t m;
      for (;;) {
        m = fd >= 0 ? ::fgetxattr(fd, x.c_str(), v.data(), v.size()) : ::lgetxattr(path.c_str(), x.c_str(), v.data(), v.size());
        if (m >= 0) break;
        if (errno == ENODATA) break;
        if (errno != ERANGE) return os_error(what());
        if (v.size() >= kMaxXattrValue) return make_error(Exit::data, what(), fmt::format("{} is larger than {} bytes", x, kMaxXattrValue));
        v.resize(v.size() * 4);
      }
      if (m < 0) continue;  // removed meanwhile
      v.resize(static_cast<size_t>(m));
      if (x == kAclAccess || x == kAclDefault) {
        std::string why;
        auto entries = acl::parse(v, why);
        if (!entries) return make_error(Exit::data, what(), fmt::format("{} is not a POSIX ACL: {}", x, why));
      }
      out.emplace_back(std::move(x), std::move(v));
    }
    return out;
  }

  static std::string proc_fd_path(int dirfd, const char* name) { return fmt::format("/proc/self/fd/{}/{}", dirfd, name); }

  Status archive_fail(const std::string& rel) const {
    return make_error(Exit::io, fmt::format("writing the entry for {}", where(rel)), archive_error(a_));
  }

  // One tar entry. fd: the directory itself (root and directories); else the
  // entry is `name` in `dirfd`.
  Status emit(int fd, int dirfd, const char* name, const std::string& rel, const struct stat& sb) {
    if (++entries_ > spec_.max_entries)
      return make_error(Exit::data, fmt::format("reading {}", spec_.rootfs.string()), fmt::format("more than {} entries", spec_.max_entries));
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_uid(e.get(), sb.st_uid);
    archive_entry_set_gid(e.get(), sb.st_gid);
    archive_entry_set_mode(e.get(), sb.st_mode);  // type, permissions, setuid/setgid/sticky
    int64_t mtime = sb.st_mtim.tv_sec;
    if (spec_.source_date_epoch && mtime > *spec_.source_date_epoch) mtime = *spec_.source_date_epoch;
    archive_entry_set_mtime(e.get(), static_cast<time_t>(mtime), 0);  // whole seconds; no atime, no ctime
    // A second (or later) name of a file already stored: a hardlink entry.
    if (!S_ISDIR(sb.st_mode) && sb.st_nlink > 1) {
      auto [it, first] = links_.emplace(std::make_pair(sb.st_dev, sb.st_ino), rel);
      if (!first) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        if (archive_write_header(a_, e.get()) < ARCHIVE_WARN) return archive_fail(rel);
        return {};
      }
    }
    UniqueFd file;
    if (S_ISREG(sb.st_mode)) {
      file.reset(::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      if (!file.valid()) {
        if (errno == ENOENT || errno == ELOOP) return changed(rel, "it was removed or replaced");
        return os_error(fmt::format("reading {}", where(rel)));
      }
      struct stat now {};
      if (::fstat(file.get(), &now) != 0) return os_error(fmt::format("reading {}", where(rel)));
      if (now.st_ino != sb.st_ino || now.st_dev != sb.st_dev) return changed(rel, "it was replaced");
      if (now.st_size != sb.st_size) return changed(rel, "its size changed");
      archive_entry_set_size(e.get(), sb.st_size);
    } else if (S_ISLNK(sb.st_mode)) {
      std::string target(PATH_MAX, '\0');
      ssize_t n = ::readlinkat(dirfd, name, target.data(), target.size());
      if (n < 0) return os_error(fmt::format("reading the symlink {}", where(rel)));
      if (static_cast<size_t>(n) >= target.size()) return make_error(Exit::data, fmt::format("reading the symlink {}", where(rel)), "target longer than PATH_MAX");
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(e.get(), target.c_str());
      archive_entry_set_size(e.get(), 0);
    } else if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode)) {
      archive_entry_set_rdevmajor(e.get(), major(sb.st_rdev));
      archive_entry_set_rdevminor(e.get(), minor(sb.st_rdev));
      archive_entry_set_size(e.get(), 0);
    } else {
      archive_entry_set_size(e.get(), 0);  // directory, FIFO
    }
    auto xs = xattrs(S_ISREG(sb.st_mode) ? file.get() : fd, dirfd, name, rel);
    if (!xs) return xs.error();
    for (const auto& [k, v] : *xs) archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    if (archive_write_header(a_, e.get()) < ARCHIVE_WARN) return archive_fail(rel);
    if (S_ISREG(sb.st_mode)) return copy_data(file.get(), rel, sb);
    return {};
  }

  // Exactly st_size bytes; a file that grows, shrinks or is rewritten meanwhile is refused.
  Status copy_data(int fd, const std::string& rel, const struct stat& sb) {
    uint64_t left = static_cast<uint64_t>(sb.st_size);
    bytes_ += left;
    if (bytes_ > spec_.max_bytes)
      return make_error(Exit::data, fmt::format("reading {}", spec_.rootfs.string()), fmt::format("more than {} bytes of file data", spec_.max_bytes));
    buf_.resize(1 << 18);
    while (left > 0) {
      ssize_t n = ::read(fd, buf_.data(), std::min<uint64_t>(left, buf_.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return os_error(fmt::format("reading {}", where(rel)), errno, errno == EIO ? Exit::io : Exit::os);
      if (n == 0) return changed(rel, "it shrank");
      if (archive_write_data(a_, buf_.data(), static_cast<size_t>(n)) != n) return archive_fail(rel);
      left -= static_cast<uint64_t>(n);
    }
    char extra;
    ssize_t n;
    while ((n = ::read(fd, &extra, 1)) < 0 && errno == EINTR) {
    }
    if (n < 0) return os_error(fmt::format("reading {}", where(rel)), errno, errno == EIO ? Exit::io : Exit::os);
    if (n > 0) return changed(rel, "it grew");
    struct stat now {};
    if (::fstat(fd, &now) != 0) return os_error(fmt::format("reading {}", where(rel)));
    if (now.st_size != sb.st_size || now.st_mtim.tv_sec != sb.st_mtim.tv_sec || now.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
      return changed(rel, "it was modified");
    return {};
  }

  const BuildSpec& spec_;
  archive* a_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::vector<char> buf_;
  uint64_t entries_ = 0, bytes_ = 0;
};

}  // namespace detail

// The image config for one layer, keys in a fixed order.
inline std::string build_config(const BuildSpec& spec, const Digest& diff_id) {
  std::string created = rfc3339_utc(spec.source_date_epoch.value_or(0));
  json::Writer w;
  w.begin_object().field("created", created).field("architecture", spec.platform.architecture).field("os", spec.platform.os);
  if (!spec.platform.variant.empty()) w.field("variant", spec.platform.variant);
  w.key("config").begin_object();
  if (!spec.user.empty()) w.field("User", spec.user);
  if (!spec.env.empty()) w.string_array("Env", spec.env);
  if (spec.entrypoint) w.string_array("Entrypoint", *spec.entrypoint);
  if (spec.cmd) w.string_array("Cmd", *spec.cmd);
  if (!spec.working_dir.empty()) w.field("WorkingDir", spec.working_dir);
  if (!spec.labels.empty()) {
    w.key("Labels").begin_object();
    for (const auto& [k, v] : spec.labels) w.field(k, v);
    w.end_object();
  }
  w.end_object();
  w.key("rootfs").begin_object().field("type", "layers").key("diff_ids").begin_array().value(diff_id.str()).end_array().end_object();
  w.key("history").begin_array().begin_object().field("created", created).field("created_by", "kina-image build").end_object().end_array();
  w.end_object();
  return w.take();
}

inline std::string build_manifest(const BuildSpec& spec, const Digest& config, size_t config_size, const Digest& layer, int64_t layer_size) {
  json::Writer w;
  w.begin_object().field("schemaVersion", 2).field("mediaType", media::kOciManifest);
  w.key("config").begin_object().field("mediaType", media::kOciConfig).field("digest", config.str());
  w.field("size", static_cast<unsigned long long>(config_size)).end_object();
  w.key("layers").begin_array().begin_object().field("mediaType", media::kOciLayerGzip).field("digest", layer.str());
  w.field("size", static_cast<long long>(layer_size)).end_object().end_array();
  if (!spec.annotations.empty()) {
    w.key("annotations").begin_object();
    for (const auto& [k, v] : spec.annotations) w.field(k, v);
    w.end_object();
  }
  w.end_object();
  return w.take();
}

// Builds the image into the store (blobs only: the caller tags it). The layer
// is written to a locked temporary in ingest/ (removed on failure and on
// SIGINT/SIGTERM; swept by the next run after kill -9) and becomes a blob
// only when complete; then the config and the manifest.
inline Result<BuildResult> build_image(const Store& store, const BuildSpec& spec) {
  std::string what = fmt::format("building from {}", spec.rootfs.string());
  struct stat sb {};
  if (::lstat(spec.rootfs.c_str(), &sb) != 0)
    return os_error(fmt::format("rootfs {}", spec.rootfs.string()), errno, errno == ENOENT ? Exit::no_input : Exit::os);
  if (S_ISLNK(sb.st_mode)) return make_error(Exit::data, fmt::format("rootfs {}", spec.rootfs.string()), "is a symlink (give the directory itself)");
  if (!S_ISDIR(sb.st_mode)) return make_error(Exit::data, fmt::format("rootfs {}", spec.rootfs.string()), "not a directory");
  UniqueFd root(::open(spec.rootfs.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return os_error(fmt::format("rootfs {}", spec.rootfs.string()));

  auto blob = BlobWriter::create(store);
  if (!blob) return blob.error();
  detail::GzipSink sink(*blob, spec.gzip_level);
  struct Client {
    detail::GzipSink* sink;
    std::optional<Error> error;
    static la_ssize_t write(archive*, void* p, const void* buf, size_t n) {
      auto* c = static_cast<Client*>(p);
      if (auto st = c->sink->write(buf, n); !st) {
        c->error = st.error();
        return -1;
      }
      return static_cast<la_ssize_t>(n);
    }
  } client{&sink, {}};
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  if (!a) throw std::bad_alloc();
  // ustar headers; a pax header only for what ustar cannot hold (long names,
  // large ids or sizes, xattrs). No names for owners: numeric ids only.
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_format_option(a.get(), "pax", "xattrheader", "SCHILY");
  archive_write_set_bytes_per_block(a.get(), 10240);
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), &client, nullptr, &Client::write, nullptr) != ARCHIVE_OK)
    return make_error(Exit::internal, what, archive_error(a.get()));
  detail::TreeWriter tw(spec, a.get());
  Status walked = tw.run(root.get());
  if (!walked) return client.error ? *client.error : walked.error();
  if (archive_write_close(a.get()) != ARCHIVE_OK) return client.error ? *client.error : make_error(Exit::io, what, archive_error(a.get()));
  a.reset();
  if (auto st = sink.finish(); !st) return st.error();
  BuildResult r;
  r.diff_id = sink.diff_id();
  r.layer = blob->digest();
  r.layer_size = static_cast<int64_t>(blob->size());
  r.entries = tw.entries();
  r.bytes = tw.bytes();
  if (auto st = blob->commit(store, nullptr, fmt::format("layer of {}", spec.rootfs.string())); !st) return st.error();
  std::string cfg = build_config(spec, r.diff_id);
  auto cd = store.put_blob(cfg);
  if (!cd) return cd.error();
  r.config = *cd;
  std::string man = build_manifest(spec, r.config, cfg.size(), r.layer, r.layer_size);
  auto md = store.put_blob(man);
  if (!md) return md.error();
  r.manifest = *md;
  return r;
}

}  // namespace kina::image
