// install.hpp: installing a set of files under a directory all together or not
// at all (pki export, pki issue): staged in full first, then renamed into place,
// with every step undone when one fails.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/inroot.hpp"
#include "kina/interrupt.hpp"
#include "kina/lock.hpp"

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

// The journal of a move into an existing directory, written into the staging
// directory before the first move: a header line, then `d<TAB>REL` for each
// directory move_in will make and `f<TAB>DEV:INO<TAB>REL` for each staged
// file, known by its inode, which a rename keeps.
inline constexpr std::string_view kMovesJournal = ".kina-moves";
inline constexpr std::string_view kMovesHeader = "kina-kube moves 1";

struct MovesJournal {
  struct File {
    unsigned long long dev, ino;
    fsys::path rel;
  };
  std::vector<fsys::path> dirs;
  std::vector<File> files;
};

inline std::string format_moves_journal(const MovesJournal& j) {
  std::string out = fmt::format("{}\n", kMovesHeader);
  for (const auto& d : j.dirs) out += fmt::format("d\t{}\n", d.string());
  for (const auto& f : j.files) out += fmt::format("f\t{}:{}\t{}\n", f.dev, f.ino, f.rel.string());
  return out;
}

inline Status write_moves_journal(const fsys::path& tmp, const fsys::path& dir, const std::vector<Staged>& files) {
  MovesJournal j;
  std::error_code ec;
  struct stat st {};
  for (const auto& f : files) {
    std::string rel = f.rel.string();
    if (rel == kMovesJournal || rel.find_first_of("\t\n") != std::string::npos)
      return make_error(Exit::internal, fmt::format("cannot install {}", rel), "a name the journal cannot hold");
    if (f.rel.has_parent_path() && !fsys::is_directory(dir / f.rel.parent_path(), ec) &&
        std::find(j.dirs.begin(), j.dirs.end(), f.rel.parent_path()) == j.dirs.end())
      j.dirs.push_back(f.rel.parent_path());
    if (::lstat((tmp / f.rel).c_str(), &st) != 0) return os_error(fmt::format("reading {}", (tmp / f.rel).string()), errno, Exit::io);
    j.files.push_back({static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino), f.rel});
  }
  return write_file_atomic(tmp / kMovesJournal, format_moves_journal(j), 0600);
}

// A journal read back (format_moves_journal): directories and files in the
// order they were written. Nothing is returned for a journal that is torn
// (its last line has no newline: then no move had begun), not kina's, or
// has a line of any other shape, among them a path that is absolute or has
// a `.` or `..` component: such a journal is not acted on at all.
inline std::optional<MovesJournal> parse_moves_journal(std::string_view text) {
  auto safe = [](std::string_view rel) {
    return !rel.empty() && rel.find('\0') == std::string_view::npos && safe_relative(rel);
  };
  if (!text.empty() && text.back() != '\n') return std::nullopt;
  MovesJournal j;
  bool header = false;
  for (std::string_view rest = text; !rest.empty();) {
    size_t nl = rest.find('\n');
    std::string_view l = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    if (!header) {
      if (l != kMovesHeader) return std::nullopt;
      header = true;
    } else if (l.rfind("d\t", 0) == 0) {
      if (!safe(l.substr(2))) return std::nullopt;
      j.dirs.emplace_back(l.substr(2));
    } else if (l.rfind("f\t", 0) == 0) {
      l.remove_prefix(2);
      size_t colon = l.find(':'), tab = l.find('\t');
      if (colon == std::string_view::npos || tab == std::string_view::npos || colon > tab) return std::nullopt;
      MovesJournal::File f{};
      auto [d_end, d_err] = std::from_chars(l.data(), l.data() + colon, f.dev);
      auto [i_end, i_err] = std::from_chars(l.data() + colon + 1, l.data() + tab, f.ino);
      if (d_err != std::errc() || i_err != std::errc() || d_end != l.data() + colon || i_end != l.data() + tab)
        return std::nullopt;
      if (!safe(l.substr(tab + 1))) return std::nullopt;
      f.rel = l.substr(tab + 1);
      j.files.push_back(std::move(f));
    } else {
      return std::nullopt;
    }
  }
  if (!header) return std::nullopt;
  return j;
}

// Puts back, by its journal, what a process killed (kill -9) while moving
// files from `tmp` into `dir` had moved: whatever step the kill hit, each
// file's state is read from the file system. A staged file still in `tmp`
// was not moved; one now at its target was either swapped with an older
// file (which is then in `tmp`: they trade places again) or was new there
// (removed); anything else at the target is no longer ours and is left.
// Then the directories the move made, if empty. Newest first, as roll_back.
inline void recover_moves(const fsys::path& dir, const fsys::path& tmp) {
  auto text = read_file(tmp / kMovesJournal, 1 << 20);
  if (!text) return;
  auto j = parse_moves_journal(*text);
  if (!j) return;
  for (auto it = j->files.rbegin(); it != j->files.rend(); ++it) {
    fsys::path staged = tmp / it->rel, target = dir / it->rel;
    struct stat s {}, t {};
    bool in_tmp = ::lstat(staged.c_str(), &s) == 0;
    if (in_tmp && s.st_dev == it->dev && s.st_ino == it->ino) continue;  // never moved
    if (::lstat(target.c_str(), &t) != 0 || !S_ISREG(t.st_mode) || t.st_dev != it->dev || t.st_ino != it->ino) continue;
    bool back = in_tmp ? ::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0
                       : ::unlink(target.c_str()) == 0;
    if (back)
      info(kTool, fmt::format("{} {}, moved in by an interrupted run", in_tmp ? "put back the previous" : "removed",
                              target.string()));
  }
  for (auto it = j->dirs.rbegin(); it != j->dirs.rend(); ++it) (void)::rmdir((dir / *it).c_str());
  (void)fsync_dir(dir);
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
// the staging directory, named with the pid, for the next run into DIR to
// sweep, which first puts back what the killed run had moved in (its journal,
// write_moves_journal): a mix of old and new files lasts until that run.
// One install into DIR at a time: the whole of it runs under DIR's lock
// (lock_path_for: $KINA_HOME/locks/, nothing is created beside DIR), so two
// runs never interleave their moves and a sweep never puts back files while a
// live run is moving them. A run that waits longer than kInstallLockWait
// fails with 75, naming the holder.
inline constexpr std::chrono::seconds kInstallLockWait{60};
inline Status install_files(const fsys::path& dir, const std::vector<Staged>& files, const Interrupts* intr = nullptr) {
  auto lock = FileLock::acquire_for(dir, kInstallLockWait, "kina-kube install");
  if (!lock) return lock.error();
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
    // (A dead run into a new DIR staged the whole directory: no journal, nothing to put back.)
    sweep_dead_temps(base, stem, [&](const fsys::path& dead) { recover_moves(dir, dead); });
    // (no signal removes it: a signal waits for this critical section)
    auto staging = ScopedTempDir::make(base, stem);
    if (!staging) return staging.error();
    const fsys::path& tmp = staging->path();
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
    if (auto s = write_moves_journal(tmp, dir, files); !s) return s;
    if (auto s = move_in(tmp, dir, files); !s) return s;
    // Complete: a kill from here on keeps the new files (the staging
    // directory, holding the old ones, is removed next in any case).
    (void)::unlink((tmp / kMovesJournal).c_str());
    (void)fsync_dir(tmp);
    std::vector<fsys::path> dirs{dir};
    for (const auto& f : files)
      if (f.rel.has_parent_path()) dirs.push_back(dir / f.rel.parent_path());
    for (const auto& d : dirs)
      if (auto s = fsync_dir(d); !s) return s;
    return {};
  });
}

}  // namespace kina::kube
