// output.hpp: the one rule for every file kina writes at a path a user named
// (--out, --kubeconfig, $KUBECONFIG, --log): what may be replaced, and with which mode.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"

namespace kina {

// Whether a symbolic link at the output path is written through. Only the
// kubeconfig being merged follows links, as kubectl does (~/.kube/config is
// often a link into a dotfiles repository); everything else refuses them.
enum class FollowLinks { no, like_kubectl };

struct OutputPlan {
  fsys::path path;     // the file to replace: the given path, or a followed link's final target
  bool exists = false;
  mode_t mode = 0600;  // the existing file's mode, else the default
};

namespace detail {

inline std::string_view file_kind(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

}  // namespace detail

// Decides how `path` may be written, before anything is opened, locked or
// read. Refused with Exit::cant_create (73), naming the path:
//  - anything that exists and is not a regular file (device, FIFO, socket,
//    directory), also when reached through a symbolic link;
//  - a symbolic link, unless `follow` is like_kubectl: then the chain is
//    resolved and its final target is held to the same rule;
//  - a read-only regular file (no write permission bit, or no access), as
//    kubectl refuses it.
// An existing file keeps its mode (0640 stays 0640), except that `secret`
// output into a file others may read or write gets 0600.
inline Result<OutputPlan> plan_output(const fsys::path& given, std::string_view what, mode_t default_mode,
                                      FollowLinks follow = FollowLinks::no, bool secret = false) {
  auto refuse = [&](const fsys::path& p, std::string why) {
    std::string name = p == given ? given.string() : fmt::format("{} (the target of {})", p.string(), given.string());
    return make_error(Exit::cant_create, fmt::format("{} {}", what, name), std::move(why));
  };
  if (given.empty()) return make_error(Exit::usage, std::string(what), "the path is empty");
  // stat follows links (also /proc/self/fd/N to a pipe): a non-regular end is refused whatever the mode.
  struct stat end {};
  bool end_exists = ::stat(given.c_str(), &end) == 0;
  if (!end_exists && errno != ENOENT && errno != ENOTDIR)
    return make_error(Exit::cant_create, fmt::format("{} {}", what, given.string()), std::strerror(errno));
  OutputPlan plan;
  plan.path = given;
  struct stat sb {};
  for (int hops = 0;; ++hops) {
    if (::lstat(plan.path.c_str(), &sb) != 0) {
      if (errno == ENOENT) break;  // absent (or a dangling link's target): created
      return make_error(Exit::cant_create, fmt::format("{} {}", what, plan.path.string()), std::strerror(errno));
    }
    if (!S_ISLNK(sb.st_mode)) break;
    if (follow == FollowLinks::no)
      return refuse(plan.path, "it is a symbolic link (kina does not write through links here; give the target itself)");
    if (hops >= 40) return refuse(given, "too many levels of symbolic links");
    char buf[PATH_MAX];
    ssize_t n = ::readlink(plan.path.c_str(), buf, sizeof buf - 1);
    if (n < 0) return make_error(Exit::cant_create, fmt::format("{} {}", what, plan.path.string()), std::strerror(errno));
    fsys::path target(std::string(buf, static_cast<size_t>(n)));
    plan.path = (target.is_absolute() ? target : plan.path.parent_path() / target).lexically_normal();
  }
  if (end_exists && !S_ISREG(end.st_mode))
    return refuse(plan.path == given || ::lstat(plan.path.c_str(), &sb) != 0 ? given : plan.path,
                  fmt::format("it is {}; only a regular file or a new path is written", detail::file_kind(end.st_mode)));
  if (::lstat(plan.path.c_str(), &sb) == 0) {
    if (!S_ISREG(sb.st_mode))
      return refuse(plan.path, fmt::format("it is {}; only a regular file or a new path is written",
                                           detail::file_kind(sb.st_mode)));
    if ((sb.st_mode & 0222) == 0 || ::access(plan.path.c_str(), W_OK) != 0)
      return refuse(plan.path, fmt::format("it is read-only (mode {:04o}); make it writable first", sb.st_mode & 07777));
    plan.exists = true;
    plan.mode = sb.st_mode & 07777;
  } else {
    plan.mode = default_mode;
  }
  if (secret && (plan.mode & 0007) != 0) plan.mode = 0600;
  return plan;
}

// Writes `data` as planned: atomically (temp file, fsync, rename), with the planned mode.
inline Status write_output(const OutputPlan& plan, std::string_view data) {
  return write_file_atomic(plan.path, data, plan.mode);
}

// plan_output, then write_output.
inline Status write_output_file(const fsys::path& path, std::string_view data, std::string_view what,
                                mode_t default_mode, FollowLinks follow = FollowLinks::no, bool secret = false) {
  auto plan = plan_output(path, what, default_mode, follow, secret);
  if (!plan) return plan.error();
  return write_output(*plan, data);
}

}  // namespace kina
