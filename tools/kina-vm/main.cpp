// kina-vm: boot node VMs from a root filesystem, run commands in them, copy
// files in and out, connect them on a cluster network, stop and start them
// again, and tear them down. This file parses the command line and dispatches:
// each command checks its inputs once, picks the backend (backend.hpp) once,
// and calls it.
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend.hpp"
#include "backends.hpp"
#include "kernel.hpp"
#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "machine.hpp"
#include "names.hpp"
#include "network.hpp"
#include "supervisor.hpp"
#include "sweep.hpp"

namespace {

using namespace kina;
using namespace kina::vm;

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

std::optional<std::string> cluster_flag(const Options& o) {
  return o.cluster_given ? std::optional<std::string>(o.cluster) : std::nullopt;
}

// The audit event of a mutating command, appended once the exit code is
// known (whatever the outcome, input errors included); a failure to log is a
// warning.
void record_audit(const Options& o, int exit_code, int64_t start_ms) {
  audit::Event ev;
  ev.tool = std::string(kTool);
  ev.action = o.audit_action;
  // An invalid --cluster is the error being recorded: it stays in args only.
  if (ClusterName::parse(o.cluster)) ev.cluster = o.cluster;
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
  if (!o.fetch && o.kernel_path.empty() && o.modules_dir.empty()) {
    auto cur = load_kernel();
    if (!cur) return cur.error();
    return print(cur->record());
  }
  auto k = register_kernel(o.fetch, o.kernel_path, o.modules_dir);
  if (!k) return k.error();
  return print(k->record());
}

// --- boot --------------------------------------------------------------------------------

Status cmd_boot(const Options& o, Backends& backends) {
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

Status cmd_ls(const Options& o, Backends& backends) {
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

Status cmd_inspect(const Options& o, Backends& backends) {
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  auto s = Spec::load(m->dir);
  if (!s) return s.error();
  return print(backends.named(s->backend).record(m->dir, *s));
}

Status cmd_logs(const Options& o, Backends& backends) {
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  return backends.of_machine(m->dir).logs(*m, o.follow, o.raw);
}

Status cmd_exec(Options& o, Backends& backends) {
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
  if (o.command.empty()) return usage_error("exec", "give the command after --");
  for (const auto& e : o.env)
    if (e.find('=') == std::string::npos || e.front() == '=')
      return usage_error(fmt::format("invalid -e {}", shown(e)), "expected KEY=VALUE");
  ExecOptions e{o.interactive, o.tty, o.env, o.command, o.workdir, o.user};
  auto status = backends.of_machine(m->dir).exec(*m, e);
  if (!status) return status.error();
  o.exit_status = *status;
  return {};
}

// NAME:PATH -> (NAME, PATH) when the part before ':' is a machine name.
std::optional<std::pair<std::string, std::string>> remote_arg(const std::string& a) {
  auto c = a.find(':');
  if (c == std::string::npos || c == 0) return std::nullopt;
  std::string name = a.substr(0, c);
  if (name.find('/') != std::string::npos || !MachineName::parse(name)) return std::nullopt;
  return std::pair{name, a.substr(c + 1)};
}

Status cmd_cp(Options& o, Backends& backends) {
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
  Backend& b = backends.of_machine(m->dir);
  if (rd) return b.copy_in(*m, o.src, rd->second);
  return b.copy_out(*m, rs->second, o.dst, *cap);
}

Status cmd_stop(Options& o, Backends& backends) {
  auto t = parse_duration_flag("--timeout", o.stop_timeout, 0, kMaxStopTimeoutMs);
  if (!t) return t.error();
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  auto lock = FileLock::acquire(m->dir / "lock", std::chrono::seconds(30), "kina-vm stop");
  if (!lock) return lock.error();
  auto record = backends.of_machine(m->dir).stop(*m, *t, o.stop_timeout);
  if (!record) return record.error();
  return print(*record);
}

Status cmd_start(Options& o, Backends& backends) {
  auto t = parse_duration_flag("--timeout", o.timeout, kMinBootTimeoutMs, kMaxBootTimeoutMs);
  if (!t) return t.error();
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
  // One start (or stop, or rm) of a machine at a time: a second start is 75 at once.
  auto lock = FileLock::acquire(m->dir / "lock", std::chrono::milliseconds(500), "kina-vm start");
  if (!lock) return lock.error();
  auto record = backends.of_machine(m->dir).start(*m, Wait{*t, o.timeout, o.ready == "systemd" ? Ready::systemd : Ready::agent});
  if (!record) return record.error();
  return print(*record);
}

Status cmd_rm(Options& o, Backends& backends) {
  auto m = find_machine(cluster_flag(o), o.name);
  if (!m) return m.error();
  o.cluster = m->cluster.str();
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

Result<NetworkRequest> network_request(const Options& o) {
  auto cluster = ClusterName::parse(o.cluster);
  if (!cluster) return cluster.error();
  auto name = NetworkName::parse(o.name);
  if (!name) return name.error();
  return NetworkRequest{*cluster, *name, o.subnet, o.force};
}

Status cmd_network_create(const Options& o, Backends& backends) {
  auto r = network_request(o);
  if (!r) return r.error();
  auto record = backends.for_flag(o.backend).network_create(*r);
  if (!record) return record.error();
  return print(*record);
}

Status cmd_network_ls(const Options& o, Backends& backends) {
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

Status cmd_network_rm(const Options& o, Backends& backends) {
  auto r = network_request(o);
  if (!r) return r.error();
  auto dir = network_dir(r->cluster, r->name);
  if (!dir) return dir.error();
  return backends.of_network(*dir).network_rm(*r);
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
      Backends backends;
      if (boot->parsed()) return audit_as("boot", o.name), cmd_boot(o, backends);
      if (exec->parsed()) return audit_as("exec", o.name), cmd_exec(o, backends);
      if (cp->parsed()) return audit_as("cp", o.src + " " + o.dst), cmd_cp(o, backends);
      if (ls->parsed()) return cmd_ls(o, backends);
      if (inspect->parsed()) return cmd_inspect(o, backends);
      if (logs->parsed()) return cmd_logs(o, backends);
      if (stop->parsed()) return audit_as("stop", o.name), cmd_stop(o, backends);
      if (start->parsed()) return audit_as("start", o.name), cmd_start(o, backends);
      if (rm->parsed()) return audit_as("rm", o.name), cmd_rm(o, backends);
      if (ncreate->parsed()) return audit_as("network-create", o.name), cmd_network_create(o, backends);
      if (nrm->parsed()) return audit_as("network-rm", o.name), cmd_network_rm(o, backends);
      if (nls->parsed()) return cmd_network_ls(o, backends);
      return usage_error("no command");
    };
  }, [&](const CLI::App& app, const Error&) { o.audit_action = parsed_mutating_action(app); });
  // Exactly one audit event per mutating invocation, with the exit code this
  // process ends with (exec: the command's status).
  int exit_code = rc == 0 ? o.exit_status : rc;
  if (!o.audit_action.empty()) record_audit(o, exit_code, start_ms);
  return exit_code;
}
