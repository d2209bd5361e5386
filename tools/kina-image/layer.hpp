// layer.hpp: applies OCI layers to a root directory without ever writing
// outside it. libarchive reads (and decompresses) the layer; every write is
// ours, on a parent directory resolved inside the root for each entry afresh
// (openat2 RESOLVE_IN_ROOT, or an O_NOFOLLOW walk that follows symlinks as if
// the root were "/"). Nothing is cached across entries, so an entry cannot
// redirect a later one through a path resolved earlier.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "acl.hpp"
#include "xattrs.hpp"
#include "archive_error.hpp"
#include "archive_reader.hpp"
#include "digest.hpp"
#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/inroot.hpp"
#include "kina/sha256.hpp"
#include "kina/validate.hpp"

namespace kina::image {

struct Limits {
  uint64_t max_bytes = 1ull << 40;  // uncompressed bytes over all layers
  uint64_t max_entries = 1u << 22;  // tar entries over all layers
};

// Counters shared by the layers of one unpack (the caps are totals).
struct ApplyCounters {
  uint64_t bytes = 0;
  uint64_t entries = 0;
};

// Metadata of the root entry ("./"), applied when the unpack is complete.
struct RootMeta {
  bool seen = false;
  mode_t mode = 0755;
  uid_t uid = 0;
  gid_t gid = 0;
  timespec mtime{};
};

namespace detail {

inline bool openat2_disabled_by_env() { return !inroot_openat2_allowed(); }

// Splits a path into components, dropping empty ones and ".".
inline std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string_view::npos) slash = p.size();
    std::string_view c = p.substr(start, slash - start);
    if (!c.empty() && c != ".") out.emplace_back(c);
    start = slash + 1;
  }
  return out;
}

inline std::string join(const std::vector<std::string>& comps, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i) s += '/';
    s += comps[i];
  }
  return s.empty() ? "." : s;
}

// The names in the directory open at fd ("." and ".." left out); fd must be
// freshly opened (its duplicate is read from fd's offset).
inline bool list_dir(int fd, std::vector<std::string>& names) {
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return false;
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return false;
  }
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) names.emplace_back(de->d_name);
  }
  bool ok = errno == 0;
  ::closedir(d);
  return ok;
}

// Walks the tree below the directory `dirfd` depth first, never following
// symlinks, with one directory descriptor open at a time: the way back up is
// "..", and what is left to visit is a stack of names, so a layer's 2048
// levels of nesting cannot run out of descriptors. The tree must be one kina
// owns (nobody moves its directories meanwhile). enter(parent_fd, name, st)
// returns 1 to descend into a directory, 0 to go on, -1 on an error (the walk
// goes on, the result is -1); leave(parent_fd, name) runs after a directory's
// contents. Returns 0, or -1 with errno of the first failure.
template <class Enter, class Leave>
int walk_tree(int dirfd, Enter&& enter, Leave&& leave) {
  struct Level {
    std::vector<std::string> names;
    size_t next = 0;
    std::string name;  // of this directory in its parent
  };
  int cur = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0) return -1;
  int rc = 0, first_errno = 0;
  auto failed = [&] {
    if (rc == 0) first_errno = errno;
    rc = -1;
  };
  std::vector<Level> stack(1);
  if (!list_dir(cur, stack.back().names)) failed();
  while (!stack.empty()) {
    Level& top = stack.back();
    if (top.next == top.names.size()) {
      std::string name = std::move(top.name);
      stack.pop_back();
      if (stack.empty()) break;
      int up = ::openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ::close(cur);
      cur = up;
      if (cur < 0) {
        failed();
        break;
      }
      if (leave(cur, name.c_str()) != 0) failed();
      continue;
    }
    std::string name = top.names[top.next++];
    struct stat sb {};
    if (::fstatat(cur, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) failed();
      continue;
    }
    int r = enter(cur, name.c_str(), sb);
    if (r < 0) failed();
    if (r <= 0) continue;
    int sub = ::openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      failed();
      continue;
    }
    ::close(cur);
    cur = sub;
    Level l;
    l.name = std::move(name);
    if (!list_dir(cur, l.names)) failed();
    stack.push_back(std::move(l));
  }
  if (cur >= 0) ::close(cur);
  if (rc != 0) errno = first_errno;
  return rc;
}

// Removes `name` under dirfd: a file, a symlink (never followed) or a whole tree.
inline int remove_at(int dirfd, const char* name) {
  if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = walk_tree(
      fd,
      [](int parent, const char* n, const struct stat& st) {
        if (S_ISDIR(st.st_mode)) return 1;
        return ::unlinkat(parent, n, 0) == 0 || errno == ENOENT ? 0 : -1;
      },
      [](int parent, const char* n) { return ::unlinkat(parent, n, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1; });
  int saved = errno;
  ::close(fd);
  if (rc != 0) {
    errno = saved;
    return rc;
  }
  return ::unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

inline std::string proc_fd_path(int dirfd, const std::string& name) { return fmt::format("/proc/self/fd/{}/{}", dirfd, name); }

}  // namespace detail

// Resolves directories inside a root for the layer writer: kina/inroot.hpp
// in its in_root mode (symlinks met on the way are followed as if the root
// were "/"), with its errno turned into kina-image's errors.
class RootResolver {
 public:
  explicit RootResolver(int root_fd)
      : in_(root_fd, InRoot::Symlinks::in_root, !detail::openat2_disabled_by_env()), root_(root_fd) {}
  bool uses_openat2() const { return in_.uses_openat2(); }
  // Parent directories created because an entry needed them (they count
  // against the entry cap: one entry can imply thousands of them).
  uint64_t created_dirs() const { return in_.created_dirs(); }
  int root_fd() const { return root_; }
  const InRoot& in_root() const { return in_; }

  // Opens (O_PATH) the directory made of the first n components of comps.
  // Missing directories are created 0755 when `create`.
  Result<UniqueFd> open_dir(const std::vector<std::string>& comps, size_t n, bool create) const {
    if (!in_.valid()) return os_error("opening the root");
    int fd = in_.open_dir(comps, n, create);
    if (fd < 0) return resolve_error(comps, n, errno);
    return UniqueFd(fd);
  }

  static Error resolve_error(const std::vector<std::string>& comps, size_t n, int err) {
    std::string p = detail::join(comps, n);
    if (err == ENOTDIR) return make_error(Exit::data, fmt::format("resolving {}", shown(p)), "a component is not a directory");
    if (err == ELOOP) return make_error(Exit::data, fmt::format("resolving {}", shown(p)), "too many levels of symbolic links");
    if (err == ENOENT) return make_error(Exit::no_input, fmt::format("resolving {}", shown(p)), "does not exist");
    return os_error(fmt::format("resolving {}", shown(p)), err);
  }

 private:
  InRoot in_;
  int root_;
};


struct LayerHashes {
  Digest compressed, diff_id;
};

namespace detail {
struct Source {
  int fd;
  Sha256 hash;
  std::vector<char> buf;
  uint64_t total;
  bool eof;
  static la_ssize_t read(archive*, void* self, const void** out) {
    auto* s = static_cast<Source*>(self);
    if (s->buf.empty()) s->buf.resize(1 << 17);
    for (;;) {
      ssize_t n = ::read(s->fd, s->buf.data(), s->buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) s->eof = true;
      s->hash.update(s->buf.data(), static_cast<size_t>(n));
      s->total += static_cast<uint64_t>(n);
      *out = s->buf.data();
      return n;
    }
  }
  Status drain() {
    const void* p = nullptr;
    while (!eof)
      if (read(nullptr, this, &p) < 0) return os_error("reading the layer", errno, Exit::io);
    return {};
  }
};

// The uncompressed tar stream, hashed for the DiffID and counted for the cap.
struct Plain {
  archive* raw;
  bool eof;
  Sha256 hash;
  std::vector<char> buf;
  const Limits* limits;
  ApplyCounters* counters;
  std::string error;
  static la_ssize_t read(archive*, void* p, const void** out) {
    auto* s = static_cast<Plain*>(p);
    if (s->eof) return 0;
    la_ssize_t n = archive_read_data(s->raw, s->buf.data(), s->buf.size());
    if (n < 0) {
      s->error = fmt::format("cannot decompress: {}", archive_error(s->raw));
      s->eof = true;
      return -1;
    }
    if (n == 0) {
      s->eof = true;
      return 0;
    }
    s->hash.update(s->buf.data(), static_cast<size_t>(n));
    s->counters->bytes += static_cast<uint64_t>(n);
    if (s->counters->bytes > s->limits->max_bytes) {
      s->error = fmt::format("more than {} uncompressed bytes in total (limit; see --max-bytes)", s->limits->max_bytes);
      s->eof = true;
      return -1;
    }
    if (out) *out = s->buf.data();
    return n;
  }
};

}  // namespace detail

inline Error layer_error(const std::string& what, std::string why) {
  return make_error(Exit::data, fmt::format("layer {}", what), std::move(why));
}

// Reads one layer stream from fd (gzip, zstd or uncompressed tar), calling
// entry(archive*, archive_entry*) -> Status for each tar entry, with the
// caps on bytes and entries (extra() -> uint64_t: the parent directories the
// entries made, counted too). The layer's compressed digest and its DiffID
// are computed on the way, over the whole blob.
template <class Entry, class Extra>
Result<LayerHashes> read_layer(int fd, const std::string& what, const Limits& limits, ApplyCounters& counters, Entry&& entry,
                               Extra&& extra) {
  using detail::Plain;
  using detail::Source;
  Source src{fd, {}, {}, 0, false};
  ArchiveReader raw = archive_reader(ArchiveKind::stream);
  ArchiveReader tar = archive_reader(ArchiveKind::plain_tar);
  if (archive_read_open(raw.get(), &src, nullptr, &Source::read, nullptr) != ARCHIVE_OK)
    return layer_error(what, fmt::format("cannot read: {}", archive_error(raw.get())));
  archive_entry* rawentry = nullptr;
  int rr = archive_read_next_header(raw.get(), &rawentry);
  if (rr != ARCHIVE_OK && rr != ARCHIVE_EOF) return layer_error(what, fmt::format("cannot decompress: {}", archive_error(raw.get())));
  Plain plain{raw.get(), rr == ARCHIVE_EOF, {}, std::vector<char>(1 << 17), &limits, &counters, {}};
  if (archive_read_open(tar.get(), &plain, nullptr, &Plain::read, nullptr) != ARCHIVE_OK)
    return layer_error(what, !plain.error.empty() ? plain.error : fmt::format("not a tar archive: {}", archive_error(tar.get())));
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(tar.get(), &e);
    if (!plain.error.empty()) return layer_error(what, plain.error);
    if (r == ARCHIVE_EOF) break;
    if (r == ARCHIVE_WARN) r = ARCHIVE_OK;  // e.g. unknown pax keys
    if (r != ARCHIVE_OK) return layer_error(what, fmt::format("corrupt tar: {}", archive_error(tar.get())));
    if (++counters.entries > limits.max_entries)
      return layer_error(what, fmt::format("more than {} entries in total (limit; see --max-entries)", limits.max_entries));
    if (auto st = entry(tar.get(), e); !st) return st.error();
    if (counters.entries + extra() > limits.max_entries)
      return layer_error(what, fmt::format("more than {} entries in total, counting the parent directories they create (limit; see --max-entries)",
                                 limits.max_entries));
    if (!plain.error.empty()) return layer_error(what, plain.error);
  }
  // Drain the rest of the stream (tar padding) so both digests cover it all.
  while (!plain.eof) {
    if (Plain::read(tar.get(), &plain, nullptr) < 0) break;
  }
  if (!plain.error.empty()) return layer_error(what, plain.error);
  // Trailing bytes after the compressed stream still belong to the blob.
  if (auto st = src.drain(); !st) return layer_error(what, st.error().message());
  return LayerHashes{Digest::of(src.hash.finish()), Digest::of(plain.hash.finish())};
}

// Applies one layer stream to the root. The layer's compressed digest and its
// DiffID (digest of the uncompressed tar) are computed on the way.
// The rules both writers of a layer (LayerApplier into a directory, the ext4
// writer of disk.hpp into a disk image) apply to an entry before they make
// anything: its path checked and cleaned, the root entry noted, whiteouts and
// opaque markers told apart, and the paths the layer names remembered (an
// opaque directory hides only what earlier layers made).
class EntryRules {
 protected:
  enum class EntryKind { root, opaque, whiteout, object };
  struct Entry {
    EntryKind kind = EntryKind::object;
    std::string path;
    std::vector<std::string> comps;  // cleaned; empty for the root
    std::string victim;              // a whiteout: the name it hides
    const char* hardlink = nullptr;
    mode_t type = 0;
  };

  Error bad(std::string_view path, std::string why) const {
    if (path.empty()) return make_error(Exit::data, fmt::format("layer {}", what_), std::move(why));
    return make_error(Exit::data, fmt::format("layer {}: entry {}", what_, shown(path)), std::move(why));
  }

  // Cleans an entry path (kina/inroot.hpp): components without "." and empty
  // ones, a leading "/" stripped as tar does; ".." refused.
  Result<std::vector<std::string>> clean(std::string_view p, bool is_link_target) const {
    std::vector<std::string> comps;
    if (inroot_components(p, comps, true)) return comps;
    for (const auto& c : detail::split_path(p))
      if (c == "..")
        return bad(p, is_link_target ? "hardlink target contains \"..\"" : "path contains \"..\"");
    if (p.size() > PATH_MAX) return bad(p.substr(0, 200), "path longer than PATH_MAX");
    return bad(p.substr(0, 200), "a path component is longer than NAME_MAX");
  }

  // The paths this layer has entries for (and their parents), as a tree of
  // components: memory linear in the path length (a set of every prefix
  // string was quadratic: a 4 KiB path of 2048 components cost 4 MiB).
  struct PathTree {
    std::unordered_map<std::string, std::unique_ptr<PathTree>> kids;
    const PathTree* child(const std::string& name) const {
      auto it = kids.find(name);
      return it == kids.end() ? nullptr : it->second.get();
    }
  };

  void remember(const std::vector<std::string>& comps) {
    PathTree* n = &layer_paths_;
    for (const auto& c : comps) {
      auto& k = n->kids[c];
      if (!k) k = std::make_unique<PathTree>();
      n = k.get();
    }
  }


  // What entry `e` is. The root entry's metadata goes to `root`; an object's
  // path is remembered in the layer's tree.
  Result<Entry> classify(archive_entry* e, RootMeta& root) {
    Entry ent;
    const char* pn = archive_entry_pathname(e);
    if (!pn) return bad("", "entry without a path name");
    ent.path = pn;
    auto comps = clean(ent.path, false);
    if (!comps) return comps.error();
    ent.comps = std::move(*comps);
    ent.hardlink = archive_entry_hardlink(e);
    ent.type = archive_entry_filetype(e);
    if (ent.comps.empty()) {  // the root itself
      if (ent.hardlink || ent.type != AE_IFDIR) return bad(ent.path, "changes the type of the root directory");
      root.seen = true;
      root.mode = archive_entry_perm(e);
      root.uid = static_cast<uid_t>(archive_entry_uid(e));
      root.gid = static_cast<gid_t>(archive_entry_gid(e));
      root.mtime = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
      ent.kind = EntryKind::root;
      return ent;
    }
    for (size_t i = 0; i + 1 < ent.comps.size(); ++i)
      if (ent.comps[i].rfind(".wh.", 0) == 0) return bad(ent.path, "a whiteout name is used as a directory");
    const std::string& base = ent.comps.back();
    if (base.rfind(".wh.", 0) == 0) {
      if (base == ".wh..wh..opq") {
        ent.kind = EntryKind::opaque;
        return ent;
      }
      if (base.rfind(".wh..", 0) == 0) return bad(ent.path, "invalid whiteout name");
      ent.kind = EntryKind::whiteout;
      ent.victim = base.substr(4);
      return ent;
    }
    remember(ent.comps);
    return ent;
  }

  std::string what_;  // the layer, in errors
  PathTree layer_paths_;
};

class LayerApplier : private EntryRules {
 public:
  LayerApplier(const RootResolver& r, const Limits& limits, ApplyCounters& counters, RootMeta& root_meta)
      : res_(r), limits_(limits), counters_(counters), root_meta_(root_meta), as_root_(::geteuid() == 0) {}

  using Hashes = LayerHashes;

  // Reads the layer from fd (gzip, zstd or uncompressed tar). `what` names it
  // in errors. Errors are 65 for bad layers (the caller discards the root).
  Result<Hashes> apply(int fd, const std::string& what) {
    what_ = what;
    layer_paths_.kids.clear();
    dir_times_.clear();
    kept_times_.clear();
    pending_acls_.clear();
    auto h = read_layer(
        fd, what, limits_, counters_, [&](archive* a, archive_entry* e) { return apply_entry(a, e); },
        [&] { return res_.created_dirs(); });
    if (!h) return h.error();
    if (auto st = apply_pending_acls(); !st) return st.error();
    if (auto st = finish_dir_times(); !st) return st.error();
    return *h;
  }

 private:
  static std::string err_of(archive* a) { return archive_error(a); }

  Error os_fail(std::string_view path, std::string_view doing, int err = errno) const {
    return os_error(fmt::format("layer {}: entry {}: {}", what_, shown(path), doing), err);
  }

  Status apply_entry(archive* a, archive_entry* e) {
    auto ent = classify(e, root_meta_);
    if (!ent) return ent.error();
    switch (ent->kind) {
      case EntryKind::root: return {};
      case EntryKind::opaque: return apply_opaque(ent->path, ent->comps);
      case EntryKind::whiteout: return apply_whiteout(ent->path, ent->comps, ent->victim);
      case EntryKind::object: break;
    }
    const std::string& path = ent->path;
    const std::vector<std::string>& comps = ent->comps;
    const char* hardlink = ent->hardlink;
    mode_t type = ent->type;
    const std::string& base = comps.back();
    auto parent = res_.open_dir(comps, comps.size() - 1, true);
    if (!parent) return bad(path, parent.error().message());
    int pfd = parent->get();
    const char* name = base.c_str();

    // Replace what is there, unless both are directories (they merge).
    struct stat old {};
    bool exists = ::fstatat(pfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0;
    bool new_dir = !hardlink && type == AE_IFDIR;
    if (exists && !(new_dir && S_ISDIR(old.st_mode))) {
      if (hardlink) {
        // Linking a file to itself is a no-op in tar semantics.
        auto t = clean(hardlink, true);
        if (t && *t == comps) return {};
      }
      if (detail::remove_at(pfd, name) != 0) return os_fail(path, "removing the existing entry");
    }

    uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
    gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
    mode_t perm = archive_entry_perm(e) & 07777;
    timespec times[2] = {{archive_entry_atime(e), archive_entry_atime_nsec(e)}, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (!archive_entry_atime_is_set(e)) times[0] = times[1];

    if (hardlink) return apply_hardlink(path, pfd, name, hardlink);

    switch (type) {
      case AE_IFREG: {
        UniqueFd fd(::openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fd.valid()) return os_fail(path, "creating the file");
        if (auto st = write_data(a, fd.get(), path, archive_entry_size_is_set(e) ? archive_entry_size(e) : -1); !st) return st;
        if (as_root_ && ::fchown(fd.get(), uid, gid) != 0) return os_fail(path, "changing the owner");
        if (::fchmod(fd.get(), perm) != 0) return os_fail(path, "changing the mode");
        if (auto st = set_xattrs(e, comps, path, fd.get(), -1, nullptr); !st) return st;
        if (::futimens(fd.get(), times) != 0) return os_fail(path, "setting the times");
        return {};
      }
      case AE_IFDIR: {
        if (!exists || !S_ISDIR(old.st_mode))
          if (::mkdirat(pfd, name, 0700) != 0) return os_fail(path, "creating the directory");
        UniqueFd fd(::openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid()) return os_fail(path, "opening the directory");
        if (as_root_ && ::fchown(fd.get(), uid, gid) != 0) return os_fail(path, "changing the owner");
        if (::fchmod(fd.get(), perm) != 0) return os_fail(path, "changing the mode");
        if (auto st = set_xattrs(e, comps, path, fd.get(), -1, nullptr); !st) return st;
        dir_times_.push_back({comps, {times[0], times[1]}});  // after the layer: entries inside change mtime
        return {};
      }
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (!target) return bad(path, "symlink without a target");
        // The target is stored as is: it is only ever resolved inside the root.
        if (::symlinkat(target, pfd, name) != 0) return os_fail(path, "creating the symlink");
        if (as_root_ && ::fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return os_fail(path, "changing the owner");
        if (auto st = set_xattrs(e, comps, path, -1, pfd, name); !st) return st;
        if (::utimensat(pfd, name, times, AT_SYMLINK_NOFOLLOW) != 0) return os_fail(path, "setting the times");
        return {};
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        mode_t kind = type == AE_IFCHR ? S_IFCHR : type == AE_IFBLK ? S_IFBLK : S_IFIFO;
        dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (::mknodat(pfd, name, kind | 0600, dev) != 0) {
          if (errno == EPERM && !as_root_) {
            if (!warned_nodes_) warn_unprivileged();
            return {};
          }
          return os_fail(path, "creating the device node");
        }
        if (as_root_ && ::fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return os_fail(path, "changing the owner");
        if (::fchmodat(pfd, name, perm, 0) != 0) return os_fail(path, "changing the mode");
        if (auto st = set_xattrs(e, comps, path, -1, pfd, name); !st) return st;
        if (::utimensat(pfd, name, times, AT_SYMLINK_NOFOLLOW) != 0) return os_fail(path, "setting the times");
        return {};
      }
      default:
        return bad(path, fmt::format("unsupported entry type 0{:o}", type));
    }
  }

  void warn_unprivileged() {
    warned_nodes_ = true;
    kina::detail::write_stderr("kina-image: warning: not running as root: device nodes are skipped\n");
  }

  // Writes the entry's data. A sparse file's holes cost no bytes in the
  // stream but become apparent size (what a copy or mke2fs -d of the tree
  // writes out), so they count against the byte cap too, and no data block
  // may lie beyond the size the header declares (size -1: not declared).
  Status write_data(archive* a, int fd, const std::string& path, int64_t size) {
    auto over_cap = [&] {
      return bad(path, fmt::format("more than {} uncompressed bytes in total (limit; see --max-bytes)", limits_.max_bytes));
    };
    if (size > 0 && static_cast<uint64_t>(size) > limits_.max_bytes) return over_cap();
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t off = 0;
    int64_t end = 0;
    uint64_t data = 0;
    for (;;) {
      int r = archive_read_data_block(a, &buf, &len, &off);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return bad(path, fmt::format("reading its data: {}", err_of(a)));
      if (off < 0 || (size >= 0 && (static_cast<uint64_t>(off) > static_cast<uint64_t>(size) ||
                                    len > static_cast<uint64_t>(size) - static_cast<uint64_t>(off))))
        return bad(path, "data beyond the size in its header");
      data += len;
      const char* p = static_cast<const char*>(buf);
      size_t done = 0;
      while (done < len) {
        ssize_t n = ::pwrite(fd, p + done, len - done, off + static_cast<off_t>(done));
        if (n < 0) {
          if (errno == EINTR) continue;
          return os_fail(path, "writing", errno);
        }
        done += static_cast<size_t>(n);
      }
      end = std::max<int64_t>(end, off + static_cast<int64_t>(len));
    }
    if (size > 0 && static_cast<uint64_t>(size) > data) {
      counters_.bytes += static_cast<uint64_t>(size) - data;  // the holes
      if (counters_.bytes > limits_.max_bytes) return over_cap();
    }
    if (size > end && ::ftruncate(fd, size) != 0) return os_fail(path, "extending a sparse file");
    return {};
  }

  // Extended attributes (SCHILY.xattr.*, including security.capability), set
  // after chown, which would clear a file capability; then POSIX ACLs
  // (checked by entry_xattrs, xattrs.hpp).
  Status set_xattrs(archive_entry* e, const std::vector<std::string>& comps, const std::string& path, int fd, int pfd,
                    const char* name) {
    bool is_dir = archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e);
    bool is_link = archive_entry_filetype(e) == AE_IFLNK;
    auto set = [&](std::string_view xn, const void* value, size_t size) -> Status {
      std::string n(xn);
      int rc = fd >= 0 ? ::fsetxattr(fd, n.c_str(), value, size, 0)
                       : ::lsetxattr(detail::proc_fd_path(pfd, name).c_str(), n.c_str(), value, size, 0);
      if (rc == 0) return {};
      if (errno == ENOTSUP || (errno == EPERM && !as_root_)) {
        if (!warned_xattr_) kina::detail::write_stderr(fmt::format("kina-image: warning: extended attribute {} not kept: {}\n", xn, std::strerror(errno)));
        warned_xattr_ = true;
        return {};
      }
      if (errno == EINVAL && xn.rfind("system.", 0) == 0) return bad(path, fmt::format("{} is not a valid ACL for this entry", xn));
      return os_fail(path, fmt::format("setting extended attribute {}", xn));
    };
    auto xs = entry_xattrs(e, [&](std::string why) { return bad(path, std::move(why)); });
    if (!xs) return xs.error();
    for (const auto& [xn, value] : xs->values)
      if (auto st = set(xn, value.data(), value.size()); !st) return st;
    for (auto& p : xs->pending) pending_acls_.push_back({path, std::move(p.first), std::move(p.second)});
    bool set_access = xs->access, set_default = xs->default_acl;
    // Below a directory with a default ACL a new entry inherits it; the
    // layer's entry has exactly the ACLs it carries (as tar --acls does), so
    // inherited ones go. Only below the directories that got a default ACL
    // in this unpack (or everywhere, if the root inherited one from where it
    // was made): no cost elsewhere.
    if (set_default) default_acl_dirs_.insert(detail::join(comps, comps.size()));
    if (!is_link && !comps.empty() &&
        (root_has_default_acl() || default_acl_dirs_.count(detail::join(comps, comps.size() - 1)) != 0)) {
      auto drop = [&](std::string_view xn) -> Status {
        std::string n(xn);
        int rc = fd >= 0 ? ::fremovexattr(fd, n.c_str()) : ::lremovexattr(detail::proc_fd_path(pfd, name).c_str(), n.c_str());
        if (rc != 0 && errno != ENODATA && errno != ENOTSUP) return os_fail(path, fmt::format("removing the inherited {}", xn));
        return {};
      };
      if (!set_access)
        if (auto st = drop(kAclAccess); !st) return st;
      if (is_dir && !set_default)
        if (auto st = drop(kAclDefault); !st) return st;
    }
    return {};
  }

  bool root_has_default_acl() {
    if (root_default_acl_ < 0)
      root_default_acl_ = ::getxattr(fmt::format("/proc/self/fd/{}", res_.root_fd()).c_str(), std::string(kAclDefault).c_str(), nullptr, 0) > 0;
    return root_default_acl_ > 0;
  }

  // Both ends inside the root: the entry's parent is pfd, the target is
  // resolved by InRoot::link with no symlink on the way and never followed.
  Status apply_hardlink(const std::string& path, int pfd, const char* name, const char* target) {
    auto t = clean(target, true);
    if (!t) return t.error();
    if (t->empty()) return bad(path, "hardlink to the root directory");
    if (res_.in_root().link(*t, pfd, name) == 0) return {};
    int err = errno;
    std::string tn = shown(target);
    if (err == ENOENT) return bad(path, fmt::format("hardlink target {}: does not exist", tn));
    if (err == EISDIR) return bad(path, fmt::format("hardlink target {} is a directory", tn));
    if (err == ELOOP) return bad(path, fmt::format("hardlink target {} is reached through a symlink", tn));
    if (err == ENOTDIR) return bad(path, fmt::format("hardlink target {}: a component is not a directory", tn));
    if (err == EMLINK)  // the layer asks for more links to one file than the filesystem holds
      return bad(path, fmt::format("too many hard links to {} for the target filesystem", tn));
    return os_fail(path, "creating the hardlink", err);
  }

  Status apply_whiteout(const std::string& path, const std::vector<std::string>& comps, const std::string& victim) {
    if (victim.empty() || victim == "." || victim == ".." || victim.find('/') != std::string::npos)
      return bad(path, "invalid whiteout name");
    auto parent = res_.open_dir(comps, comps.size() - 1, false);
    if (!parent) {
      if (parent.error().exit == Exit::no_input) return {};  // nothing below to hide
      return bad(path, parent.error().message());
    }
    keep_times(*parent, comps, comps.size() - 1);
    if (detail::remove_at(parent->get(), victim.c_str()) != 0) return os_fail(path, "removing the whited-out entry");
    return {};
  }

  // ".wh..wh..opq": hide everything the lower layers put in the directory.
  // Entries of this layer are kept whatever their position in the tar, so the
  // result is as if the opaque marker came first.
  Status apply_opaque(const std::string& path, const std::vector<std::string>& comps) {
    std::vector<std::string> dir(comps.begin(), comps.end() - 1);
    remember(dir);
    auto d = res_.open_dir(dir, dir.size(), true);
    if (!d) return bad(path, d.error().message());
    const PathTree* node = &layer_paths_;
    for (const auto& c : dir)
      if (node) node = node->child(c);
    keep_times(*d, dir, dir.size());
    if (auto st = clear_lower(d->get(), node, path); !st) return st;
    return {};
  }

  Status clear_lower(int dirpath_fd, const PathTree* node, const std::string& path) {
    UniqueFd fd(::openat(dirpath_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return os_fail(path, "opening the opaque directory");
    DIR* dp = ::fdopendir(fd.get());
    if (!dp) return os_fail(path, "reading the opaque directory");
    fd.release();
    struct CloseDir {
      void operator()(DIR* d) const { ::closedir(d); }
    };
    std::unique_ptr<DIR, CloseDir> guard(dp);
    std::vector<std::string> names;
    while (dirent* de = ::readdir(dp)) {
      if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
      names.emplace_back(de->d_name);
    }
    for (const auto& n : names) {
      const PathTree* sub_node = node ? node->child(n) : nullptr;
      if (!sub_node) {
        if (detail::remove_at(::dirfd(dp), n.c_str()) != 0) return os_fail(path, "clearing the opaque directory");
        continue;
      }
      struct stat sb {};
      if (::fstatat(::dirfd(dp), n.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
        UniqueFd sub(::openat(::dirfd(dp), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) return os_fail(path, "opening a directory below the opaque one");
        if (auto st = clear_lower(sub.get(), sub_node, path); !st) return st;
      }
    }
    return {};
  }

  // A whiteout or opaque marker changes its directory's mtime; the directory
  // keeps the times it had (unless the layer has an entry for it, applied later).
  void keep_times(const UniqueFd& dirfd, const std::vector<std::string>& comps, size_t n) {
    if (n == 0) return;
    std::vector<std::string> dir(comps.begin(), comps.begin() + static_cast<long>(n));
    for (const auto& k : kept_times_)
      if (k.comps == dir) return;
    struct stat sb {};
    if (::fstatat(dirfd.get(), "", &sb, AT_EMPTY_PATH) != 0) return;
    kept_times_.push_back({std::move(dir), {sb.st_atim, sb.st_mtim}});
  }

  // A regular file of the root, read inside it ("" when missing; bounded).
  Result<std::string> read_in_root(const std::vector<std::string>& comps) const {
    auto parent = res_.open_dir(comps, comps.size() - 1, false);
    if (!parent) return std::string();
    UniqueFd fd(::openat(parent->get(), comps.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat sb {};
    if (!fd.valid() || ::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode)) return std::string();
    return read_fd(fd.get(), fmt::format("reading /{} in the image", detail::join(comps, comps.size())), 16u << 20);
  }

  // ACLs whose named entries came without ids (GNU tar --acls): the names
  // are looked up in the image's /etc/passwd and /etc/group as the layer
  // left them (never the host's), then the ACLs are set.
  Status apply_pending_acls() {
    if (pending_acls_.empty()) return {};
    auto passwd = read_in_root({"etc", "passwd"});
    if (!passwd) return bad("etc/passwd", passwd.error().message());
    auto group = read_in_root({"etc", "group"});
    if (!group) return bad("etc/group", group.error().message());
    for (auto& p : pending_acls_) {
      auto value = resolve_pending_acl(std::move(p.acl), *passwd, *group, [&](std::string why) { return bad(p.path, std::move(why)); });
      if (!value) return value.error();
      auto comps = clean(p.path, false);
      if (!comps || comps->empty()) continue;
      auto parent = res_.open_dir(*comps, comps->size() - 1, false);
      if (!parent) continue;  // removed later in the layer
      if (::lsetxattr(detail::proc_fd_path(parent->get(), comps->back()).c_str(), p.xattr.c_str(), value->data(), value->size(), 0) != 0) {
        if (errno == ENOENT) continue;
        if (errno == EINVAL) return bad(p.path, fmt::format("{} is not a valid ACL for this entry", p.xattr));
        if (errno == ENOTSUP || (errno == EPERM && !as_root_)) continue;
        return os_fail(p.path, fmt::format("setting extended attribute {}", p.xattr));
      }
    }
    pending_acls_.clear();
    return {};
  }

  Status finish_dir_times() {
    for (const auto& k : kept_times_) {
      auto parent = res_.open_dir(k.comps, k.comps.size() - 1, false);
      // Only a directory: a path that reached it through a symlink (d ->
      // /x, then d/.wh.y) names the symlink, whose times stay its own.
      struct stat sb {};
      if (parent && ::fstatat(parent->get(), k.comps.back().c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode))
        (void)::utimensat(parent->get(), k.comps.back().c_str(), k.times, AT_SYMLINK_NOFOLLOW);
    }
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      const auto& comps = it->comps;
      auto parent = res_.open_dir(comps, comps.size() - 1, false);
      if (!parent) continue;  // removed later in the layer
      if (::utimensat(parent->get(), comps.back().c_str(), it->times, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT)
        return os_fail(detail::join(comps, comps.size()), "setting the times");
    }
    return {};
  }

  struct DirTime {
    std::vector<std::string> comps;
    timespec times[2];
  };

  const RootResolver& res_;
  const Limits& limits_;
  ApplyCounters& counters_;
  RootMeta& root_meta_;
  bool as_root_;
  bool warned_nodes_ = false, warned_xattr_ = false;
  std::unordered_set<std::string> default_acl_dirs_;  // directories given a default ACL: new entries in them inherit it
  int root_default_acl_ = -1;                         // the root inherited a default ACL (-1: not looked yet)
  struct PendingAcl {
    std::string path, xattr;
    acl::FromArchive acl;
  };
  std::vector<PendingAcl> pending_acls_;
  std::vector<DirTime> dir_times_;
  std::vector<DirTime> kept_times_;
};

}  // namespace kina::image
