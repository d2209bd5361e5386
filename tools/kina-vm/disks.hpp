// disks.hpp: the ext4 disks of qemu machines: the shared read-only base disk
// built once per root directory, the modules disk built once per kernel, and
// the mke2fs call that builds both.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kernel.hpp"
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/lock.hpp"
#include "kina/process.hpp"
#include "kina/sha256.hpp"

namespace kina::vm {

inline Result<uint64_t> tree_bytes(const fsys::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fsys::recursive_directory_iterator(dir, fsys::directory_options::none, ec);
       !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_blocks) * 512 + 4096;
  }
  if (ec) return os_error(fmt::format("reading {}", dir.string()), ec.value(), Exit::no_input);
  return total;
}

// An ext4 image of DIR (owners, modes kept) at OUT, written to a temp file
// (.OUT.tmp.PID.XXXXXX) and renamed, so a crash never leaves a half-built
// disk under the final name; the temporaries of builds killed with -9 are
// swept first. The caller holds the lock of OUT's directory.
inline Status make_ext4(const fsys::path& dir, const fsys::path& out, uint64_t extra_bytes, const std::string& label) {
  auto used = tree_bytes(dir);
  if (!used) return used.error();
  uint64_t size = (*used + *used / 4 + extra_bytes + (64u << 20)) / (1u << 20) * (1u << 20);
  std::string stem = fmt::format(".{}.tmp.", out.filename().string());
  sweep_dead_temps(out.parent_path(), stem);
  std::string tmpl = (out.parent_path() / fmt::format("{}{}.XXXXXX", stem, ::getpid())).string();
  {
    UniqueFd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
    if (!fd.valid()) return os_error(fmt::format("creating a temporary file in {}", out.parent_path().string()), errno, Exit::cant_create);
    if (::fchmod(fd.get(), 0644) != 0) {
      int e = errno;
      ::unlink(tmpl.c_str());
      return os_error(fmt::format("creating {}", tmpl), e, Exit::cant_create);
    }
  }
  fsys::path tmp = tmpl;
  ProcessSpec spec;
  spec.argv = {"mke2fs", "-q", "-F", "-t", "ext4", "-L", label, "-d", dir.string(), tmp.string(),
               fmt::format("{}k", size / 1024)};
  spec.timeout = std::chrono::minutes(10);
  auto r = run_writing(spec, fmt::format("building an ext4 disk from {}", dir.string()), out.parent_path(), Exit::cant_create);
  if (!r) {
    std::error_code ec;
    fsys::remove(tmp, ec);
    return r.error();
  }
  if (::rename(tmp.c_str(), out.c_str()) != 0) {
    int e = errno;
    std::error_code ec;
    fsys::remove(tmp, ec);
    return os_error(fmt::format("renaming {}", tmp.string()), e, Exit::cant_create);
  }
  return {};
}

// The modules disk of a kernel, built once (under the kernel lock).
inline Result<fsys::path> modules_disk(const Kernel& k) {
  auto root = kernel_root();
  if (!root) return root.error();
  fsys::path dir = *root / k.version;
  if (auto st = ensure_dir(dir, 0755); !st) return st.error();
  fsys::path disk = dir / "modules.ext4";
  auto lock = FileLock::acquire(dir / "lock", std::chrono::minutes(5), "kina-vm modules disk");
  if (!lock) return lock.error();
  if (fsys::exists(disk)) return disk;
  if (!fsys::is_directory(k.modules))
    return make_error(Exit::no_input, "kernel modules", fmt::format("{} is not a directory", k.modules.string()));
  if (auto st = make_ext4(k.modules, disk, 0, "kina-modules"); !st) return st.error();
  return disk;
}

// A key for the shared base disk of a root directory: its path and the
// metadata of everything in it, so a changed tree gets a new base.
inline Result<std::string> tree_key(const fsys::path& dir) {
  Sha256 h;
  h.update(fsys::canonical(dir).string());
  std::error_code ec;
  std::vector<std::string> lines;
  for (auto it = fsys::recursive_directory_iterator(dir, ec); !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    lines.push_back(fmt::format("{} {} {} {} {} {}\n", it->path().string(), st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec));
  }
  if (ec) return os_error(fmt::format("reading {}", dir.string()), ec.value(), Exit::no_input);
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) h.update(l);
  return to_hex(h.finish()).substr(0, 32);
}

// The shared, read-only base disk for a root directory (built once).
inline Result<fsys::path> base_disk(const fsys::path& rootfs) {
  auto key = tree_key(rootfs);
  if (!key) return key.error();
  auto dir = kina_subdir("disks");
  if (!dir) return dir.error();
  fsys::path disk = *dir / ("base-" + *key + ".ext4");
  auto lock = FileLock::acquire(*dir / "lock", std::chrono::minutes(10), "kina-vm boot");
  if (!lock) return lock.error();
  if (fsys::exists(disk)) return disk;
  if (auto st = make_ext4(rootfs, disk, 2ull << 30, "kina-root"); !st) return st.error();
  ::chmod(disk.c_str(), 0444);
  return disk;
}

}  // namespace kina::vm
