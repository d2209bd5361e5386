// sweep.hpp: a machine directory is created with a `booting` marker naming
// its boot command; a directory whose boot command died before completing
// (kill -9, a crash) is swept by the next boot or ls of its cluster: its
// supervisor and QEMU stopped, its address released, the directory removed.
// A `starting` marker (kina-vm start of a stopped machine) whose command died
// is swept back to stopped instead: nothing of the machine is removed.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "machine.hpp"
#include "network.hpp"

namespace kina::vm {

struct BootMarker {
  pid_t pid = 0;
  unsigned long long start = 0;
  std::string network;

  std::string str() const { return fmt::format("{} {} {}\n", pid, start, network); }
  static std::optional<BootMarker> parse(const std::string& text) {
    BootMarker m;
    long pid = 0;
    char net[256] = {0};
    int n = std::sscanf(text.c_str(), "%ld %llu %255s", &pid, &m.start, net);
    if (n < 2 || pid <= 1) return std::nullopt;
    m.pid = static_cast<pid_t>(pid);
    m.network = n == 3 ? net : "";
    return m;
  }
  // The boot command that wrote it still runs (same pid, same start time).
  bool alive() const {
    auto t = process_start_ticks(pid);
    return t && *t == start;
  }
};

inline BootMarker this_boot(const std::string& network) {
  return BootMarker{::getpid(), process_start_ticks(::getpid()).value_or(0), network};
}

// Creates machines/NAME holding its `booting` marker, atomically: a temporary
// directory renamed into place. Call with the cluster lock held.
inline Status create_machine_dir(const fsys::path& dir, const BootMarker& marker) {
  fsys::path tmp = dir.parent_path() / (".boot-" + dir.filename().string());
  std::error_code ec;
  fsys::remove_all(tmp, ec);  // a crashed boot's; a live boot holds the lock while it exists
  if (::mkdir(tmp.c_str(), 0700) != 0) return os_error(fmt::format("creating {}", tmp.string()), errno, Exit::cant_create);
  auto fail = [&](Error e) {
    fsys::remove_all(tmp, ec);
    return e;
  };
  if (auto st = write_file_atomic(tmp / file::booting, marker.str(), 0600); !st) return fail(st.error());
  if (fsys::exists(dir, ec) || ec) return fail(make_error(Exit::cant_create, dir.string(), "exists"));
  if (::rename(tmp.c_str(), dir.c_str()) != 0) return fail(os_error(fmt::format("creating {}", dir.string()), errno, Exit::cant_create));
  return {};
}

// The boot completed: the directory is the machine's for good.
inline Status boot_completed(const fsys::path& dir) {
  if (::unlink((dir / file::booting).c_str()) != 0 && errno != ENOENT)
    return os_error(fmt::format("removing {}", (dir / file::booting).string()));
  return fsync_dir(dir);
}

// A start that failed or died: its processes stopped, the machine left
// stopped with WHY as the reason; its disk, machine.json and address lease
// are kept (a stopped machine keeps them until rm).
inline void abandon_start(const fsys::path& dir, const std::string& why) {
  kill_machine(dir, std::chrono::seconds(3));
  end_run(dir, exit_info_json(why));
  ::unlink((dir / file::starting).c_str());
  (void)fsync_dir(dir);
}

// Sweeps the machines of cluster CDIR whose boot command died before the boot
// completed. Call with the cluster lock held.
inline void sweep_abandoned_boots(const fsys::path& cdir, const ClusterName& cluster) {
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(cdir / "machines", ec)) {
    fsys::path dir = e.path();
    std::string name = dir.filename().string();
    if (name.rfind(".boot-", 0) == 0) {
      std::error_code rec;
      fsys::remove_all(dir, rec);
      continue;
    }
    if (auto st = read_file(dir / file::starting, 4096)) {
      // A start that died: the machine goes back to stopped, disk and lease kept.
      auto m = BootMarker::parse(*st);
      if (!(m && m->alive())) abandon_start(dir, "its start command died before the machine was ready");
      continue;
    }
    auto text = read_file(dir / file::booting, 4096);
    if (!text) continue;
    auto m = BootMarker::parse(*text);
    if (m && m->alive()) continue;
    kill_machine(dir, std::chrono::seconds(3));
    if (m && !m->network.empty())
      if (auto net = NetworkName::parse(m->network))
        if (auto n = load_network(cluster, *net)) (void)release_ip(*n, name);  // an unreadable lease file stays as it is
    std::error_code rec;
    fsys::remove_all(dir, rec);
  }
}

}  // namespace kina::vm
