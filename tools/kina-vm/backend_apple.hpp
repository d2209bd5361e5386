// backend_apple.hpp: the apple backend: each machine is a container of Apple's
// `container` CLI (apple.hpp wraps its calls and parses its JSON), each
// network a `container network`; kina keeps only their ids and addresses.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "apple.hpp"
#include "backend.hpp"
#include "console.hpp"
#include "kina/interrupt.hpp"
#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/fs.hpp"
#include "kina/lock.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "machine.hpp"
#include "network.hpp"

namespace kina::vm {

// The Machine record of an apple machine.
inline std::string apple_record(const fsys::path& dir, const Spec& s, const State& st) {
  return machine_record(dir, s, st, [&](json::Writer& w) { w.field("container", s.container); });
}

// The state of an apple machine from `container list`; its address is refreshed in S.
inline State apple_state(Spec& s) {
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

// An image reference for the apple backend: --image, else the Image record on
// stdin (other records are forwarded to stdout).
inline Result<std::string> apple_image(const std::string& given) {
  if (!given.empty()) return given;
  if (!stdin_has_records())
    return make_error(Exit::usage, "boot --backend apple", "give --image REF@DIGEST or pipe an Image record");
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
  if (ref.empty()) return make_error(Exit::usage, "boot --backend apple", "no Image record on stdin; give --image REF@DIGEST");
  return ref;
}

// How often --ready systemd asks, and how long one `container exec` may take.
inline constexpr std::chrono::milliseconds kSystemdPoll{2000}, kSystemdCall{10000};

// --ready systemd on the apple backend: asks `container exec ID systemctl
// is-system-running` about every 2 s (each call bounded by 10 s and the time
// left) until it prints running or degraded. initializing, starting, offline,
// no answer yet and a call that timed out are waited through; maintenance
// (a unit the boot needs failed) and stopping (the container is shutting
// down, which a boot or start never asks for) fail at once, as on the qemu
// backend, and so does a container that stopped or cannot run systemctl
// (126/127). Failures are 69 naming the machine and the last state seen;
// DOING and UNDONE word them ("booting"/"starting", what the caller does
// about it); interrupts are 128+N.
inline Status wait_systemd_apple(Spec& s, const Wait& w, std::string_view doing, std::string_view undone,
                                 const Interrupts* intr) {
  std::string what = fmt::format("{} {}", doing, s.name);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(w.timeout_ms);
  std::string said;  // systemd's last answer
  for (;;) {
    if (auto st = Interrupts::check(intr, what, undone); !st) return st;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return make_error(Exit::unavailable, what,
                        fmt::format("systemd did not reach running or degraded within {} (its last state: {})",
                                    w.timeout_text, said.empty() ? "none" : said),
                        std::string(undone));
    ProcessSpec spec;
    spec.argv = {"container", "exec", s.container, "systemctl", "is-system-running"};
    spec.timeout = std::min(left, kSystemdCall);
    spec.max_output = 4096;
    auto r = run_process(spec);
    if (!r) return r.error();
    if (r->exited && (r->exit_status == 126 || r->exit_status == 127))
      return make_error(Exit::unavailable, what,
                        "--ready systemd: systemctl cannot be run in the container (" + first_line(r->err) + ")",
                        fmt::format("the workload is not systemd; {} without --ready systemd ({})",
                                    doing == "booting" ? "boot" : "start", undone));
    std::string state = r->exited ? first_line(r->out) : std::string();
    if (state == "running" || state == "degraded") return {};
    if (state == "maintenance" || state == "stopping")
      return make_error(Exit::unavailable, what,
                        fmt::format("systemd is in state {} (a unit the boot needs failed, or it is shutting down)", state),
                        std::string(undone));
    if (!state.empty()) {
      said = state;
    } else if (apple_state(s).state == "exited") {
      return make_error(Exit::unavailable, what,
                        fmt::format("the container stopped while waiting for systemd (its last state: {})",
                                    said.empty() ? "none" : said),
                        std::string(undone));
    } else if (r->timed_out) {
      said = "no answer within " + std::to_string(spec.timeout.count() / 1000) + "s";
    } else if (!r->err.empty()) {
      said = first_line(r->err);  // e.g. "Failed to connect to bus" early in the boot
    }
    // The next question about every 2 s, answering interrupts meanwhile.
    auto next = std::min(std::chrono::steady_clock::now() + kSystemdPoll, deadline);
    while (std::chrono::steady_clock::now() < next) {
      if (auto st = Interrupts::check(intr, what, undone); !st) return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

class AppleBackend final : public Backend {
 public:
  // SIGINT, SIGTERM and SIGHUP reach boot, start and exec through INTR (held
  // there); null in a unit test.
  explicit AppleBackend(const Interrupts* intr = nullptr) : intr_(intr) {}

  Result<std::vector<std::string>> boot(const BootRequest& r) override {
    for (const auto& m : r.mounts)
      if (m.find(':') == std::string::npos)
        return make_error(Exit::usage, fmt::format("invalid --mount {}", shown(m)), "expected HOSTDIR:GUESTDIR[:ro]");
    uint64_t memory_mib = (r.memory_bytes + (1u << 20) - 1) >> 20;
    auto image = apple_image(r.image);
    if (!image) return image.error();
    std::string network_id;  // --network: a kina network of this cluster, created with --backend apple
    if (r.network) {
      auto n = load_apple_network(r.cluster, *r.network);
      if (!n) return n.error();
      network_id = n->container;
    }
    if (auto st = apple::check_system(); !st) return st.error();
    auto cdir = cluster_dir(r.cluster);
    if (!cdir) return cdir.error();
    if (auto st = ensure_dir(*cdir / "machines", 0700); !st) return st.error();
    auto dir = machine_dir(r.cluster, r.name);
    if (!dir) return dir.error();
    {
      auto lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm boot");
      if (!lock) return lock.error();
      if (::mkdir(dir->c_str(), 0700) != 0)
        return make_error(Exit::cant_create, fmt::format("machine {}", r.name.str()),
                          fmt::format("the name is taken in cluster {}", r.cluster.str()));
    }
    apple::RunRequest rr;
    rr.cluster = r.cluster.str();
    rr.name = r.name.str();
    rr.image = *image;
    rr.network = network_id;
    rr.cpus = r.cpus;
    rr.memory_mib = memory_mib;
    for (const auto& p : r.publish) rr.publish.push_back(*parse_publish(p));
    rr.env = r.env;
    rr.volumes = r.mounts;
    rr.command = r.command;
    Spec s;
    s.name = r.name.str();
    s.cluster = r.cluster.str();
    s.backend = "apple";
    s.container = apple::container_id(r.cluster.str(), r.name.str());
    s.cpus = r.cpus;
    s.memory_mib = memory_mib;
    s.publish = r.publish;
    s.network = r.network ? r.network->str() : "";
    s.image = *image;
    s.created_ms = now_ms();
    auto fail = [&](Error e) {
      (void)apple::run_container({"container", "delete", "--force", s.container}, std::chrono::seconds(60));
      std::error_code ec;
      fsys::remove_all(*dir, ec);
      return e;
    };
    auto held = Interrupts::hold(intr_);  // SIGINT, SIGTERM, SIGHUP: the container is deleted first
    if (auto run = apple::run_container(apple::run_argv(rr)); !run) return fail(run.error());
    if (auto st = Interrupts::check(intr_, fmt::format("booting {}", r.name.str())); !st) return fail(st.error());
    auto c = apple::find(s.container);
    if (!c) return fail(c.error());
    if (!*c)
      return fail(make_error(Exit::unavailable, fmt::format("booting {}", r.name.str()), "`container list` does not show it"));
    s.ip = (*c)->ip;
    if (auto st = write_file_atomic(*dir / file::spec, s.to_json() + "\n", 0644); !st) return fail(st.error());
    State st;
    st.state = apple::kina_state((*c)->state);
    if (r.wait.ready == Ready::systemd) {
      if (auto ws = wait_systemd_apple(s, r.wait, "booting", "the container was deleted and the machine removed", intr_); !ws)
        return fail(ws.error());
      s.ready = ready_name(r.wait.ready);
      if (auto ws = write_file_atomic(*dir / file::spec, s.to_json() + "\n", 0644); !ws) return fail(ws.error());
    }
    return std::vector<std::string>{apple_record(*dir, s, st)};
  }

  // `container start` of the kept container; a running one is left alone.
  // --ready systemd: a start whose systemd fails is stopped again, its
  // container and directory kept (as a failed qemu start).
  Result<std::string> start(const MachineRef& m, const Wait& w) override {
    auto loaded = Spec::load(m.dir);
    if (!loaded) return loaded.error();
    Spec s = *loaded;
    State st = apple_state(s);
    if (st.state == "running") return apple_record(m.dir, s, st);
    if (auto r = apple::run_container({"container", "start", s.container}, std::chrono::seconds(300)); !r) return r.error();
    st = apple_state(s);
    if (st.state != "running")
      return make_error(Exit::unavailable, fmt::format("starting {}", s.name),
                        fmt::format("`container start` returned but the container is {}", st.state));
    s.ready.clear();
    if (w.ready == Ready::systemd) {
      auto held = Interrupts::hold(intr_);  // SIGINT, SIGTERM, SIGHUP: the container is stopped first
      if (auto ws = wait_systemd_apple(s, w, "starting", "the machine was stopped again, its container kept", intr_); !ws) {
        (void)apple::run_container({"container", "stop", s.container}, std::chrono::seconds(60));
        (void)write_file_atomic(m.dir / file::spec, s.to_json() + "\n", 0644);
        return ws.error();
      }
      s.ready = ready_name(w.ready);
    }
    if (auto ws = write_file_atomic(m.dir / file::spec, s.to_json() + "\n", 0644); !ws) return ws.error();  // its address may have changed
    return apple_record(m.dir, s, st);
  }

  Result<std::string> stop(const MachineRef& m, int64_t timeout_ms, const std::string&) override {
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    auto secs = std::max<int64_t>(1, timeout_ms / 1000);
    auto r = apple::run_container({"container", "stop", "--time", std::to_string(secs), s->container},
                                  std::chrono::seconds(secs + 30));
    if (!r) return r.error();
    State st = apple_state(*s);
    return apple_record(m.dir, *s, st);
  }

  Status remove(const MachineRef& m, bool force) override {
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    std::vector<std::string> argv = {"container", "delete"};
    if (force) argv.push_back("--force");
    argv.push_back(s->container);
    if (auto r = apple::run_container(argv, std::chrono::seconds(120)); !r) return r.error();
    return {};
  }

  // exec through `container exec`, stdio inherited, the status passed on.
  Result<int> exec(const MachineRef& m, const ExecOptions& e) override {
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    ProcessSpec spec;
    spec.argv = {"container", "exec"};
    if (e.interactive) spec.argv.push_back("-i");
    if (e.tty) spec.argv.push_back("-t");
    for (const auto& v : e.env) spec.argv.insert(spec.argv.end(), {"--env", v});
    if (!e.workdir.empty()) spec.argv.insert(spec.argv.end(), {"--workdir", e.workdir});
    if (!e.user.empty()) spec.argv.insert(spec.argv.end(), {"--user", e.user});
    spec.argv.push_back(s->container);
    spec.argv.insert(spec.argv.end(), e.command.begin(), e.command.end());
    spec.inherit_stdin = e.interactive;
    spec.capture_stdout = spec.capture_stderr = false;
    spec.foreground = true;  // the terminal's: it may read it, Ctrl-C reaches it
    // Without -t the output goes through kina-vm, so that a write that fails
    // (a full disk) is an error (74), as with QEMU, and ends the command,
    // instead of lost by whatever `container` does with its write errors.
    Status written;
    if (!e.tty) {
      spec.capture_stdout = true;
      spec.on_stdout = [&](std::string_view chunk) {
        written = write_all(1, chunk, "writing stdout");
        return static_cast<bool>(written);
      };
    }
    auto held = Interrupts::hold(intr_);  // SIGTERM and SIGHUP are passed on to it
    spec.interrupts = intr_;
    auto r = run_process(spec);
    if (!r) return r.error();
    if (!written) return written.error();
    return r->exit_code();
  }

  Status copy_in(const MachineRef& m, const std::string& host_src, const std::string& guest_dst) override {
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    return apple::copy_in(m.name.str(), s->container, host_src, guest_dst);
  }

  Status copy_out(const MachineRef& m, const std::string& guest_src, const std::string& host_dst, uint64_t) override {
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    return apple::copy_out(m.name.str(), s->container, guest_src, host_dst);
  }

  Status logs(const MachineRef& m, bool follow, bool raw) override {
    auto s = Spec::load(m.dir);
    if (!s) return s.error();
    ProcessSpec spec;
    spec.argv = {"container", "logs"};
    if (follow) spec.argv.push_back("--follow");
    spec.argv.push_back(s->container);
    spec.capture_stderr = false;
    spec.foreground = true;  // Ctrl-C during logs -f stops `container logs` too
    // Through kina-vm: on a terminal the escaper, and a write that fails
    // (a full disk) is an error (74) that ends `container logs`.
    TerminalEscaper esc;
    const bool escape = !raw && ::isatty(1);
    Status written;
    spec.on_stdout = [&](std::string_view chunk) {
      written = escape ? write_all(1, esc.feed(chunk), "writing stdout") : write_all(1, chunk, "writing stdout");
      return static_cast<bool>(written);
    };
    auto r = run_process(spec);
    if (!r) return r.error();
    if (escape && written) written = write_all(1, esc.finish(), "writing stdout");
    if (!written) return written;
    if (!r->exited && (r->term_signal == SIGINT || r->term_signal == SIGTERM || r->term_signal == SIGHUP))
      return make_error(static_cast<Exit>(signal_exit(r->term_signal)), fmt::format("logs of {}", m.name.str()), "interrupted");
    if (!r->success()) return make_error(Exit::unavailable, fmt::format("logs of {}", m.name.str()), "container logs " + r->describe());
    return {};
  }

  std::string record(const fsys::path& dir, Spec& s) override {
    State st = apple_state(s);
    return apple_record(dir, s, st);
  }

  Result<std::string> network_create(const NetworkRequest& r) override {
    auto subnets = lock_subnets("kina-vm network create");  // (until network.json names the subnet)
    if (!subnets) return subnets.error();
    if (!r.subnet.empty()) {
      auto subnet = parse_cidr(r.subnet);
      if (!subnet) return subnet.error();
      if (auto st = check_subnet(*subnet, r.subnet, false); !st) return st.error();
    }
    auto dir = network_dir(r.cluster, r.name);
    if (!dir) return dir.error();
    AppleNetwork n{r.name.str(), r.cluster.str(), apple::network_id(r.cluster.str(), r.name.str()), "", "", *dir};
    if (n.container.size() > 63)
      return make_error(Exit::usage, fmt::format("network {}", r.name.str()),
                        fmt::format("the container network id {} is longer than 63 characters", n.container));
    if (auto st = apple::check_system(); !st) return st.error();
    if (auto st = claim_network_dir(r.cluster, r.name, *dir); !st) return st.error();
    bool created = false;
    auto fail = [&](Error e) {
      if (created) (void)apple::run_container({"container", "network", "delete", n.container}, std::chrono::seconds(60));
      std::error_code ec;
      fsys::remove_all(*dir, ec);
      return e;
    };
    if (auto c = apple::run_container(apple::network_create_argv(n.container, r.subnet), std::chrono::seconds(120)); !c)
      return fail(c.error());
    created = true;
    auto found = apple::find_network(n.container);
    if (!found) return fail(found.error());
    if (!*found)
      return fail(make_error(Exit::unavailable, fmt::format("network {}", r.name.str()), "`container network list` does not show it"));
    n.subnet = (*found)->subnet;
    n.gateway = (*found)->gateway;
    if (auto st = write_file_atomic(*dir / "network.json", n.file_json(), 0644); !st) return fail(st.error());
    return n.record((*found)->state);
  }

  // One `container network list` per command, asked at the first network.
  Result<std::string> network_record(const ClusterName& cluster, const NetworkName& name) override {
    auto an = load_apple_network(cluster, name);
    if (!an) return an.error();
    if (!networks_) {
      auto out = apple::run_container({"container", "network", "list", "--format", "json"}, std::chrono::seconds(60));
      networks_ = out ? apple::parse_network_list(*out) : Result<std::vector<apple::NetworkInfo>>(out.error());
      if (!*networks_) warn(kTool, networks_->error().message());
    }
    std::string state = "unknown";
    if (*networks_) {
      state = "missing";  // kina knows it, `container` does not
      for (const auto& i : **networks_)
        if (i.id == an->container) {
          state = i.state;
          if (!i.subnet.empty()) an->subnet = i.subnet;
          if (!i.gateway.empty()) an->gateway = i.gateway;
        }
    }
    return an->record(state);
  }

  Status network_rm(const NetworkRequest& r) override {
    auto n = load_apple_network(r.cluster, r.name);
    if (!n) return n.error();
    auto users = network_users(r);
    if (!users.empty() && !r.force) {
      std::string list;
      for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
      return make_error(Exit::usage, fmt::format("network {}", r.name.str()), "machines are attached: " + list,
                        "remove them first, or use network rm -f");
    }
    if (auto d = apple::run_container({"container", "network", "delete", n->container}, std::chrono::seconds(120)); !d) {
      if (!r.force) return Error{d.error().exit, d.error().what, d.error().why, "network rm -f removes kina's record anyway"};
      warn(kTool, d.error().message());
    }
    std::error_code ec;
    fsys::remove_all(n->dir, ec);
    if (ec) return os_error(fmt::format("removing {}", n->dir.string()), ec.value());
    return {};
  }

 private:
  // Machines of the cluster booted with --network NAME.
  static std::vector<std::string> network_users(const NetworkRequest& r) {
    std::vector<std::string> users;
    auto c = cluster_dir(r.cluster);
    if (!c) return users;
    std::error_code ec;
    for (const auto& m : fsys::directory_iterator(*c / "machines", ec))
      if (auto s = Spec::load(m.path()); s && s->network == r.name.str()) users.push_back(s->name);
    std::sort(users.begin(), users.end());
    return users;
  }

  std::optional<Result<std::vector<apple::NetworkInfo>>> networks_;  // `container network list`, once asked
  const Interrupts* intr_;
};

}  // namespace kina::vm
