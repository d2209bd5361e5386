// kina-vm: boot node VMs from a root filesystem, run commands in them, copy
// files in and out, connect them on a cluster network, stop and start them
// again, and tear them down.
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "apple.hpp"
#include "client.hpp"
#include "kernel.hpp"
#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/record.hpp"
#include "kina/sha256.hpp"
#include "kina/validate.hpp"
#include "machine.hpp"
#include "network.hpp"
#include "supervisor.hpp"
#include "restart.hpp"
#include "sweep.hpp"
#include "interrupt.hpp"
#include "console.hpp"
#include "guest_config.hpp"
#include "wire.hpp"

namespace {

using namespace kina;
using namespace kina::vm;
constexpr std::string_view kTool = "kina-vm";
// q35 rather than pc (i440fx): on pc every virtio-pci probe evaluates ACPI
// interrupt-link methods, about 90 ms per device under TCG (0.45 s of a 2.5 s
// boot); on q35 all five probes take 15 ms. No SATA or SMBus: nothing uses them.
constexpr const char* kMachine = "q35,sata=off,smbus=off";

struct Options {
  std::vector<std::string> argv;  // ours, for the audit log
  std::string cluster = std::string(kDefaultCluster);
  bool cluster_given = false;
  // kernel
  bool fetch = false;
  std::string kernel_path, modules_dir;
  // boot
  std::string image;  // apple: REF@DIGEST
  std::string name, network, rootfs, disk, memory = "512Mi", accel = "auto", timeout = "180s", backend = "auto";
  std::string ready = "agent";
  int cpus = 1;
  std::vector<std::string> publish, env, kernel_args, mounts, command;
  // exec
  bool interactive = false, tty = false;
  std::string workdir, user;
  // cp
  std::string src, dst, cp_max_bytes = "64Gi";
  // logs / stop / rm
  bool follow = false, force = false, raw = false;
  std::string stop_timeout = "30s";
  // network
  std::string subnet;
  int exit_status = 0;  // exec: the command's status
  std::string audit_action, audit_target;  // set by a mutating command before it runs
};

// Bounds of the duration flags (docs/cli.md, "Numeric bounds").
constexpr int64_t kMinBootTimeoutMs = 1000, kMaxBootTimeoutMs = 86400LL * 1000, kMaxStopTimeoutMs = 3600LL * 1000;

// The audit event of a mutating command, appended once the exit code is
// known (whatever the outcome, input errors included); a failure to log is a
// warning.
void record_audit(const Options& o, int exit_code, int64_t start_ms) {
  audit::Event ev;
  ev.tool = std::string(kTool);
  ev.action = o.audit_action;
  // An invalid --cluster is the error being recorded: it stays in args only.
  if (validate_name("cluster name", o.cluster)) ev.cluster = o.cluster;
  ev.target = o.audit_target;
  ev.args = o.argv;
  ev.outcome = exit_code == 0 ? "ok" : "error";
  ev.exit_code = exit_code;
  ev.duration_ms = now_ms() - start_ms;
  if (auto a = audit::record(ev); !a) warn(kTool, "audit log: " + a.error().message());
}

// The audit action of the mutating subcommand that CLI11 had parsed when it
// refused the command line ("" for a read-only one), from the app itself.
std::string parsed_mutating_action(const CLI::App& app) {
  for (const char* name : {"boot", "start", "exec", "cp", "stop", "rm"})
    if (app.get_subcommand(name)->parsed()) return name;
  const CLI::App* network = app.get_subcommand("network");
  for (const char* name : {"create", "rm"})
    if (network->get_subcommand(name)->parsed()) return std::string("network-") + name;
  const CLI::App* kernel = app.get_subcommand("kernel");
  if (kernel->parsed() && kernel->count("--fetch") + kernel->count("--kernel") + kernel->count("--modules") > 0)
    return "kernel";
  return {};
}

Status print(const std::string& record) { return RecordWriter().write_line(record); }

// --- kernel ----------------------------------------------------------------------------

Status cmd_kernel(const Options& o) {
  Kernel k;
  if (o.fetch) {
    if (!o.kernel_path.empty() || !o.modules_dir.empty()) return usage_error("kernel", "--fetch and --kernel/--modules are exclusive");
    auto f = fetch_kernel();
    if (!f) return f.error();
    k = *f;
  } else if (!o.kernel_path.empty() || !o.modules_dir.empty()) {
    if (o.kernel_path.empty() || o.modules_dir.empty()) return usage_error("kernel", "--kernel and --modules go together");
    k.path = fsys::absolute(o.kernel_path);
    k.modules = fsys::absolute(o.modules_dir).lexically_normal();
    if (k.modules.filename().empty()) k.modules = k.modules.parent_path();
    if (!fsys::is_regular_file(k.path))
      return make_error(Exit::no_input, fmt::format("kernel {}", o.kernel_path), "no such file");
    if (!fsys::is_directory(k.modules / "kernel"))
      return make_error(Exit::no_input, fmt::format("modules {}", o.modules_dir), "not a lib/modules/<version> directory (no kernel/ inside)");
    k.version = k.modules.filename().string();
    k.source = "local";
  } else {
    auto cur = load_kernel();
    if (!cur) return cur.error();
    return print(cur->record());
  }
  if (auto st = save_kernel(k); !st) return st;
  return print(k.record());
}

// --- boot --------------------------------------------------------------------------------

// 16 random bytes as a version 4 UUID's bits (RFC 9562); nullopt when the
// kernel's random source fails.
std::optional<std::array<uint8_t, 16>> random_id() {
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
Status choose_identity(Spec& s) {
  auto a = random_id(), b = random_id();
  if (!a || !b) return os_error("reading the kernel's random source");
  s.machine_id = to_hex(a->data(), a->size());
  std::string u = to_hex(b->data(), b->size());
  s.uuid = fmt::format("{}-{}-{}-{}-{}", u.substr(0, 8), u.substr(8, 4), u.substr(12, 4), u.substr(16, 4), u.substr(20));
  return {};
}

std::string mac_for(const std::string& seed) {
  auto h = sha256(seed);
  return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2]);
}

fsys::path self_dir() {
  std::error_code ec;
  auto p = fsys::read_symlink("/proc/self/exe", ec);
  return ec ? fsys::path(".") : p.parent_path();
}

Result<fsys::path> find_init() {
  if (const char* e = std::getenv("KINA_INIT"); e && *e) return fsys::path(e);
  for (auto p : {self_dir() / "kina-init", self_dir() / ".." / "libexec" / "kina" / "kina-init"})
    if (fsys::is_regular_file(p)) return p;
  return make_error(Exit::config, "kina-init not found", fmt::format("looked next to {} and in ../libexec/kina", self_dir().string()),
                    "set KINA_INIT to its path");
}

// A key for the shared base disk of a root directory: its path and the
// metadata of everything in it, so a changed tree gets a new base.
Result<std::string> tree_key(const fsys::path& dir) {
  Sha256 h;
  h.update(fsys::canonical(dir).string());
  std::error_code ec;
  std::vector<std::string> lines;
  for (auto it = fsys::recursive_directory_iterator(dir, ec); !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    lines.push_back(fmt::format("{} {} {} {} {} {}\n", it->path().string(), st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec));
  }
  if (ec) return os_error(fmt::format("reading {}", dir.string()), ec.value(), Exit::no_input);
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) h.update(l);
  return to_hex(h.finish()).substr(0, 32);
}

// The shared, read-only base disk for a root directory (built once).
Result<fsys::path> base_disk(const fsys::path& rootfs) {
  auto key = tree_key(rootfs);
  if (!key) return key.error();
  auto dir = kina_subdir("disks");
  if (!dir) return dir.error();
  fsys::path disk = *dir / ("base-" + *key + ".ext4");
  auto lock = FileLock::acquire(*dir / "lock", std::chrono::minutes(10), "kina-vm boot");
  if (!lock) return lock.error();
  if (fsys::exists(disk)) return disk;
  if (auto st = make_ext4(rootfs, disk, 2ull << 30, "kina-root"); !st) return st.error();
  ::chmod(disk.c_str(), 0444);
  return disk;
}

struct Accel {
  std::string name;
  bool fell_back = false;
  bool trusted = false;  // from a remembered full boot, not just the quick probe
};

void remember_accel(const Kernel& k, const std::string& accel) {
  auto home = kina_home();
  if (!home) return;
  (void)write_file_atomic(*home / "accel-probe", fmt::format("{} {} {}\n", k.version, now_ms(), accel), 0644);
}

// KVM only when a probe boot powers off in time: some hosts have /dev/kvm
// but guests never leave early boot there. The answer is kept for a day.
Result<Accel> choose_accel(const Options& o, const Kernel& k, const fsys::path& init) {
  if (o.accel == "tcg") return Accel{"tcg"};
  if (o.accel == "kvm") {
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

struct RootfsInput {
  fsys::path dir, disk;
  std::string image;
  std::vector<std::string> command, env;
  std::string workdir;
};

// Rootfs records (and the Images they came from) on stdin; others forwarded.
Result<std::vector<RootfsInput>> rootfs_from_stdin() {
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

Status check_line(std::string_view what, const std::string& v) {
  if (v.find('\n') != std::string::npos || v.find('\0') != std::string::npos)
    return make_error(Exit::usage, fmt::format("invalid {} {}", what, shown(v)), "must not contain a newline");
  return {};
}

struct BootPlan {
  Spec spec;
  fsys::path dir;
  std::optional<Network> net;
  std::string record;  // the Machine record, once the agent answered
  // For messages: what the command is doing, and what a failure leaves.
  std::string doing = "booting";
  std::string undone = "the machine was removed";
  std::string what() const { return fmt::format("{} {}", doing, spec.name); }
  Status interrupted() const { return check_interrupt(what(), undone); }
};

void remove_machine_dir(const fsys::path& dir) {
  std::error_code ec;
  fsys::remove_all(dir, ec);
}

// The end of a failed guest's console (and QEMU's own complaints) on stderr,
// one prefixed line each, before the error itself.
void show_tail(const fsys::path& dir, size_t console_lines = 15) {
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

Status launch(const Options& o, BootPlan& plan, const Kernel& k, const fsys::path& mdisk, const std::string& user_mac,
              const std::string& net_mac, const std::string& accel, int64_t timeout_ms, bool quiet);
Status wait_ready(const Options& o, BootPlan& plan, std::chrono::steady_clock::time_point deadline);
Status spawn_and_wait(const Options& o, BootPlan& plan, int64_t timeout_ms, bool quiet);

Status boot_machine(Options& o, BootPlan& plan, const Kernel& k, const RootfsInput& in, const fsys::path& init) {
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
    if (auto r = run_checked(qi, "creating the overlay disk"); !r) return r.error();
  }
  if (auto st = check_interrupt(fmt::format("booting {}", s.name)); !st) return st;
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
  for (const auto& e : o.env)
    if (auto st = add("env", e, "--env"); !st) return st;
  if (!in.workdir.empty())
    if (auto st = add("cwd", in.workdir, "image WorkingDir"); !st) return st;
  if (auto st = build_initramfs(dir / file::initramfs, init, *mods, config.text()); !st) return st;
  if (auto st = check_interrupt(fmt::format("booting {}", s.name)); !st) return st;

  auto accel = choose_accel(o, k, init);
  if (!accel) return accel.error();
  auto t_ms = parse_duration_flag("--timeout", o.timeout, kMinBootTimeoutMs, kMaxBootTimeoutMs);
  if (accel->name == "kvm" && o.accel == "auto" && !accel->trusted) {
    // A KVM trial: a guest that is not answering soon is stopped, and the
    // machine boots again with TCG; the answer is remembered for a day.
    auto t0 = std::chrono::steady_clock::now();
    auto st = launch(o, plan, k, *mdisk, user_mac, net_mac, "kvm", std::min<int64_t>(*t_ms, 12000), true);
    if (st) {
      remember_accel(k, "kvm");
      return wait_ready(o, plan, t0 + std::chrono::milliseconds(*t_ms));
    }
    kill_machine(dir, std::chrono::seconds(3));
    for (const char* f : {file::exit_info, file::ready, file::qemu_pid, file::supervisor_pid, file::console, file::qemu_log})
      ::unlink((dir / f).c_str());
    remember_accel(k, "tcg");
    accel->name = "tcg";
    accel->fell_back = true;
  }
  if (accel->fell_back && o.accel == "auto")
    warn(kTool, "/dev/kvm is present but a KVM guest did not boot in time; using TCG (slower). Pass --accel tcg to skip the probe");
  auto t0 = std::chrono::steady_clock::now();
  if (auto st = launch(o, plan, k, *mdisk, user_mac, net_mac, accel->name, *t_ms, false); !st) return st;
  return wait_ready(o, plan, t0 + std::chrono::milliseconds(*t_ms));
}

// The first line of TEXT, without surrounding blanks, at most 200 bytes.
std::string first_line(std::string_view text) {
  std::string_view l = text.substr(0, text.find('\n'));
  while (!l.empty() && (l.back() == ' ' || l.back() == '\r' || l.back() == '\t')) l.remove_suffix(1);
  while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
  return std::string(l.substr(0, 200));
}

// --ready: after the agent answered, waits until the guest is what the
// caller asked for (systemd: `systemctl is-system-running` says running or
// degraded), then writes the readiness into machine.json and makes the
// Machine record. On failure the caller removes the machine (boot) or stops
// it again (start).
Status wait_ready(const Options& o, BootPlan& plan, std::chrono::steady_clock::time_point deadline) {
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
  if (o.ready == "systemd") {
    std::string said;  // systemd's last answer
    for (;;) {
      if (auto st = plan.interrupted(); !st) return st;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0)
        return fail(fmt::format("systemd did not reach running or degraded within {} (its last answer: {})", o.timeout,
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
  s.ready = o.ready;
  if (auto st = write_file_atomic(dir / file::spec, s.to_json() + "\n", 0644); !st) return st;
  plan.record = machine_record(dir, s, machine_state(dir));
  return {};
}

// Starts the supervisor (which starts QEMU) and waits for the guest agent.
// QUIET: a KVM trial, whose failure is not reported.
Status launch(const Options& o, BootPlan& plan, const Kernel& k, const fsys::path& mdisk, const std::string& user_mac,
              const std::string& net_mac, const std::string& accel, int64_t timeout_ms, bool quiet) {
  Spec& s = plan.spec;
  const fsys::path& dir = plan.dir;
  s.accel = accel;

  std::string hostfwd;
  for (const auto& p : o.publish) {
    auto pp = parse_publish(p);
    hostfwd += fmt::format(",hostfwd={}:{}:{}-10.0.2.15:{}", pp->proto, pp->addr, pp->host_port, pp->guest_port);
  }
  // rw: nothing in a kind image remounts the root read-write; net.ifnames=0:
  // the NICs keep their eth names whatever udev the image has.
  std::string append = fmt::format("console=ttyS0 quiet panic=-1 rw net.ifnames=0 kina.time={}", now_ms());
  for (const auto& a : o.kernel_args) append += " " + a;
  auto& q = s.qemu_argv;
  q = {"qemu-system-x86_64", "-name", qemu_tag(dir), "-M", kMachine, "-accel", accel};
  if (s.accel == "kvm") q.insert(q.end(), {"-cpu", "host"});
  if (!s.uuid.empty()) q.insert(q.end(), {"-uuid", s.uuid});  // the guest's DMI product_uuid
  q.insert(q.end(), {"-smp", std::to_string(s.cpus), "-m", fmt::format("{}M", s.memory_mib), "-display", "none",
                     "-nodefaults", "-no-user-config", "-no-reboot", "-kernel", k.path.string(), "-initrd",
                     file::initramfs, "-append", append, "-chardev", fmt::format("file,id=con,path={}", file::console),
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
  return spawn_and_wait(o, plan, timeout_ms, quiet);
}

// Starts the supervisor of plan.dir (which starts QEMU from machine.json's
// qemuArgv) and waits for the guest agent: boot and start.
Status spawn_and_wait(const Options& o, BootPlan& plan, int64_t timeout_ms, bool quiet) {
  Spec& s = plan.spec;
  const fsys::path& dir = plan.dir;
  // The supervisor: detached (own session), outliving this command.
  pid_t pid = ::fork();
  if (pid < 0) return os_error("fork");
  if (pid == 0) {
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    int log = ::open((dir / file::supervisor_log).c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(null, 0), ::dup2(null, 1), ::dup2(log, 2);
    if (::fork() != 0) ::_exit(0);  // the grandchild is reparented, never our zombie
    std::string self = (self_dir() / "kina-vm").string();
    std::string d = dir.string();
    const char* argv[] = {self.c_str(), "_supervise", d.c_str(), nullptr};
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
          plan.record = machine_record(dir, s, st);
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
      return make_error(Exit::unavailable, plan.what(), fmt::format("the guest agent did not answer within {}", o.timeout),
                        "the lines above are the end of its console; " + plan.undone);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// --- apple backend ----------------------------------------------------------------------------

// The state of any machine: the supervisor's files for qemu, `container list` for apple.
State state_of(const fsys::path& dir, Spec& s) {
  if (s.backend != "apple") return machine_state(dir);
  State st;
  auto c = apple::find(s.container);
  if (!c) {
    st.state = "unknown";
    st.reason = c.error().message();
  } else if (!*c) {
    st.state = "exited";
    st.reason = "the container is gone";
  } else {
    st.state = apple::kina_state((*c)->state);
    if (!(*c)->ip.empty()) s.ip = (*c)->ip;
  }
  return st;
}

// An image reference for the apple backend: --image, else the Image record on stdin.
Result<std::string> apple_image(const Options& o) {
  if (!o.image.empty()) return o.image;
  if (!stdin_has_records()) return usage_error("boot --backend apple", "give --image REF@DIGEST or pipe an Image record");
  RecordReader in(0);
  RecordWriter out;
  std::string ref;
  auto st = filter_records(in, out, [&](const Record& r) -> Result<bool> {
    if (r.kind != "Image" || !ref.empty()) return false;
    auto reference = r.string_field("reference");
    auto digest = r.required_string("digest");
    if (!digest) return digest.error();
    std::string base = reference && *reference ? **reference : "";
    base = base.substr(0, base.find('@'));
    if (base.empty()) return make_error(Exit::data, fmt::format("record {} (Image)", r.where()), "no \"reference\"");
    ref = base + "@" + *digest;
    return true;
  });
  if (!st) return st.error();
  if (ref.empty()) return usage_error("boot --backend apple", "no Image record on stdin; give --image REF@DIGEST");
  return ref;
}

Status boot_apple(Options& o, uint64_t memory_mib) {
  auto image = apple_image(o);
  if (!image) return image.error();
  std::string network_id;  // --network: a kina network of this cluster, created with --backend apple
  if (!o.network.empty()) {
    auto n = load_apple_network(o.cluster, o.network);
    if (!n) return n.error();
    network_id = n->container;
  }
  if (auto st = apple::check_system(); !st) return st;
  auto cdir = cluster_dir(o.cluster);
  if (!cdir) return cdir.error();
  if (auto st = ensure_dir(*cdir / "machines", 0700); !st) return st;
  auto dir = machine_dir(o.cluster, o.name);
  if (!dir) return dir.error();
  {
    auto lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm boot");
    if (!lock) return lock.error();
    if (::mkdir(dir->c_str(), 0700) != 0)
      return make_error(Exit::cant_create, fmt::format("machine {}", o.name),
                        fmt::format("the name is taken in cluster {}", o.cluster));
  }
  apple::RunRequest rr;
  rr.cluster = o.cluster;
  rr.name = o.name;
  rr.image = *image;
  rr.network = network_id;
  rr.cpus = o.cpus;
  rr.memory_mib = memory_mib;
  for (const auto& p : o.publish) rr.publish.push_back(*parse_publish(p));
  rr.env = o.env;
  rr.volumes = o.mounts;
  rr.command = o.command;
  Spec s;
  s.name = o.name;
  s.cluster = o.cluster;
  s.backend = "apple";
  s.container = apple::container_id(o.cluster, o.name);
  s.cpus = o.cpus;
  s.memory_mib = memory_mib;
  s.publish = o.publish;
  s.network = o.network;
  s.image = *image;
  s.created_ms = now_ms();
  auto fail = [&](Error e) {
    (void)apple::run_container({"container", "delete", "--force", s.container}, std::chrono::seconds(60));
    remove_machine_dir(*dir);
    return e;
  };
  HeldInterrupts held;  // SIGINT, SIGTERM, SIGHUP: the container is deleted first
  if (auto r = apple::run_container(apple::run_argv(rr)); !r) return fail(r.error());
  if (auto st = check_interrupt(fmt::format("booting {}", o.name)); !st) return fail(st.error());
  auto c = apple::find(s.container);
  if (!c) return fail(c.error());
  if (!*c) return fail(make_error(Exit::unavailable, fmt::format("booting {}", o.name), "`container list` does not show it"));
  s.ip = (*c)->ip;
  if (auto st = write_file_atomic(*dir / file::spec, s.to_json() + "\n", 0644); !st) return fail(st.error());
  State st;
  st.state = apple::kina_state((*c)->state);
  return print(machine_record(*dir, s, st));
}

// exec through `container exec`, stdio inherited, the status passed on.
Status exec_apple(Options& o, const Spec& s) {
  ProcessSpec spec;
  spec.argv = {"container", "exec"};
  if (o.interactive) spec.argv.push_back("-i");
  if (o.tty) spec.argv.push_back("-t");
  for (const auto& e : o.env) spec.argv.insert(spec.argv.end(), {"--env", e});
  if (!o.workdir.empty()) spec.argv.insert(spec.argv.end(), {"--workdir", o.workdir});
  if (!o.user.empty()) spec.argv.insert(spec.argv.end(), {"--user", o.user});
  spec.argv.push_back(s.container);
  spec.argv.insert(spec.argv.end(), o.command.begin(), o.command.end());
  spec.inherit_stdin = o.interactive;
  spec.capture_stdout = spec.capture_stderr = false;
  spec.foreground = true;  // the terminal's: it may read it, Ctrl-C reaches it
  auto r = run_process(spec);
  if (!r) return r.error();
  o.exit_status = r->exit_code();
  return {};
}

Status boot_one(Options& o, const std::string& name, const RootfsInput& in, uint64_t mem, const std::vector<Mount>& mounts,
                const std::string& virtiofsd, const Kernel& k, const fsys::path& init, BootPlan& plan);

Status cmd_boot(Options& o) {
  // Validate everything before creating anything.
  if (o.name.empty()) return usage_error("boot", "--name is required");
  if (auto st = validate_name("machine name", o.name); !st) return st;
  if (auto st = validate_name("cluster name", o.cluster); !st) return st;
  if (o.cpus < 1 || o.cpus > 64) return usage_error(fmt::format("invalid --cpus {}", o.cpus), "expected 1-64");
  auto mem = parse_size(o.memory);
  if (!mem) return mem.error();
  if (*mem < (128u << 20)) return usage_error(fmt::format("invalid --memory {}", shown(o.memory)), "at least 128M");
  auto t = parse_duration_flag("--timeout", o.timeout, kMinBootTimeoutMs, kMaxBootTimeoutMs);
  if (!t) return t.error();
  for (const auto& p : o.publish)
    if (auto pp = parse_publish(p); !pp) return pp.error();
  for (const auto& e : o.env) {
    if (e.find('=') == std::string::npos || e.front() == '=')
      return usage_error(fmt::format("invalid --env {}", shown(e)), "expected KEY=VALUE");
    if (auto st = check_line("--env", e); !st) return st;
  }
  for (const auto& a : o.kernel_args) {
    if (a.empty() || a.find_first_of(" \t\n") != std::string::npos)
      return usage_error(fmt::format("invalid --kernel-arg {}", shown(a)), "one argument without spaces per flag");
  }
  for (const auto& a : o.command)
    if (auto st = check_line("command argument", a); !st) return st;
  bool apple = o.backend == "apple";
#ifdef __APPLE__
  apple = apple || o.backend == "auto";
#endif
  if (apple) {
    if (o.ready != "agent") return usage_error("boot --ready systemd", "not supported by the apple backend yet");
    for (const auto& m : o.mounts)
      if (m.find(':') == std::string::npos) return usage_error(fmt::format("invalid --mount {}", shown(m)), "expected HOSTDIR:GUESTDIR[:ro]");
    return boot_apple(o, (*mem + (1u << 20) - 1) >> 20);
  }
  std::vector<Mount> mounts;
  for (const auto& m : o.mounts) {
    auto pm = parse_mount(m);
    if (!pm) return pm.error();
    if (!fsys::is_directory(pm->host))
      return make_error(Exit::no_input, fmt::format("--mount {}", shown(m)), fmt::format("{} is not a directory", pm->host));
    pm->host = fsys::canonical(pm->host).string();
    mounts.push_back(*pm);
  }
  std::string virtiofsd;
  if (!mounts.empty()) {
    for (const char* p : {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"})
      if (::access(p, X_OK) == 0) virtiofsd = p;
    if (virtiofsd.empty()) virtiofsd = which("virtiofsd");
    if (virtiofsd.empty())
      return make_error(Exit::unavailable, "--mount", "virtiofsd not found (looked in /usr/libexec, /usr/lib/qemu, PATH)",
                        "install qemu-system-common or virtiofsd");
  }
  if (!o.rootfs.empty() && !o.disk.empty()) return usage_error("boot", "--rootfs and --disk are exclusive");

  std::vector<RootfsInput> inputs(1);
  if (!o.rootfs.empty()) {
    inputs[0].dir = fsys::absolute(o.rootfs);
    if (!fsys::is_directory(inputs[0].dir))
      return make_error(Exit::no_input, fmt::format("rootfs {}", o.rootfs), "no such directory");
  } else if (!o.disk.empty()) {
    inputs[0].disk = fsys::absolute(o.disk);
    if (!fsys::is_regular_file(inputs[0].disk))
      return make_error(Exit::no_input, fmt::format("disk {}", o.disk), "no such file");
  } else {
    auto r = rootfs_from_stdin();
    if (!r) return r.error();
    if (r->empty()) return usage_error("boot", "give --rootfs DIR or --disk FILE, or pipe a Rootfs record to stdin");
    inputs = std::move(*r);
    for (const auto& in : inputs) {
      if (!in.disk.empty() && !fsys::is_regular_file(in.disk))
        return make_error(Exit::no_input, fmt::format("disk {}", in.disk.string()), "no such file");
      if (in.disk.empty() && !fsys::is_directory(in.dir))
        return make_error(Exit::no_input, fmt::format("rootfs {}", in.dir.string()), "no such directory");
    }
  }
  // Image Env and WorkingDir (from the records) become lines of the guest's
  // config: refused before anything is created when they could add lines.
  for (const auto& in : inputs) {
    for (const auto& e : in.env)
      if (auto st = check_config_value(fmt::format("Env entry of image {}", in.image), e); !st) return st;
    if (auto st = check_config_value(fmt::format("WorkingDir of image {}", in.image), in.workdir); !st) return st;
    for (const auto& a : in.command)
      if (auto st = check_config_value(fmt::format("command of image {}", in.image), a); !st) return st;
  }
  // Several Rootfs records boot several machines: NAME, NAME2, NAME3, ...
  // (kind's worker, worker2). All or nothing: a failure removes the ones
  // this command booted.
  std::vector<std::string> names;
  for (size_t i = 0; i < inputs.size(); ++i) {
    names.push_back(i == 0 ? o.name : fmt::format("{}{}", o.name, i + 1));
    if (auto st = validate_name("machine name", names.back()); !st) return st;
  }
  auto k = load_kernel();
  if (!k) return k.error();
  auto init = find_init();
  if (!init) return init.error();
  if (which("qemu-system-x86_64").empty())
    return make_error(Exit::unavailable, "qemu-system-x86_64 not found", "install qemu-system-x86");

  // From here on, SIGINT, SIGTERM and SIGHUP undo what this boot started.
  HeldInterrupts held;
  // The records are printed once every machine answers.
  std::vector<BootPlan> booted;
  auto undo = [](const BootPlan& plan) {
    kill_machine(plan.dir, std::chrono::seconds(3));
    if (plan.net && !plan.spec.ip.empty())  // an address was leased
      if (auto st = release_ip(*plan.net, plan.spec.name); !st) warn(kTool, st.error().message());
    remove_machine_dir(plan.dir);
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    BootPlan plan;
    auto st = boot_one(o, names[i], inputs[i], *mem, mounts, virtiofsd, *k, *init, plan);
    if (!st) {
      if (!plan.dir.empty()) undo(plan);
      for (auto it = booted.rbegin(); it != booted.rend(); ++it) undo(*it);
      return st;
    }
    booted.push_back(std::move(plan));
  }
  for (const auto& plan : booted)
    if (auto st = boot_completed(plan.dir); !st) {
      for (auto it = booted.rbegin(); it != booted.rend(); ++it) undo(*it);
      return st;
    }
  for (const auto& plan : booted)
    if (auto st = print(plan.record); !st) return st;
  return {};
}

// One machine of a boot: plan.dir is set once its directory exists (the
// caller removes it on failure).
Status boot_one(Options& o, const std::string& name, const RootfsInput& in, uint64_t mem, const std::vector<Mount>& mounts,
                const std::string& virtiofsd, const Kernel& k, const fsys::path& init, BootPlan& plan) {
  Spec& s = plan.spec;
  s.name = name;
  s.cluster = o.cluster;
  s.cpus = o.cpus;
  s.memory_mib = (mem + (1u << 20) - 1) >> 20;
  s.publish = o.publish;
  s.image = in.image;
  s.kernel_version = k.version;
  s.created_ms = now_ms();
  for (const auto& m : mounts) s.mounts.push_back(m.str());
  s.virtiofsd = virtiofsd;
  s.command = !o.command.empty() ? o.command : (!in.command.empty() ? in.command : std::vector<std::string>{"/sbin/init"});
  if (auto st = choose_identity(s); !st) return st;
  for (const auto& a : s.command)
    if (auto st = check_line("command argument", a); !st) return st;
  if (!o.network.empty()) {
    auto n = load_network(o.cluster, o.network);
    if (!n) return n.error();
    if (!switch_running(*n))
      return make_error(Exit::unavailable, fmt::format("network {}", o.network), "its vde_switch is not running",
                        fmt::format("recreate it: kina-vm network rm {0} && kina-vm network create {0}", o.network));
    plan.net = *n;
    s.network = o.network;
  }

  auto cdir = cluster_dir(o.cluster);
  if (!cdir) return cdir.error();
  if (auto st = ensure_dir(*cdir / "machines", 0700); !st) return st;
  auto dir = machine_dir(o.cluster, name);
  if (!dir) return dir.error();
  {
    auto lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm boot");
    if (!lock) return lock.error();
    sweep_abandoned_boots(*cdir, o.cluster);
    if (fsys::exists(*dir))
      return make_error(Exit::cant_create, fmt::format("machine {}", name),
                        fmt::format("the name is taken in cluster {}", o.cluster),
                        fmt::format("pick another --name, or remove it: kina-vm rm -f {}", name));
    if (auto st = create_machine_dir(*dir, this_boot(s.network)); !st) return st;
  }
  plan.dir = *dir;
  return boot_machine(o, plan, k, in, init);
}

// --- lookups ---------------------------------------------------------------------------

// A machine by name: in --cluster when given, else the one cluster that has it.
Result<fsys::path> find_machine(const Options& o, const std::string& name) {
  if (auto st = validate_name("machine name", name); !st) return st.error();
  if (o.cluster_given) {
    auto d = machine_dir(o.cluster, name);
    if (!d) return d.error();
    if (!fsys::exists(*d / file::spec))
      return make_error(Exit::no_input, fmt::format("machine {}", name), fmt::format("no such machine in cluster {}", o.cluster));
    return d;
  }
  auto root = kina_subdir("clusters");
  if (!root) return root.error();
  std::vector<fsys::path> found;
  std::error_code ec;
  for (const auto& c : fsys::directory_iterator(*root, ec))
    if (fsys::exists(c.path() / "machines" / name / file::spec)) found.push_back(c.path() / "machines" / name);
  if (found.empty()) return make_error(Exit::no_input, fmt::format("machine {}", name), "no such machine", "see: kina-vm ls");
  if (found.size() > 1)
    return make_error(Exit::usage, fmt::format("machine {}", name), "the name exists in several clusters", "give --cluster");
  return found[0];
}

std::string cluster_of(const fsys::path& dir) { return dir.parent_path().parent_path().filename().string(); }

Status cmd_ls(const Options& o) {
  auto root = kina_subdir("clusters");
  if (!root) return root.error();
  std::vector<fsys::path> clusters;
  std::error_code ec;
  if (o.cluster_given) clusters.push_back(*root / o.cluster);
  else
    for (const auto& c : fsys::directory_iterator(*root, ec)) clusters.push_back(c.path());
  std::sort(clusters.begin(), clusters.end());
  for (const auto& c : clusters) {
    // Sweep what a killed boot left (best effort: skipped while the cluster is busy).
    if (auto lock = FileLock::acquire(c / "lock", std::chrono::seconds(2), "kina-vm ls"))
      sweep_abandoned_boots(c, c.filename().string());
    std::vector<fsys::path> machines;
    for (const auto& m : fsys::directory_iterator(c / "machines", ec)) machines.push_back(m.path());
    std::sort(machines.begin(), machines.end());
    for (const auto& m : machines) {
      auto s = Spec::load(m);
      if (!s) continue;  // being created or removed
      State state = state_of(m, *s);
      if (auto st = print(machine_record(m, *s, state)); !st) return st;
    }
  }
  return {};
}

Status cmd_inspect(const Options& o) {
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  auto s = Spec::load(*dir);
  if (!s) return s.error();
  State st = state_of(*dir, *s);
  return print(machine_record(*dir, *s, st));
}

Status cmd_logs(const Options& o) {
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  if (auto s = Spec::load(*dir); s && s->backend == "apple") {
    ProcessSpec spec;
    spec.argv = {"container", "logs"};
    if (o.follow) spec.argv.push_back("--follow");
    spec.argv.push_back(s->container);
    spec.capture_stdout = spec.capture_stderr = false;
    spec.foreground = true;  // Ctrl-C during logs -f stops `container logs` too
    // On a terminal, what the container printed goes through the escaper.
    TerminalEscaper esc;
    Status written;
    if (!o.raw && ::isatty(1)) {
      spec.capture_stdout = true;
      spec.on_stdout = [&](std::string_view chunk) {
        if (written) written = write_all(1, esc.feed(chunk), "writing stdout");
      };
    }
    auto r = run_process(spec);
    if (!r) return r.error();
    if (spec.on_stdout && written) written = write_all(1, esc.finish(), "writing stdout");
    if (!written) return written;
    if (!r->exited && (r->term_signal == SIGINT || r->term_signal == SIGTERM || r->term_signal == SIGHUP))
      return make_error(static_cast<Exit>(signal_exit(r->term_signal)), fmt::format("logs of {}", o.name), "interrupted");
    if (!r->success()) return make_error(Exit::unavailable, fmt::format("logs of {}", o.name), "container logs " + r->describe());
    return {};
  }
  UniqueFd fd(::open((*dir / file::console).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd.valid()) return os_error(fmt::format("reading the console of {}", o.name), errno, Exit::no_input);
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode))
    return make_error(Exit::data, fmt::format("reading the console of {}", o.name), "console.log is not a regular file");
  // The guest writes what it likes to its console: on a terminal, control
  // characters are shown escaped unless --raw.
  bool escape = !o.raw && ::isatty(1);
  TerminalEscaper esc;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error("reading the console", errno, Exit::io);
    if (n > 0) {
      std::string_view chunk(buf, static_cast<size_t>(n));
      std::string safe = escape ? esc.feed(chunk) : std::string();
      if (auto st = write_all(1, escape ? std::string_view(safe) : chunk, "writing stdout"); !st) return st;
      continue;
    }
    if (!o.follow || machine_state(*dir).state == "exited")
      return escape ? write_all(1, esc.finish(), "writing stdout") : Status{};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Status cmd_exec(Options& o) {
  // -u USER, UID or UID:GID: a numeric id must fit a uid_t (the guest would
  // otherwise truncate 4294967296 to root); (uid_t)-1 means "no change".
  if (!o.user.empty()) {
    size_t colon = o.user.find(':');
    std::string_view u = std::string_view(o.user).substr(0, colon);
    auto numeric = [](std::string_view t) { return !t.empty() && t.find_first_not_of("0123456789") == std::string_view::npos; };
    auto in_range = [](std::string_view t) { return parse_int_flag("-u", t, 0, 4294967294LL).ok(); };
    if (u.empty() || (numeric(u) && !in_range(u)))
      return usage_error(fmt::format("invalid -u {}", shown(o.user)), "expected USER, UID or UID:GID with ids from 0 to 4294967294");
    if (colon != std::string::npos) {
      std::string_view g = std::string_view(o.user).substr(colon + 1);
      if (!numeric(g) || !in_range(g))
        return usage_error(fmt::format("invalid -u {}", shown(o.user)), "the GID must be a number from 0 to 4294967294");
    }
  }
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  o.cluster = cluster_of(*dir);
  if (o.command.empty()) return usage_error("exec", "give the command after --");
  for (const auto& e : o.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      return usage_error(fmt::format("invalid -e {}", shown(e)), "expected KEY=VALUE");
  if (auto s = Spec::load(*dir); s && s->backend == "apple") return exec_apple(o, *s);
  auto conn = AgentConnection::open(*dir, o.name);
  if (!conn) return conn.error();
  wire::ExecRequest req;
  req.tty = o.tty;
  req.cwd = o.workdir;
  req.user = o.user;
  req.argv = o.command;
  req.env = o.env;
  return run_exec(*conn, req, o.interactive, &o.exit_status);
}

// NAME:PATH -> (NAME, PATH) when the part before ':' is a machine name.
std::optional<std::pair<std::string, std::string>> remote_arg(const std::string& a) {
  auto c = a.find(':');
  if (c == std::string::npos || c == 0) return std::nullopt;
  std::string name = a.substr(0, c);
  if (name.find('/') != std::string::npos || !validate_name("machine name", name)) return std::nullopt;
  return std::pair{name, a.substr(c + 1)};
}

Status cmd_cp(Options& o) {
  auto rs = remote_arg(o.src), rd = remote_arg(o.dst);
  if (rs.has_value() == rd.has_value())
    return usage_error("cp", "exactly one of SRC and DST must be NAME:PATH (cp SRC NAME:DST or cp NAME:SRC DST)");
  auto& remote = rs ? *rs : *rd;
  if (remote.second.empty() || remote.second.front() != '/')
    return usage_error(fmt::format("cp: {}:{}", remote.first, remote.second), "the guest path must be absolute");
  auto cap = parse_size(o.cp_max_bytes);
  if (!cap) return usage_error(fmt::format("cp --max-bytes {}", o.cp_max_bytes), cap.error().why);
  o.name = remote.first;
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  o.cluster = cluster_of(*dir);
  if (auto s = Spec::load(*dir); s && s->backend == "apple") {
    if (rd) return apple::copy_in(o.name, s->container, o.src, rd->second);
    return apple::copy_out(o.name, s->container, rs->second, o.dst);
  }
  auto conn = AgentConnection::open(*dir, o.name);
  if (!conn) return conn.error();
  if (rd) return copy_in(*conn, o.src, rd->second);
  return copy_out(*conn, rs->second, o.dst, *cap);
}

Status cmd_stop(Options& o) {
  auto t = parse_duration_flag("--timeout", o.stop_timeout, 0, kMaxStopTimeoutMs);
  if (!t) return t.error();
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  o.cluster = cluster_of(*dir);
  auto lock = FileLock::acquire(*dir / "lock", std::chrono::seconds(30), "kina-vm stop");
  if (!lock) return lock.error();
  if (auto as = Spec::load(*dir); as && as->backend == "apple") {
    auto secs = std::max<int64_t>(1, *t / 1000);
    auto r = apple::run_container({"container", "stop", "--time", std::to_string(secs), as->container},
                                  std::chrono::seconds(secs + 30));
    if (!r) return r.error();
    State ast = state_of(*dir, *as);
    return print(machine_record(*dir, *as, ast));
  }
  State st = machine_state(*dir);
  if (st.state != "exited") {
    bool asked = false;
    if (auto conn = AgentConnection::open(*dir, o.name); conn && st.state == "running")
      asked = static_cast<bool>(conn->send(wire::Type::poweroff));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(asked ? *t : 0);
    while (std::chrono::steady_clock::now() < deadline && machine_state(*dir).state != "exited")
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (machine_state(*dir).state != "exited") {
      if (asked) warn(kTool, fmt::format("{} did not power off within {}; stopping it by force", o.name, o.stop_timeout));
      kill_machine(*dir, std::chrono::seconds(5));
    }
  }
  // A live start holds the machine's lock for as long as its `starting`
  // marker exists: one seen here is a killed start's, and the machine it
  // left is now stopped.
  if (::unlink((*dir / file::starting).c_str()) == 0) (void)fsync_dir(*dir);
  auto s = Spec::load(*dir);
  if (!s) return s.error();
  return print(machine_record(*dir, *s, machine_state(*dir)));
}

// --- start ------------------------------------------------------------------------------

Status start_apple(const fsys::path& dir, Spec& s) {
  State st = state_of(dir, s);
  if (st.state == "running") return print(machine_record(dir, s, st));
  if (auto r = apple::run_container({"container", "start", s.container}, std::chrono::seconds(300)); !r) return r.error();
  st = state_of(dir, s);
  if (st.state != "running")
    return make_error(Exit::unavailable, fmt::format("starting {}", s.name),
                      fmt::format("`container start` returned but the container is {}", st.state));
  if (auto w = write_file_atomic(dir / file::spec, s.to_json() + "\n", 0644); !w) return w;  // its address may have changed
  return print(machine_record(dir, s, st));
}

// Starts a stopped machine again from machine.json: same overlay disk,
// initramfs (hostname, machine-id, product UUID, addresses, mounts, workload),
// MACs, published ports, CPUs and memory; its network address is taken again.
// A running machine is left alone (its record is printed). A start that
// fails or is interrupted leaves the machine stopped, nothing removed.
Status cmd_start(Options& o) {
  auto t = parse_duration_flag("--timeout", o.timeout, kMinBootTimeoutMs, kMaxBootTimeoutMs);
  if (!t) return t.error();
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  o.cluster = cluster_of(*dir);
  // One start (or stop, or rm) of a machine at a time: a second start is 75 at once.
  auto lock = FileLock::acquire(*dir / "lock", std::chrono::milliseconds(500), "kina-vm start");
  if (!lock) return lock.error();
  auto loaded = Spec::load(*dir);
  if (!loaded) return loaded.error();
  Spec s = *loaded;
  if (s.backend == "apple") {
    if (o.ready != "agent") return usage_error("start --ready systemd", "not supported by the apple backend yet");
    return start_apple(*dir, s);
  }
  auto cdir = cluster_dir(o.cluster);
  if (!cdir) return cdir.error();
  // From before the `starting` marker exists: SIGINT, SIGTERM and SIGHUP
  // stop the machine again first (pending ones are answered in attempt).
  HeldInterrupts held;
  {
    auto cluster_lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm start");
    if (!cluster_lock) return cluster_lock.error();
    sweep_abandoned_boots(*cdir, o.cluster);  // a killed start of this machine goes back to stopped
    if (fsys::exists(*dir / file::booting))
      return make_error(Exit::temp_fail, fmt::format("machine {}", o.name), "its boot has not completed yet",
                        "wait for kina-vm boot to finish");
    State st = machine_state(*dir);
    if (st.state == "running") return print(machine_record(*dir, s, st));
    if (st.state != "exited")
      return make_error(Exit::temp_fail, fmt::format("machine {}", o.name), fmt::format("it is {}", st.state),
                        fmt::format("wait, or stop it first: kina-vm stop {}", o.name));
    if (auto st2 = check_start_inputs(*dir, s); !st2) return st2;
    if (auto st2 = write_file_atomic(*dir / file::starting, this_boot("").str(), 0600); !st2) return st2;
  }
  BootPlan plan;
  plan.spec = s;
  plan.dir = *dir;
  plan.doing = "starting";
  plan.undone = "the machine was left stopped, its disk kept";
  auto attempt = [&]() -> Status {
    Spec& ps = plan.spec;
    if (auto st = plan.interrupted(); !st) return st;
    if (!ps.network.empty()) {
      auto n = load_network(ps.cluster, ps.network);
      if (!n) return n.error();
      if (!switch_running(*n)) {
        // Its switch died (a host reboot, kill): started again under the
        // network's lock, so that two starts never run two switches.
        auto nl = lock_network(*n);
        if (!nl) return nl.error();
        if (!switch_running(*n)) {
          info(kTool, fmt::format("network {}: its vde_switch was not running; starting it again", ps.network));
          if (auto st = restart_switch(*n); !st) return st;
        }
      }
      if (auto st = reserve_ip(*n, ps.name, ps.ip); !st) return st;
      plan.net = *n;
    }
    // What the last run left: its end, pid files, sockets; its console is kept once.
    for (const char* f : {file::exit_info, file::ready, file::qemu_pid, file::supervisor_pid, file::ctl_sock,
                          file::agent_sock, file::qmp_sock})
      ::unlink((plan.dir / f).c_str());
    if (fsys::exists(plan.dir / file::console))
      if (::rename((plan.dir / file::console).c_str(), (plan.dir / file::previous_console).c_str()) != 0)
        return os_error(fmt::format("keeping the console of {}", ps.name));
    if (ps.accel == "kvm" && ::access("/dev/kvm", R_OK | W_OK) != 0) {
      warn(kTool, fmt::format("{} was booted with KVM but /dev/kvm is not usable now; starting it with TCG (slower)", ps.name));
      use_tcg(ps);
    }
    refresh_clock_arg(ps.qemu_argv, now_ms());
    ps.ready.clear();
    if (auto st = write_file_atomic(plan.dir / file::spec, ps.to_json() + "\n", 0644); !st) return st;
    if (auto st = plan.interrupted(); !st) return st;
    auto t0 = std::chrono::steady_clock::now();
    if (auto st = spawn_and_wait(o, plan, *t, false); !st) return st;
    return wait_ready(o, plan, t0 + std::chrono::milliseconds(*t));
  };
  if (auto st = attempt(); !st) {
    abandon_start(*dir, fmt::format("start failed: {}", st.error().why));
    return st;
  }
  if (::unlink((*dir / file::starting).c_str()) != 0 && errno != ENOENT)
    return os_error(fmt::format("removing {}", (*dir / file::starting).string()));
  (void)fsync_dir(*dir);
  return print(plan.record);
}

Status cmd_rm(Options& o) {
  auto dir = find_machine(o, o.name);
  if (!dir) return dir.error();
  o.cluster = cluster_of(*dir);
  auto lock = FileLock::acquire(*dir / "lock", std::chrono::seconds(30), "kina-vm rm");
  if (!lock) return lock.error();
  if (auto as = Spec::load(*dir); as && as->backend == "apple") {
    std::vector<std::string> argv = {"container", "delete"};
    if (o.force) argv.push_back("--force");
    argv.push_back(as->container);
    if (auto r = apple::run_container(argv, std::chrono::seconds(120)); !r) return r.error();
    lock->release();
    std::error_code ec;
    fsys::remove_all(*dir, ec);
    return {};
  }
  State st = machine_state(*dir);
  if (st.state != "exited") {
    if (!o.force)
      return make_error(Exit::usage, fmt::format("machine {}", o.name), fmt::format("it is {}", st.state),
                        fmt::format("stop it first (kina-vm stop {0}) or use kina-vm rm -f {0}", o.name));
    kill_machine(*dir, std::chrono::seconds(5));
  }
  auto s = Spec::load(*dir);
  if (s && !s->network.empty())
    if (auto n = load_network(s->cluster, s->network))
      if (auto r = release_ip(*n, s->name); !r) warn(kTool, r.error().message() + " (its address stays leased)");
  lock->release();
  std::error_code ec;
  fsys::remove_all(*dir, ec);
  if (ec) return os_error(fmt::format("removing {}", dir->string()), ec.value());
  return {};
}

// --- networks ------------------------------------------------------------------------------

bool use_apple(const std::string& backend) {
#ifdef __APPLE__
  if (backend == "auto") return true;
#endif
  return backend == "apple";
}

Status network_create_apple(const Options& o) {
  if (!o.subnet.empty()) {
    auto subnet = parse_cidr(o.subnet);
    if (!subnet) return subnet.error();
    if (auto st = check_subnet(*subnet, o.subnet, false); !st) return st;
  }
  auto dir = network_dir(o.cluster, o.name);
  if (!dir) return dir.error();
  AppleNetwork n{o.name, o.cluster, apple::network_id(o.cluster, o.name), "", "", *dir};
  if (n.container.size() > 63)
    return usage_error(fmt::format("network {}", o.name),
                       fmt::format("the container network id {} is longer than 63 characters", n.container));
  if (auto st = apple::check_system(); !st) return st;
  if (auto st = claim_network_dir(o.cluster, o.name, *dir); !st) return st;
  bool created = false;
  auto fail = [&](Error e) {
    if (created) (void)apple::run_container({"container", "network", "delete", n.container}, std::chrono::seconds(60));
    std::error_code ec;
    fsys::remove_all(*dir, ec);
    return e;
  };
  if (auto r = apple::run_container(apple::network_create_argv(n.container, o.subnet), std::chrono::seconds(120)); !r)
    return fail(r.error());
  created = true;
  auto info = apple::find_network(n.container);
  if (!info) return fail(info.error());
  if (!*info)
    return fail(make_error(Exit::unavailable, fmt::format("network {}", o.name), "`container network list` does not show it"));
  n.subnet = (*info)->subnet;
  n.gateway = (*info)->gateway;
  if (auto st = write_file_atomic(*dir / "network.json", n.file_json(), 0644); !st) return fail(st.error());
  return print(n.record((*info)->state));
}

Status cmd_network_create(const Options& o) {
  if (use_apple(o.backend)) return network_create_apple(o);
  auto subnet = o.subnet.empty() ? default_subnet() : parse_cidr(o.subnet);
  if (!subnet) return subnet.error();
  if (auto st = check_subnet(*subnet, o.subnet.empty() ? subnet->str() : o.subnet, true); !st) return st;
  auto dir = network_dir(o.cluster, o.name);
  if (!dir) return dir.error();
  if (which("vde_switch").empty()) return make_error(Exit::unavailable, "vde_switch not found", "install vde2");
  if (auto st = claim_network_dir(o.cluster, o.name, *dir); !st) return st;
  Network n{o.name, o.cluster, *subnet, *dir};
  auto fail = [&](Error e) {
    stop_switch(n);
    std::error_code ec;
    fsys::remove_all(*dir, ec);
    return e;
  };
  json::Writer w;
  w.begin_object().field("subnet", subnet->str()).end_object();
  if (auto st = write_file_atomic(*dir / "network.json", w.str() + "\n", 0644); !st) return fail(st.error());
  if (auto st = start_switch(n); !st) return fail(st.error());
  return print(n.record("running"));
}

std::vector<std::string> network_names(const Options& o) {
  std::vector<std::string> out;
  auto c = cluster_dir(o.cluster);
  if (!c) return out;
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(*c / "networks", ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

Status cmd_network_ls(const Options& o) {
  std::optional<Result<std::vector<apple::NetworkInfo>>> apple_list;  // one `container network list`, when needed
  for (const auto& name : network_names(o)) {
    auto d = network_dir(o.cluster, name);
    if (d && network_backend(*d) == "apple") {
      auto an = load_apple_network(o.cluster, name);
      if (!an) continue;
      if (!apple_list) {
        auto out = apple::run_container({"container", "network", "list", "--format", "json"}, std::chrono::seconds(60));
        apple_list = out ? apple::parse_network_list(*out) : Result<std::vector<apple::NetworkInfo>>(out.error());
        if (!*apple_list) warn(kTool, apple_list->error().message());
      }
      std::string state = "unknown";
      if (*apple_list) {
        state = "missing";  // kina knows it, `container` does not
        for (const auto& i : **apple_list)
          if (i.id == an->container) {
            state = i.state;
            if (!i.subnet.empty()) an->subnet = i.subnet;
            if (!i.gateway.empty()) an->gateway = i.gateway;
          }
      }
      if (auto st = print(an->record(state)); !st) return st;
      continue;
    }
    auto n = load_network(o.cluster, name);
    if (!n) continue;
    if (auto st = print(n->record(switch_running(*n) ? "running" : "stopped")); !st) return st;
  }
  return {};
}

// Machines of the cluster booted with --network NAME.
std::vector<std::string> apple_network_users(const Options& o) {
  std::vector<std::string> users;
  auto c = cluster_dir(o.cluster);
  if (!c) return users;
  std::error_code ec;
  for (const auto& m : fsys::directory_iterator(*c / "machines", ec))
    if (auto s = Spec::load(m.path()); s && s->network == o.name) users.push_back(s->name);
  std::sort(users.begin(), users.end());
  return users;
}

Status network_rm_apple(const Options& o) {
  auto n = load_apple_network(o.cluster, o.name);
  if (!n) return n.error();
  auto users = apple_network_users(o);
  if (!users.empty() && !o.force) {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    return make_error(Exit::usage, fmt::format("network {}", o.name), "machines are attached: " + list,
                      "remove them first, or use network rm -f");
  }
  if (auto r = apple::run_container({"container", "network", "delete", n->container}, std::chrono::seconds(120)); !r) {
    if (!o.force) return Error{r.error().exit, r.error().what, r.error().why, "network rm -f removes kina's record anyway"};
    warn(kTool, r.error().message());
  }
  std::error_code ec;
  fsys::remove_all(n->dir, ec);
  if (ec) return os_error(fmt::format("removing {}", n->dir.string()), ec.value());
  return {};
}

Status cmd_network_rm(const Options& o) {
  if (auto d = network_dir(o.cluster, o.name); d && network_backend(*d) == "apple") return network_rm_apple(o);
  auto n = load_network(o.cluster, o.name);
  if (!n) return n.error();
  auto leases = read_leases(*n);
  if (!leases && !o.force) return leases.error();
  if (leases && !leases->empty() && !o.force) {
    std::string users;
    for (const auto& [ip, m] : *leases) users += (users.empty() ? "" : ", ") + m;
    return make_error(Exit::usage, fmt::format("network {}", o.name), "machines are attached: " + users,
                      "remove them first, or use network rm -f");
  }
  stop_switch(*n);
  std::error_code ec;
  fsys::remove_all(n->dir, ec);
  if (ec) return os_error(fmt::format("removing {}", n->dir.string()), ec.value());
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "_supervise") {
    // The per-VM supervisor (started by boot, never by hand).
    // It runs in the machine directory (how its pid is told from others').
    kina::vm::Supervisor sup;
    if (::chdir(argv[2]) != 0) return 71;
    if (auto st = kina::write_file_atomic(kina::vm::file::supervisor_pid, fmt::format("{}\n", ::getpid()), 0644); !st)
      return 73;
    return sup.run(".");
  }
  const int64_t start_ms = kina::now_ms();
  Options o;
  for (int i = 1; i < argc; ++i) o.argv.emplace_back(argv[i]);
  int rc = kina::run_tool(kTool, argc, argv, [&](CLI::App& app) -> std::function<Status()> {
    app.description(
        "Boot node VMs (QEMU) from a root filesystem, run commands in them, copy files, connect them on a network.\n"
        "State: $KINA_HOME/clusters/<cluster>/machines/<name>/. Records on stdout, diagnostics on stderr.\n"
        "Exit codes: 0 ok, 64 usage, 65 bad data, 66 not found, 69 hypervisor/guest unavailable, 73 cannot create,\n"
        "74 I/O, 75 busy, 128+N interrupted by signal N (boot removes what it started, start leaves the machine stopped); exec exits with the command's status\n"
        "(128+N for signal N, 126/127 when it cannot start).");
    app.require_subcommand(1);
    auto add_cluster = [&](CLI::App* sub) {
      sub->add_option("--cluster", o.cluster, "Cluster (default: default; for lookups: the one that has NAME)")
          ->each([&](const std::string&) { o.cluster_given = true; });
    };

    auto* kernel = app.add_subcommand("kernel", "Register the guest kernel and print its Kernel record");
    kernel->add_flag("--fetch", o.fetch,
                     "apt-get download linux-image-cloud-amd64's kernel package and unpack it into $KINA_HOME/kernel/ "
                     "(the .deb is kept in $KINA_KERNEL_CACHE when set)");
    kernel->add_option("--kernel", o.kernel_path, "A bzImage to use instead")->type_name("PATH");
    kernel->add_option("--modules", o.modules_dir, "Its lib/modules/<version> directory")->type_name("DIR");

    auto* boot = app.add_subcommand("boot", "Boot a machine and print its Machine record once it is ready (--ready: its agent answers, or systemd is running); without --rootfs/--disk, one machine per Rootfs record on stdin (NAME, NAME2, ...; all or nothing)");
    boot->add_option("--name", o.name, "Machine name (DNS label)")->required();
    add_cluster(boot);
    boot->add_option("--network", o.network, "Attach to this network of the cluster (kina-vm network create)");
    boot->add_option("--rootfs", o.rootfs, "Root filesystem directory (an ext4 base disk is built once from it)")->type_name("DIR");
    boot->add_option("--image", o.image, "apple backend: the image as REF@DIGEST (default: the Image record on stdin)");
    boot->add_option("--disk", o.disk, "An ext4 disk image to use as the read-only base")->type_name("FILE");
    boot->add_option("--cpus", o.cpus, "Virtual CPUs, 1 to 64 (default 1)")->check(int_range(1, 64));
    boot->add_option("--memory", o.memory, "Memory (default 512Mi; M is 10^6 bytes, Mi 2^20)");
    boot->add_option("--publish", o.publish, "[ADDR:]HOSTPORT:GUESTPORT[/tcp|udp] (ADDR defaults to 127.0.0.1)")->allow_extra_args(false);
    boot->add_option("--mount", o.mounts, "HOSTDIR:GUESTDIR[:ro]: a host directory in the guest (qemu: virtiofs; :ro is enforced on the host)")->allow_extra_args(false);
    boot->add_option("--env", o.env, "K=V for the workload")->allow_extra_args(false);
    boot->add_option("--kernel-arg", o.kernel_args, "Add to the kernel command line")->allow_extra_args(false);
    boot->add_option("--backend", o.backend, "auto, qemu or apple")->check(CLI::IsMember({"auto", "qemu", "apple"}));
    boot->add_option("--accel", o.accel, "auto (probe KVM, fall back to TCG), kvm or tcg")->check(CLI::IsMember({"auto", "kvm", "tcg"}));
    boot->add_option("--timeout", o.timeout, "How long to wait for the guest to be ready (--ready), 1s to 1d (default 180s)");
    boot->add_option("--ready", o.ready,
                     "When the Machine record is printed: agent (the guest agent answers; default) or systemd (also "
                     "`systemctl is-system-running` says running or degraded; maintenance or stopping fail at once)")
        ->check(CLI::IsMember({"agent", "systemd"}));
    boot->add_option("command", o.command, "Workload (PID 1) after --; default: the image's, else /sbin/init");

    auto* exec = app.add_subcommand("exec", "Run a command in a machine; exits with its status");
    exec->add_option("name", o.name, "Machine")->required();
    add_cluster(exec);
    exec->add_flag("-i,--interactive", o.interactive, "Stream stdin to the command");
    exec->add_flag("-t,--tty", o.tty, "Allocate a terminal");
    exec->add_option("-e,--env", o.env, "K=V")->allow_extra_args(false);
    exec->add_option("-w,--workdir", o.workdir, "Working directory");
    exec->add_option("-u,--user", o.user, "USER, UID or UID:GID");
    exec->add_option("command", o.command, "The command, after --")->required();

    auto* cp = app.add_subcommand("cp", "Copy files or directories: cp SRC NAME:DST, cp NAME:SRC DST (mode and owner kept)");
    add_cluster(cp);
    cp->add_option("src", o.src, "Source")->required();
    cp->add_option("dst", o.dst, "Destination")->required();
    cp->add_option("--max-bytes", o.cp_max_bytes,
                   "cp NAME:SRC DST: most data bytes written on the host (holes in sparse files are kept and not counted); "
                   "a bigger transfer fails and what it wrote is removed")
        ->default_str("64Gi");

    auto* ls = app.add_subcommand("ls", "Print a Machine record per machine");
    add_cluster(ls);
    auto* inspect = app.add_subcommand("inspect", "Print one machine's Machine record");
    inspect->add_option("name", o.name, "Machine")->required();
    add_cluster(inspect);
    auto* logs = app.add_subcommand("logs", "Print a machine's console");
    logs->add_option("name", o.name, "Machine")->required();
    logs->add_flag("-f,--follow", o.follow, "Keep printing until the machine exits");
    logs->add_flag("--raw", o.raw, "Write the console's bytes as they are, also to a terminal (by default control characters are shown as \\xNN there)");
    add_cluster(logs);
    auto* stop = app.add_subcommand("stop", "Power a machine off cleanly; force it after --timeout. Its disk and address are kept (kina-vm start brings it back)");
    stop->add_option("name", o.name, "Machine")->required();
    stop->add_option("--timeout", o.stop_timeout, "Wait this long for a clean poweroff, 0s to 1h (default 30s)");
    add_cluster(stop);
    auto* start = app.add_subcommand("start", "Start a stopped machine again as it was booted (same disk, address, MACs, identity, ports, mounts, CPUs, memory) and print its Machine record once it is ready (--ready, as boot); a running machine is left alone (exit 0). A failed or interrupted start leaves the machine stopped, never removed; 73: its address is now leased to another machine; 75: another start of it runs");
    start->add_option("name", o.name, "Machine")->required();
    start->add_option("--timeout", o.timeout, "How long to wait for the guest to be ready (--ready), 1s to 1d (default 180s)");
    start->add_option("--ready", o.ready, "agent (default) or systemd, as for boot")->check(CLI::IsMember({"agent", "systemd"}));
    add_cluster(start);
    auto* rm = app.add_subcommand("rm", "Remove a stopped machine (-f: stop it first) and all its files");
    rm->add_option("name", o.name, "Machine")->required();
    rm->add_flag("-f,--force", o.force, "Stop it by force if it runs");
    add_cluster(rm);

    auto* network = app.add_subcommand("network", "Cluster networks (qemu: one vde_switch each; apple: one `container network` each)");
    network->require_subcommand(1);
    auto* ncreate = network->add_subcommand("create", "Start a network and print its Network record");
    ncreate->add_option("name", o.name, "Network name")->required();
    ncreate->add_option("--subnet", o.subnet, "IPv4 private subnet, /16 to /29, clear of loopback, link-local, multicast, 0.0.0.0/8, 240.0.0.0/4, the user-mode NIC's 10.0.2.0/24 and every kina network (default: the first free 10.213.N.0/24; apple: container's choice)");
    ncreate->add_option("--backend", o.backend, "auto, qemu (a vde_switch) or apple (a `container network`)")
        ->check(CLI::IsMember({"auto", "qemu", "apple"}));
    add_cluster(ncreate);
    auto* nrm = network->add_subcommand("rm", "Stop and remove a network");
    nrm->add_option("name", o.name, "Network name")->required();
    nrm->add_flag("-f,--force", o.force, "Even when machines are attached");
    add_cluster(nrm);
    auto* nls = network->add_subcommand("ls", "Print a Network record per network");
    add_cluster(nls);

    return [&, kernel, boot, exec, cp, ls, inspect, logs, stop, start, rm, ncreate, nrm, nls]() -> Status {
      auto audit_as = [&](std::string action, std::string target) {
        o.audit_action = std::move(action);
        o.audit_target = std::move(target);
      };
      if (kernel->parsed()) {
        if (o.fetch || !o.kernel_path.empty() || !o.modules_dir.empty()) audit_as("kernel", "kernel");
        return cmd_kernel(o);
      }
      if (boot->parsed()) return audit_as("boot", o.name), cmd_boot(o);
      if (exec->parsed()) return audit_as("exec", o.name), cmd_exec(o);
      if (cp->parsed()) return audit_as("cp", o.src + " " + o.dst), cmd_cp(o);
      if (ls->parsed()) return cmd_ls(o);
      if (inspect->parsed()) return cmd_inspect(o);
      if (logs->parsed()) return cmd_logs(o);
      if (stop->parsed()) return audit_as("stop", o.name), cmd_stop(o);
      if (start->parsed()) return audit_as("start", o.name), cmd_start(o);
      if (rm->parsed()) return audit_as("rm", o.name), cmd_rm(o);
      if (ncreate->parsed()) return audit_as("network-create", o.name), cmd_network_create(o);
      if (nrm->parsed()) return audit_as("network-rm", o.name), cmd_network_rm(o);
      if (nls->parsed()) return cmd_network_ls(o);
      return usage_error("no command");
    };
  }, [&](const CLI::App& app, const Error&) { o.audit_action = parsed_mutating_action(app); });
  // Exactly one audit event per mutating invocation, with the exit code this
  // process ends with (exec: the command's status).
  int exit_code = rc == 0 ? o.exit_status : rc;
  if (!o.audit_action.empty()) record_audit(o, exit_code, start_ms);
  return exit_code;
}
