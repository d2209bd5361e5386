// lock.hpp: an flock(2)-based lock (exclusive or shared) with a timeout that says who holds it.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/sha256.hpp"

namespace kina {

enum class LockMode { exclusive, shared };

// The lock file that guards `file`: "<file>.lock" beside it when the file is
// inside $KINA_HOME, else $KINA_HOME/locks/<sha256 of the canonical path>.lock,
// so that no lock file is ever created in a directory kina does not own
// (`--log /dev/null` must not leave /dev/null.lock behind). Both paths are
// made canonical first (symlinks resolved), so every spelling of one file
// gets the same lock.
inline Result<fsys::path> lock_path_for(const fsys::path& file) {
  auto home = kina_home();
  if (!home) return home.error();
  std::error_code ec;
  fsys::path abs = fsys::weakly_canonical(fsys::absolute(file), ec);
  if (ec) abs = fsys::absolute(file).lexically_normal();
  fsys::path h = fsys::weakly_canonical(*home, ec);
  if (ec) h = home->lexically_normal();
  auto rel = abs.lexically_relative(h);
  if (!rel.empty() && *rel.begin() != ".." && rel != ".") return fsys::path(abs.string() + ".lock");
  // (Outside: the hash of the canonical path names the lock.)
  fsys::path dir = *home / "locks";
  if (auto st = ensure_dir(dir, 0700); !st) return st.error();
  return dir / (to_hex(sha256(abs.string())) + ".lock");
}

// Waits for flock(fd, op) (LOCK_EX or LOCK_SH) until `deadline`: 0 once
// held, EWOULDBLOCK when another still holds it then, else the errno of the
// failure.
inline int flock_until(int fd, int op, std::chrono::steady_clock::time_point deadline) {
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    if (::flock(fd, op | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK && errno != EINTR) return errno;
    if (std::chrono::steady_clock::now() >= deadline) return EWOULDBLOCK;
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(20)) pause *= 2;
  }
}

// The holder of an exclusive lock writes "pid=N cmd=C since=T" into the lock
// file after taking it, so a waiter that times out can name it. flock locks die
// with their holder, so a crashed holder never leaves a lock behind.
// The lock file is opened O_NOFOLLOW and must be a regular file with one link:
// a symlink or hard link planted at the lock path is refused, never truncated.
class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;
  ~FileLock() { release(); }

  static Result<FileLock> acquire(const fsys::path& path, std::chrono::milliseconds timeout,
                                  std::string_view holder = {}, LockMode mode = LockMode::exclusive) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      int e = errno;
      if (e == ELOOP)
        return make_error(Exit::cant_create, fmt::format("opening lock {}", path.string()),
                          "it is a symbolic link (lock files are never followed)", "remove it if nothing of kina made it");
      return os_error(fmt::format("opening lock {}", path.string()), e, Exit::cant_create);
    }
    struct stat sb {};
    if (::fstat(fd.get(), &sb) != 0) return os_error(fmt::format("opening lock {}", path.string()));
    if (!S_ISREG(sb.st_mode) || sb.st_nlink != 1)
      return make_error(Exit::cant_create, fmt::format("opening lock {}", path.string()),
                        S_ISREG(sb.st_mode) ? "it has other hard links (lock files must be kina's own)"
                                            : "it is not a regular file",
                        "remove it if nothing of kina made it");
    const int op = mode == LockMode::shared ? LOCK_SH : LOCK_EX;
    if (int e = flock_until(fd.get(), op, std::chrono::steady_clock::now() + timeout); e == EWOULDBLOCK) {
      std::string who = read_holder(fd.get());
      return make_error(Exit::temp_fail, fmt::format("lock {}", path.string()),
                        fmt::format("held by {} (waited {} ms)", who.empty() ? "another process" : who,
                                    timeout.count()),
                        "retry, or find the holder with: fuser -v " + path.string());
    } else if (e != 0) {
      return os_error(fmt::format("locking {}", path.string()), e);
    }
    FileLock lock;
    lock.path_ = path;
    lock.exclusive_ = mode == LockMode::exclusive;
    if (lock.exclusive_) {
      std::string info = fmt::format("pid={} cmd={} since={}\n", ::getpid(), holder.empty() ? "kina" : holder,
                                     static_cast<long long>(std::time(nullptr)));
      if (::ftruncate(fd.get(), 0) == 0) (void)!::pwrite(fd.get(), info.data(), info.size(), 0);
    }
    lock.fd_ = std::move(fd);
    return lock;
  }

  // Locks `file` through lock_path_for(file).
  static Result<FileLock> acquire_for(const fsys::path& file, std::chrono::milliseconds timeout,
                                      std::string_view holder = {}, LockMode mode = LockMode::exclusive) {
    auto p = lock_path_for(file);
    if (!p) return p.error();
    return acquire(*p, timeout, holder, mode);
  }

  void release() {
    if (fd_.valid()) {
      if (exclusive_) (void)!::ftruncate(fd_.get(), 0);
      ::flock(fd_.get(), LOCK_UN);
      fd_.reset();
    }
  }
  bool held() const { return fd_.valid(); }
  const fsys::path& path() const { return path_; }

 private:
  static std::string read_holder(int fd) {
    char buf[512];
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return {};
    std::string s(buf, static_cast<size_t>(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
    return s;
  }
  UniqueFd fd_;
  fsys::path path_;
  bool exclusive_ = true;
};

}  // namespace kina
