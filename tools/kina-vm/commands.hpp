// commands.hpp: kina-vm's commands and their options, as main.cpp's table
// runs them. Each checks its inputs once, picks the backend (backend.hpp)
// once, and calls it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "backend.hpp"
#include "backends.hpp"
#include "kernel.hpp"
#include "kina/cli.hpp"
#include "kina/fs.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "machine.hpp"
#include "names.hpp"
#include "network.hpp"
#include "supervisor.hpp"
#include "sweep.hpp"

namespace kina::vm {

inline constexpr std::string_view kDescription =
    "Boot node VMs (QEMU) from a root filesystem, run commands in them, copy files, connect them on a network.\n"
    "State: $KINA_HOME/clusters/<cluster>/machines/<name>/. Records on stdout, diagnostics on stderr.\n"
    "SIGINT, SIGTERM or SIGHUP: boot removes what it started, start leaves the machine stopped, cp removes what it\n"
    "wrote (128+N); exec passes them to the command and exits with its status (128+N for signal N, 126/127 when it\n"
    "cannot start).";

// `kina-vm _supervise DIR`: the per-VM supervisor, started by boot (never by
// hand) in the machine directory, which is how its pid is told from others'.
// Its exit code, or nothing when argv is not that.
inline std::optional<int> supervise_if_asked(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "_supervise") return std::nullopt;
  Supervisor sup;
  if (::chdir(argv[2]) != 0) return 71;
  if (auto st = write_file_atomic(file::supervisor_pid, fmt::format("{}\n", ::getpid()), 0644); !st) return 73;
  return sup.run(".");
}

struct Options {
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
};

inline std::optional<std::string> cluster_flag(const Options& o) {
  return o.cluster_given ? std::optional<std::string>(o.cluster) : std::nullopt;
}

// The audit event's cluster (--cluster's when valid: an invalid one is kept
// in args only) and target; a lookup sets the machine's cluster once found.
inline void audit_as(const Options& o, Invocation& inv, std::string target) {
  if (ClusterName::parse(o.cluster)) inv.set_cluster(o.cluster);
  inv.set_target(std::move(target));
}

// The cluster and target of a command line CLI11 refused, as far as it was read.
inline std::string refused_cluster(const Options& o) { return ClusterName::parse(o.cluster) ? o.cluster : std::string(); }
inline std::string refused_target(const Options& o) { return o.name; }

// `kernel` registers one (recorded) with --fetch, --kernel or --modules, and only reads without.
inline bool kernel_registers(const Options& o) { return o.fetch || !o.kernel_path.empty() || !o.modules_dir.empty(); }

inline Status print(const std::string& record) { return RecordWriter().write_line(record); }

// --- kernel ----------------------------------------------------------------------------

inline Status cmd_kernel(Options& o, Invocation& inv) {
  audit_as(o, inv, "kernel");
  if (!o.fetch && o.kernel_path.empty() && o.modules_dir.empty()) {
    auto cur = load_kernel();
    if (!cur) return cur.error();
    return print(cur->record());
  }
  auto k = register_kernel(o.fetch, o.kernel_path, o.modules_dir, inv.interrupts());
  if (!k) return k.error();
  return print(k->record());
}

// --- boot --------------------------------------------------------------------------------

inline Status cmd_boot(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
  // Validate everything before creating anything.
  if (o.name.empty()) return usage_error("boot", "--name is required");
  auto name = MachineName::parse(o.name);
  if (!name) return name.error();
  auto cluster = ClusterName::parse(o.cluster);
  if (!cluster) return cluster.error();
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
  BootRequest r{*cluster, *name};
  if (!o.network.empty()) {
    auto net = NetworkName::parse(o.network);
    if (!net) return net.error();
    r.network = *net;
  }
  r.rootfs = o.rootfs, r.disk = o.disk, r.image = o.image, r.accel = o.accel;
  r.cpus = o.cpus;
  r.memory_bytes = *mem;
  r.publish = o.publish, r.env = o.env, r.kernel_args = o.kernel_args, r.mounts = o.mounts, r.command = o.command;
  r.wait = Wait{*t, o.timeout, o.ready == "systemd" ? Ready::systemd : Ready::agent};
  auto records = backends.for_flag(o.backend).boot(r);
  if (!records) return records.error();
  for (const auto& rec : *records)
    if (auto st = print(rec); !st) return st;
  return {};
}

// --- machines ----------------------------------------------------------------------------

inline Status cmd_ls(Options& o, Invocation& inv) {
  Backends backends(inv.interrupts());
  auto root = kina_subdir("clusters");
  if (!root) return root.error();
  std::vector<fsys::path> clusters;
  std::error_code ec;
  if (o.cluster_given) {
    auto c = ClusterName::parse(o.cluster);
    if (!c) return c.error();
    clusters.push_back(*root / c->str());
  } else {
    for (const auto& c : fsys::directory_iterator(*root, ec)) clusters.push_back(c.path());
  }
  std::sort(clusters.begin(), clusters.end());
  for (const auto& c : clusters) {
    auto cluster = ClusterName::parse(c.filename().string());
    if (!cluster) continue;  // not kina's
    // Sweep what a killed boot left (best effort: skipped while the cluster is busy).
    if (fsys::is_directory(c))
      if (auto lock = FileLock::acquire(c / "lock", std::chrono::seconds(2), "kina-vm ls"))
        sweep_abandoned_boots(c, *cluster);
    std::vector<fsys::path> machines;
    for (const auto& m : fsys::directory_iterator(c / "machines", ec)) machines.push_back(m.path());
    std::sort(machines.begin(), machines.end());
    for (const auto& m : machines) {
      auto s = Spec::load(m);
      if (!s) continue;  // being created or removed
      if (auto st = print(backends.named(s->backend).record(m, *s)); !st) return st;
    }
  }
  return {};
}

inline Status cmd_inspect(Options& o, Invocation& inv) {
  Backends backends(inv.interrupts());
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  auto s = Spec::load(m->dir);
  if (!s) return s.error();
  return print(backends.named(s->backend).record(m->dir, *s));
}

inline Status cmd_logs(Options& o, Invocation& inv) {
  Backends backends(inv.interrupts());
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  return backends.of_machine(m->dir).logs(*m, o.follow, o.raw);
}

inline Status cmd_exec(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
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
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  inv.set_cluster(o.cluster);
  if (o.command.empty()) return usage_error("exec", "give the command after --");
  for (const auto& e : o.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      return usage_error(fmt::format("invalid -e {}", shown(e)), "expected KEY=VALUE");
  ExecOptions e{o.interactive, o.tty, o.env, o.command, o.workdir, o.user};
  auto status = backends.of_machine(m->dir).exec(*m, e);
  if (!status) return status.error();
  inv.set_exit_status(*status);
  return {};
}

// NAME:PATH -> (NAME, PATH) when the part before ':' is a machine name.
inline std::optional<std::pair<std::string, std::string>> remote_arg(const std::string& a) {
  auto c = a.find(':');
  if (c == std::string::npos || c == 0) return std::nullopt;
  std::string name = a.substr(0, c);
  if (name.find('/') != std::string::npos || !MachineName::parse(name)) return std::nullopt;
  return std::pair{name, a.substr(c + 1)};
}

inline Status cmd_cp(Options& o, Invocation& inv) {
  audit_as(o, inv, o.src + " " + o.dst);
  Backends backends(inv.interrupts());
  auto rs = remote_arg(o.src), rd = remote_arg(o.dst);
  if (rs.has_value() == rd.has_value())
    return usage_error("cp", "exactly one of SRC and DST must be NAME:PATH (cp SRC NAME:DST or cp NAME:SRC DST)");
  auto& remote = rs ? *rs : *rd;
  if (remote.second.empty() || remote.second.front() != '/')
    return usage_error(fmt::format("cp: {}:{}", remote.first, remote.second), "the guest path must be absolute");
  auto cap = parse_size(o.cp_max_bytes);
  if (!cap) return usage_error(fmt::format("cp --max-bytes {}", o.cp_max_bytes), cap.error().why);
  o.name = remote.first;
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  inv.set_cluster(o.cluster);
  Backend& b = backends.of_machine(m->dir);
  if (rd) return b.copy_in(*m, o.src, rd->second);
  return b.copy_out(*m, rs->second, o.dst, *cap);
}

inline Status cmd_stop(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
  auto t = parse_duration_flag("--timeout", o.stop_timeout, 0, kMaxStopTimeoutMs);
  if (!t) return t.error();
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  inv.set_cluster(o.cluster);
  auto lock = FileLock::acquire(m->dir / "lock", std::chrono::seconds(30), "kina-vm stop");
  if (!lock) return lock.error();
  auto record = backends.of_machine(m->dir).stop(*m, *t, o.stop_timeout);
  if (!record) return record.error();
  return print(*record);
}

inline Status cmd_start(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
  auto t = parse_duration_flag("--timeout", o.timeout, kMinBootTimeoutMs, kMaxBootTimeoutMs);
  if (!t) return t.error();
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  inv.set_cluster(o.cluster);
  // One start (or stop, or rm) of a machine at a time: a second start is 75 at once.
  auto lock = FileLock::acquire(m->dir / "lock", std::chrono::milliseconds(500), "kina-vm start");
  if (!lock) return lock.error();
  auto record = backends.of_machine(m->dir).start(*m, Wait{*t, o.timeout, o.ready == "systemd" ? Ready::systemd : Ready::agent});
  if (!record) return record.error();
  return print(*record);
}

inline Status cmd_rm(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  inv.set_cluster(o.cluster);
  auto lock = FileLock::acquire(m->dir / "lock", std::chrono::seconds(30), "kina-vm rm");
  if (!lock) return lock.error();
  if (auto st = backends.of_machine(m->dir).remove(*m, o.force); !st) return st;
  lock->release();
  std::error_code ec;
  fsys::remove_all(m->dir, ec);
  if (ec) return os_error(fmt::format("removing {}", m->dir.string()), ec.value());
  return {};
}

// --- networks ------------------------------------------------------------------------------

inline Result<NetworkRequest> network_request(const Options& o) {
  auto cluster = ClusterName::parse(o.cluster);
  if (!cluster) return cluster.error();
  auto name = NetworkName::parse(o.name);
  if (!name) return name.error();
  return NetworkRequest{*cluster, *name, o.subnet, o.force};
}

inline Status cmd_network_create(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
  auto r = network_request(o);
  if (!r) return r.error();
  auto record = backends.for_flag(o.backend).network_create(*r);
  if (!record) return record.error();
  return print(*record);
}

inline Status cmd_network_ls(Options& o, Invocation& inv) {
  Backends backends(inv.interrupts());
  auto cluster = ClusterName::parse(o.cluster);
  if (!cluster) return cluster.error();
  auto c = cluster_dir(*cluster);
  if (!c) return c.error();
  std::vector<fsys::path> dirs;
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(*c / "networks", ec)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    auto name = NetworkName::parse(dir.filename().string());
    if (!name) continue;
    auto record = backends.of_network(dir).network_record(*cluster, *name);
    if (!record) continue;  // being created or removed
    if (auto st = print(*record); !st) return st;
  }
  return {};
}

inline Status cmd_network_rm(Options& o, Invocation& inv) {
  audit_as(o, inv, o.name);
  Backends backends(inv.interrupts());
  auto r = network_request(o);
  if (!r) return r.error();
  auto dir = network_dir(r->cluster, r->name);
  if (!dir) return dir.error();
  return backends.of_network(*dir).network_rm(*r);
}


// --- options ---------------------------------------------------------------------------

inline void add_cluster(CLI::App& sub, Options& o) {
  sub.add_option("--cluster", o.cluster, "Cluster (default: default; for lookups: the one that has NAME)")
      ->each([&o](const std::string&) { o.cluster_given = true; });
}

inline void kernel_options(CLI::App& c, Options& o) {
  c.add_flag("--fetch", o.fetch,
             "apt-get download linux-image-cloud-amd64's kernel package and unpack it into $KINA_HOME/kernel/ "
             "(the .deb is kept in $KINA_KERNEL_CACHE when set)");
  c.add_option("--kernel", o.kernel_path, "A bzImage to use instead")->type_name("PATH");
  c.add_option("--modules", o.modules_dir, "Its lib/modules/<version> directory")->type_name("DIR");
}

inline void boot_options(CLI::App& c, Options& o) {
  c.add_option("--name", o.name, "Machine name (DNS label)")->required();
  add_cluster(c, o);
  c.add_option("--network", o.network, "Attach to this network of the cluster (kina-vm network create)");
  c.add_option("--rootfs", o.rootfs, "Root filesystem directory (an ext4 base disk is built once from it)")->type_name("DIR");
  c.add_option("--image", o.image, "apple backend: the image as REF@DIGEST (default: the Image record on stdin)");
  c.add_option("--disk", o.disk, "An ext4 disk image to use as the read-only base")->type_name("FILE");
  c.add_option("--cpus", o.cpus, "Virtual CPUs, 1 to 64 (default 1)")->check(int_range(1, 64));
  c.add_option("--memory", o.memory, "Memory (default 512Mi; M is 10^6 bytes, Mi 2^20)");
  c.add_option("--publish", o.publish, "[ADDR:]HOSTPORT:GUESTPORT[/tcp|udp] (ADDR defaults to 127.0.0.1)")->allow_extra_args(false);
  c.add_option("--mount", o.mounts, "HOSTDIR:GUESTDIR[:ro]: a host directory in the guest (qemu: virtiofs; :ro is enforced on the host)")->allow_extra_args(false);
  c.add_option("--env", o.env, "K=V for the workload")->allow_extra_args(false);
  c.add_option("--kernel-arg", o.kernel_args, "Add to the kernel command line")->allow_extra_args(false);
  c.add_option("--backend", o.backend, "auto, qemu or apple")->check(CLI::IsMember({"auto", "qemu", "apple"}));
  c.add_option("--accel", o.accel, "auto (probe KVM, fall back to TCG), kvm or tcg")->check(CLI::IsMember({"auto", "kvm", "tcg"}));
  c.add_option("--timeout", o.timeout, "How long to wait for the guest to be ready (--ready), 1s to 1d (default 180s)");
  c.add_option("--ready", o.ready,
               "When the Machine record is printed: agent (the guest agent answers; default) or systemd (also "
               "`systemctl is-system-running` says running or degraded; maintenance or stopping fail at once)")
      ->check(CLI::IsMember({"agent", "systemd"}));
  c.add_option("command", o.command, "Workload (PID 1) after --; default: the image's, else /sbin/init");
}

inline void exec_options(CLI::App& c, Options& o) {
  c.add_option("name", o.name, "Machine")->required();
  add_cluster(c, o);
  c.add_flag("-i,--interactive", o.interactive, "Stream stdin to the command");
  c.add_flag("-t,--tty", o.tty, "Allocate a terminal");
  c.add_option("-e,--env", o.env, "K=V")->allow_extra_args(false);
  c.add_option("-w,--workdir", o.workdir, "Working directory");
  c.add_option("-u,--user", o.user, "USER, UID or UID:GID");
  c.add_option("command", o.command, "The command, after --")->required();
}

inline void cp_options(CLI::App& c, Options& o) {
  add_cluster(c, o);
  c.add_option("src", o.src, "Source")->required();
  c.add_option("dst", o.dst, "Destination")->required();
  c.add_option("--max-bytes", o.cp_max_bytes,
               "cp NAME:SRC DST: most data bytes written on the host (holes in sparse files are kept and not counted); "
               "a bigger transfer fails and what it wrote is removed")
      ->default_str("64Gi");
}

// NAME (required) and --cluster: the commands on one machine.
inline void machine_options(CLI::App& c, Options& o) {
  c.add_option("name", o.name, "Machine")->required();
  add_cluster(c, o);
}

inline void logs_options(CLI::App& c, Options& o) {
  machine_options(c, o);
  c.add_flag("-f,--follow", o.follow, "Keep printing until the machine exits");
  c.add_flag("--raw", o.raw, "Write the console's bytes as they are, also to a terminal (by default control characters are shown as \\xNN there)");
}

inline void stop_options(CLI::App& c, Options& o) {
  machine_options(c, o);
  c.add_option("--timeout", o.stop_timeout, "Wait this long for a clean poweroff, 0s to 1h (default 30s)");
}

inline void start_options(CLI::App& c, Options& o) {
  machine_options(c, o);
  c.add_option("--timeout", o.timeout, "How long to wait for the guest to be ready (--ready), 1s to 1d (default 180s)");
  c.add_option("--ready", o.ready, "agent (default) or systemd, as for boot")->check(CLI::IsMember({"agent", "systemd"}));
}

inline void rm_options(CLI::App& c, Options& o) {
  machine_options(c, o);
  c.add_flag("-f,--force", o.force, "Stop it by force if it runs");
}

inline void network_create_options(CLI::App& c, Options& o) {
  c.add_option("name", o.name, "Network name")->required();
  c.add_option("--subnet", o.subnet, "IPv4 private subnet, /16 to /29, clear of loopback, link-local, multicast, 0.0.0.0/8, 240.0.0.0/4, the user-mode NIC's 10.0.2.0/24 and every kina network (default: the first free 10.213.N.0/24; apple: container's choice)");
  c.add_option("--backend", o.backend, "auto, qemu (a vde_switch) or apple (a `container network`)")
      ->check(CLI::IsMember({"auto", "qemu", "apple"}));
  add_cluster(c, o);
}

inline void network_rm_options(CLI::App& c, Options& o) {
  c.add_option("name", o.name, "Network name")->required();
  c.add_flag("-f,--force", o.force, "Even when machines are attached");
  add_cluster(c, o);
}

}  // namespace kina::vm
