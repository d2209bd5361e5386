// transfer.hpp: both ends of a file transfer (docs/agent.md, put and get):
// TreeSource reads a tree as entry/data frames, TreeSink writes such frames
// back into a tree. The agent uses them for get and put in the guest, the cp
// client for put and get on the host. Plain libc (the agent is static).
// Guest code (tools/kina-vm/guest/): static, libc only, no exceptions (kina-init
// is linked -static -fno-exceptions); the host shares wire.hpp and transfer.hpp.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kina/inroot.hpp"
#include "wire.hpp"

namespace kina::wire {

// Walks a tree depth first, names sorted, without following symlinks;
// devices, sockets and fifos are skipped. One step at a time, so a sender
// can stop whenever its window is full.
class TreeSource {
 public:
  struct Step {
    enum Kind { frame, done, failed } kind = done;
    Type type = Type::entry;  // frame: entry or data
    std::string payload;
    // failed: what failed on which path, with errno (0: the file shrank
    // while being read).
    enum Op { stat, open, list, readlink, read } op = stat;
    std::string path;
    int err = 0;
  };

  explicit TreeSource(std::string src) { todo_.emplace_back(std::move(src), ""); }
  ~TreeSource() { close_file(); }
  TreeSource(const TreeSource&) = delete;
  TreeSource& operator=(const TreeSource&) = delete;

  // The next frame: an entry, or up to kChunk bytes of the current file.
  Step next() {
    for (;;) {
      if (fd_ >= 0) {
        if (remaining_ == 0) {
          close_file();
          continue;
        }
        std::string buf(std::min<uint64_t>(remaining_, kChunk), '\0');
        ssize_t n = ::read(fd_, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail(Step::read, file_, n < 0 ? errno : 0);
        buf.resize(static_cast<size_t>(n));
        remaining_ -= static_cast<uint64_t>(n);
        return frame(Type::data, std::move(buf));
      }
      if (todo_.empty()) return {};
      auto [abs, rel] = std::move(todo_.back());
      todo_.pop_back();
      struct stat st {};
      if (::lstat(abs.c_str(), &st) != 0) return fail(Step::stat, abs, errno);
      Entry e;
      e.mode = st.st_mode & 07777;
      e.uid = st.st_uid;
      e.gid = st.st_gid;
      e.path = rel;
      if (S_ISDIR(st.st_mode)) {
        std::vector<std::string> names;
        if (!list(abs, names)) return fail(Step::list, abs, errno);
        e.kind = Entry::dir;
        for (auto it = names.rbegin(); it != names.rend(); ++it)
          todo_.emplace_back(abs + "/" + *it, rel.empty() ? *it : rel + "/" + *it);
      } else if (S_ISLNK(st.st_mode)) {
        char link[4096];
        ssize_t n = ::readlink(abs.c_str(), link, sizeof link);
        if (n < 0) return fail(Step::readlink, abs, errno);
        e.kind = Entry::symlink;
        e.link.assign(link, static_cast<size_t>(n));
      } else if (S_ISREG(st.st_mode)) {
        fd_ = ::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd_ < 0) return fail(Step::open, abs, errno);
        file_ = abs;
        remaining_ = static_cast<uint64_t>(st.st_size);
        e.kind = Entry::file;
        e.size = remaining_;
      } else {
        continue;
      }
      return frame(Type::entry, e.encode());
    }
  }

 private:
  static bool list(const std::string& dir, std::vector<std::string>& names) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return false;
    errno = 0;
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    int err = errno;
    ::closedir(d);
    std::sort(names.begin(), names.end());
    errno = err;
    return err == 0;
  }
  static Step frame(Type t, std::string payload) {
    Step s;
    s.kind = Step::frame;
    s.type = t;
    s.payload = std::move(payload);
    return s;
  }
  Step fail(Step::Op op, const std::string& path, int err) {
    close_file();
    Step s;
    s.kind = Step::failed;
    s.op = op;
    s.path = path;
    s.err = err;
    return s;
  }
  void close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::vector<std::pair<std::string, std::string>> todo_;  // (path, path in the transfer), last one next
  int fd_ = -1;
  std::string file_;
  uint64_t remaining_ = 0;
};

// Writes a transfer's entries at root, never outside it, through
// kina/inroot.hpp in its refuse mode: the sender (a guest, for cp NAME:SRC
// DST) is trusted less than this side.
//  - The first entry is the root itself ("" path): a directory (made, or an
//    existing one that is not a symlink), a file or a symlink; only a
//    directory root has more entries.
//  - Every other entry is created through its parent's descriptor, resolved
//    inside the root with no symlink on the way (a symlink, even one already
//    on this side, is never a parent: Failure::unsafe); names with "..",
//    empty or "." components, or absolute ones are protocol errors.
//  - Symlinks are made last, after every other entry, so no entry of the
//    stream can be written through one; their targets are stored as sent.
//  - A file is written to a temporary name in its directory and renamed
//    over the entry when complete; all-zero blocks are skipped (holes kept:
//    a sparse file stays sparse) and the size is set at the end.
//  - Caps: at most max_bytes of data written (holes are free) and
//    max_entries entries (Failure::too_large).
//  - Directories are made 0700 and get their mode (and owner) at finish(),
//    so a read-only directory can still be filled. Owners are set only when
//    set_owner (root on the receiving side); a symlink's owner is best effort.
//  - After the first failure every call fails, and what this sink created
//    (files, directories, symlinks, temporaries) is removed again; the
//    destructor does the same for a transfer that never finished.
class TreeSink {
 public:
  enum class Failure { none, protocol, os, unsafe, too_large };
  static constexpr uint64_t kDefaultMaxBytes = 64ull << 30;
  static constexpr uint64_t kDefaultMaxEntries = 1ull << 22;

  TreeSink(std::string root, bool set_owner, uint64_t max_bytes = kDefaultMaxBytes,
           uint64_t max_entries = kDefaultMaxEntries)
      : root_(std::move(root)), set_owner_(set_owner), max_bytes_(max_bytes), max_entries_(max_entries) {}
  ~TreeSink() {
    if (!done_) cleanup();
  }
  TreeSink(const TreeSink&) = delete;
  TreeSink& operator=(const TreeSink&) = delete;

  // An entry frame's payload.
  bool entry(std::string_view payload) {
    if (failure_ != Failure::none || done_) return false;
    auto e = Entry::decode(payload);
    if (!e) return fail(Failure::protocol, root_, 0);
    if (!end_file()) return false;
    if (++entries_ > max_entries_) return fail(Failure::too_large, root_, EFBIG);
    if (!root_seen_) {
      if (!e->path.empty()) return fail(Failure::protocol, shown(e->path), 0);
      root_seen_ = true;
      return add_root(*e);
    }
    std::vector<std::string> comps;
    if (e->path.empty() || !safe_relative(e->path) || !inroot_components(e->path, comps, false) || comps.empty())
      return fail(Failure::protocol, shown(e->path), 0);
    if (!in_) return fail(Failure::protocol, shown(e->path), 0);  // more entries after a root that is not a directory
    int pfd = in_->open_dir(comps, comps.size() - 1, false);
    if (pfd < 0) return fail(errno == ELOOP ? Failure::unsafe : Failure::os, shown(e->path), errno);
    Fd parent(pfd);
    return add(*e, std::move(parent), comps);
  }

  // protocol: data without a file entry, or more than its size.
  bool data(std::string_view bytes) {
    if (failure_ != Failure::none || done_) return false;
    if (fd_ < 0 || bytes.size() > remaining_) return fail(Failure::protocol, file_.empty() ? root_ : file_, 0);
    // Block by block: all-zero blocks become a hole (seek over them).
    constexpr size_t kBlock = 4096;
    size_t off = 0;
    while (off < bytes.size()) {
      size_t len = std::min(kBlock, bytes.size() - off);
      std::string_view blk = bytes.substr(off, len);
      bool zero = blk.find_first_not_of('\0') == std::string_view::npos;
      if (zero) {
        if (::lseek(fd_, static_cast<off_t>(len), SEEK_CUR) < 0) return fail(Failure::os, file_, errno);
      } else {
        written_ += len;
        if (written_ > max_bytes_) return fail(Failure::too_large, file_, EFBIG);
        if (!write_fully(fd_, blk)) return fail(Failure::os, file_, errno);
      }
      off += len;
    }
    remaining_ -= bytes.size();
    return true;
  }

  // Completes the last file, makes the symlinks, applies the directories'
  // owners and modes. protocol: no root entry, or a file shorter than its size.
  bool finish() {
    if (failure_ != Failure::none || done_) return false;
    if (!end_file()) return false;
    if (!root_seen_) return fail(Failure::protocol, root_, 0);
    for (const auto& l : links_) {
      int rc = -1;
      if (l.comps.empty()) {  // the root itself
        struct stat sb {};
        bool existed = ::fstatat(parent_.get(), base_.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0;
        if (existed && S_ISDIR(sb.st_mode)) return fail(Failure::os, root_, EISDIR);
        if (existed && ::unlinkat(parent_.get(), base_.c_str(), 0) != 0) return fail(Failure::os, root_, errno);
        rc = ::symlinkat(l.target.c_str(), parent_.get(), base_.c_str());
        if (rc == 0) {
          created_root_ = true;
          if (set_owner_) (void)!::fchownat(parent_.get(), base_.c_str(), l.uid, l.gid, AT_SYMLINK_NOFOLLOW);
        }
      } else {
        struct stat sb {};
        int pfd = in_->open_dir(l.comps, l.comps.size() - 1, false);
        if (pfd < 0) return fail(errno == ELOOP ? Failure::unsafe : Failure::os, l.path, errno);
        Fd parent(pfd);
        bool existed = ::fstatat(pfd, l.comps.back().c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0;
        rc = in_->symlink(l.comps, l.target);
        if (rc == 0) {
          if (!existed) created_.push_back(l.comps);
          if (set_owner_) (void)!::fchownat(pfd, l.comps.back().c_str(), l.uid, l.gid, AT_SYMLINK_NOFOLLOW);
        }
      }
      if (rc != 0) return fail(Failure::os, l.path, errno);
    }
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      Fd dir(open_entry_dir(it->comps));
      if (dir.get() < 0) return fail(errno == ELOOP ? Failure::unsafe : Failure::os, it->path, errno);
      if ((set_owner_ && ::fchown(dir.get(), it->uid, it->gid) != 0) || ::fchmod(dir.get(), it->mode & 07777) != 0)
        return fail(Failure::os, it->path, errno);
    }
    done_ = true;
    return true;
  }

  Failure failure() const { return failure_; }
  // The path that failed: the root, or an entry's path in the transfer (quoted).
  const std::string& failed_path() const { return failed_path_; }
  int failed_errno() const { return failed_errno_; }
  const std::string& root() const { return root_; }
  // Bytes of data written (holes not counted).
  uint64_t written() const { return written_; }

 private:
  // A descriptor closed on scope exit (libc only here: no kina/fs.hpp).
  class Fd {
   public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
      if (this != &o) {
        reset();
        fd_ = o.fd_;
        o.fd_ = -1;
      }
      return *this;
    }
    ~Fd() { reset(); }
    int get() const { return fd_; }
    void reset() {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }

   private:
    int fd_ = -1;
  };
  struct Dir {
    std::vector<std::string> comps;
    std::string path;
    uint32_t mode, uid, gid;
  };
  struct Link {
    std::vector<std::string> comps;
    std::string path, target;
    uint32_t uid, gid;
  };

  // Quotes a name from the sender for messages (control bytes escaped).
  static std::string shown(std::string_view p) {
    std::string out = "\"";
    for (unsigned char c : p.substr(0, 512)) {
      if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
        static const char hex[] = "0123456789abcdef";
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  }

  // Removes the temporaries (".kina-cp.PID.*", regular files) that a
  // transfer killed with SIGKILL left in the directory dfd: those whose PID
  // is gone. Run on the directories a transfer writes into that existed before.
  static void sweep(int dfd) {
    int fd = ::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return;
    }
    constexpr std::string_view prefix = ".kina-cp.";
    while (dirent* de = ::readdir(d)) {
      std::string_view n = de->d_name;
      if (n.substr(0, prefix.size()) != prefix) continue;
      long pid = 0;
      size_t i = prefix.size();
      while (i < n.size() && n[i] >= '0' && n[i] <= '9' && pid < (1L << 30)) pid = pid * 10 + (n[i++] - '0');
      if (i == prefix.size() || i >= n.size() || n[i] != '.' || pid <= 0 || pid == ::getpid()) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
      struct stat sb {};
      if (::fstatat(::dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
        (void)::unlinkat(::dirfd(d), de->d_name, 0);
    }
    ::closedir(d);
  }

  bool add_root(const Entry& e) {
    // The root's parent is this side's choice (it may be reached through
    // symlinks); the root itself is never followed.
    std::string r = root_;
    while (r.size() > 1 && r.back() == '/') r.pop_back();
    size_t slash = r.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : r.substr(0, slash);
    base_ = slash == std::string::npos ? r : r.substr(slash + 1);
    if (base_.empty() || base_ == "." || base_ == "..") {
      // An existing directory named by "." or "/": only a directory fits.
      if (e.kind != Entry::dir) return fail(Failure::os, root_, EISDIR);
      in_ = std::make_unique<InRoot>(AT_FDCWD, r.c_str(), InRoot::Symlinks::refuse);
      if (!in_->valid()) return fail(errno == ELOOP ? Failure::unsafe : Failure::os, root_, errno);
      dirs_.push_back({{}, root_, e.mode, e.uid, e.gid});
      return true;
    }
    parent_ = Fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (parent_.get() < 0) return fail(Failure::os, dir, errno);
    sweep(parent_.get());
    if (e.kind == Entry::symlink) {
      links_.push_back({{}, root_, e.link, e.uid, e.gid});
      return true;
    }
    if (e.kind == Entry::file) {
      Fd p(::fcntl(parent_.get(), F_DUPFD_CLOEXEC, 0));
      return start_file(e, std::move(p), base_, root_);
    }
    if (::mkdirat(parent_.get(), base_.c_str(), 0700) == 0) {
      created_root_ = true;
    } else if (errno != EEXIST) {
      return fail(Failure::os, root_, errno);
    } else {
      struct stat sb {};
      if (::fstatat(parent_.get(), base_.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
        return fail(Failure::unsafe, root_, ELOOP);
    }
    in_ = std::make_unique<InRoot>(parent_.get(), base_.c_str(), InRoot::Symlinks::refuse);
    if (!in_->valid()) return fail(errno == ELOOP ? Failure::unsafe : Failure::os, root_, errno);
    if (!created_root_) sweep(in_->root_fd());
    dirs_.push_back({{}, root_, e.mode, e.uid, e.gid});
    return true;
  }

  // Creates one entry below the root; a file stays open for the data frames that follow.
  bool add(const Entry& e, Fd parent, const std::vector<std::string>& comps) {
    const std::string& name = comps.back();
    std::string path = shown(e.path);
    if (e.kind == Entry::dir) {
      if (::mkdirat(parent.get(), name.c_str(), 0700) == 0) {
        created_.push_back(comps);
      } else {
        struct stat st {};
        if (errno != EEXIST) return fail(Failure::os, path, errno);
        if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return fail(Failure::os, path, errno);
        if (S_ISLNK(st.st_mode)) return fail(Failure::unsafe, path, ELOOP);
        if (!S_ISDIR(st.st_mode)) return fail(Failure::os, path, EEXIST);
        Fd existing(::openat(parent.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (existing.get() >= 0) sweep(existing.get());
      }
      dirs_.push_back({comps, path, e.mode, e.uid, e.gid});
      return true;
    }
    if (e.kind == Entry::symlink) {
      links_.push_back({comps, path, e.link, e.uid, e.gid});
      return true;
    }
    file_comps_ = comps;
    return start_file(e, std::move(parent), name, path);
  }

  bool start_file(const Entry& e, Fd parent, const std::string& name, const std::string& path) {
    // PID, this sink (the agent runs several puts at once), entry number.
    char id[64];
    std::snprintf(id, sizeof id, "%ld.%lx.%llu", static_cast<long>(::getpid()), static_cast<unsigned long>(reinterpret_cast<uintptr_t>(this)),
                  static_cast<unsigned long long>(entries_));
    tmp_ = std::string(".kina-cp.") + id;
    fd_ = ::openat(parent.get(), tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      tmp_.clear();
      return fail(Failure::os, path, errno);
    }
    file_dir_ = std::move(parent);
    file_name_ = name;
    file_ = path;
    file_entry_ = e;
    remaining_ = e.size;
    return true;
  }

  // The file open for data is complete: size, owner, mode, then renamed into place.
  bool end_file() {
    if (fd_ < 0) return true;
    if (remaining_ != 0) return fail(Failure::protocol, file_, 0);
    const Entry& e = file_entry_;
    if (::ftruncate(fd_, static_cast<off_t>(e.size)) != 0) return fail(Failure::os, file_, errno);
    if ((set_owner_ && ::fchown(fd_, e.uid, e.gid) != 0) || ::fchmod(fd_, e.mode & 07777) != 0)
      return fail(Failure::os, file_, errno);
    ::close(fd_);
    fd_ = -1;
    struct stat sb {};
    bool existed = ::fstatat(file_dir_.get(), file_name_.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0;
    if (existed && S_ISDIR(sb.st_mode)) return fail(Failure::os, file_, EISDIR);
    if (::renameat(file_dir_.get(), tmp_.c_str(), file_dir_.get(), file_name_.c_str()) != 0)
      return fail(Failure::os, file_, errno);
    tmp_.clear();
    if (!existed) {
      if (in_) {
        created_.push_back(file_comps_);
      } else {
        created_root_ = true;
      }
    }
    file_dir_.reset();
    file_.clear();
    return true;
  }

  // Opens (to change its mode) the directory entry comps ({} : the root).
  int open_entry_dir(const std::vector<std::string>& comps) const {
    if (comps.empty()) return ::fcntl(in_->root_fd(), F_DUPFD_CLOEXEC, 0);
    int pfd = in_->open_dir(comps, comps.size() - 1, false);
    if (pfd < 0) return -1;
    int fd = ::openat(pfd, comps.back().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    ::close(pfd);
    errno = saved;
    return fd;
  }

  bool fail(Failure f, const std::string& path, int err) {
    failure_ = f;
    failed_path_ = path;
    failed_errno_ = err;
    cleanup();
    return false;
  }

  // Removes what this sink made: the temporary file, then created entries
  // newest first (a created directory holds only entries created later).
  void cleanup() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!tmp_.empty() && file_dir_.get() >= 0) (void)::unlinkat(file_dir_.get(), tmp_.c_str(), 0);
    tmp_.clear();
    file_dir_.reset();
    for (auto it = created_.rbegin(); in_ && it != created_.rend(); ++it) {
      int pfd = in_->open_dir(*it, it->size() - 1, false);
      if (pfd < 0) continue;
      if (::unlinkat(pfd, it->back().c_str(), 0) != 0 && (errno == EISDIR || errno == EPERM))
        (void)::unlinkat(pfd, it->back().c_str(), AT_REMOVEDIR);
      ::close(pfd);
    }
    created_.clear();
    if (created_root_ && parent_.get() >= 0) {
      if (::unlinkat(parent_.get(), base_.c_str(), 0) != 0 && (errno == EISDIR || errno == EPERM))
        (void)::unlinkat(parent_.get(), base_.c_str(), AT_REMOVEDIR);
    }
    created_root_ = false;
    done_ = true;  // nothing more to write or remove
  }

  std::string root_;
  bool set_owner_;
  uint64_t max_bytes_, max_entries_;
  uint64_t entries_ = 0, written_ = 0;
  bool root_seen_ = false, created_root_ = false, done_ = false;
  Fd parent_;  // the root's parent directory
  std::string base_;  // the root's name in it
  std::unique_ptr<InRoot> in_;  // a directory root
  // The file being written: its directory, temporary and final names.
  int fd_ = -1;
  Fd file_dir_;
  std::string tmp_, file_name_, file_;
  std::vector<std::string> file_comps_;
  Entry file_entry_;
  uint64_t remaining_ = 0;
  std::vector<std::vector<std::string>> created_;
  std::vector<Dir> dirs_;
  std::vector<Link> links_;
  Failure failure_ = Failure::none;
  std::string failed_path_;
  int failed_errno_ = 0;
};

// Why a sink failed, in one line for the user ("" when it did not).
inline std::string sink_failure_why(const TreeSink& s) {
  std::string at = s.failed_path();
  switch (s.failure()) {
    case TreeSink::Failure::none: return "";
    case TreeSink::Failure::protocol:
      return "malformed transfer at " + at + " (a path with \"..\", \"/\" or empty components, entries below a non-directory, "
             "data beyond a file's size, or a file shorter than its size)";
    case TreeSink::Failure::unsafe: return at + " is a symlink or is reached through one (refused: nothing is written through a symlink)";
    case TreeSink::Failure::too_large: return "more than the transfer's cap at " + at + " (see --max-bytes)";
    case TreeSink::Failure::os: break;
  }
  return at + ": " + std::strerror(s.failed_errno() ? s.failed_errno() : EIO);
}

}  // namespace kina::wire
