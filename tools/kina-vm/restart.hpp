// restart.hpp: what `kina-vm start` changes in, and checks of, the QEMU
// command a stopped machine recorded in machine.json at boot.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "machine.hpp"

namespace kina::vm {

// The indexes of the values that follow FLAG in ARGV, every time it occurs.
inline std::vector<size_t> flag_values(const std::vector<std::string>& argv, std::string_view flag) {
  std::vector<size_t> at;
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == flag) at.push_back(i + 1);
  return at;
}

// The recorded -append with kina.time=NOW_MS (the guest sets its clock from
// it); nothing else of the kernel command line changes.
inline void refresh_clock_arg(std::vector<std::string>& q, int64_t now_ms) {
  for (size_t i : flag_values(q, "-append")) {
    std::string& a = q[i];
    size_t p = 0;
    while ((p = a.find("kina.time=", p)) != std::string::npos) {
      if (p != 0 && a[p - 1] != ' ') {  // part of another word
        p += 10;
        continue;
      }
      auto end = a.find(' ', p);
      std::string fresh = fmt::format("kina.time={}", now_ms);
      a.replace(p, end == std::string::npos ? std::string::npos : end - p, fresh);
      p += fresh.size();
    }
  }
}

// QEMU's serial console: written into the supervisor's FIFO, which keeps
// console.log under its cap (console_log.hpp).
inline std::string console_chardev() { return fmt::format("file,id=con,path={}", file::console_fifo); }

// A command recorded before the supervisor kept the console (QEMU wrote
// console.log itself, without a cap) gets the FIFO; nothing else changes.
inline void upgrade_console_arg(std::vector<std::string>& q) {
  for (size_t i : flag_values(q, "-chardev"))
    if (q[i] == fmt::format("file,id=con,path={}", file::console)) q[i] = console_chardev();
}

// A KVM machine's command for TCG: -accel tcg, without -cpu host.
inline void use_tcg(Spec& s) {
  auto& q = s.qemu_argv;
  for (size_t i : flag_values(q, "-accel")) q[i] = "tcg";
  for (size_t i = 0; i + 1 < q.size(); ++i)
    if (q[i] == "-cpu" && q[i + 1] == "host") {
      q.erase(q.begin() + static_cast<std::ptrdiff_t>(i), q.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      break;
    }
  s.accel = "tcg";
}

// What a stopped machine's recorded QEMU command needs on the host: its
// kernel, initramfs, overlay and modules disks (relative paths are in DIR),
// mounted directories and virtiofsd. A missing one is 66 naming it, so
// nothing is started for a machine that cannot run.
inline Status check_start_inputs(const fsys::path& dir, const Spec& s) {
  auto gone = [&](std::string_view what, const std::string& path) -> Status {
    return make_error(Exit::no_input, fmt::format("starting {}", s.name), fmt::format("its {} {} is gone", what, path),
                      fmt::format("remove the machine and boot it again: kina-vm rm {}", s.name));
  };
  auto full = [&](const std::string& p) { return fsys::path(p).is_absolute() ? fsys::path(p) : dir / p; };
  const auto& q = s.qemu_argv;
  for (size_t i : flag_values(q, "-kernel"))
    if (!fsys::is_regular_file(full(q[i]))) return gone("kernel", full(q[i]).string());
  for (size_t i : flag_values(q, "-initrd"))
    if (!fsys::is_regular_file(full(q[i]))) return gone("initramfs", full(q[i]).string());
  for (size_t i : flag_values(q, "-drive")) {
    std::string_view v = q[i];
    if (v.rfind("file=", 0) != 0) continue;
    v.remove_prefix(5);
    std::string f(v.substr(0, v.find(',')));
    if (!fsys::is_regular_file(full(f))) return gone(f == file::disk ? "disk" : "modules disk", full(f).string());
  }
  for (const auto& m : s.mounts) {
    auto pm = parse_mount(m);
    if (!pm) return pm.error();
    if (!fsys::is_directory(pm->host)) return gone("mounted directory", pm->host);
  }
  if (!s.mounts.empty() && ::access(s.virtiofsd.c_str(), X_OK) != 0) return gone("virtiofsd", s.virtiofsd);
  return {};
}

}  // namespace kina::vm
