// transfer.hpp: both ends of a file transfer (docs/agent.md, put and get):
// TreeSource reads a tree as entry/data frames, TreeSink writes such frames
// back into a tree. The agent uses them for get and put in the guest, the cp
// client for put and get on the host. Plain libc (the agent is static).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// Writes a transfer's entries under root: directories are made 0700 and get
// their mode (and owner) at finish(), so a read-only directory can still be
// filled. Owners are set only when set_owner (root on the receiving side); a
// symlink's owner is best effort. After the first failure every call fails.
class TreeSink {
 public:
  enum class Failure { none, protocol, os };

  TreeSink(std::string root, bool set_owner) : root_(std::move(root)), set_owner_(set_owner) {}
  ~TreeSink() { close_file(); }
  TreeSink(const TreeSink&) = delete;
  TreeSink& operator=(const TreeSink&) = delete;

  // An entry frame's payload; protocol: malformed, or a path that leaves the root.
  bool entry(std::string_view payload) {
    if (failure_ != Failure::none) return false;
    auto e = Entry::decode(payload);
    if (!e || !safe_relative(e->path)) return fail(Failure::protocol, root_, 0);
    return add(*e);
  }

 private:
  // Creates one entry; a file stays open for the data frames that follow.
  bool add(const Entry& e) {
    close_file();
    std::string p = e.path.empty() ? root_ : root_ + "/" + e.path;
    if (e.kind == Entry::dir) {
      struct stat st {};
      if ((::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) && ::mkdir(p.c_str(), 0700) != 0)
        return fail(Failure::os, p, errno);
      dirs_.emplace_back(p, e);
    } else if (e.kind == Entry::symlink) {
      ::unlink(p.c_str());
      if (::symlink(e.link.c_str(), p.c_str()) != 0) return fail(Failure::os, p, errno);
      if (set_owner_) (void)!::lchown(p.c_str(), e.uid, e.gid);
    } else {
      ::unlink(p.c_str());
      fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd_ < 0) return fail(Failure::os, p, errno);
      if ((set_owner_ && ::fchown(fd_, e.uid, e.gid) != 0) || ::fchmod(fd_, e.mode & 07777) != 0)
        return fail(Failure::os, p, errno);
      file_ = p;
      remaining_ = e.size;
    }
    return true;
  }

 public:
  // protocol: data without a file entry, or more than its size.
  bool data(std::string_view bytes) {
    if (failure_ != Failure::none) return false;
    if (fd_ < 0 || bytes.size() > remaining_) return fail(Failure::protocol, file_.empty() ? root_ : file_, 0);
    if (!write_fully(fd_, bytes)) return fail(Failure::os, file_, errno);
    remaining_ -= bytes.size();
    return true;
  }

  // Closes the last file and applies the directories' owners and modes.
  bool finish() {
    if (failure_ != Failure::none) return false;
    close_file();
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      if ((set_owner_ && ::chown(it->first.c_str(), it->second.uid, it->second.gid) != 0) ||
          ::chmod(it->first.c_str(), it->second.mode & 07777) != 0)
        return fail(Failure::os, it->first, errno);
    }
    return true;
  }

  Failure failure() const { return failure_; }
  const std::string& failed_path() const { return failed_path_; }
  int failed_errno() const { return failed_errno_; }
  const std::string& root() const { return root_; }

 private:
  bool fail(Failure f, const std::string& path, int err) {
    close_file();
    failure_ = f;
    failed_path_ = path;
    failed_errno_ = err;
    return false;
  }
  void close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string root_;
  bool set_owner_;
  int fd_ = -1;
  std::string file_;
  uint64_t remaining_ = 0;
  std::vector<std::pair<std::string, Entry>> dirs_;
  Failure failure_ = Failure::none;
  std::string failed_path_;
  int failed_errno_ = 0;
};

}  // namespace kina::wire
