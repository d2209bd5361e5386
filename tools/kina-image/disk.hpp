// disk.hpp: writes an image's layers straight into an ext4 image with libext2fs (no directory, no mke2fs -d): the same entries, checks and caps as the directory writer (layer.hpp).
//
// mke2fs makes the empty filesystem once (same features as before), then
// every layer entry becomes an inode: file data goes to blocks allocated in
// runs (ext2fs_fallocate) and written in large chunks. The directory tree is
// kept in memory while the layers apply (whiteouts, opaque directories,
// replacements and symlink resolution work on it, like the directory writer
// on the real tree) and the directory blocks are written once at the end.
// Resolution follows symlinks as if the root were "/", exactly as
// RootResolver does: nothing an entry names can reach outside the image.
#pragma once

#if KINA_HAVE_EXT2FS

#include <archive.h>
#include <archive_entry.h>
extern "C" {  // com_err.h has no C++ guard
#include <et/com_err.h>
}
#include <ext2fs/ext2fs.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "layer.hpp"
#include "xattrs.hpp"

namespace kina::image {

inline std::string ext2_error(errcode_t e) {
  const char* m = error_message(e);
  return m && *m ? m : fmt::format("libext2fs error {}", static_cast<long>(e));
}

// libext2fs's allocation failures: the disk is too small for the image.
inline bool ext2_no_space(errcode_t e) {
  return e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL || e == EXT2_ET_DIR_NO_SPACE ||
         e == EXT2_ET_EA_NO_SPACE || e == ENOSPC;
}

// An ext4 image being written from layer streams.
class Ext4Writer : private EntryRules {
 public:
  // Sizes and counts of the result, as tree_stats counts a directory.
  struct Stats {
    uint64_t files = 0, bytes = 0;
  };
  // Why a write failed: no_space when the filesystem ran out of blocks or
  // inodes (the caller may retry bigger), else the error.
  bool no_space = false;

  Ext4Writer(const Limits& limits, ApplyCounters& counters) : limits_(limits), counters_(counters) {
    initialize_ext2_error_table();  // libext2fs's messages for error_message (registered once)
  }
  ~Ext4Writer() {
    if (fs_) ext2fs_free(fs_);  // not flushed: the caller removes the file
  }
  Ext4Writer(const Ext4Writer&) = delete;
  Ext4Writer& operator=(const Ext4Writer&) = delete;

  // Opens the empty filesystem mke2fs made at `path`, a file on the host's
  // file system of `host_dir`; what it holds besides the root (lost+found)
  // goes, the root's directory block is rewritten at the end.
  Status open(const std::string& path, const std::string& what, const fsys::path& host_dir) {
    what_disk_ = what;
    host_dir_ = host_dir;
    io_manager io = unix_io_manager;
    errcode_t e = ext2fs_open(path.c_str(), EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, io, &fs_);
    if (e) {
      fs_ = nullptr;
      return make_error(Exit::cant_create, what, fmt::format("opening the new filesystem: {}", ext2_error(e)));
    }
    if ((e = ext2fs_read_bitmaps(fs_))) return fs_fail("reading the bitmaps", e);
    if (!ext2fs_has_feature_extents(fs_->super) || ext2fs_has_feature_inline_data(fs_->super))
      return make_error(Exit::internal, what, "mke2fs made a filesystem without extents or with inline data");
    inode_size_ = EXT2_INODE_SIZE(fs_->super);
    now_ = static_cast<uint32_t>(::time(nullptr));
    // lost+found as mke2fs made it goes; one is made again at the end.
    ext2_ino_t lf = 0;
    if (ext2fs_lookup(fs_, EXT2_ROOT_INO, "lost+found", 10, nullptr, &lf) == 0)
      if (auto st = free_inode(lf, true); !st) return st;
    // The root keeps its inode; its blocks go (rewritten at the end).
    InodeBuf root(inode_size_);
    if ((e = read_inode(EXT2_ROOT_INO, root))) return fs_fail("reading the root inode", e);
    if ((e = ext2fs_punch(fs_, EXT2_ROOT_INO, root.base(), nullptr, 0, ~0ULL))) return fs_fail("clearing the root directory", e);
    if ((e = write_inode(EXT2_ROOT_INO, root))) return fs_fail("writing the root inode", e);
    Node& r = nodes_[EXT2_ROOT_INO];
    r.dir = std::make_unique<Dir>();
    r.dir->parent = EXT2_ROOT_INO;
    r.links = 2;
    return {};
  }

  // Applies one layer (gzip, zstd or plain tar), checking nothing about its
  // digests itself (the caller compares what this returns).
  Result<LayerHashes> apply(int fd, const std::string& what) {
    what_ = what;
    layer_paths_ = {};
    pending_acls_.clear();
    auto h = read_layer(
        fd, what, limits_, counters_, [&](archive* a, archive_entry* e) { return apply_entry(a, e); },
        [&] { return created_dirs_; });
    if (!h) return h.error();
    if (auto st = apply_pending_acls(); !st) return st.error();
    return *h;
  }

  // Writes the directories, the root entry's metadata, lost+found, and
  // closes the filesystem (flushing bitmaps and the superblock).
  Result<Stats> finish() {
    const RootMeta& meta = root_meta_;
    Stats st;
    bool has_lf = false;
    if (auto it = nodes_[EXT2_ROOT_INO].dir->kids.find("lost+found"); it != nodes_[EXT2_ROOT_INO].dir->kids.end()) {
      has_lf = true;
      if (!nodes_[it->second].dir) return fs_fail("lost+found", 0, "the image has a lost+found that is not a directory");
    }
    count(EXT2_ROOT_INO, st);
    if (!has_lf) {
      auto lf = make_dir(EXT2_ROOT_INO, "lost+found", Meta{0700, 0, 0, {now_, 0}, {now_, 0}});
      if (!lf) return lf.error();
    }
    // The root: the root entry's metadata, as the directory unpack gives it.
    {
      InodeBuf in(inode_size_);
      if (errcode_t e = read_inode(EXT2_ROOT_INO, in)) return fs_fail("reading the root inode", e);
      Meta m{meta.seen ? meta.mode : 0755, meta.seen ? meta.uid : 0, meta.seen ? meta.gid : 0, meta.mtime, meta.mtime};
      if (!meta.seen) m.mtime = m.atime = {now_, 0};
      set_meta(in, LINUX_S_IFDIR, m);
      if (errcode_t e = write_inode(EXT2_ROOT_INO, in)) return fs_fail("writing the root inode", e);
    }
    for (auto& [ino, node] : nodes_)
      if (node.dir)
        if (auto s = write_dir(ino, node); !s) return s.error();
    errcode_t e = ext2fs_close_free(&fs_);
    if (e) return fs_fail("closing the filesystem", e);
    return st;
  }

 private:
  struct Meta {
    mode_t mode;  // permission bits (07777)
    uid_t uid;
    gid_t gid;
    timespec atime, mtime;
  };
  struct Dir {
    ext2_ino_t parent = 0;
    std::map<std::string, ext2_ino_t> kids;  // sorted: the same image gives the same blocks
  };
  struct Node {
    uint32_t links = 1;
    uint8_t ftype = EXT2_FT_REG_FILE;
    std::string target;        // symlinks
    std::unique_ptr<Dir> dir;  // directories
  };

  // A whole on-disk inode (the in-inode xattr area included, zeroed when new).
  struct InodeBuf {
    std::vector<uint64_t> words;
    explicit InodeBuf(size_t size) : words((std::max<size_t>(size, sizeof(ext2_inode_large)) + 7) / 8, 0) {}
    ext2_inode_large* large() { return reinterpret_cast<ext2_inode_large*>(words.data()); }
    ext2_inode* base() { return reinterpret_cast<ext2_inode*>(words.data()); }
  };
  errcode_t read_inode(ext2_ino_t ino, InodeBuf& b) { return ext2fs_read_inode_full(fs_, ino, b.base(), inode_size_); }
  errcode_t write_inode(ext2_ino_t ino, InodeBuf& b) { return ext2fs_write_inode_full(fs_, ino, b.base(), inode_size_); }

  static uint32_t time_extra(const timespec& t) {
    int64_t sec = t.tv_sec;
    uint32_t epoch = static_cast<uint32_t>(((sec - static_cast<int64_t>(static_cast<int32_t>(sec))) >> 32) & EXT4_EPOCH_MASK);
    return epoch | (static_cast<uint32_t>(t.tv_nsec) << EXT4_EPOCH_BITS);
  }
  void set_meta(InodeBuf& b, uint16_t type, const Meta& m) {
    ext2_inode_large* in = b.large();
    in->i_mode = static_cast<uint16_t>(type | (m.mode & 07777));
    in->i_uid = static_cast<uint16_t>(m.uid & 0xffff);
    ext2fs_set_i_uid_high(*in, static_cast<uint16_t>(m.uid >> 16));
    in->i_gid = static_cast<uint16_t>(m.gid & 0xffff);
    ext2fs_set_i_gid_high(*in, static_cast<uint16_t>(m.gid >> 16));
    in->i_atime = static_cast<uint32_t>(m.atime.tv_sec);
    in->i_mtime = in->i_ctime = static_cast<uint32_t>(m.mtime.tv_sec);
    if (inode_size_ > EXT2_GOOD_OLD_INODE_SIZE) {
      if (in->i_extra_isize == 0) in->i_extra_isize = sizeof(ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
      in->i_atime_extra = time_extra(m.atime);
      in->i_mtime_extra = in->i_ctime_extra = time_extra(m.mtime);
      in->i_crtime = in->i_mtime;
      in->i_crtime_extra = in->i_mtime_extra;
    }
  }

  static uint8_t ftype_of(mode_t type) {
    switch (type) {
      case AE_IFREG: return EXT2_FT_REG_FILE;
      case AE_IFDIR: return EXT2_FT_DIR;
      case AE_IFLNK: return EXT2_FT_SYMLINK;
      case AE_IFCHR: return EXT2_FT_CHRDEV;
      case AE_IFBLK: return EXT2_FT_BLKDEV;
      case AE_IFIFO: return EXT2_FT_FIFO;
      default: return EXT2_FT_UNKNOWN;
    }
  }

  // --- errors ---------------------------------------------------------------
  // A libext2fs failure: the host's file system full (74), no_space (73,
  // give a larger --disk-size) or 71.
  Error fs_fail(std::string_view doing, errcode_t e, std::string why = {}) {
    if (why.empty()) why = ext2_error(e);
    if (e && host_full(e)) {
      if (why.find("No space left on device") == std::string::npos) why += " (No space left on device)";
      return make_error(Exit::io, fmt::format("{}: {}", what_disk_, doing), why);
    }
    if (e && ext2_no_space(e)) {
      no_space = true;
      return make_error(Exit::cant_create, what_disk_, fmt::format("{}: the disk is full ({})", doing, why), "give a larger --disk-size");
    }
    return make_error(e ? Exit::os : Exit::data, fmt::format("{}: {}", what_disk_, doing), why);
  }
  // A write of the image file itself that failed (a short write, or the
  // host's errno) while the host's file system holding it is full: the
  // cause is the host's disk, not the image's size.
  bool host_full(errcode_t e) const {
    if (e != EXT2_ET_SHORT_WRITE && e != ENOSPC && e != EDQUOT && e != EFBIG) return false;
    auto f = free_bytes(host_dir_.c_str());
    return f && *f < (1u << 20);
  }
  Error entry_fail(std::string_view path, std::string_view doing, errcode_t e) {
    return fs_fail(fmt::format("layer {}: entry {}: {}", what_, shown(path), doing), e);
  }

  // --- the tree -------------------------------------------------------------
  // Resolves the directory made of comps[0, n) as RootResolver does: symlinks
  // followed as if the root were "/" (in_root) or refused (ELOOP); missing
  // directories made 0755 when `create`. 0 and the inode, or an errno.
  int resolve(const std::vector<std::string>& comps, size_t n, bool create, bool follow, ext2_ino_t& out, Error* err) {
    std::deque<std::string> todo(comps.begin(), comps.begin() + static_cast<long>(n));
    std::vector<ext2_ino_t> stack;
    ext2_ino_t cur = EXT2_ROOT_INO;
    int links = 0;
    while (!todo.empty()) {
      std::string c = std::move(todo.front());
      todo.pop_front();
      if (c.empty() || c == ".") continue;
      if (c == "..") {
        if (!stack.empty()) stack.pop_back();
        cur = stack.empty() ? EXT2_ROOT_INO : stack.back();
        continue;
      }
      Dir& d = *nodes_[cur].dir;
      auto it = d.kids.find(c);
      ext2_ino_t ino = 0;
      if (it == d.kids.end()) {
        if (!create) return ENOENT;
        auto made = make_dir(cur, c, Meta{0755, 0, 0, {now_, 0}, {now_, 0}});
        if (!made) {
          if (err) *err = made.error();
          return EIO;
        }
        ++created_dirs_;
        ino = *made;
      } else {
        ino = it->second;
      }
      Node& node = nodes_[ino];
      if (node.ftype == EXT2_FT_SYMLINK) {
        if (!follow || ++links > 40) return ELOOP;
        const std::string& t = node.target;
        std::vector<std::string> parts;
        size_t start = 0;
        while (start <= t.size()) {
          size_t slash = t.find('/', start);
          if (slash == std::string::npos) slash = t.size();
          if (slash > start) parts.push_back(t.substr(start, slash - start));
          start = slash + 1;
        }
        todo.insert(todo.begin(), parts.begin(), parts.end());
        if (!t.empty() && t[0] == '/') {
          stack.clear();
          cur = EXT2_ROOT_INO;
        }
        continue;
      }
      if (!node.dir) return ENOTDIR;
      stack.push_back(ino);
      cur = ino;
    }
    out = cur;
    return 0;
  }

  Result<ext2_ino_t> open_dir(const std::vector<std::string>& comps, size_t n, bool create, bool follow = true) {
    ext2_ino_t ino = 0;
    Error err = make_error(Exit::internal, "resolving");
    int rc = resolve(comps, n, create, follow, ino, &err);
    if (rc == 0) return ino;
    if (rc == EIO) return err;
    return RootResolver::resolve_error(comps, n, rc);
  }

  // A new directory inode `name` in `parent` (its blocks come at the end).
  Result<ext2_ino_t> make_dir(ext2_ino_t parent, const std::string& name, const Meta& m) {
    ext2_ino_t ino = 0;
    errcode_t e = ext2fs_new_inode(fs_, parent, LINUX_S_IFDIR | 0755, nullptr, &ino);
    if (e) return fs_fail(fmt::format("making directory {}", shown(name)), e);
    ext2fs_inode_alloc_stats2(fs_, ino, +1, 1);
    InodeBuf in(inode_size_);
    set_meta(in, LINUX_S_IFDIR, m);
    in.large()->i_links_count = 2;
    ext2_extent_handle_t h = nullptr;
    if ((e = ext2fs_extent_open2(fs_, ino, in.base(), &h))) return fs_fail("making a directory", e);
    ext2fs_extent_free(h);
    if ((e = write_inode(ino, in))) return fs_fail("making a directory", e);
    Node& node = nodes_[ino];
    node.ftype = EXT2_FT_DIR;
    node.links = 2;
    node.dir = std::make_unique<Dir>();
    node.dir->parent = parent;
    nodes_[parent].dir->kids[name] = ino;
    return ino;
  }

  // Frees an inode that has no name left: its blocks, its xattr block, its number.
  Status free_inode(ext2_ino_t ino, bool is_dir) {
    InodeBuf in(inode_size_);
    errcode_t e = read_inode(ino, in);
    if (!e && ext2fs_inode_has_valid_blocks2(fs_, in.base())) e = ext2fs_punch(fs_, ino, in.base(), nullptr, 0, ~0ULL);
    if (!e) e = ext2fs_free_ext_attr(fs_, ino, in.large());
    if (e) return fs_fail("freeing a removed entry", e);
    in.large()->i_links_count = 0;
    in.large()->i_dtime = now_;
    if ((e = write_inode(ino, in))) return fs_fail("freeing a removed entry", e);
    ext2fs_inode_alloc_stats2(fs_, ino, -1, is_dir ? 1 : 0);
    return {};
  }

  // Drops one name of `ino` (from a directory now gone or being changed).
  Status drop(ext2_ino_t ino) {
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return {};
    Node& n = it->second;
    if (n.dir) {
      for (auto& [name, kid] : n.dir->kids)
        if (auto st = drop(kid); !st) return st;
      if (auto st = free_inode(ino, true); !st) return st;
      nodes_.erase(it);
      return {};
    }
    if (--n.links == 0) {
      if (auto st = free_inode(ino, false); !st) return st;
      nodes_.erase(it);
      return {};
    }
    InodeBuf in(inode_size_);
    errcode_t e = read_inode(ino, in);
    if (!e) {
      in.large()->i_links_count = static_cast<uint16_t>(n.links);
      e = write_inode(ino, in);
    }
    if (e) return fs_fail("unlinking a hardlink", e);
    return {};
  }

  // Removes `name` from `parent`: a file, a symlink or a whole tree.
  Status remove(ext2_ino_t parent, const std::string& name) {
    Dir& d = *nodes_[parent].dir;
    auto it = d.kids.find(name);
    if (it == d.kids.end()) return {};
    ext2_ino_t ino = it->second;
    d.kids.erase(it);
    if (nodes_[ino].dir) --nodes_[parent].links;
    return drop(ino);
  }

  void count(ext2_ino_t dir, Stats& st) {
    std::vector<ext2_ino_t> todo{dir};
    std::unordered_map<ext2_ino_t, bool> seen;
    while (!todo.empty()) {
      ext2_ino_t d = todo.back();
      todo.pop_back();
      for (const auto& [name, ino] : nodes_[d].dir->kids) {
        ++st.files;
        Node& n = nodes_[ino];
        if (n.dir) todo.push_back(ino);
        else if (n.ftype == EXT2_FT_REG_FILE && !seen[ino]) {
          seen[ino] = true;
          st.bytes += sizes_[ino];
        }
      }
    }
  }

  // --- entries --------------------------------------------------------------
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
    auto parent = open_dir(comps, comps.size() - 1, true);
    if (!parent) return bad(path, parent.error().message());
    ext2_ino_t pino = *parent;

    // Replace what is there, unless both are directories (they merge).
    Dir& pd = *nodes_[pino].dir;
    auto old = pd.kids.find(base);
    bool exists = old != pd.kids.end();
    bool old_dir = exists && nodes_[old->second].dir != nullptr;
    bool new_dir = !hardlink && type == AE_IFDIR;
    if (exists && !(new_dir && old_dir)) {
      if (hardlink) {
        auto t = clean(hardlink, true);
        if (t && *t == comps) return {};  // a link to itself: nothing to do
      }
      if (auto st = remove(pino, base); !st) return st;
    }

    Meta m{archive_entry_perm(e) & 07777u, static_cast<uid_t>(archive_entry_uid(e)), static_cast<gid_t>(archive_entry_gid(e)),
           {archive_entry_atime(e), archive_entry_atime_nsec(e)}, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (!archive_entry_atime_is_set(e)) m.atime = m.mtime;

    if (hardlink) return apply_hardlink(path, pino, base, hardlink);

    // xattrs are checked before anything is made for the entry.
    auto xs = entry_xattrs(e, [&](std::string why) { return bad(path, std::move(why)); });
    if (!xs) return xs.error();
    for (auto& p : xs->pending) pending_acls_.push_back({path, std::move(p.first), std::move(p.second)});

    ext2_ino_t ino = 0;
    switch (type) {
      case AE_IFREG: {
        auto r = write_file(a, pino, base, m, path, archive_entry_size_is_set(e) ? archive_entry_size(e) : -1);
        if (!r) return r.error();
        ino = *r;
        break;
      }
      case AE_IFDIR: {
        if (exists && old_dir) {
          ino = old->second;
          InodeBuf in(inode_size_);
          errcode_t err = read_inode(ino, in);
          if (!err) {
            set_meta(in, LINUX_S_IFDIR, m);
            err = write_inode(ino, in);
          }
          if (err) return entry_fail(path, "setting the metadata", err);
        } else {
          auto r = make_dir(pino, base, m);
          if (!r) return r.error();
          ino = *r;
          ++nodes_[pino].links;
        }
        break;
      }
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (!target) return bad(path, "symlink without a target");
        if (std::strlen(target) >= fs_->blocksize) return bad(path, "symlink target longer than a block");
        errcode_t err = ext2fs_new_inode(fs_, pino, LINUX_S_IFLNK | 0777, nullptr, &ino);
        if (!err) err = ext2fs_symlink(fs_, pino, ino, nullptr, target);  // no name: the directory comes at the end
        if (err) return entry_fail(path, "creating the symlink", err);
        InodeBuf in(inode_size_);
        if (!(err = read_inode(ino, in))) {
          set_meta(in, LINUX_S_IFLNK, Meta{0777, m.uid, m.gid, m.atime, m.mtime});
          err = write_inode(ino, in);
        }
        if (err) return entry_fail(path, "creating the symlink", err);
        Node& n = nodes_[ino];
        n.ftype = EXT2_FT_SYMLINK;
        n.target = target;
        pd.kids[base] = ino;
        break;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        uint16_t kind = type == AE_IFCHR ? LINUX_S_IFCHR : type == AE_IFBLK ? LINUX_S_IFBLK : LINUX_S_IFIFO;
        errcode_t err = ext2fs_new_inode(fs_, pino, kind | 0600, nullptr, &ino);
        if (err) return entry_fail(path, "creating the device node", err);
        ext2fs_inode_alloc_stats2(fs_, ino, +1, 0);
        InodeBuf in(inode_size_);
        set_meta(in, kind, m);
        in.large()->i_links_count = 1;
        if (type != AE_IFIFO) {
          unsigned major = archive_entry_rdevmajor(e), minor = archive_entry_rdevminor(e);
          if (major < 256 && minor < 256) {
            in.large()->i_block[0] = major * 256 + minor;
          } else {
            in.large()->i_block[1] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
          }
        }
        if ((err = write_inode(ino, in))) return entry_fail(path, "creating the device node", err);
        nodes_[ino].ftype = ftype_of(type);
        pd.kids[base] = ino;
        break;
      }
      default:
        return bad(path, fmt::format("unsupported entry type 0{:o}", type));
    }
    return set_xattrs(ino, xs->values, path);
  }

  Status set_xattrs(ext2_ino_t ino, const std::vector<std::pair<std::string, std::string>>& values, std::string_view path) {
    if (values.empty()) return {};
    ext2_xattr_handle* h = nullptr;
    errcode_t e = ext2fs_xattrs_open(fs_, ino, &h);
    if (!e) e = ext2fs_xattrs_read(h);
    for (size_t i = 0; !e && i < values.size(); ++i) {
      e = ext2fs_xattr_set(h, values[i].first.c_str(), values[i].second.data(), values[i].second.size());
      if (e == EXT2_ET_INVALID_ARGUMENT && values[i].first.rfind("system.", 0) == 0) {
        ext2fs_xattrs_close(&h);
        return bad(path, fmt::format("{} is not a valid ACL for this entry", values[i].first));
      }
    }
    errcode_t c = h ? ext2fs_xattrs_close(&h) : 0;
    if (!e) e = c;
    if (e) return entry_fail(path, "setting extended attributes", e);
    // An access ACL sets the mode's owner, group (the mask, if any) and
    // other bits, as the kernel does when the directory unpack sets it.
    for (const auto& [name, value] : values) {
      if (name != kAclAccess) continue;
      std::string why;
      auto entries = acl::parse(value, why);
      if (!entries || entries->empty()) continue;
      unsigned owner = 0, group = 0, mask = 8, other = 0;
      for (const auto& a : *entries) {
        if (a.tag == acl::user_obj) owner = a.perm;
        if (a.tag == acl::group_obj) group = a.perm;
        if (a.tag == acl::mask) mask = a.perm;
        if (a.tag == acl::other) other = a.perm;
      }
      InodeBuf in(inode_size_);
      if (!(e = read_inode(ino, in))) {
        uint16_t& mode = in.large()->i_mode;
        mode = static_cast<uint16_t>((mode & ~0777u) | (owner << 6) | ((mask != 8 ? mask : group) << 3) | other);
        e = write_inode(ino, in);
      }
      if (e) return entry_fail(path, "setting the mode from the ACL", e);
    }
    return {};
  }

  // A regular file: the inode, then its data in runs of blocks allocated as
  // the data comes (a hole in a sparse file stays a hole), then the size.
  Result<ext2_ino_t> write_file(archive* a, ext2_ino_t pino, const std::string& name, const Meta& m, const std::string& path,
                                int64_t size) {
    auto over_cap = [&] {
      return bad(path, fmt::format("more than {} uncompressed bytes in total (limit; see --max-bytes)", limits_.max_bytes));
    };
    if (size > 0 && static_cast<uint64_t>(size) > limits_.max_bytes) return over_cap();
    ext2_ino_t ino = 0;
    errcode_t e = ext2fs_new_inode(fs_, pino, LINUX_S_IFREG | 0600, nullptr, &ino);
    if (e) return entry_fail(path, "creating the file", e);
    ext2fs_inode_alloc_stats2(fs_, ino, +1, 0);
    // Named at once: a failure below frees it with the rest of the disk.
    nodes_[ino].ftype = EXT2_FT_REG_FILE;
    nodes_[pino].dir->kids[name] = ino;
    InodeBuf in(inode_size_);
    set_meta(in, LINUX_S_IFREG, m);
    in.large()->i_links_count = 1;
    ext2_extent_handle_t h = nullptr;
    if ((e = ext2fs_extent_open2(fs_, ino, in.base(), &h))) return entry_fail(path, "creating the file", e);
    ext2fs_extent_free(h);
    if ((e = write_inode(ino, in))) return entry_fail(path, "creating the file", e);

    const uint64_t bs = fs_->blocksize;
    if (stage_.size() != kStageBytes) stage_.assign(kStageBytes, 0);
    uint64_t stage_blk = 0, stage_len = 0;  // staged bytes from block stage_blk on
    auto flush = [&](bool all) -> Status {
      uint64_t nblk = all ? (stage_len + bs - 1) / bs : stage_len / bs;
      if (nblk == 0) return {};
      if (all && stage_len % bs) std::memset(stage_.data() + stage_len, 0, bs - stage_len % bs);
      if (errcode_t err = write_blocks(ino, in, stage_blk, nblk, stage_.data())) return entry_fail(path, "writing", err);
      uint64_t done = nblk * bs;
      if (done < stage_len) std::memmove(stage_.data(), stage_.data() + done, stage_len - done);
      stage_len = done < stage_len ? stage_len - done : 0;
      stage_blk += nblk;
      return {};
    };
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t off = 0;
    int64_t end = 0;
    uint64_t data = 0;
    for (;;) {
      int r = archive_read_data_block(a, &buf, &len, &off);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return bad(path, fmt::format("reading its data: {}", archive_error(a)));
      if (off < 0 || (size >= 0 && (static_cast<uint64_t>(off) > static_cast<uint64_t>(size) ||
                                    len > static_cast<uint64_t>(size) - static_cast<uint64_t>(off))))
        return bad(path, "data beyond the size in its header");
      if (len == 0) continue;
      uint64_t pos = static_cast<uint64_t>(off);
      uint64_t staged_end = stage_blk * bs + stage_len;
      if (pos < staged_end) return bad(path, "data blocks out of order");
      if (pos / bs > (staged_end + bs - 1) / bs || (stage_len == 0 && pos / bs != stage_blk)) {
        // A hole of whole blocks: write what is staged, start again past it.
        if (auto st = flush(true); !st) return st.error();
        stage_blk = pos / bs;
        stage_len = 0;
        staged_end = stage_blk * bs;
      }
      if (pos > staged_end) {  // a hole inside a block: zeros
        std::memset(stage_.data() + stage_len, 0, pos - staged_end);
        stage_len += pos - staged_end;
      }
      const char* p = static_cast<const char*>(buf);
      size_t left = len;
      while (left > 0) {
        size_t n = std::min<size_t>(left, kStageBytes - stage_len);
        std::memcpy(stage_.data() + stage_len, p, n);
        stage_len += n, p += n, left -= n;
        if (stage_len == kStageBytes)
          if (auto st = flush(false); !st) return st.error();
      }
      data += len;
      end = std::max<int64_t>(end, off + static_cast<int64_t>(len));
    }
    if (auto st = flush(true); !st) return st.error();
    if (size > 0 && static_cast<uint64_t>(size) > data) {
      counters_.bytes += static_cast<uint64_t>(size) - data;  // the holes
      if (counters_.bytes > limits_.max_bytes) return over_cap();
    }
    uint64_t final_size = static_cast<uint64_t>(std::max<int64_t>(size, end));
    if ((e = ext2fs_inode_size_set(fs_, in.base(), final_size))) return entry_fail(path, "setting the size", e);
    if ((e = write_inode(ino, in))) return entry_fail(path, "writing the inode", e);
    sizes_[ino] = final_size;
    return ino;
  }

  // Allocates blocks [lblk, lblk+n) of the inode and writes them from buf.
  errcode_t write_blocks(ext2_ino_t ino, InodeBuf& in, blk64_t lblk, blk64_t n, const char* buf) {
    errcode_t e = ext2fs_fallocate(fs_, EXT2_FALLOCATE_FORCE_INIT | EXT2_FALLOCATE_INIT_BEYOND_EOF, ino, in.base(), ~0ULL, lblk, n);
    if (e) return e;
    ext2_extent_handle_t h = nullptr;
    if ((e = ext2fs_extent_open2(fs_, ino, in.base(), &h))) return e;
    while (n > 0 && !e) {
      ext2fs_extent ext{};
      if ((e = ext2fs_extent_goto(h, lblk)) || (e = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &ext))) break;
      if (lblk < ext.e_lblk || lblk >= ext.e_lblk + ext.e_len) {
        e = EXT2_ET_EXTENT_NOT_FOUND;
        break;
      }
      blk64_t run = std::min<blk64_t>(n, ext.e_lblk + ext.e_len - lblk);
      e = io_channel_write_blk64(fs_->io, ext.e_pblk + (lblk - ext.e_lblk), static_cast<int>(run), buf);
      buf += run * fs_->blocksize;
      lblk += run;
      n -= run;
    }
    ext2fs_extent_free(h);
    return e;
  }

  // Both ends inside the image: the target resolved with no symlink on the
  // way and never followed itself.
  Status apply_hardlink(const std::string& path, ext2_ino_t pino, const std::string& name, const char* target) {
    auto t = clean(target, true);
    if (!t) return t.error();
    if (t->empty()) return bad(path, "hardlink to the root directory");
    std::string tn = shown(target);
    ext2_ino_t tp = 0;
    Error err = make_error(Exit::internal, "");
    int rc = resolve(*t, t->size() - 1, false, false, tp, &err);
    if (rc == EIO) return err;
    if (rc == ENOENT) return bad(path, fmt::format("hardlink target {}: does not exist", tn));
    if (rc == ELOOP) return bad(path, fmt::format("hardlink target {} is reached through a symlink", tn));
    if (rc == ENOTDIR) return bad(path, fmt::format("hardlink target {}: a component is not a directory", tn));
    auto& kids = nodes_[tp].dir->kids;
    auto it = kids.find(t->back());
    if (it == kids.end()) return bad(path, fmt::format("hardlink target {}: does not exist", tn));
    ext2_ino_t ino = it->second;
    Node& n = nodes_[ino];
    if (n.dir) return bad(path, fmt::format("hardlink target {} is a directory", tn));
    if (n.links >= EXT2_LINK_MAX) return bad(path, fmt::format("too many hard links to {} for the target filesystem", tn));
    InodeBuf in(inode_size_);
    errcode_t e = read_inode(ino, in);
    if (!e) {
      in.large()->i_links_count = static_cast<uint16_t>(n.links + 1);
      e = write_inode(ino, in);
    }
    if (e) return entry_fail(path, "creating the hardlink", e);
    ++n.links;
    nodes_[pino].dir->kids[name] = ino;
    return {};
  }

  Status apply_whiteout(const std::string& path, const std::vector<std::string>& comps, const std::string& victim) {
    if (victim.empty() || victim == "." || victim == ".." || victim.find('/') != std::string::npos)
      return bad(path, "invalid whiteout name");
    auto parent = open_dir(comps, comps.size() - 1, false);
    if (!parent) {
      if (parent.error().exit == Exit::no_input) return {};  // nothing below to hide
      return bad(path, parent.error().message());
    }
    return remove(*parent, victim);
  }

  // ".wh..wh..opq": everything lower layers put in the directory goes; this
  // layer's entries stay whatever their position in the tar.
  Status apply_opaque(const std::string& path, const std::vector<std::string>& comps) {
    std::vector<std::string> dir(comps.begin(), comps.end() - 1);
    remember(dir);
    auto d = open_dir(dir, dir.size(), true);
    if (!d) return bad(path, d.error().message());
    const PathTree* node = &layer_paths_;
    for (const auto& c : dir)
      if (node) node = node->child(c);
    return clear_lower(*d, node);
  }

  Status clear_lower(ext2_ino_t dir, const PathTree* node) {
    std::vector<std::string> names;
    for (const auto& kv : nodes_[dir].dir->kids) names.push_back(kv.first);
    for (const auto& n : names) {
      const PathTree* sub = node ? node->child(n) : nullptr;
      if (!sub) {
        if (auto st = remove(dir, n); !st) return st;
        continue;
      }
      ext2_ino_t ino = nodes_[dir].dir->kids[n];
      if (nodes_[ino].dir)
        if (auto st = clear_lower(ino, sub); !st) return st;
    }
    return {};
  }

  // A regular file of the image, read inside it ("" when missing; bounded).
  Result<std::string> read_in_root(const std::vector<std::string>& comps) {
    ext2_ino_t dir = 0;
    if (resolve(comps, comps.size() - 1, false, true, dir, nullptr) != 0) return std::string();
    auto& kids = nodes_[dir].dir->kids;
    auto it = kids.find(comps.back());
    if (it == kids.end() || nodes_[it->second].ftype != EXT2_FT_REG_FILE) return std::string();
    uint64_t size = sizes_[it->second];
    if (size > (16u << 20)) return make_error(Exit::data, fmt::format("reading /{} in the image", detail::join(comps, comps.size())), "larger than 16 MiB");
    ext2_file_t f = nullptr;
    errcode_t e = ext2fs_file_open(fs_, it->second, 0, &f);
    std::string out(size, '\0');
    unsigned int got = 0;
    if (!e) e = ext2fs_file_read(f, out.data(), static_cast<unsigned int>(size), &got);
    if (f) ext2fs_file_close(f);
    if (e) return fs_fail(fmt::format("reading /{}", detail::join(comps, comps.size())), e);
    out.resize(got);
    return out;
  }

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
      ext2_ino_t dir = 0;
      if (resolve(*comps, comps->size() - 1, false, true, dir, nullptr) != 0) continue;  // removed later in the layer
      auto& kids = nodes_[dir].dir->kids;
      auto it = kids.find(comps->back());
      if (it == kids.end()) continue;
      if (auto st = set_xattrs(it->second, {{p.xattr, *value}}, p.path); !st) return st;
    }
    pending_acls_.clear();
    return {};
  }

  // A directory's blocks: ".", "..", then the names in order, packed.
  Status write_dir(ext2_ino_t ino, Node& node) {
    const unsigned bs = fs_->blocksize;
    const bool csum = ext2fs_has_feature_metadata_csum(fs_->super);
    const unsigned usable = bs - (csum ? sizeof(ext2_dir_entry_tail) : 0);
    std::vector<char> blocks;
    unsigned used = usable;  // forces a first block
    ext2_dir_entry* last = nullptr;
    uint32_t subdirs = 0;
    auto add = [&](const std::string& name, ext2_ino_t child, uint8_t ft) -> Status {
      unsigned rec = EXT2_DIR_REC_LEN(name.size());
      if (used + rec > usable) {
        if (last) ext2fs_set_rec_len(fs_, usable - static_cast<unsigned>(reinterpret_cast<char*>(last) - (blocks.data() + blocks.size() - bs)), last);
        blocks.resize(blocks.size() + bs, 0);
        if (csum)  // (EXT2_DIRENT_TAIL's C cast trips clang's -Wcast-align; the offset is 4-aligned)
          ext2fs_initialize_dirent_tail(fs_, reinterpret_cast<ext2_dir_entry_tail*>(blocks.data() + blocks.size() - sizeof(ext2_dir_entry_tail)));
        used = 0;
      }
      auto* d = reinterpret_cast<ext2_dir_entry*>(blocks.data() + blocks.size() - bs + used);
      d->inode = child;
      ext2fs_dirent_set_name_len(d, static_cast<int>(name.size()));
      ext2fs_dirent_set_file_type(d, ext2fs_has_feature_filetype(fs_->super) ? ft : 0);
      if (errcode_t e = ext2fs_set_rec_len(fs_, rec, d)) return fs_fail("writing a directory", e);
      std::memcpy(d->name, name.data(), name.size());
      used += rec;
      last = d;
      return {};
    };
    if (auto st = add(".", ino, EXT2_FT_DIR); !st) return st;
    if (auto st = add("..", node.dir->parent, EXT2_FT_DIR); !st) return st;
    for (const auto& [name, child] : node.dir->kids) {
      const Node& c = nodes_[child];
      if (c.dir) ++subdirs;
      if (auto st = add(name, child, c.ftype); !st) return st;
    }
    ext2fs_set_rec_len(fs_, usable - static_cast<unsigned>(reinterpret_cast<char*>(last) - (blocks.data() + blocks.size() - bs)), last);
    blk64_t n = blocks.size() / bs;
    InodeBuf in(inode_size_);
    errcode_t e = read_inode(ino, in);
    if (!e) e = ext2fs_fallocate(fs_, EXT2_FALLOCATE_FORCE_INIT | EXT2_FALLOCATE_INIT_BEYOND_EOF, ino, in.base(), ~0ULL, 0, n);
    ext2_extent_handle_t h = nullptr;
    if (!e) e = ext2fs_extent_open2(fs_, ino, in.base(), &h);
    for (blk64_t l = 0; !e && l < n; ++l) {
      blk64_t p = 0;
      e = ext2fs_bmap2(fs_, ino, in.base(), nullptr, 0, l, nullptr, &p);
      if (!e) e = ext2fs_write_dir_block4(fs_, p, blocks.data() + l * bs, 0, ino);
    }
    if (h) ext2fs_extent_free(h);
    if (!e) e = ext2fs_inode_size_set(fs_, in.base(), n * bs);
    if (!e) {
      uint32_t links = 2 + subdirs;
      in.large()->i_links_count = links >= EXT2_LINK_MAX && ext2fs_has_feature_dir_nlink(fs_->super) ? 1 : static_cast<uint16_t>(links);
      e = write_inode(ino, in);
    }
    if (e) return fs_fail("writing a directory", e);
    return {};
  }

  static constexpr size_t kStageBytes = 4u << 20;

  const Limits& limits_;
  ApplyCounters& counters_;
  ext2_filsys fs_ = nullptr;
  unsigned inode_size_ = 256;
  uint32_t now_ = 0;
  std::string what_disk_;
  fsys::path host_dir_;
  uint64_t created_dirs_ = 0;
  std::unordered_map<ext2_ino_t, Node> nodes_;
  std::unordered_map<ext2_ino_t, uint64_t> sizes_;  // regular files
  std::vector<char> stage_;
  struct PendingAcl {
    std::string path, xattr;
    acl::FromArchive acl;
  };
  std::vector<PendingAcl> pending_acls_;
  RootMeta root_meta_;  // the root entry's metadata, applied by finish()
};

}  // namespace kina::image

#endif  // KINA_HAVE_EXT2FS
