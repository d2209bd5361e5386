// sweep.hpp: removing what a killed kina-kube left behind (temporaries of atomic
// writes, staging directories of dead processes), before the next write.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/fs.hpp"
#include "kina/validate.hpp"

#include "cluster.hpp"

namespace kina::kube {

// Removes the temporaries of atomic writes of `file` (write_file_atomic's
// `.NAME.tmp.XXXXXX`, holding a client key) that a killed command left next
// to it, in its directory and, when it is a symlink, next to its target.
// Called only while holding the lock every kina writer of `file` holds
// (PATH.lock for a user's kubeconfig, the cluster lock for files in
// clusters/C/), so no live process owns such a temporary. Only regular files
// of this user with exactly that name shape are touched.
inline void sweep_write_temps(const fsys::path& file) {
  std::error_code ec;
  std::vector<fsys::path> files{file};
  if (fsys::is_symlink(file, ec)) {
    fsys::path real = fsys::weakly_canonical(file, ec);
    if (!ec) files.push_back(real);
  }
  for (const auto& f : files) {
    std::string prefix = "." + f.filename().string() + ".tmp.";
    fsys::path dir = f.parent_path();
    std::error_code iec;
    for (fsys::directory_iterator it(dir, iec), end; !iec && it != end; it.increment(iec)) {
      std::string n = it->path().filename().string();
      if (n.size() != prefix.size() + 6 || n.rfind(prefix, 0) != 0) continue;
      if (n.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", prefix.size()) !=
          std::string::npos)
        continue;
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid()) continue;
      if (::unlink(it->path().c_str()) == 0)
        info(kTool, fmt::format("removed {}, left by an interrupted write", it->path().string()));
    }
  }
}

// The temporary directories `DIR/PREFIX<pid>.XXXXXX` of dead processes
// (fetch's `.fetch.`: admin.conf, the cluster admin's key; install_files'
// staging directories: clear keys of pki export and pki issue) go with
// kina::sweep_dead_temps (fs.hpp).

}  // namespace kina::kube
