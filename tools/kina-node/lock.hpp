// lock.hpp: `kina-node lock`, flock(1)'s `flock -w SECS FD` for the front end
// on hosts without util-linux (macOS): an exclusive flock(2) on a descriptor
// the calling shell opened (`exec 9>>FILE; kina-node lock --fd 9`). A flock
// belongs to the open file description, which the shell shares with this
// process, so the lock stays held by the shell after this process exits, until
// the shell closes the descriptor or exits (flock(2) on Linux and on macOS).
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <string>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/lock.hpp"
#include "kina/validate.hpp"

namespace kina::node {

struct LockArgs {
  int fd = -1;
  std::string timeout = "10m";
};

inline Status run_lock(const LockArgs& a) {
  auto t = parse_duration_flag("--timeout", a.timeout, 0, 24LL * 3600 * 1000);
  if (!t) return t.error();
  struct stat st {};
  if (a.fd < 0 || ::fstat(a.fd, &st) != 0)
    return make_error(Exit::usage, fmt::format("invalid --fd {}", a.fd), "not an open file descriptor of this process");
  if (!S_ISREG(st.st_mode))
    return make_error(Exit::usage, fmt::format("invalid --fd {}", a.fd), "not open on a regular file");
  int e = flock_until(a.fd, LOCK_EX, std::chrono::steady_clock::now() + std::chrono::milliseconds(*t));
  if (e == EWOULDBLOCK)
    return make_error(Exit::temp_fail, fmt::format("locking --fd {}", a.fd),
                      fmt::format("still held by another process after {}", a.timeout));
  if (e != 0) return os_error(fmt::format("locking --fd {}", a.fd), e);
  return {};
}

}  // namespace kina::node
