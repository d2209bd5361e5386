// temp.hpp: the temporaries of kina-image commands (unpack trees, disk and
// archive files, blobs being written). The process that makes one holds an
// flock on it for its whole life, removes it on failure and on SIGINT/SIGTERM,
// and a later run removes those no live process holds (left by kill -9).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/interrupt.hpp"
#include "layer.hpp"  // detail::remove_at: a no-follow tree removal
#include "noreplace.hpp"

namespace kina::image {

namespace detail {

inline bool same_inode(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Removes `name` in `dirfd` (a tree, never following symlinks) until it is gone:
// a writer still adding entries meanwhile only delays it.
inline void remove_all_at(int dirfd, const char* name) {
  for (int i = 0; i < 100; ++i) {
    if (detail::remove_at(dirfd, name) == 0) {
      struct stat sb {};
      if (::fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) return;
    }
  }
}

inline void remove_all(const fsys::path& p) {
  fsys::path parent = p.parent_path().empty() ? fsys::path(".") : p.parent_path();
  UniqueFd pfd(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (pfd.valid()) remove_all_at(pfd.get(), p.filename().c_str());
}

// Locks the entry `fd` was opened on, waiting up to `timeout`; then checks the
// name still leads to it (a sweeper may have removed it before we locked).
// Returns 1 when locked and current, 0 when the name is gone or replaced, -1
// on a timeout (errno EWOULDBLOCK) or another error.
inline int lock_current(int fd, const fsys::path& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) {
      errno = EWOULDBLOCK;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  struct stat a {}, b {};
  if (::fstat(fd, &a) != 0) return -1;
  if (::lstat(path.c_str(), &b) != 0 || !same_inode(a, b)) return 0;
  return 1;
}

}  // namespace detail

// A temporary file or directory of this process, locked while it lives and
// removed by the destructor unless keep_as() made it the result.
class Temp {
 public:
  // parent/<prefix>XXXXXX: a 0700 directory, or a 0600 file open read-write.
  static Result<Temp> make(const fsys::path& parent, const std::string& prefix, bool dir, const Interrupts* intr) {
    for (int attempt = 0; attempt < 8; ++attempt) {
      Temp t;
      t.dir_ = dir;
      std::string tmpl = (parent / (prefix + "XXXXXX")).string();
      // Created and registered for removal together: a signal never falls between.
      auto create = [&]() -> Status {
        if (dir) {
          if (!::mkdtemp(tmpl.data())) return os_error(fmt::format("creating a directory in {}", parent.string()), errno, Exit::cant_create);
          t.fd_.reset(::open(tmpl.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        } else {
          t.fd_.reset(::mkostemp(tmpl.data(), O_CLOEXEC));
          if (!t.fd_.valid()) return os_error(fmt::format("creating a file in {}", parent.string()), errno, Exit::cant_create);
        }
        if (!t.fd_.valid()) return {};  // removed before we opened it
        t.path_ = tmpl;
        if (intr) t.guard_ = intr->on_signal([p = t.path_] { detail::remove_all(p); });
        return {};
      };
      if (auto st = intr ? intr->critical(create) : create(); !st) return st.error();
      if (!t.fd_.valid()) continue;
      int r = detail::lock_current(t.fd_.get(), t.path_, std::chrono::seconds(10));
      if (r == 1) return t;
      t.guard_.release();
      t.path_.clear();  // not ours any more (a sweeper took it): nothing to remove
      if (r < 0) return os_error(fmt::format("locking {}", tmpl), errno, Exit::cant_create);
    }
    return make_error(Exit::temp_fail, fmt::format("creating a temporary in {}", parent.string()), "removed by another process 8 times");
  }

  Temp() = default;
  Temp(Temp&& o) noexcept : path_(std::move(o.path_)), fd_(std::move(o.fd_)), guard_(std::move(o.guard_)), dir_(o.dir_) {
    o.path_.clear();
  }
  Temp& operator=(Temp&& o) noexcept {
    if (this != &o) {
      remove();
      path_ = std::move(o.path_);
      o.path_.clear();
      fd_ = std::move(o.fd_);
      guard_ = std::move(o.guard_);
      dir_ = o.dir_;
    }
    return *this;
  }
  ~Temp() { remove(); }

  const fsys::path& path() const { return path_; }
  int fd() const { return fd_.get(); }
  explicit operator bool() const { return !path_.empty(); }

  void remove() {
    if (path_.empty()) return;
    detail::remove_all(path_);
    path_.clear();
    guard_.release();
    fd_.reset();
  }

  // Renames it to `to` unless `to` exists (errno EEXIST; `replace`: whatever
  // is there); a signal cannot fall between the rename and forgetting the
  // temporary.
  int keep_as(const fsys::path& to, const Interrupts* intr, bool replace = false) {
    auto op = [&] {
      if ((replace ? ::rename(path_.c_str(), to.c_str()) : rename_noreplace(path_, to, dir_)) != 0) return -1;
      path_.clear();
      guard_.release();
      return 0;
    };
    int rc = intr ? intr->critical(op) : op();
    if (rc == 0) fd_.reset();
    return rc;
  }

 private:
  fsys::path path_;
  UniqueFd fd_;
  Interrupts::Guard guard_;
  bool dir_ = false;
};

// Removes the entries of `dir` whose names start with `prefix` and that are
// ours (same user) but locked by no live process: what a killed command left.
// Returns how many went.
inline size_t sweep_stale(const fsys::path& dir, std::string_view prefix) {
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return 0;
  DIR* dp = ::fdopendir(::dup(dfd.get()));
  if (!dp) return 0;
  std::vector<std::string> names;
  while (dirent* de = ::readdir(dp)) {
    std::string_view n = de->d_name;
    if (n == "." || n == ".." || n.substr(0, prefix.size()) != prefix) continue;
    names.emplace_back(n);
  }
  ::closedir(dp);
  size_t removed = 0;
  for (const auto& n : names) {
    struct stat sb {};
    if (::fstatat(dfd.get(), n.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0 || sb.st_uid != ::geteuid()) continue;
    if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
      if (::unlinkat(dfd.get(), n.c_str(), 0) == 0) ++removed;  // never ours to keep: a symlink, FIFO or device
      continue;
    }
    UniqueFd fd(::openat(dfd.get(), n.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // its owner is alive
    struct stat now {};
    if (::fstat(fd.get(), &now) != 0 || !detail::same_inode(now, sb)) continue;
    detail::remove_all_at(dfd.get(), n.c_str());
    ++removed;
  }
  return removed;
}

}  // namespace kina::image
