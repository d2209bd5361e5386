// accel.hpp: the acceleration a qemu machine boots with: KVM when a probe
// boot powers off in time (some hosts have /dev/kvm but guests never leave
// early boot there), else TCG; the answer is kept for a day.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "guest_config.hpp"
#include "kernel.hpp"
#include "kina/clock.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/process.hpp"

namespace kina::vm {

// q35 rather than pc (i440fx): on pc every virtio-pci probe evaluates ACPI
// interrupt-link methods, about 90 ms per device under TCG (0.45 s of a 2.5 s
// boot); on q35 all five probes take 15 ms. No SATA or SMBus: nothing uses them.
inline constexpr const char* kMachine = "q35,sata=off,smbus=off";

struct Accel {
  std::string name;
  bool fell_back = false;
  bool trusted = false;  // from a remembered full boot, not just the quick probe
};

inline void remember_accel(const Kernel& k, const std::string& accel) {
  auto home = kina_home();
  if (!home) return;
  (void)write_file_atomic(*home / "accel-probe", fmt::format("{} {} {}\n", k.version, now_ms(), accel), 0644);
}

// ACCEL: --accel (auto, kvm or tcg); INIT: kina-init, for the probe's initramfs.
inline Result<Accel> choose_accel(const std::string& accel, const Kernel& k, const fsys::path& init) {
  if (accel == "tcg") return Accel{"tcg"};
  if (accel == "kvm") {
    if (::access("/dev/kvm", R_OK | W_OK) != 0)
      return make_error(Exit::unavailable, "--accel kvm", "/dev/kvm is not usable", "use --accel auto or tcg");
    return Accel{"kvm"};
  }
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return Accel{"tcg"};
  auto home = kina_home();
  if (!home) return home.error();
  fsys::path cache = *home / "accel-probe";
  if (auto t = read_file(cache, 256)) {
    // "<kernel version> <ms> kvm|tcg"
    char ver[200] = {0}, acc[8] = {0};
    long long ms = 0;
    if (std::sscanf(t->c_str(), "%199s %lld %7s", ver, &ms, acc) == 3 && ver == k.version && now_ms() - ms < 86400000LL)
      return Accel{acc, std::string(acc) == "tcg", true};
  }
  char tmpl[] = "/tmp/kina-probe.XXXXXX";
  if (!::mkdtemp(tmpl)) return os_error("creating a temporary directory");
  fsys::path tmp = tmpl;
  GuestConfig probe;
  auto st = probe.add("probe", "1", "probe");
  if (st) st = build_initramfs(tmp / "probe.cpio", init, {}, probe.text());
  bool works = false;
  if (st) {
    ProcessSpec spec;
    spec.argv = {"qemu-system-x86_64", "-M", kMachine, "-accel", "kvm", "-cpu", "host", "-m", "256", "-display", "none",
                 "-nodefaults", "-no-user-config", "-no-reboot", "-kernel", k.path.string(), "-initrd",
                 (tmp / "probe.cpio").string(), "-append", "console=ttyS0 quiet panic=-1"};
    spec.timeout = std::chrono::seconds(4);
    spec.kill_grace = std::chrono::milliseconds(200);
    auto r = run_process(spec);
    works = r && r->success();
  }
  std::error_code ec;
  fsys::remove_all(tmp, ec);
  if (!works) {
    remember_accel(k, "tcg");
    return Accel{"tcg", true, true};
  }
  return Accel{"kvm", false, false};  // confirmed by a full boot (the KVM trial)
}

}  // namespace kina::vm
