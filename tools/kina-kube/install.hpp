// install.hpp: installing a set of files under a directory all together or not
// at all (pki export, pki issue): staged in full first, then renamed into place,
// with every step undone when one fails.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/interrupt.hpp"

#include "sweep.hpp"

namespace kina::kube {

// A file to install under a directory: its path relative to it, contents, mode.
struct Staged {
  fsys::path rel;
  std::string_view data;
  mode_t mode;
};

// Refuses, before anything is written, a set that cannot be installed into the
// existing directory `dir`: a target that exists and is not a regular file, or
// whose parent exists and is not a directory. Nothing that is not a regular
// file is ever replaced.
inline Status check_targets(const fsys::path& dir, const std::vector<Staged>& files) {
  struct stat st {};
  for (const auto& f : files) {
    fsys::path p = dir / f.rel;
    if (::lstat(p.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      return make_error(Exit::cant_create, fmt::format("cannot write {}", p.string()), "exists and is not a regular file");
    if (f.rel.has_parent_path() && ::lstat((dir / f.rel.parent_path()).c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
      return make_error(Exit::cant_create, fmt::format("cannot write {}", p.string()),
                        fmt::format("{} exists and is not a directory", (dir / f.rel.parent_path()).string()));
  }
  return {};
}

// One file moved into place: `exchanged` when an older file was swapped out
// (it is then at `staged`), else the target was new.
struct Moved {
  fsys::path staged, target;
  bool exchanged;
};

// Puts back what `done` moved in, newest first: an exchanged file trades
// places again (the old one returns), a new one is removed; then the
// directories made for them, newest first.
inline void roll_back(const std::vector<Moved>& done, const std::vector<fsys::path>& made_dirs) {
  for (auto it = done.rbegin(); it != done.rend(); ++it) {
    if (it->exchanged) (void)::renameat2(AT_FDCWD, it->staged.c_str(), AT_FDCWD, it->target.c_str(), RENAME_EXCHANGE);
    else (void)::unlink(it->target.c_str());
  }
  for (auto it = made_dirs.rbegin(); it != made_dirs.rend(); ++it) (void)::rmdir(it->c_str());
}

// Moves the files staged under `tmp` into the existing `dir` one by one (an
// older file swapped out with RENAME_EXCHANGE, a new one renamed with
// RENAME_NOREPLACE); on the first failure every step before it is rolled back
// and `dir` is as it was.
inline Status move_in(const fsys::path& tmp, const fsys::path& dir, const std::vector<Staged>& files) {
  std::vector<Moved> done;
  std::vector<fsys::path> made_dirs;
  auto undo = [&](Error e) {
    roll_back(done, made_dirs);
    return e;
  };
  std::error_code ec;
  struct stat st {};
  for (const auto& f : files) {
    fsys::path staged = tmp / f.rel, target = dir / f.rel;
    if (f.rel.has_parent_path() && !fsys::is_directory(target.parent_path(), ec)) {
      if (::mkdir(target.parent_path().c_str(), 0700) != 0)
        return undo(os_error(fmt::format("creating directory {}", target.parent_path().string()), errno, Exit::cant_create));
      made_dirs.push_back(target.parent_path());
    }
    bool replace = ::lstat(target.c_str(), &st) == 0;
    if (replace && !S_ISREG(st.st_mode))
      return undo(make_error(Exit::cant_create, fmt::format("cannot write {}", target.string()), "exists and is not a regular file"));
    if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), replace ? RENAME_EXCHANGE : RENAME_NOREPLACE) != 0)
      return undo(os_error(fmt::format("moving {} into place", target.string()), errno, Exit::cant_create));
    done.push_back({staged, target, replace});
  }
  return {};
}

// Installs `files` under `dir` all together or not at all. Every file is first
// written in full into a temporary directory (mode 0700) on the same file
// system. A missing `dir` is then that temporary directory renamed into place;
// an existing one gets each file moved in (move_in), and a failure midway
// moves every file back. Nothing that is not a regular file is ever replaced.
// Given `intr`, SIGINT, SIGTERM and SIGHUP wait until DIR is either as it was
// or complete and the staging directory (clear keys) is gone; a kill -9 leaves
// the staging directory, named with the pid, for the next run to sweep.
inline Status install_files(const fsys::path& dir, const std::vector<Staged>& files, const Interrupts* intr = nullptr) {
  return Interrupts::critical(intr, [&]() -> Status {
    std::error_code ec;
    struct stat st {};
    bool exists = ::stat(dir.c_str(), &st) == 0;  // DIR itself may be a symlink the user chose
    if (exists && !S_ISDIR(st.st_mode))
      return make_error(Exit::cant_create, fmt::format("cannot write into {}", dir.string()), "exists and is not a directory");
    if (exists) {
      if (auto s = check_targets(dir, files); !s) return s;
    } else if (auto s = ensure_dir(dir.parent_path(), 0700); !s) {
      return s;
    }
    fsys::path base = exists ? dir : dir.parent_path();
    std::string stem = fmt::format(".{}.tmp.", exists ? "kina-kube" : dir.filename().string());
    sweep_dead_temps(base, stem);
    std::string tmpl = (base / fmt::format("{}{}.XXXXXX", stem, ::getpid())).string();
    if (!::mkdtemp(tmpl.data())) return os_error(fmt::format("creating a directory in {}", base.string()), errno, Exit::cant_create);
    fsys::path tmp = tmpl;
    struct RemoveTmp {
      const fsys::path& p;
      ~RemoveTmp() {
        std::error_code rec;
        fsys::remove_all(p, rec);
      }
    } remove_tmp{tmp};
    for (const auto& f : files) {
      if (f.rel.has_parent_path())
        if (auto s = ensure_dir(tmp / f.rel.parent_path(), 0700); !s) return s;
      if (auto s = write_file_atomic(tmp / f.rel, f.data, f.mode); !s) return s;
    }
    if (!exists) {
      if (::rename(tmp.c_str(), dir.c_str()) != 0)
        return os_error(fmt::format("renaming into {}", dir.string()), errno, Exit::cant_create);
      return fsync_dir(dir.parent_path());
    }
    if (auto s = move_in(tmp, dir, files); !s) return s;
    std::vector<fsys::path> dirs{dir};
    for (const auto& f : files)
      if (f.rel.has_parent_path()) dirs.push_back(dir / f.rel.parent_path());
    for (const auto& d : dirs)
      if (auto s = fsync_dir(d); !s) return s;
    return {};
  });
}

}  // namespace kina::kube
