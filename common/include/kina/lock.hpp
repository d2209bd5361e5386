// lock.hpp: an flock(2)-based lock with a timeout that says who holds it.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"

namespace kina {

// The holder writes "pid=N cmd=C since=T" into the lock file after taking the
// lock, so a waiter that times out can name it. flock locks die with their
// holder, so a crashed holder never leaves a lock behind.
class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;
  ~FileLock() { release(); }

  static Result<FileLock> acquire(const fsys::path& path, std::chrono::milliseconds timeout,
                                  std::string_view holder = {}) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return os_error(fmt::format("opening lock {}", path.string()), errno, Exit::cant_create);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::microseconds(200);
    for (;;) {
      if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) break;
      if (errno != EWOULDBLOCK && errno != EINTR)
        return os_error(fmt::format("locking {}", path.string()));
      if (std::chrono::steady_clock::now() >= deadline) {
        std::string who = read_holder(fd.get());
        return make_error(Exit::temp_fail, fmt::format("lock {}", path.string()),
                          fmt::format("held by {} (waited {} ms)", who.empty() ? "another process" : who,
                                      timeout.count()),
                          "retry, or find the holder with: fuser -v " + path.string());
      }
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::milliseconds(20)) pause *= 2;
    }
    FileLock lock;
    lock.path_ = path;
    std::string info = fmt::format("pid={} cmd={} since={}\n", ::getpid(), holder.empty() ? "kina" : holder,
                                   static_cast<long long>(std::time(nullptr)));
    if (::ftruncate(fd.get(), 0) == 0) (void)!::pwrite(fd.get(), info.data(), info.size(), 0);
    lock.fd_ = std::move(fd);
    return lock;
  }

  void release() {
    if (fd_.valid()) {
      (void)!::ftruncate(fd_.get(), 0);
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
};

}  // namespace kina
