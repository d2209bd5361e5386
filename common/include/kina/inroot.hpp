// inroot.hpp: the one way kina writes a tree of untrusted entry names (image layers, cp in both directions) inside a root directory and never outside it.
//
// An InRoot holds a descriptor of the root (opened O_NOFOLLOW: a root that is
// itself a symlink is refused). Every entry is created through a descriptor
// of its parent directory, resolved inside the root afresh for each entry:
// openat2(RESOLVE_IN_ROOT) when the kernel has it, else a walk one component
// at a time with O_NOFOLLOW. Two policies for symlinks met on the way:
//   Symlinks::refuse   any symlink in a parent is an error (ELOOP), as
//                      RESOLVE_NO_SYMLINKS: for cp, whose sender is trusted
//                      less than the receiver;
//   Symlinks::in_root  followed as if the root were "/" (absolute targets and
//                      ".." stay inside): for image layers, whose lower layers
//                      legitimately have var/run -> /run.
// Names with ".." are refused (components() below); a hardlink's target is
// resolved inside the root with no symlink on the way, so neither end leaves
// it. Plain libc, no exceptions: the guest agent is linked statically.
#pragma once

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kina {

// A relative path that stays inside its root as written: not absolute, no
// "..", "." or empty component (the empty path is the root itself). For
// paths a peer sends (kina-vm's transfers) or a killed run left (kina-kube's
// journal of moves).
inline bool safe_relative(std::string_view p) {
  if (p.empty()) return true;
  if (p.front() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part == ".." || part == "." || part.empty()) return false;
    start = end + 1;
  }
  return true;
}

// Splits an entry name into components, dropping empty ones and ".".
// Returns false (errno EINVAL) for a name with a ".." component, a component
// longer than NAME_MAX or a name longer than PATH_MAX, and for an absolute
// name unless strip_leading_slash (tar's convention: "/etc/x" is "etc/x").
inline bool inroot_components(std::string_view p, std::vector<std::string>& out, bool strip_leading_slash) {
  out.clear();
  if (p.size() > PATH_MAX || (!p.empty() && p.front() == '/' && !strip_leading_slash)) {
    errno = EINVAL;
    return false;
  }
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string_view::npos) slash = p.size();
    std::string_view c = p.substr(start, slash - start);
    if (c == ".." || c.size() > NAME_MAX) {
      errno = EINVAL;
      return false;
    }
    if (!c.empty() && c != ".") out.emplace_back(c);
    start = slash + 1;
  }
  return true;
}

// False when KINA_NO_OPENAT2 is set (a test knob: exercise the fallback walk).
inline bool inroot_openat2_allowed() {
  const char* v = std::getenv("KINA_NO_OPENAT2");
  return !(v && *v && std::string_view(v) != "0");
}

class InRoot {
 public:
  enum class Symlinks { refuse, in_root };

  // Opens `name` under dirfd (AT_FDCWD: a path) as a root: a directory, not a
  // symlink (ELOOP or ENOTDIR otherwise). valid() tells; errno is kept.
  InRoot(int dirfd, const char* name, Symlinks mode, bool try_openat2 = inroot_openat2_allowed()) : mode_(mode) {
    root_ = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root_ >= 0) use_openat2_ = try_openat2 && probe_openat2();
  }
  // Uses a duplicate of an open directory descriptor as the root.
  InRoot(int root_fd, Symlinks mode, bool try_openat2 = inroot_openat2_allowed()) : mode_(mode) {
    root_ = ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    if (root_ >= 0) use_openat2_ = try_openat2 && probe_openat2();
  }
  ~InRoot() {
    if (root_ >= 0) ::close(root_);
  }
  InRoot(const InRoot&) = delete;
  InRoot& operator=(const InRoot&) = delete;

  bool valid() const { return root_ >= 0; }
  int root_fd() const { return root_; }
  bool uses_openat2() const { return use_openat2_; }
  Symlinks mode() const { return mode_; }
  // Parent directories created because an entry needed them.
  uint64_t created_dirs() const { return created_; }

  // Opens (O_PATH) the directory made of the first n components of comps,
  // resolved inside the root. Missing directories are created 0755 when
  // `create`. Returns the descriptor, or -1 with errno (ELOOP: a symlink in
  // refuse mode, or too many of them; ENOTDIR: a component is not a directory).
  int open_dir(const std::vector<std::string>& comps, size_t n, bool create) const {
    return open_dir(comps, n, create, mode_);
  }

  // Makes `name` in the directory pfd (a descriptor open_dir gave) a hard
  // link to the entry `target` of this root. The target is resolved with no
  // symlink on the way and is never followed itself (a link to a symlink
  // links the symlink); a directory target is EISDIR, the root itself EINVAL.
  int link(const std::vector<std::string>& target, int pfd, const char* name) const {
    if (target.empty()) {
      errno = EINVAL;
      return -1;
    }
    int tp = open_dir(target, target.size() - 1, false, Symlinks::refuse);
    if (tp < 0) return -1;
    struct stat sb {};
    int rc = ::fstatat(tp, target.back().c_str(), &sb, AT_SYMLINK_NOFOLLOW);
    if (rc == 0 && S_ISDIR(sb.st_mode)) {
      errno = EISDIR;
      rc = -1;
    }
    if (rc == 0) rc = ::linkat(tp, target.back().c_str(), pfd, name, 0);
    int saved = errno;
    ::close(tp);
    errno = saved;
    return rc;
  }

  // Makes `comps` a symlink to `target` (stored as is: never followed by
  // kina), replacing a non-directory already there. For senders whose
  // symlinks are made last (deferred), after every other entry, so that no
  // entry of the same stream can be resolved through one.
  int symlink(const std::vector<std::string>& comps, const std::string& target) const {
    if (comps.empty()) {
      errno = EINVAL;
      return -1;
    }
    int pfd = open_dir(comps, comps.size() - 1, false);
    if (pfd < 0) return -1;
    const char* name = comps.back().c_str();
    struct stat sb {};
    int rc = 0;
    if (::fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(sb.st_mode)) {
        errno = EISDIR;
        rc = -1;
      } else {
        rc = ::unlinkat(pfd, name, 0);
      }
    }
    if (rc == 0) rc = ::symlinkat(target.c_str(), pfd, name);
    int saved = errno;
    ::close(pfd);
    errno = saved;
    return rc;
  }

 private:
  bool probe_openat2() const {
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    long fd = ::syscall(SYS_openat2, root_, ".", &how, sizeof how);
    if (fd < 0) return false;
    ::close(static_cast<int>(fd));
    return true;
  }

  static std::string join(const std::vector<std::string>& comps, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      if (i) s += '/';
      s += comps[i];
    }
    return s.empty() ? "." : s;
  }

  int open_dir(const std::vector<std::string>& comps, size_t n, bool create, Symlinks mode) const {
    if (use_openat2_) {
      open_how how{};
      how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
      how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (mode == Symlinks::refuse ? RESOLVE_NO_SYMLINKS : 0);
      std::string path = join(comps, n);
      for (;;) {
        long fd = ::syscall(SYS_openat2, root_, path.c_str(), &how, sizeof how);
        if (fd >= 0) return static_cast<int>(fd);
        if (errno != EAGAIN) break;
      }
      // Something is missing: create it with the walk, which also handles a
      // dangling symlink used as a directory (var/run -> /run before run
      // exists) by creating its target inside the root, as docker does. It
      // is linear in the path; re-resolving every prefix with openat2 was
      // quadratic (a 2000-component path cost 2 million lookups per entry).
      if (errno != ENOENT || !create) return -1;
    }
    return open_dir_walk(comps, n, create, mode);
  }

  // The fallback: one component at a time with O_NOFOLLOW; in in_root mode
  // symlinks are read and their targets walked again from the root
  // (absolute) or from the current stack (relative); ".." never climbs above
  // the root.
  int open_dir_walk(const std::vector<std::string>& comps, size_t n, bool create, Symlinks mode) const {
    std::deque<std::string> todo(comps.begin(), comps.begin() + static_cast<long>(n));
    std::vector<std::string> stack;
    std::vector<std::pair<dev_t, ino_t>> ids;  // (dev, ino) of each directory on the stack
    int cur = ::openat(root_, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) return -1;
    struct stat rb {};
    if (::fstat(cur, &rb) != 0) return fail(cur, errno);
    const std::pair<dev_t, ino_t> root_id{rb.st_dev, rb.st_ino};
    int links = 0;
    auto reopen = [&]() -> bool {
      int fd = ::openat(root_, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
      for (const auto& c : stack) {
        if (fd < 0) break;
        int next = ::openat(fd, c.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        ::close(fd);
        errno = saved;
        fd = next;
      }
      if (fd < 0) return false;
      ::close(cur);
      cur = fd;
      return true;
    };
    while (!todo.empty()) {
      std::string c = std::move(todo.front());
      todo.pop_front();
      if (c.empty() || c == ".") continue;
      if (c == "..") {  // only from a symlink target (in_root mode)
        if (stack.empty()) continue;  // ".." of the root is the root
        stack.pop_back();
        ids.pop_back();
        // The parent in one step when it is the directory the stack says
        // (always, in a tree nobody else writes); else walk again from the
        // root. Re-walking for every ".." was quadratic.
        int up = ::openat(cur, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat ub {};
        auto want = ids.empty() ? root_id : ids.back();
        if (up >= 0 && ::fstat(up, &ub) == 0 && ub.st_dev == want.first && ub.st_ino == want.second) {
          ::close(cur);
          cur = up;
        } else {
          if (up >= 0) ::close(up);
          if (!reopen()) return fail(cur, errno);
        }
        continue;
      }
      struct stat sb {};
      if (::fstatat(cur, c.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT || !create) return fail(cur, errno);
        if (::mkdirat(cur, c.c_str(), 0755) != 0) return fail(cur, errno);
        ++created_;
        if (::fstatat(cur, c.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) return fail(cur, errno);
      }
      if (S_ISLNK(sb.st_mode)) {
        if (mode == Symlinks::refuse || ++links > 40) return fail(cur, ELOOP);
        std::string target(PATH_MAX, '\0');
        ssize_t len = ::readlinkat(cur, c.c_str(), target.data(), target.size());
        if (len < 0) return fail(cur, errno);
        target.resize(static_cast<size_t>(len));
        std::vector<std::string> parts;
        size_t start = 0;
        while (start <= target.size()) {
          size_t slash = target.find('/', start);
          if (slash == std::string::npos) slash = target.size();
          if (slash > start) parts.push_back(target.substr(start, slash - start));
          start = slash + 1;
        }
        todo.insert(todo.begin(), parts.begin(), parts.end());
        if (!target.empty() && target[0] == '/') {
          stack.clear();
          ids.clear();
          if (!reopen()) return fail(cur, errno);
        }
        continue;
      }
      if (!S_ISDIR(sb.st_mode)) return fail(cur, ENOTDIR);
      int next = ::openat(cur, c.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0) return fail(cur, errno);
      ::close(cur);
      cur = next;
      stack.push_back(std::move(c));
      ids.emplace_back(sb.st_dev, sb.st_ino);
    }
    return cur;
  }

  static int fail(int fd, int err) {
    if (fd >= 0) ::close(fd);
    errno = err;
    return -1;
  }

  int root_ = -1;
  Symlinks mode_;
  bool use_openat2_ = false;
  mutable uint64_t created_ = 0;
};

}  // namespace kina
