// unpack.hpp: turns an image of the store into a root directory (applied into
// a private temporary directory, renamed at the end) and optionally an ext4 disk.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <fmt/format.h>

#include "image.hpp"
#include "kina/fs.hpp"
#include "kina/process.hpp"
#include "layer.hpp"
#include "noreplace.hpp"
#include "temp.hpp"

namespace kina::image {

struct TreeStats {
  uint64_t files = 0;  // every entry but the root
  uint64_t bytes = 0;  // apparent size of regular files (each inode once)
};

inline void tree_stats(int dirfd, TreeStats& st, std::unordered_set<uint64_t>& seen) {
  (void)detail::walk_tree(
      dirfd,
      [&](int, const char*, const struct stat& sb) {
        ++st.files;
        if (S_ISREG(sb.st_mode) && seen.insert(static_cast<uint64_t>(sb.st_ino)).second) st.bytes += static_cast<uint64_t>(sb.st_size);
        return S_ISDIR(sb.st_mode) ? 1 : 0;
      },
      [](int, const char*) { return 0; });
}

// Removes a directory tree we created (never following symlinks).
inline void remove_tree(const fsys::path& p) {
  UniqueFd parent(::open(p.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent.valid()) (void)detail::remove_at(parent.get(), p.filename().c_str());
}

// Applies the image's layers in order on `root_fd`, checking each layer's
// digest and DiffID. Used by unpack and by the layer fuzzer.
inline Status apply_layers(const Store& store, const ImageInfo& img, int root_fd, const Limits& limits, RootMeta& meta) {
  RootResolver res(root_fd);
  ApplyCounters counters;
  LayerApplier applier(res, limits, counters, meta);
  for (const auto& l : img.layers) {
    UniqueFd fd(::open(store.blob_path(l.desc.digest).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
      return make_error(errno == ENOENT ? Exit::no_input : Exit::os, fmt::format("layer {}", l.desc.digest.str()),
                        errno == ENOENT ? "not in the store" : std::strerror(errno), "pull or import the image again");
    auto h = applier.apply(fd.get(), l.desc.digest.str());
    if (!h) return h.error();
    if (!(h->compressed == l.desc.digest))
      return make_error(Exit::data, fmt::format("layer {}", l.desc.digest.str()),
                        fmt::format("content has digest {} (corrupt store)", h->compressed.str()));
    if (!(h->diff_id == l.diff_id))
      return make_error(Exit::data, fmt::format("layer {}", l.desc.digest.str()),
                        fmt::format("uncompressed content has digest {} but the config says DiffID {}", h->diff_id.str(),
                                    l.diff_id.str()));
  }
  return {};
}

struct UnpackResult {
  TreeStats stats;
};

// Unpacks into `out` (which must not exist): a 0700 temporary sibling is
// filled, given the root entry's metadata, then renamed into place.
inline Result<UnpackResult> unpack_rootfs(const Store& store, const ImageInfo& img, const fsys::path& out, const Limits& limits) {
  struct stat sb {};
  if (::lstat(out.c_str(), &sb) == 0)
    return make_error(Exit::cant_create, fmt::format("unpacking into {}", out.string()), "it already exists",
                      "remove it or choose another --rootfs");
  fsys::path parent = out.parent_path();
  if (parent.empty()) parent = ".";
  if (auto st = ensure_dir(parent, 0700); !st) return st.error();
  // A 0700 directory of our own, locked while we fill it; what a killed
  // unpack left next to the same target goes first.
  std::string prefix = "." + out.filename().string() + ".kina-tmp.";
  sweep_stale(parent, prefix);
  auto tmp = Temp::make(parent, prefix, true, store.interrupts());
  if (!tmp) return tmp.error();
  int root = tmp->fd();
  RootMeta meta;
  if (auto st = apply_layers(store, img, root, limits, meta); !st) return st.error();
  UnpackResult r;
  std::unordered_set<uint64_t> seen;
  tree_stats(root, r.stats, seen);
  if (::geteuid() == 0 && meta.seen && ::fchown(root, meta.uid, meta.gid) != 0) return os_error("setting the owner of the root");
  if (::fchmod(root, meta.seen ? meta.mode : 0755) != 0) return os_error("setting the mode of the root");
  if (meta.seen) {
    timespec t[2] = {meta.mtime, meta.mtime};
    (void)::futimens(root, t);
  }
  if (tmp->keep_as(out, store.interrupts()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY)
      return make_error(Exit::cant_create, fmt::format("unpacking into {}", out.string()), "it was created while unpacking",
                        "remove it or choose another --rootfs");
    return os_error(fmt::format("renaming into {}", out.string()), errno, Exit::cant_create);
  }
  if (auto st = fsync_dir(parent); !st) return st.error();
  return r;
}

// An ext4 image of a finished root directory: mke2fs -d keeps owners, modes,
// xattrs, hardlinks and device nodes; e2fsck -fn must find it clean.
inline Status make_disk(const fsys::path& rootfs, const fsys::path& disk, uint64_t size_bytes, const TreeStats& st,
                        const Interrupts* intr = nullptr) {
  struct stat sb {};
  if (::lstat(disk.c_str(), &sb) == 0)
    return make_error(Exit::cant_create, fmt::format("creating disk {}", disk.string()), "it already exists");
  if (size_bytes == 0) {
    // Content plus headroom: 30% + 64 MiB, and room for the inodes.
    uint64_t want = st.bytes + st.bytes * 3 / 10 + (64ull << 20) + st.files * 512;
    size_bytes = (want + (1u << 20) - 1) & ~((1ull << 20) - 1);
  }
  fsys::path parent = disk.parent_path().empty() ? fsys::path(".") : disk.parent_path();
  // A fresh 0600 file of our own (O_EXCL): never a name another process may
  // be using or may have planted a symlink at (mke2fs opens it by name).
  std::string prefix = "." + disk.filename().string() + ".kina-tmp.";
  sweep_stale(parent, prefix);
  auto tmpf = Temp::make(parent, prefix, false, intr);
  if (!tmpf) return tmpf.error();
  std::string tmp = tmpf->path().string();
  ProcessSpec mk;
  uint64_t inodes = st.files + 16384;
  mk.argv = {"mke2fs", "-q", "-F", "-t", "ext4", "-N", std::to_string(inodes), "-E", "root_owner=0:0", "-d", rootfs.string(), tmp,
             std::to_string(size_bytes / 1024) + "k"};
  mk.env = build_env({"PATH"}, {"PATH=/usr/sbin:/sbin:/usr/bin:/bin", "E2FSPROGS_FAKE_TIME="});
  mk.timeout = std::chrono::hours(1);
  if (auto r = run_checked(mk, fmt::format("creating disk {}", disk.string()), Exit::cant_create, "give a larger --disk-size"); !r)
    return r.error();
  ProcessSpec ck;
  ck.argv = {"e2fsck", "-fn", tmp};
  ck.timeout = std::chrono::hours(1);
  ck.env = mk.env;
  if (auto c = run_checked(ck, fmt::format("checking disk {}", disk.string()), Exit::internal); !c) return c.error();
  if (tmpf->keep_as(disk, intr) != 0) {
    int err = errno;
    if (err == EEXIST) return make_error(Exit::cant_create, fmt::format("creating disk {}", disk.string()), "it was created meanwhile");
    return os_error(fmt::format("renaming into {}", disk.string()), err, Exit::cant_create);
  }
  return fsync_dir(parent);
}

}  // namespace kina::image
