// cluster.hpp: where kina-kube keeps a cluster's state ($KINA_HOME/clusters/C/),
// its lock, the bounds of its flags, and how it takes a path and prints a record.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/json.hpp"
#include "kina/lock.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

namespace kina::kube {

inline constexpr std::string_view kTool = "kina-kube";
// Certificates start a little in the past: a node VM's clock may lag the host's.
inline constexpr int64_t kBackdateMs = 5 * 60 * 1000;
// Bounds of the duration flags (docs/cli.md, "Numeric bounds").
inline constexpr int64_t kSecondMs = 1000, kDayMs = 86400 * kSecondMs, kYearMs = 365 * kDayMs;
inline constexpr int64_t kMaxLeafTtlMs = 10 * kYearMs;          // issue, sign --ttl (and never past the CA's end)
inline constexpr int64_t kMaxTokenTtlMs = kYearMs;              // token --ttl
inline constexpr int64_t kMaxLockTimeoutMs = 3600 * kSecondMs;  // merge, unmerge --lock-timeout

// $KINA_HOME/clusters/C, the name checked; made (0700) when `create`.
inline Result<fsys::path> cluster_dir(const std::string& cluster, bool create) {
  if (auto st = validate_name("cluster name", cluster); !st) return st.error();
  auto home = kina_home();
  if (!home) return home.error();
  fsys::path dir = *home / "clusters" / cluster;
  if (create)
    if (auto st = ensure_dir(dir, 0700); !st) return st.error();
  return dir;
}

// The admin kubeconfig that fetch keeps, and the state merge leaves for unmerge.
inline fsys::path admin_kubeconfig_path(const fsys::path& cdir) { return cdir / "admin.kubeconfig"; }
inline fsys::path merge_state_path(const fsys::path& cdir) { return cdir / "kubeconfig-merge.json"; }

// A path given on the command line, made absolute; an empty one is a usage error
// (std::filesystem::absolute throws on it).
inline Result<fsys::path> path_arg(std::string_view flag, const std::string& s) {
  if (s.empty()) return make_error(Exit::usage, fmt::format("invalid {} \"\"", flag), "must not be empty");
  std::error_code ec;
  fsys::path p = fsys::absolute(s, ec);
  if (ec) return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(s)), ec.message());
  // "DIR/" and "DIR/." name DIR itself (and rename(2) needs its plain name).
  std::string t = p.string();
  for (;;) {
    if (t.size() > 1 && t.back() == '/') t.pop_back();
    else if (t.size() > 2 && t.ends_with("/.")) t.resize(t.size() - 2);
    else break;
  }
  return fsys::path(t);
}

// The cluster lock (clusters/C/lock), held by every writer of the cluster's files.
inline Result<FileLock> lock_cluster(const fsys::path& dir, std::string_view action) {
  return FileLock::acquire(dir / "lock", std::chrono::seconds(30), fmt::format("kina-kube {}", action));
}

// Closes a record begun with begin_record and prints it on stdout.
inline Status print_record(json::Writer& w) {
  w.end_object();
  RecordWriter out;
  return out.write_line(w.str());
}

}  // namespace kina::kube
