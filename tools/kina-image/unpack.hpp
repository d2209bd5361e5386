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

#include "disk.hpp"
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

// A layer blob of the store, open for reading.
template <class Layer>
Result<UniqueFd> open_layer(const Store& store, const Layer& l) {
  UniqueFd fd(::open(store.blob_path(l.desc.digest).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return make_error(errno == ENOENT ? Exit::no_input : Exit::os, fmt::format("layer {}", l.desc.digest.str()),
                      errno == ENOENT ? "not in the store" : std::strerror(errno), "pull or import the image again");
  return fd;
}

// The digests read_layer computed against the manifest's and the config's.
template <class Layer>
Status check_layer_hashes(const Layer& l, const LayerHashes& h) {
  if (!(h.compressed == l.desc.digest))
    return make_error(Exit::data, fmt::format("layer {}", l.desc.digest.str()),
                      fmt::format("content has digest {} (corrupt store)", h.compressed.str()));
  if (!(h.diff_id == l.diff_id))
    return make_error(Exit::data, fmt::format("layer {}", l.desc.digest.str()),
                      fmt::format("uncompressed content has digest {} but the config says DiffID {}", h.diff_id.str(), l.diff_id.str()));
  return {};
}

// Applies the image's layers in order on `root_fd`, checking each layer's
// digest and DiffID. Used by unpack and by the layer fuzzer.
inline Status apply_layers(const Store& store, const ImageInfo& img, int root_fd, const Limits& limits, RootMeta& meta) {
  RootResolver res(root_fd);
  ApplyCounters counters;
  LayerApplier applier(res, limits, counters, meta);
  for (const auto& l : img.layers) {
    auto fd = open_layer(store, l);
    if (!fd) return fd.error();
    auto h = applier.apply(fd->get(), l.desc.digest.str());
    if (!h) return h.error();
    if (auto st = check_layer_hashes(l, *h); !st) return st;
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

// Runs mke2fs on `file` (ext4, root-owned root; `rootfs` copied in with -d
// when given; `inodes` 0: mke2fs's default for the size).
inline Status run_mke2fs(const std::string& file, const fsys::path& disk, uint64_t size_bytes, uint64_t inodes,
                         const fsys::path& rootfs = {}) {
  ProcessSpec mk;
  mk.argv = {"mke2fs", "-q", "-F", "-t", "ext4"};
  if (inodes) mk.argv.insert(mk.argv.end(), {"-N", std::to_string(inodes)});
  mk.argv.insert(mk.argv.end(), {"-E", "root_owner=0:0"});
  if (!rootfs.empty()) mk.argv.insert(mk.argv.end(), {"-d", rootfs.string()});
  mk.argv.insert(mk.argv.end(), {file, std::to_string(size_bytes / 1024) + "k"});
  mk.env = build_env({"PATH"}, {"PATH=/usr/sbin:/sbin:/usr/bin:/bin", "E2FSPROGS_FAKE_TIME="});
  mk.timeout = std::chrono::hours(1);
  if (auto r = run_writing(mk, fmt::format("creating disk {}", disk.string()), disk.parent_path(), Exit::cant_create); !r) {
    Error e = r.error();
    if (e.exit == Exit::cant_create) e.hint = "give a larger --disk-size";
    return e;
  }
  return {};
}

// e2fsck -fn: the new filesystem must be clean.
inline Status run_e2fsck(const std::string& file, const fsys::path& disk) {
  ProcessSpec ck;
  ck.argv = {"e2fsck", "-fn", file};
  ck.timeout = std::chrono::hours(1);
  ck.env = build_env({"PATH"}, {"PATH=/usr/sbin:/sbin:/usr/bin:/bin", "E2FSPROGS_FAKE_TIME="});
  if (auto c = run_checked(ck, fmt::format("checking disk {}", disk.string()), Exit::internal); !c) return c.error();
  return {};
}

inline Status disk_absent(const fsys::path& disk) {
  struct stat sb {};
  if (::lstat(disk.c_str(), &sb) == 0)
    return make_error(Exit::cant_create, fmt::format("creating disk {}", disk.string()), "it already exists");
  return {};
}

inline Status keep_disk(Temp& tmpf, const fsys::path& disk, const fsys::path& parent, const Interrupts* intr) {
  if (tmpf.keep_as(disk, intr) != 0) {
    int err = errno;
    if (err == EEXIST) return make_error(Exit::cant_create, fmt::format("creating disk {}", disk.string()), "it was created meanwhile");
    return os_error(fmt::format("renaming into {}", disk.string()), err, Exit::cant_create);
  }
  return fsync_dir(parent);
}

// An ext4 image of a finished root directory: mke2fs -d keeps owners, modes,
// xattrs, hardlinks and device nodes; e2fsck -fn must find it clean.
inline Status make_disk(const fsys::path& rootfs, const fsys::path& disk, uint64_t size_bytes, const TreeStats& st,
                        const Interrupts* intr = nullptr) {
  if (auto st2 = disk_absent(disk); !st2) return st2;
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
  if (auto r = run_mke2fs(tmp, disk, size_bytes, st.files + 16384, rootfs); !r) return r;
  if (auto c = run_e2fsck(tmp, disk); !c) return c;
  return keep_disk(*tmpf, disk, parent, intr);
}

// The uncompressed size of a layer blob, from what it tells without being
// read: a gzip member's ISIZE trailer (when plausible: a single member under
// 4 GiB; deflate never shrinks data below about half), a plain tar's own
// size. Otherwise (zstd does not tell when streamed) a guess: 6 times the
// compressed size. `exact` says which.
inline uint64_t layer_size_hint(int fd, bool& exact) {
  exact = false;
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) return 0;
  auto size = static_cast<uint64_t>(sb.st_size);
  unsigned char head[4]{}, tail[4]{};
  if (size < 18 || ::pread(fd, head, 4, 0) != 4 || ::pread(fd, tail, 4, sb.st_size - 4) != 4) return size;
  if (head[0] == 0x1f && head[1] == 0x8b) {
    uint64_t isize = tail[0] | (tail[1] << 8) | (tail[2] << 16) | (static_cast<uint64_t>(tail[3]) << 24);
    exact = isize >= size / 2;
    return exact ? isize : size * 6;
  }
  if (head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd) return size * 6;  // zstd
  exact = true;
  return size;  // a plain tar
}

#if KINA_HAVE_EXT2FS

// Why write_disk gave up without an error of the image: the size was a
// guess (from the layers' sizes) and the disk filled up. The caller then
// takes the directory path, which measures the tree first.
struct DiskFallback {
  bool wanted = false;
  std::string why;
};

// Writes the image's layers straight into a new ext4 disk with libext2fs:
// mke2fs on an empty sparse temporary, every entry applied as the directory
// writer would (layer.hpp: same checks, caps and results), e2fsck -fn, then
// renamed into place. size_bytes 0: the layers' uncompressed size
// (layer_size_hint) plus 30% and 64 MiB.
inline Result<UnpackResult> write_disk(const Store& store, const ImageInfo& img, const fsys::path& disk, uint64_t size_bytes,
                                       const Limits& limits, const Interrupts* intr, DiskFallback& fallback) {
  if (auto st = disk_absent(disk); !st) return st.error();
  std::vector<UniqueFd> fds;
  uint64_t content = 0;
  for (const auto& l : img.layers) {
    auto fd = open_layer(store, l);
    if (!fd) return fd.error();
    bool exact = false;
    content += layer_size_hint(fd->get(), exact);
    fds.push_back(std::move(*fd));
  }
  // One inode per 4 KiB of tar (every entry is at least 512 bytes of it).
  uint64_t inodes = content / 4096 + 16384;
  bool guessed = size_bytes == 0;
  if (guessed) {
    // Content plus headroom (30% + 64 MiB), and 4 KiB per inode at least.
    uint64_t want = std::max<uint64_t>(content + content * 3 / 10 + (64ull << 20), inodes * 4096);
    size_bytes = (want + (1u << 20) - 1) & ~((1ull << 20) - 1);
  } else {
    // Never fewer than mke2fs gives for the size, nor more than one per
    // 8 KiB of disk (the inode tables must fit).
    inodes = std::min(std::max(inodes, size_bytes / 16384), size_bytes / 8192);
  }
  fsys::path parent = disk.parent_path().empty() ? fsys::path(".") : disk.parent_path();
  if (auto st = ensure_dir(parent, 0700); !st) return st.error();
  std::string prefix = "." + disk.filename().string() + ".kina-tmp.";
  sweep_stale(parent, prefix);
  auto tmpf = Temp::make(parent, prefix, false, intr);
  if (!tmpf) return tmpf.error();
  std::string tmp = tmpf->path().string();
  if (auto st = run_mke2fs(tmp, disk, size_bytes, inodes); !st) return st.error();
  ApplyCounters counters;
  Ext4Writer w(limits, counters);
  // Our own file, through our descriptor: never a name swapped meanwhile.
  if (auto st = w.open(fmt::format("/proc/self/fd/{}", tmpf->fd()), fmt::format("creating disk {}", disk.string()), parent); !st)
    return st.error();
  auto full = [&](Error e) -> Error {
    if (w.no_space && guessed) fallback = {true, "the disk the layers' size suggested is too small"};
    return e;
  };
  for (size_t i = 0; i < img.layers.size(); ++i) {
    auto h = w.apply(fds[i].get(), img.layers[i].desc.digest.str());
    if (!h) return full(h.error());
    if (auto st = check_layer_hashes(img.layers[i], *h); !st) return st.error();
    fds[i].reset();
  }
  auto stats = w.finish();
  if (!stats) return full(stats.error());
  if (auto st = run_e2fsck(tmp, disk); !st) return st.error();
  if (auto st = keep_disk(*tmpf, disk, parent, intr); !st) return st.error();
  UnpackResult r;
  r.stats.files = stats->files;
  r.stats.bytes = stats->bytes;
  return r;
}

#endif  // KINA_HAVE_EXT2FS

}  // namespace kina::image
