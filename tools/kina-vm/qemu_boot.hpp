// qemu_boot.hpp: how the qemu backend brings a machine up: its identity, the
// Rootfs records it boots from, the guest config and initramfs, QEMU's
// command line, the supervisor it runs under, and the waits for the guest
// agent and (--ready systemd) for systemd. Used by boot and start.
#pragma once

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "accel.hpp"
#include "backend.hpp"
#include "client.hpp"
#include "disks.hpp"
#include "guest_config.hpp"
#include "kina/interrupt.hpp"
#include "kernel.hpp"
#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/lock.hpp"
#include "kina/record.hpp"
#include "kina/sha256.hpp"
#include "machine.hpp"
#include "network.hpp"
#include "restart.hpp"
#include "sweep.hpp"
#include "guest/wire.hpp"

namespace kina::vm {

// The Machine record of a qemu machine.
inline std::string qemu_record(const fsys::path& dir, const Spec& s, const State& st) {
  return machine_record(dir, s, st, [&](json::Writer& w) {
    w.field("kernel", s.kernel_version).field("accel", s.accel);
    w.field("console", (dir / file::console).string()).field("agent", (dir / file::ctl_sock).string());
  });
}

// 16 random bytes as a version 4 UUID's bits (RFC 9562); nullopt when the
// kernel's random source fails.
inline std::optional<std::array<uint8_t, 16>> random_id() {
  std::array<uint8_t, 16> b{};
  size_t got = 0;
  while (got < b.size()) {
    ssize_t n = ::getrandom(b.data() + got, b.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<size_t>(n);
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  return b;
}

// A machine's identity, chosen once: /etc/machine-id (32 hex digits) and
// the product UUID (QEMU's -uuid, the guest's DMI product_uuid, kind's
// /kind/product_uuid). Two machines never share them, even from one image.
inline Status choose_identity(Spec& s) {
  auto a = random_id(), b = random_id();
  if (!a || !b) return os_error("reading the kernel's random source");
  s.machine_id = to_hex(a->data(), a->size());
  std::string u = to_hex(b->data(), b->size());
  s.uuid = fmt::format("{}-{}-{}-{}-{}", u.substr(0, 8), u.substr(8, 4), u.substr(12, 4), u.substr(16, 4), u.substr(20));
  return {};
}

inline std::string mac_for(const std::string& seed) {
  auto h = sha256(seed);
  return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2]);
}

inline fsys::path self_dir() {
  std::error_code ec;
  auto p = fsys::read_symlink("/proc/self/exe", ec);
  return ec ? fsys::path(".") : p.parent_path();
}

inline Result<fsys::path> find_init() {
  if (const char* e = std::getenv("KINA_INIT"); e && *e) return fsys::path(e);
  for (auto p : {self_dir() / "kina-init", self_dir() / ".." / "libexec" / "kina" / "kina-init"})
    if (fsys::is_regular_file(p)) return p;
  return make_error(Exit::config, "kina-init not found", fmt::format("looked next to {} and in ../libexec/kina", self_dir().string()),
                    "set KINA_INIT to its path");
}

struct RootfsInput {
  fsys::path dir, disk;
  std::string image;
  std::vector<std::string> command, env;
  std::string workdir;
};

// Rootfs records (and the Images they came from) on stdin; others forwarded.
inline Result<std::vector<RootfsInput>> rootfs_from_stdin() {
  std::vector<RootfsInput> found;
  if (!stdin_has_records()) return found;
  RecordReader in(0);
  RecordWriter out;
  std::map<std::string, std::tuple<std::vector<std::string>, std::vector<std::string>, std::string>> images;
  auto strings = [](const Record& r, const char* key) {
    std::vector<std::string> v;
    simdjson::dom::array a;
    if (r.root()[key].get(a) == simdjson::SUCCESS)
      for (auto e : a) {
        std::string_view s;
        if (e.get(s) == simdjson::SUCCESS) v.emplace_back(s);
      }
    return v;
  };
  auto st = filter_records(in, out, [&](const Record& r) -> Result<bool> {
    if (r.kind == "Image") {
      auto d = r.string_field("digest");
      if (d && *d) {
        auto cmd = strings(r, "entrypoint");
        for (auto& c : strings(r, "cmd")) cmd.push_back(c);
        auto wd = r.string_field("workingDir");
        images[**d] = {cmd, strings(r, "env"), wd && *wd ? **wd : ""};
      }
    }
    if (r.kind != "Rootfs") return false;  // the Image is read and forwarded too
    RootfsInput ri;
    auto path = r.string_field("path");
    if (!path) return path.error();
    auto disk = r.string_field("disk");
    if (!disk) return disk.error();
    auto img = r.string_field("image");
    if (!img) return img.error();
    if (*path) ri.dir = **path;
    if (*disk) ri.disk = **disk;
    if (*img) ri.image = **img;
    if (ri.dir.empty() && ri.disk.empty())
      return make_error(Exit::data, fmt::format("record {} (Rootfs)", r.where()), "neither \"path\" nor \"disk\"");
    found.push_back(ri);
    return true;
  });
  if (!st) return st.error();
  for (auto& f : found) {
    if (!images.count(f.image)) continue;
    auto& [cmd, env, wd] = images[f.image];
    f.command = cmd;
    f.env = env;
    f.workdir = wd;
  }
  return found;
}


struct BootPlan {
  Spec spec;
  fsys::path dir;
  std::optional<Network> net;
  std::string record;  // the Machine record, once the agent answered
  // For messages: what the command is doing, and what a failure leaves.
  std::string doing = "booting";
  std::string undone = "the machine was removed";
  const Interrupts* intr = nullptr;  // held by the command (SIGINT, SIGTERM, SIGHUP answered here)
  std::string what() const { return fmt::format("{} {}", doing, spec.name); }
  Status interrupted() const { return Interrupts::check(intr, what(), undone); }
};

inline void remove_machine_dir(const fsys::path& dir) {
  std::error_code ec;
  fsys::remove_all(dir, ec);
}

// The end of a failed guest's console (and QEMU's own complaints) on stderr,
// one prefixed line each, before the error itself.
inline void show_tail(const fsys::path& dir, size_t console_lines = 15) {
  auto emit = [](const std::string& prefix, const std::string& text) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      info(kTool, prefix + text.substr(pos, nl - pos));
      pos = nl + 1;
    }
  };
  emit("console: ", tail_lines(dir / file::console, console_lines));
  emit("qemu: ", tail_lines(dir / file::qemu_log, 5));
  // The supervisor's and virtiofsd's last words: the machine directory (and
  // these logs with it) is removed after a failed boot.
  emit("supervisor: ", tail_lines(dir / file::supervisor_log, 8));
  emit("virtiofsd: ", tail_lines(dir / file::virtiofsd_log, 5));
}

inline Status launch(const BootRequest& r, BootPlan& plan, const Kernel& k, const fsys::path& mdisk, const std::string& user_mac,
              const std::string& net_mac, const std::string& accel, int64_t timeout_ms, bool quiet);
inline Status wait_ready(const Wait& w, BootPlan& plan, std::chrono::steady_clock::time_point deadline);
inline Status spawn_and_wait(const Wait& w, BootPlan& plan, int64_t timeout_ms, bool quiet);

inline Status boot_machine(const BootRequest& r, BootPlan& plan, const Kernel& k, const RootfsInput& in, const fsys::path& init) {
  Spec& s = plan.spec;
  const fsys::path& dir = plan.dir;
  // Disk: a qcow2 overlay on a shared read-only base.
  fsys::path base;
  if (!in.disk.empty()) {
    base = fsys::absolute(in.disk);
  } else {
    auto b = base_disk(in.dir);
    if (!b) return b.error();
    base = *b;
  }
  {
    ProcessSpec qi;
    qi.argv = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base.string(), (dir / file::disk).string()};
    // (qemu-img is there, the base was just checked: a failure is the write
    // of the overlay, a full disk say, so 73 as for any file kina cannot make.)
    if (auto made = run_checked(qi, "creating the overlay disk", Exit::cant_create); !made) return made.error();
  }
  if (auto st = plan.interrupted(); !st) return st;
  auto mdisk = modules_disk(k);
  if (!mdisk) return mdisk.error();

  std::vector<std::string> wanted = boot_modules();
  if (!s.mounts.empty()) wanted.push_back("virtiofs");
  auto mods = resolve_modules(k.modules, wanted);
  if (!mods) return mods.error();

  // Addresses: the user-mode NIC (egress, --publish) always; the cluster NIC on --network.
  std::string user_mac = mac_for(s.cluster + "/" + s.name + "/user");
  GuestConfig config;
  auto add = [&](std::string_view key, std::string_view value, std::string_view what) -> Status {
    return config.add(key, value, what);
  };
  if (auto st = add("hostname", s.name, "machine name"); !st) return st;
  if (auto st = add("root", "/dev/vda", "root disk"); !st) return st;
  if (auto st = add("modules-disk", "/dev/vdb", "modules disk"); !st) return st;
  if (auto st = add("net", fmt::format("{} 10.0.2.15/24 10.0.2.2", user_mac), "user NIC"); !st) return st;
  if (auto st = add("machine-id", s.machine_id, "machine id"); !st) return st;
  if (auto st = add("product-uuid", s.uuid, "product uuid"); !st) return st;
  std::string net_mac;
  if (plan.net) {
    auto ip = allocate_ip(*plan.net, s.name);
    if (!ip) return ip.error();
    s.ip = *ip;
    net_mac = mac_for(s.cluster + "/" + s.name + "/" + plan.net->name);
    if (auto st = add("net", fmt::format("{} {}/{} -", net_mac, s.ip, plan.net->subnet.prefix), "cluster NIC"); !st) return st;
  } else {
    s.ip = "10.0.2.15";
  }
  if (auto st = add("node-ip", s.ip, "node address"); !st) return st;
  for (size_t i = 0; i < s.mounts.size(); ++i) {
    auto m = parse_mount(s.mounts[i]);
    if (auto st = add("mount", fmt::format("kina{} {} {}", i, m->read_only ? "ro" : "rw", m->guest), "--mount"); !st) return st;
  }
  for (const auto& a : s.command)
    if (auto st = add("arg", a, "command argument"); !st) return st;
  for (const auto& e : in.env)
    if (auto st = add("env", e, "image Env entry"); !st) return st;
  for (const auto& e : r.env)
    if (auto st = add("env", e, "--env"); !st) return st;
  if (!in.workdir.empty())
    if (auto st = add("cwd", in.workdir, "image WorkingDir"); !st) return st;
  if (auto st = build_initramfs(dir / file::initramfs, init, *mods, config.text()); !st) return st;
  if (auto st = plan.interrupted(); !st) return st;

  auto accel = choose_accel(r.accel, k, init);
  if (!accel) return accel.error();
  if (accel->name == "kvm" && r.accel == "auto" && !accel->trusted) {
    // A KVM trial: a guest that is not answering soon is stopped, and the
    // machine boots again with TCG; the answer is remembered for a day.
    auto t0 = std::chrono::steady_clock::now();
    auto st = launch(r, plan, k, *mdisk, user_mac, net_mac, "kvm", std::min<int64_t>(r.wait.timeout_ms, 12000), true);
    if (st) {
      remember_accel(k, "kvm");
      return wait_ready(r.wait, plan, t0 + std::chrono::milliseconds(r.wait.timeout_ms));
    }
    kill_machine(dir, std::chrono::seconds(3));
    for (const char* f : {file::exit_info, file::ready, file::qemu_pid, file::supervisor_pid, file::console, file::old_console,
                          file::qemu_log})
      ::unlink((dir / f).c_str());
    remember_accel(k, "tcg");
    accel->name = "tcg";
    accel->fell_back = true;
  }
  if (accel->fell_back && r.accel == "auto")
    warn(kTool, "/dev/kvm is present but a KVM guest did not boot in time; using TCG (slower). Pass --accel tcg to skip the probe");
  auto t0 = std::chrono::steady_clock::now();
  if (auto st = launch(r, plan, k, *mdisk, user_mac, net_mac, accel->name, r.wait.timeout_ms, false); !st) return st;
  return wait_ready(r.wait, plan, t0 + std::chrono::milliseconds(r.wait.timeout_ms));
}


// --ready: after the agent answered, waits until the guest is what the
// caller asked for (systemd: `systemctl is-system-running` says running or
// degraded), then writes the readiness into machine.json and makes the
// Machine record. On failure the caller removes the machine (boot) or stops
// it again (start).
inline Status wait_ready(const Wait& w, BootPlan& plan, std::chrono::steady_clock::time_point deadline) {
  Spec& s = plan.spec;
  const fsys::path& dir = plan.dir;
  auto fail = [&](std::string why, std::string hint, bool jobs) -> Status {
    show_tail(dir, 20);
    if (jobs)  // what systemd still waits for, while the machine is still there
      if (auto j = exec_capture(dir, s.name, {"systemctl", "list-jobs", "--no-pager", "--no-legend"}, 5000, 4096); j) {
        size_t n = 0, pos = 0;
        while (pos < j->out.size() && n++ < 10) {
          size_t nl = j->out.find('\n', pos);
          if (nl == std::string::npos) nl = j->out.size();
          info(kTool, "job: " + shown(std::string_view(j->out).substr(pos, nl - pos)));
          pos = nl + 1;
        }
      }
    return make_error(Exit::unavailable, plan.what(), std::move(why), std::move(hint));
  };
  if (w.ready == Ready::systemd) {
    std::string said;  // systemd's last answer
    for (;;) {
      if (auto st = plan.interrupted(); !st) return st;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0)
        return fail(fmt::format("systemd did not reach running or degraded within {} (its last answer: {})", w.timeout_text,
                                said.empty() ? "none" : said),
                    "the lines above are the end of its console and the jobs systemd still had; " + plan.undone,
                    true);
      auto r = exec_capture(dir, s.name, {"systemctl", "is-system-running"}, static_cast<int>(std::min<int64_t>(left, 5000)),
                            4096);
      if (r) {
        if (r->status == 126 || r->status == 127)
          return fail("--ready systemd: systemctl cannot be run in the guest (" + first_line(r->err) + ")",
                      fmt::format("the workload is not systemd; {} without --ready systemd ({})",
                                  plan.doing == "booting" ? "boot" : "start", plan.undone),
                      false);
        std::string state = first_line(r->out);
        if (state == "running" || state == "degraded") break;
        if (state == "maintenance" || state == "stopping")
          return fail(fmt::format("systemd is in state \"{}\" (a unit the boot needs failed, or it is shutting down)", state),
                      "the lines above are the end of its console; " + plan.undone, false);
        // offline, initializing, starting, or no answer yet ("Failed to connect to bus").
        said = state.empty() ? first_line(r->err) : state;
      } else if (machine_state(dir).state == "exited") {
        return fail(fmt::format("the machine stopped while waiting for systemd ({})", machine_state(dir).reason),
                    "the lines above are the end of its console; " + plan.undone, false);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  s.ready = ready_name(w.ready);
  if (auto st = write_file_atomic(dir / file::spec, s.to_json() + "\n", 0644); !st) return st;
  plan.record = qemu_record(dir, s, machine_state(dir));
  return {};
}

// Starts the supervisor (which starts QEMU) and waits for the guest agent.
// QUIET: a KVM trial, whose failure is not reported.
inline Status launch(const BootRequest& r, BootPlan& plan, const Kernel& k, const fsys::path& mdisk, const std::string& user_mac,
              const std::string& net_mac, const std::string& accel, int64_t timeout_ms, bool quiet) {
  Spec& s = plan.spec;
  const fsys::path& dir = plan.dir;
  s.accel = accel;

  std::string hostfwd;
  for (const auto& p : r.publish) {
    auto pp = parse_publish(p);
    hostfwd += fmt::format(",hostfwd={}:{}:{}-10.0.2.15:{}", pp->proto, pp->addr, pp->host_port, pp->guest_port);
  }
  // rw: nothing in a kind image remounts the root read-write; net.ifnames=0:
  // the NICs keep their eth names whatever udev the image has; no_timer_check:
  // the kernel's early check that the IO-APIC timer ticks fails when TCG's
  // timers run late on a loaded host ("Kernel panic - not syncing: IO-APIC +
  // timer doesn't work!", seen booting two machines at once in a CI run).
  std::string append = fmt::format("console=ttyS0 quiet panic=-1 rw net.ifnames=0 no_timer_check kina.time={}", now_ms());
  for (const auto& a : r.kernel_args) append += " " + a;
  auto& q = s.qemu_argv;
  q = {"qemu-system-x86_64", "-name", qemu_tag(dir), "-M", kMachine, "-accel", accel};
  if (s.accel == "kvm") q.insert(q.end(), {"-cpu", "host"});
  if (!s.uuid.empty()) q.insert(q.end(), {"-uuid", s.uuid});  // the guest's DMI product_uuid
  q.insert(q.end(), {"-smp", std::to_string(s.cpus), "-m", fmt::format("{}M", s.memory_mib), "-display", "none",
                     "-nodefaults", "-no-user-config", "-no-reboot", "-kernel", k.path.string(), "-initrd",
                     file::initramfs, "-append", append, "-chardev", console_chardev(),
                     "-serial", "chardev:con", "-drive", fmt::format("file={},format=qcow2,if=virtio", file::disk),
                     "-drive", fmt::format("file={},format=raw,if=virtio,readonly=on", mdisk.string()),
                     "-device", "virtio-rng-pci", "-netdev", "user,id=u0" + hostfwd, "-device",
                     fmt::format("virtio-net-pci,netdev=u0,mac={},romfile=", user_mac)});
  if (plan.net) {
    // Relative to the machine directory, which keeps the socket path short.
    auto rel = fsys::relative(plan.net->switch_dir(), dir);
    q.insert(q.end(), {"-netdev", fmt::format("vde,id=n0,sock={}", rel.string()), "-device",
                       fmt::format("virtio-net-pci,netdev=n0,mac={},romfile=", net_mac)});
  }
  if (!s.mounts.empty()) {
    // virtiofs needs the guest's RAM shareable with virtiofsd.
    q.insert(q.end(), {"-object", fmt::format("memory-backend-memfd,id=mem,size={}M,share=on", s.memory_mib), "-numa",
                       "node,memdev=mem"});
    for (size_t i = 0; i < s.mounts.size(); ++i)
      q.insert(q.end(), {"-chardev", fmt::format("socket,id=vfs{0},path=vfs{0}.sock", i), "-device",
                         fmt::format("vhost-user-fs-pci,chardev=vfs{0},tag=kina{0}", i)});
  }
  q.insert(q.end(), {"-device", "virtio-serial-pci", "-chardev",
                     fmt::format("socket,id=agent,path={},server=on,wait=off", file::agent_sock), "-device",
                     "virtserialport,chardev=agent,name=org.kina.agent", "-qmp",
                     fmt::format("unix:{},server=on,wait=off", file::qmp_sock)});
  if (auto st = write_file_atomic(dir / file::spec, s.to_json() + "\n", 0644); !st) return st;
  return spawn_and_wait(r.wait, plan, timeout_ms, quiet);
}

// The room a machine needs on its directory's file system to run at all:
// the overlay's first writes and its console log. With less, QEMU starts and
// pauses the guest at its first disk write that fails (the supervisor
// resumes it only once there is room), so a boot would fail only at its
// timeout, blaming the agent; it is refused before QEMU starts.
inline constexpr uint64_t kMachineMinFree = 64ull << 20;
inline Status check_room(const fsys::path& dir) {
  auto free = free_bytes(dir.c_str());
  if (!free) return os_error(fmt::format("checking the free space of {}", dir.string()));
  if (*free < kMachineMinFree)
    return make_error(Exit::cant_create, fmt::format("starting the machine in {}", dir.string()),
                      fmt::format("No space left on device: {} MiB free, a machine needs {} MiB to run", *free >> 20,
                                  kMachineMinFree >> 20),
                      "free some space on that file system (KINA_HOME)");
  return {};
}

// Starts the supervisor of plan.dir (which starts QEMU from machine.json's
// qemuArgv) and waits for the guest agent: boot and start.
inline Status spawn_and_wait(const Wait& w, BootPlan& plan, int64_t timeout_ms, bool quiet) {
  Spec& s = plan.spec;
  const fsys::path& dir = plan.dir;
  if (auto st = check_room(dir); !st) return st;
  if (auto st = reserve_exit_info(dir); !st) return st;
  // The supervisor: detached (own session), outliving this command. Its
  // strings are made before fork: the process has a signal thread
  // (kina/interrupt.hpp), so the child only makes async-signal-safe calls.
  const std::string self = (self_dir() / "kina-vm").string(), d = dir.string();
  const std::string log_path = (dir / file::supervisor_log).string();
  const char* argv[] = {self.c_str(), "_supervise", d.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) return os_error("fork");
  if (pid == 0) {
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(null, 0), ::dup2(null, 1), ::dup2(log, 2);
    // The supervisor starts with no signal blocked (it sets its own mask).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::fork() != 0) ::_exit(0);  // the grandchild is reparented, never our zombie
    ::execv(self.c_str(), const_cast<char**>(argv));
    ::_exit(127);
  }
  ::waitpid(pid, nullptr, 0);
  // The grandchild's pid: it writes its own pid file as its first act.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (auto st = plan.interrupted(); !st) return st;
    State st = machine_state(dir);
    if (st.state == "running") {
      // Confirm through the supervisor that the agent answers.
      auto conn = AgentConnection::open(dir, s.name);
      if (conn && conn->send(wire::Type::ping)) {
        auto f = conn->next(1000);
        if (f && f->has_value() && (*f)->type == wire::Type::hello) {
          plan.record = qemu_record(dir, s, st);
          return {};
        }
      }
    }
    bool started = fsys::exists(dir / file::supervisor_pid);
    if (st.state == "exited" && (started || fsys::exists(dir / file::exit_info))) {
      if (!quiet) show_tail(dir);
      return make_error(Exit::unavailable, plan.what(), st.reason,
                        "the lines above are the end of its console and of QEMU's, the supervisor's and virtiofsd's output; " +
                            plan.undone);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (!quiet) show_tail(dir);
      return make_error(Exit::unavailable, plan.what(), fmt::format("the guest agent did not answer within {}", w.timeout_text),
                        "the lines above are the end of its console; " + plan.undone);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}


// One machine of a boot: plan.dir is set once its directory exists (the
// caller removes it on failure).
inline Status boot_one(const BootRequest& r, const MachineName& name, const RootfsInput& in, uint64_t mem, const std::vector<Mount>& mounts,
                const std::string& virtiofsd, const Kernel& k, const fsys::path& init, BootPlan& plan) {
  Spec& s = plan.spec;
  s.name = name.str();
  s.cluster = r.cluster.str();
  s.cpus = r.cpus;
  s.memory_mib = (mem + (1u << 20) - 1) >> 20;
  s.publish = r.publish;
  s.image = in.image;
  s.kernel_version = k.version;
  s.created_ms = now_ms();
  for (const auto& m : mounts) s.mounts.push_back(m.str());
  s.virtiofsd = virtiofsd;
  s.command = !r.command.empty() ? r.command : (!in.command.empty() ? in.command : std::vector<std::string>{"/sbin/init"});
  // s.command was checked where it came in: -- CMD by boot's caller, an
  // image's by QemuBackend::boot (check_config_value).
  if (auto st = choose_identity(s); !st) return st;
  if (r.network) {
    auto n = load_network(r.cluster, *r.network);
    if (!n) return n.error();
    if (!switch_running(*n))
      return make_error(Exit::unavailable, fmt::format("network {}", r.network->str()), "its vde_switch is not running",
                        fmt::format("recreate it: kina-vm network rm {0} && kina-vm network create {0}", r.network->str()));
    plan.net = *n;
    s.network = r.network->str();
  }

  auto cdir = cluster_dir(r.cluster);
  if (!cdir) return cdir.error();
  if (auto st = ensure_dir(*cdir / "machines", 0700); !st) return st;
  auto dir = machine_dir(r.cluster, name);
  if (!dir) return dir.error();
  {
    auto lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm boot");
    if (!lock) return lock.error();
    sweep_abandoned_boots(*cdir, r.cluster);
    if (fsys::exists(*dir))
      return make_error(Exit::cant_create, fmt::format("machine {}", name.str()),
                        fmt::format("the name is taken in cluster {}", r.cluster.str()),
                        fmt::format("pick another --name, or remove it: kina-vm rm -f {}", name.str()));
    if (auto st = create_machine_dir(*dir, this_boot(s.network)); !st) return st;
  }
  plan.dir = *dir;
  return boot_machine(r, plan, k, in, init);
}

}  // namespace kina::vm
