// noreplace.hpp: the last step of every atomic output (rootfs directory, disk,
// export archive): a rename that never replaces what appeared at the target.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "kina/fs.hpp"

namespace kina::image {

// Renames `from` to `to` only if `to` does not exist (no check-then-rename
// race: a directory or file created at `to` meanwhile is never replaced).
// EEXIST when it exists; filesystems without RENAME_NOREPLACE fall back to a
// link (files) or a checked rename (directories).
inline int rename_noreplace(const fsys::path& from, const fsys::path& to, bool is_dir) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  if (!is_dir) {
    if (::link(from.c_str(), to.c_str()) != 0) return -1;
    (void)::unlink(from.c_str());
    return 0;
  }
  struct stat sb {};
  if (::lstat(to.c_str(), &sb) == 0) {
    errno = EEXIST;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

}  // namespace kina::image
