// backend_qemu.hpp: the qemu backend: machines are QEMU processes under a
// per-machine supervisor (qemu_boot.hpp), reached through the guest agent;
// networks are vde_switch daemons with host-side address leases.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "backend.hpp"
#include "client.hpp"
#include "console.hpp"
#include "guest_config.hpp"
#include "kina/interrupt.hpp"
#include "kina/diag.hpp"
#include "kina/fs.hpp"
#include "kina/json.hpp"
#include "kina/lock.hpp"
#include "kina/process.hpp"
#include "machine.hpp"
#include "network.hpp"
#include "qemu_boot.hpp"
#include "restart.hpp"
#include "sweep.hpp"
#include "guest/wire.hpp"

namespace kina::vm {

class QemuBackend final : public Backend {
 public:
  // SIGINT, SIGTERM and SIGHUP reach boot, start, exec and cp through INTR
  // (held there); null in a unit test.
  explicit QemuBackend(const Interrupts* intr = nullptr) : intr_(intr) {}

  Result<std::vector<std::string>> boot(const BootRequest& r) override {
    std::vector<Mount> mounts;
    for (const auto& m : r.mounts) {
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
    if (!r.rootfs.empty() && !r.disk.empty()) return make_error(Exit::usage, "boot", "--rootfs and --disk are exclusive");

    std::vector<RootfsInput> inputs(1);
    if (!r.rootfs.empty()) {
      inputs[0].dir = fsys::absolute(r.rootfs);
      if (!fsys::is_directory(inputs[0].dir))
        return make_error(Exit::no_input, fmt::format("rootfs {}", r.rootfs), "no such directory");
    } else if (!r.disk.empty()) {
      inputs[0].disk = fsys::absolute(r.disk);
      if (!fsys::is_regular_file(inputs[0].disk))
        return make_error(Exit::no_input, fmt::format("disk {}", r.disk), "no such file");
    } else {
      auto found = rootfs_from_stdin();
      if (!found) return found.error();
      if (found->empty()) return make_error(Exit::usage, "boot", "give --rootfs DIR or --disk FILE, or pipe a Rootfs record to stdin");
      inputs = std::move(*found);
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
        if (auto st = check_config_value(fmt::format("Env entry of image {}", in.image), e); !st) return st.error();
      if (auto st = check_config_value(fmt::format("WorkingDir of image {}", in.image), in.workdir); !st) return st.error();
      for (const auto& a : in.command)
        if (auto st = check_config_value(fmt::format("command of image {}", in.image), a); !st) return st.error();
    }
    // Several Rootfs records boot several machines: NAME, NAME2, NAME3, ...
    // (kind's worker, worker2). All or nothing: a failure removes the ones
    // this command booted.
    std::vector<MachineName> names;
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto n = i == 0 ? r.name : MachineName::parse(fmt::format("{}{}", r.name.str(), i + 1));
      if (!n) return n.error();
      names.push_back(*n);
    }
    auto k = load_kernel();
    if (!k) return k.error();
    auto init = find_init();
    if (!init) return init.error();
    if (which("qemu-system-x86_64").empty())
      return make_error(Exit::unavailable, "qemu-system-x86_64 not found", "install qemu-system-x86");

    // From here on, SIGINT, SIGTERM and SIGHUP undo what this boot started.
    auto held = Interrupts::hold(intr_);
    // The records are printed once every machine answers.
    std::vector<BootPlan> booted;
    // (The directory goes before the lease: on a full disk, rewriting the
    // leases needs the room the directory held. A lease left without its
    // directory is swept by the next allocate_ip.)
    auto undo = [](const BootPlan& plan) {
      kill_machine(plan.dir, std::chrono::seconds(3));
      remove_machine_dir(plan.dir);
      if (plan.net && !plan.spec.ip.empty())  // an address was leased
        if (auto st = release_ip(*plan.net, plan.spec.name); !st) warn(kTool, st.error().message());
    };
    for (size_t i = 0; i < inputs.size(); ++i) {
      BootPlan plan;
      plan.intr = intr_;
      auto st = boot_one(r, names[i], inputs[i], r.memory_bytes, mounts, virtiofsd, *k, *init, plan);
      if (!st) {
        if (!plan.dir.empty()) undo(plan);
        for (auto it = booted.rbegin(); it != booted.rend(); ++it) undo(*it);
        return st.error();
      }
      booted.push_back(std::move(plan));
    }
    for (const auto& plan : booted)
      if (auto st = boot_completed(plan.dir); !st) {
        for (auto it = booted.rbegin(); it != booted.rend(); ++it) undo(*it);
        return st.error();
      }
    std::vector<std::string> records;
    for (const auto& plan : booted) records.push_back(plan.record);
    return records;
  }

  // Starts a stopped machine again from machine.json: same overlay disk,
  // initramfs (hostname, machine-id, product UUID, addresses, mounts, workload),
  // MACs, published ports, CPUs and memory; its network address is taken again.
  // A running machine is left alone (its record is returned). A start that
  // fails or is interrupted leaves the machine stopped, nothing removed.
  Result<std::string> start(const MachineRef& m, const Wait& w) override {
    auto loaded = Spec::load(m.dir);
    if (!loaded) return loaded.error();
    Spec s = *loaded;
    auto cdir = cluster_dir(m.cluster);
    if (!cdir) return cdir.error();
    // From before the `starting` marker exists: SIGINT, SIGTERM and SIGHUP
    // stop the machine again first (pending ones are answered in attempt).
    auto held = Interrupts::hold(intr_);
    {
      auto cluster_lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm start");
      if (!cluster_lock) return cluster_lock.error();
      sweep_abandoned_boots(*cdir, m.cluster);  // a killed start of this machine goes back to stopped
      if (fsys::exists(m.dir / file::booting))
        return make_error(Exit::temp_fail, fmt::format("machine {}", m.name.str()), "its boot has not completed yet",
                          "wait for kina-vm boot to finish");
      State st = machine_state(m.dir);
      if (st.state == "running") return qemu_record(m.dir, s, st);
      if (st.state != "exited")
        return make_error(Exit::temp_fail, fmt::format("machine {}", m.name.str()), fmt::format("it is {}", st.state),
                          fmt::format("wait, or stop it first: kina-vm stop {}", m.name.str()));
      if (auto st2 = check_start_inputs(m.dir, s); !st2) return st2.error();
      // Before anything changes: a start refused for room leaves the
      // machine's files as they were (its console, exit.json, machine.json).
      if (auto st2 = check_room(m.dir); !st2) return st2.error();
      if (auto st2 = write_file_atomic(m.dir / file::starting, this_boot("").str(), 0600); !st2) return st2.error();
    }
    BootPlan plan;
    plan.intr = intr_;
    plan.spec = s;
    plan.dir = m.dir;
    plan.doing = "starting";
    plan.undone = "the machine was left stopped, its disk kept";
    auto attempt = [&]() -> Status {
      Spec& ps = plan.spec;
      if (auto st = plan.interrupted(); !st) return st;
      if (!ps.network.empty()) {
        auto net = NetworkName::parse(ps.network);
        if (!net) return net.error();
        auto n = load_network(m.cluster, *net);
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
      // What the last run left: its end, pid files, sockets; of its console,
      // the newest part is kept once (console.log; console.old.log goes).
      for (const char* f : {file::exit_info, file::ready, file::qemu_pid, file::supervisor_pid, file::ctl_sock,
                            file::agent_sock, file::qmp_sock, file::console_fifo, file::old_console})
        ::unlink((plan.dir / f).c_str());
      if (fsys::exists(plan.dir / file::console))
        if (::rename((plan.dir / file::console).c_str(), (plan.dir / file::previous_console).c_str()) != 0)
          return os_error(fmt::format("keeping the console of {}", ps.name));
      if (ps.accel == "kvm" && ::access("/dev/kvm", R_OK | W_OK) != 0) {
        warn(kTool, fmt::format("{} was booted with KVM but /dev/kvm is not usable now; starting it with TCG (slower)", ps.name));
        use_tcg(ps);
      }
      refresh_clock_arg(ps.qemu_argv, now_ms());
      upgrade_console_arg(ps.qemu_argv);
      ps.ready.clear();
      if (auto st = write_file_atomic(plan.dir / file::spec, ps.to_json() + "\n", 0644); !st) return st;
      if (auto st = plan.interrupted(); !st) return st;
      auto t0 = std::chrono::steady_clock::now();
      if (auto st = spawn_and_wait(w, plan, w.timeout_ms, false); !st) return st;
      return wait_ready(w, plan, t0 + std::chrono::milliseconds(w.timeout_ms));
    };
    if (auto st = attempt(); !st) {
      abandon_start(m.dir, fmt::format("start failed: {}", st.error().why));
      return st.error();
    }
    if (::unlink((m.dir / file::starting).c_str()) != 0 && errno != ENOENT)
      return os_error(fmt::format("removing {}", (m.dir / file::starting).string()));
    (void)fsync_dir(m.dir);
    return plan.record;
  }

  Result<std::string> stop(const MachineRef& m, int64_t timeout_ms, const std::string& timeout_text) override {
    State st = machine_state(m.dir);
    if (st.state != "exited") {
      bool asked = false, told = false;
      if (auto conn = AgentConnection::open(m.dir, m.name.str()); conn && st.state == "running")
        asked = static_cast<bool>(conn->send(wire::Type::poweroff));
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(asked ? timeout_ms : 0);
      while (std::chrono::steady_clock::now() < deadline && (st = machine_state(m.dir)).state != "exited") {
        if (st.paused && !told) {
          warn(kTool, fmt::format("{} is paused: {}; waiting up to {} for it to power off", m.name.str(), kPausedWhy, timeout_text));
          told = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (machine_state(m.dir).state != "exited") {
        if (asked) warn(kTool, fmt::format("{} did not power off within {}; stopping it by force", m.name.str(), timeout_text));
        kill_machine(m.dir, std::chrono::seconds(5));
      }
      // A supervisor killed before it recorded the end leaves it to us.
      st = machine_state(m.dir);
      if (!st.supervisor && !st.qemu) end_run(m.dir, exit_info_json("stopped (forced)"), true);
    }
    // A live start holds the machine's lock for as long as its `starting`
    // marker exists: one seen here is a killed start's, and the machine it
    // left is now stopped.
    if (::unlink((m.dir / file::starting).c_str()) == 0) (void)fsync_dir(m.dir);
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    return qemu_record(m.dir, *s, machine_state(m.dir));
  }

  Status remove(const MachineRef& m, bool force) override {
    State st = machine_state(m.dir);
    if (st.state != "exited") {
      if (!force)
        return make_error(Exit::usage, fmt::format("machine {}", m.name.str()), fmt::format("it is {}", st.state),
                          fmt::format("stop it first (kina-vm stop {0}) or use kina-vm rm -f {0}", m.name.str()));
      kill_machine(m.dir, std::chrono::seconds(5));
    }
    auto s = Spec::load(m.dir);
    if (s && !s->network.empty())
      if (auto net = NetworkName::parse(s->network))
        if (auto n = load_network(m.cluster, *net))
          if (auto r = release_ip(*n, s->name); !r) warn(kTool, r.error().message() + " (its address stays leased)");
    return {};
  }

  Result<int> exec(const MachineRef& m, const ExecOptions& e) override {
    auto conn = AgentConnection::open(m.dir, m.name.str());
    if (!conn) return conn.error();
    wire::ExecRequest req;
    req.tty = e.tty;
    req.cwd = e.workdir;
    req.user = e.user;
    req.argv = e.command;
    req.env = e.env;
    int status = 0;
    if (auto st = run_exec(*conn, req, e.interactive, &status, intr_); !st) return st.error();
    return status;
  }

  Status copy_in(const MachineRef& m, const std::string& host_src, const std::string& guest_dst) override {
    auto conn = AgentConnection::open(m.dir, m.name.str());
    if (!conn) return conn.error();
    return vm::copy_in(*conn, host_src, guest_dst);
  }

  Status copy_out(const MachineRef& m, const std::string& guest_src, const std::string& host_dst,
                  uint64_t max_bytes) override {
    auto conn = AgentConnection::open(m.dir, m.name.str());
    if (!conn) return conn.error();
    return vm::copy_out(*conn, guest_src, host_dst, max_bytes, intr_);
  }

  // console.old.log (the older part, once console.log reached its cap) then
  // console.log; --follow goes on into the next console.log when the
  // supervisor moves this one aside.
  Status logs(const MachineRef& m, bool follow, bool raw) override {
    auto open_console = [&](const char* name, bool must) -> Result<UniqueFd> {
      UniqueFd fd(::open((m.dir / name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
      if (!fd.valid()) {
        if (!must && errno == ENOENT) return fd;
        return os_error(fmt::format("reading the console of {}", m.name.str()), errno, Exit::no_input);
      }
      struct stat sb {};
      if (::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode))
        return make_error(Exit::data, fmt::format("reading the console of {}", m.name.str()), fmt::format("{} is not a regular file", name));
      return fd;
    };
    // The guest writes what it likes to its console: on a terminal, control
    // characters are shown escaped unless --raw.
    bool escape = !raw && ::isatty(1);
    TerminalEscaper esc;
    char buf[65536];
    // Copies FD to stdout up to its current end.
    auto copy = [&](int fd) -> Status {
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return os_error("reading the console", errno, Exit::io);
        if (n == 0) return {};
        std::string_view chunk(buf, static_cast<size_t>(n));
        std::string safe = escape ? esc.feed(chunk) : std::string();
        if (auto st = write_all(1, escape ? std::string_view(safe) : chunk, "writing stdout"); !st) return st;
      }
    };
    auto cur = open_console(file::console, true);
    if (!cur) return cur.error();
    auto old = open_console(file::old_console, false);
    if (!old) return old.error();
    if (old->valid())
      if (auto st = copy(old->get()); !st) return st;
    UniqueFd fd = std::move(*cur);
    for (;;) {
      if (auto st = copy(fd.get()); !st) return st;
      if (!follow || machine_state(m.dir).state == "exited")
        return escape ? write_all(1, esc.finish(), "writing stdout") : Status{};
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      // Moved aside at its cap: read what it got last, then the new one.
      struct stat a {}, b {};
      if (::fstat(fd.get(), &a) == 0 && ::stat((m.dir / file::console).c_str(), &b) == 0 &&
          (a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
        if (auto st = copy(fd.get()); !st) return st;
        auto next = open_console(file::console, true);
        if (!next) return next.error();
        fd = std::move(*next);
      }
    }
  }

  std::string record(const fsys::path& dir, Spec& s) override { return qemu_record(dir, s, machine_state(dir)); }

  Result<std::string> network_create(const NetworkRequest& r) override {
    auto subnets = lock_subnets("kina-vm network create");
    if (!subnets) return subnets.error();
    auto subnet = r.subnet.empty() ? default_subnet() : parse_cidr(r.subnet);
    if (!subnet) return subnet.error();
    if (auto st = check_subnet(*subnet, r.subnet.empty() ? subnet->str() : r.subnet, true); !st) return st.error();
    auto dir = network_dir(r.cluster, r.name);
    if (!dir) return dir.error();
    if (which("vde_switch").empty()) return make_error(Exit::unavailable, "vde_switch not found", "install vde2");
    if (auto st = claim_network_dir(r.cluster, r.name, *dir); !st) return st.error();
    Network n{r.name.str(), r.cluster.str(), *subnet, *dir};
    auto fail = [&](Error e) {
      stop_switch(n);
      std::error_code ec;
      fsys::remove_all(*dir, ec);
      return e;
    };
    json::Writer w;
    w.begin_object().field("subnet", subnet->str()).end_object();
    if (auto st = write_file_atomic(*dir / "network.json", w.str() + "\n", 0644); !st) return fail(st.error());
    subnets->release();
    if (auto st = start_switch(n); !st) return fail(st.error());
    return n.record("running");
  }

  Result<std::string> network_record(const ClusterName& cluster, const NetworkName& name) override {
    auto n = load_network(cluster, name);
    if (!n) return n.error();
    return n->record(switch_running(*n) ? "running" : "stopped");
  }

  Status network_rm(const NetworkRequest& r) override {
    auto n = load_network(r.cluster, r.name);
    if (!n) return n.error();
    auto leases = read_leases(*n);
    if (!leases && !r.force) return leases.error();
    if (leases && !leases->empty() && !r.force) {
      std::string users;
      for (const auto& [ip, m] : *leases) users += (users.empty() ? "" : ", ") + m;
      return make_error(Exit::usage, fmt::format("network {}", r.name.str()), "machines are attached: " + users,
                        "remove them first, or use network rm -f");
    }
    stop_switch(*n);
    std::error_code ec;
    fsys::remove_all(n->dir, ec);
    if (ec) return os_error(fmt::format("removing {}", n->dir.string()), ec.value());
    return {};
  }

 private:
  const Interrupts* intr_;
};

}  // namespace kina::vm
