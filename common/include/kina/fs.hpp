// fs.hpp: small file helpers: read a whole file, create private directories,
// and write files atomically (temp file, fsync, rename, fsync of the directory).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/interrupt.hpp"

namespace kina {

namespace fsys = std::filesystem;

// Closes a file descriptor on scope exit.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

inline Status write_all(int fd, std::string_view data, const std::string& what) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error(what, errno, Exit::io);
    }
    off += static_cast<size_t>(n);
  }
  return {};
}

inline Result<std::string> read_fd(int fd, const std::string& what, size_t max_bytes = SIZE_MAX) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error(what, errno, Exit::io);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes)
      return make_error(Exit::data, what, fmt::format("larger than {} bytes", max_bytes));
  }
  return out;
}

// Opens `path` for reading only if it is a regular file: O_NONBLOCK so that a
// FIFO cannot block the open, then fstat. A FIFO, device, socket or directory
// is refused (Exit::data, naming it) before a byte is read. A missing file is
// Exit::no_input. `flags` may add O_NOFOLLOW.
inline Result<UniqueFd> open_regular(const fsys::path& path, const std::string& what, int flags = 0) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | flags));
  if (!fd.valid()) {
    int e = errno;
    if (e == ELOOP && (flags & O_NOFOLLOW))
      return make_error(Exit::data, what, "it is a symbolic link (not followed)");
    return os_error(what, e, e == ENOENT ? Exit::no_input : Exit::os);
  }
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0) return os_error(what);
  if (!S_ISREG(sb.st_mode))
    return make_error(Exit::data, what,
                      S_ISFIFO(sb.st_mode)  ? "it is a FIFO, not a regular file"
                      : S_ISCHR(sb.st_mode) ? "it is a character device, not a regular file"
                      : S_ISBLK(sb.st_mode) ? "it is a block device, not a regular file"
                      : S_ISDIR(sb.st_mode) ? "it is a directory, not a regular file"
                                            : "it is not a regular file");
  int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl >= 0) (void)::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

// Reads a whole regular file (FIFOs and devices are refused, see open_regular),
// at most `max_bytes`. A missing file is Exit::no_input.
inline Result<std::string> read_file(const fsys::path& path, size_t max_bytes = SIZE_MAX) {
  std::string what = fmt::format("reading {}", path.string());
  auto fd = open_regular(path, what);
  if (!fd) return fd.error();
  return read_fd(fd->get(), what, max_bytes);
}

inline Status fsync_dir(const fsys::path& dir) {
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return os_error(fmt::format("opening directory {}", dir.string()));
  if (::fsync(fd.get()) != 0 && errno != EINVAL)
    return os_error(fmt::format("syncing directory {}", dir.string()), errno, Exit::io);
  return {};
}

// mkdir -p, giving every directory it creates `mode`.
inline Status ensure_dir(const fsys::path& dir, mode_t mode = 0700) {
  std::error_code ec;
  if (fsys::is_directory(dir, ec)) return {};
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    auto st = ensure_dir(dir.parent_path(), mode);
    if (!st) return st;
  }
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST)
    return os_error(fmt::format("creating directory {}", dir.string()), errno, Exit::cant_create);
  return {};
}

// One file of write_files_atomic.
struct FileWrite {
  fsys::path path;
  std::string_view data;
  mode_t mode = 0600;
};

// Writes several files so that a failure before the last of them is staged
// (a full disk, most often) leaves every one as it was: each is written to a
// temporary `.NAME.tmp.XXXXXX` beside its target and synced, and only when all
// are, they are renamed into place in order, then their directories synced.
// Only a crash between those renames can leave some new and some old.
// Whatever is at a target must be a regular file or a symlink (which the
// rename replaces, never follows): a device, FIFO or socket is refused
// (Exit::cant_create) rather than replaced. Paths a user named go through
// output.hpp first.
inline Status write_files_atomic(const std::vector<FileWrite>& files) {
  std::vector<std::string> temps;
  auto fail = [&](Error e, size_t from = 0) {
    for (size_t i = from; i < temps.size(); ++i) ::unlink(temps[i].c_str());
    return e;
  };
  for (const FileWrite& f : files) {
    if (struct stat sb {}; ::lstat(f.path.c_str(), &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode))
      return fail(make_error(Exit::cant_create, fmt::format("writing {}", f.path.string()),
                             S_ISDIR(sb.st_mode) ? "it is a directory"
                                                 : "it is a device, FIFO or socket, not a regular file"));
    std::string tmpl = (f.path.parent_path() / ("." + f.path.filename().string() + ".tmp.XXXXXX")).string();
    int raw = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (raw < 0) return fail(os_error(fmt::format("creating {}", f.path.string()), errno, Exit::cant_create));
    UniqueFd fd(raw);
    temps.push_back(tmpl);
    if (::fchmod(fd.get(), f.mode) != 0) return fail(os_error(fmt::format("setting mode of {}", f.path.string())));
    if (auto st = write_all(fd.get(), f.data, fmt::format("writing {}", f.path.string())); !st) return fail(st.error());
    if (::fsync(fd.get()) != 0) return fail(os_error(fmt::format("syncing {}", f.path.string()), errno, Exit::io));
  }
  std::vector<fsys::path> dirs;
  for (size_t i = 0; i < files.size(); ++i) {
    if (::rename(temps[i].c_str(), files[i].path.c_str()) != 0)
      return fail(os_error(fmt::format("renaming into {}", files[i].path.string()), errno, Exit::cant_create), i);
    if (std::find(dirs.begin(), dirs.end(), files[i].path.parent_path()) == dirs.end())
      dirs.push_back(files[i].path.parent_path());
  }
  for (const fsys::path& d : dirs)
    if (auto st = fsync_dir(d); !st) return st;
  return {};
}

// Writes `data` to `path` so that a crash leaves either the old file or the
// new one (write_files_atomic with one file).
inline Status write_file_atomic(const fsys::path& path, std::string_view data, mode_t mode = 0600) {
  return write_files_atomic({{path, data, mode}});
}

// Bytes free for this user on the file system of PATH; nothing when
// statvfs(2) fails (errno says why).
inline std::optional<uint64_t> free_bytes(const char* path) {
  struct statvfs v {};
  if (::statvfs(path, &v) != 0) return std::nullopt;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

// Why a child that wrote under DIR failed, from its stderr ERR, as one
// line: its complaint about a full disk when it made one, else its first
// complaint (first_complaint), with "(No space left on device)" added when
// DIR's file system has less than 1 MiB left: GNU tar's short write ("Wrote
// only N of M bytes") names no cause. Read it before removing what the
// child wrote.
inline std::string full_disk_why(std::string_view err, const fsys::path& dir) {
  constexpr std::string_view kFull = "No space left on device";
  for (size_t at = 0; at < err.size();) {
    size_t nl = std::min(err.find('\n', at), err.size());
    std::string_view line = err.substr(at, nl - at);
    at = nl + 1;
    if (line.find(kFull) != std::string_view::npos) return detail::first_complaint(line);
  }
  std::string why = detail::first_complaint(err);
  if (auto f = free_bytes(dir.c_str()); f && *f < (1u << 20)) why += why.empty() ? std::string(kFull) : " (" + std::string(kFull) + ")";
  return why;
}

// Removes the temporaries `DIR/PREFIX<pid>.XXXXXX` (regular files or
// directories of this user) whose process is gone: what a kill -9 left
// (they may hold keys). A name of any other shape, another user's entry, a
// symlink, or a live (or not ours to judge) pid is left alone. Given
// `before_remove`, it is called with each directory found dead before that
// directory is removed (install_files puts back what its process had moved).
inline void sweep_dead_temps(const fsys::path& dir, std::string_view prefix,
                             const std::function<void(const fsys::path&)>& before_remove = {}) {
  std::error_code ec;
  for (fsys::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
    std::string_view rest = std::string_view(n).substr(prefix.size());
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || rest.size() - dot != 7) continue;
    pid_t pid = 0;
    auto [end_ptr, perr] = std::from_chars(rest.data(), rest.data() + dot, pid);
    if (perr != std::errc() || end_ptr != rest.data() + dot || pid <= 0) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || st.st_uid != ::getuid() || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
      continue;
    if (before_remove && S_ISDIR(st.st_mode)) before_remove(it->path());
    std::error_code rec;
    fsys::remove_all(it->path(), rec);
  }
}

// DIR/PREFIX<pid>.XXXXXX: a private directory of this run, removed when it
// goes out of scope (renamed away by then: nothing to remove) and, given
// `intr`, when a signal ends the command. What a kill -9 left is for
// sweep_dead_temps(DIR, PREFIX).
class ScopedTempDir {
 public:
  static Result<ScopedTempDir> make(const fsys::path& dir, std::string_view prefix, const Interrupts* intr = nullptr) {
    ScopedTempDir t;
    std::string tmpl = (dir / fmt::format("{}{}.XXXXXX", prefix, ::getpid())).string();
    // made and registered for removal together: a signal never falls between
    auto create = [&]() -> Status {
      if (!::mkdtemp(tmpl.data())) return os_error(fmt::format("creating a directory in {}", dir.string()), errno, Exit::cant_create);
      t.path_ = tmpl;
      if (intr) t.guard_ = intr->on_signal([p = t.path_] { std::error_code ec; fsys::remove_all(p, ec); });
      return {};
    };
    if (auto st = Interrupts::critical(intr, create); !st) return st.error();
    return t;
  }
  ScopedTempDir() = default;
  ScopedTempDir(ScopedTempDir&& o) noexcept : path_(std::move(o.path_)), guard_(std::move(o.guard_)) { o.path_.clear(); }
  ScopedTempDir& operator=(ScopedTempDir&&) = delete;
  ~ScopedTempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fsys::remove_all(path_, ec);
  }
  const fsys::path& path() const { return path_; }

 private:
  fsys::path path_;
  Interrupts::Guard guard_;
};

}  // namespace kina
