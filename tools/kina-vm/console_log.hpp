// console_log.hpp: a QEMU guest's console as the supervisor keeps it. QEMU
// writes the serial port into a FIFO (console.fifo); the supervisor reads it
// and appends to console.log, which never grows past a cap: at the cap
// console.log becomes console.old.log (replacing the one before) and a new
// console.log begins, so a machine's console takes at most twice the cap
// (plus console.previous.log, the last run's). A write that fails (a full
// disk, a file size limit) drops those bytes and the supervisor goes on
// reading, so a guest never stalls on its console; the next write that
// succeeds first says how many bytes were lost and why.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "machine.hpp"

namespace kina::vm {

// The cap of console.log (and of console.old.log).
inline constexpr uint64_t kConsoleCap = 8ull << 20;

class ConsoleLog {
 public:
  // Files relative to DIR ("" : the current directory, as the supervisor runs).
  explicit ConsoleLog(std::string dir = {}, uint64_t cap = kConsoleCap)
      : cur_(path(dir, file::console)), old_(path(dir, file::old_console)), cap_(cap) {}
  ~ConsoleLog() { close(); }
  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;

  // Appends BYTES; never fails (what cannot be written is counted as lost).
  void write(std::string_view bytes) {
    if (lost_ > 0 && !say_lost()) {
      lost_ += bytes.size();
      return;
    }
    while (!bytes.empty()) {
      (void)ensure_open();  // size_ is what console.log holds (append says why it is not open)
      if (size_ >= cap_) rotate();
      std::string_view part = bytes.substr(0, static_cast<size_t>(std::min<uint64_t>(cap_ - size_, bytes.size())));
      size_t left = append(part);
      if (left > 0) {
        lost_ += left + (bytes.size() - part.size());
        return;
      }
      bytes.remove_prefix(part.size());
    }
  }

  // Bytes lost since the last line that said so.
  uint64_t lost() const { return lost_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  static std::string path(const std::string& dir, const char* name) { return dir.empty() ? name : dir + "/" + name; }

  bool ensure_open() {
    if (fd_ >= 0) return true;
    // Never through a symlink, never into anything but a regular file (a FIFO
    // with no reader fails at once: O_NONBLOCK).
    fd_ = ::open(cur_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd_ < 0) {
      why_ = std::strerror(errno);
      return false;
    }
    struct stat sb {};
    if (::fstat(fd_, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      close();
      why_ = "console.log is not a regular file";
      return false;
    }
    size_ = static_cast<uint64_t>(sb.st_size);
    return true;
  }

  void rotate() {
    close();
    // console.log that cannot be moved aside is started over, never grown.
    if (::rename(cur_.c_str(), old_.c_str()) != 0 && errno != ENOENT) ::unlink(cur_.c_str());
    size_ = 0;
  }

  // Writes BYTES; returns how many of them did not go in (why_ says why).
  size_t append(std::string_view bytes) {
    if (!ensure_open()) return bytes.size();
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        why_ = std::strerror(n < 0 ? errno : ENOSPC);
        return bytes.size();
      }
      size_ += static_cast<uint64_t>(n);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return 0;
  }

  // The line that says what was lost; true once it is written whole.
  bool say_lost() {
    std::string line = fmt::format("\n[kina-vm: {} bytes of console output lost: {}]\n", lost_, why_);
    (void)ensure_open();
    if (size_ + line.size() > cap_) rotate();
    if (append(line) > 0) return false;
    lost_ = 0;
    return true;
  }

  std::string cur_, old_, why_;
  uint64_t cap_, size_ = 0, lost_ = 0;
  int fd_ = -1;
};

}  // namespace kina::vm
