// machine.hpp: a machine's state on disk ($KINA_HOME/clusters/<c>/machines/<n>/),
// how its state is told from its files and processes, and its Machine record.
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/clock.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/json.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "names.hpp"

namespace kina::vm {

namespace fsys = std::filesystem;

inline constexpr std::string_view kDefaultCluster = "default";

// Files of a machine directory (relative: the supervisor and QEMU run inside
// it, which keeps unix socket paths short whatever $KINA_HOME is).
namespace file {
inline constexpr const char* spec = "machine.json";
inline constexpr const char* disk = "disk.qcow2";
inline constexpr const char* initramfs = "initramfs.cpio";
inline constexpr const char* console = "console.log";
// console.log's older part once it reached its cap (console_log.hpp).
inline constexpr const char* old_console = "console.old.log";
// The FIFO QEMU writes the serial console into; the supervisor reads it.
inline constexpr const char* console_fifo = "console.fifo";
inline constexpr const char* qemu_log = "qemu.log";
inline constexpr const char* supervisor_log = "supervisor.log";
inline constexpr const char* virtiofsd_log = "virtiofsd.log";
inline constexpr const char* agent_sock = "agent.sock";
inline constexpr const char* qmp_sock = "qmp.sock";
inline constexpr const char* ctl_sock = "ctl.sock";
inline constexpr const char* supervisor_pid = "supervisor.pid";
inline constexpr const char* qemu_pid = "qemu.pid";
inline constexpr const char* ready = "ready";
inline constexpr const char* exit_info = "exit.json";
// Present from the directory's creation until its boot completed: "PID
// STARTTICKS NETWORK" of the boot command (NETWORK may be empty).
inline constexpr const char* booting = "booting";
// Present while `kina-vm start` brings a stopped machine up again: "PID
// STARTTICKS" of the start command. A dead one is swept back to stopped.
inline constexpr const char* starting = "starting";
// The console of the run before the last start (console.log is recreated).
inline constexpr const char* previous_console = "console.previous.log";
// Present while QEMU holds the guest paused because a write to its disk
// failed on the host (a full file system); the supervisor makes and removes it.
inline constexpr const char* paused = "paused";
// Room for exit.json, taken before a run begins (reserve_exit_info), so that
// how a run ended is recorded on a full disk too.
inline constexpr const char* exit_reserve = "exit.reserve";
// What only a live run has: removed when it ends, however it ends.
inline constexpr const char* live_run[] = {ready, ctl_sock, agent_sock, qmp_sock, console_fifo, paused};
}  // namespace file

// $KINA_HOME/clusters/<cluster>: where it would be (nothing is created; the
// commands that create machines or networks create it).
inline Result<fsys::path> cluster_dir(const ClusterName& cluster) {
  auto home = kina_home();
  if (!home) return home.error();
  return *home / "clusters" / cluster.str();
}

inline Result<fsys::path> machine_dir(const ClusterName& cluster, const MachineName& name) {
  auto c = cluster_dir(cluster);
  if (!c) return c.error();
  return *c / "machines" / name.str();
}

// --mount HOSTDIR:GUESTDIR[:ro]
struct Mount {
  std::string host, guest;
  bool read_only = false;
  std::string str() const { return host + ":" + guest + (read_only ? ":ro" : ""); }
};

inline Result<Mount> parse_mount(std::string_view s) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid --mount {}", shown(s)), why, "expected HOSTDIR:GUESTDIR[:ro]");
  };
  Mount m;
  std::string rest(s);
  if (rest.size() > 3 && rest.compare(rest.size() - 3, 3, ":ro") == 0) {
    m.read_only = true;
    rest.resize(rest.size() - 3);
  } else if (rest.size() > 3 && rest.compare(rest.size() - 3, 3, ":rw") == 0) {
    rest.resize(rest.size() - 3);
  }
  auto c = rest.rfind(':');
  if (c == std::string::npos || c == 0) return bad("no ':' between the host and guest directories");
  m.host = rest.substr(0, c);
  m.guest = rest.substr(c + 1);
  if (m.guest.empty() || m.guest.front() != '/') return bad("the guest directory must be absolute");
  if (m.guest == "/") return bad("the guest directory cannot be /");
  for (const auto& p : {m.host, m.guest})
    if (p.find_first_of("\n,") != std::string::npos) return bad("paths must not contain a newline or ','");
  return m;
}

struct Publish {
  std::string addr = "127.0.0.1";
  int host_port = 0, guest_port = 0;
  std::string proto = "tcp";
  std::string str() const { return fmt::format("{}:{}:{}/{}", addr, host_port, guest_port, proto); }
};

// [ADDR:]HOSTPORT:GUESTPORT[/tcp|udp]
inline Result<Publish> parse_publish(std::string_view s) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid --publish {}", shown(s)), why,
                      "expected [ADDR:]HOSTPORT:GUESTPORT[/tcp|udp], e.g. 127.0.0.1:8080:80");
  };
  Publish p;
  std::string rest(s);
  if (auto slash = rest.rfind('/'); slash != std::string::npos) {
    p.proto = rest.substr(slash + 1);
    rest.resize(slash);
    if (p.proto != "tcp" && p.proto != "udp") return bad("protocol must be tcp or udp");
  }
  std::vector<std::string> parts;
  size_t pos = 0;
  for (;;) {
    size_t c = rest.find(':', pos);
    parts.push_back(rest.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  if (parts.size() == 3) {
    auto ip = parse_ip(parts[0]);
    if (!ip || ip->family != AF_INET) return bad("address must be an IPv4 address");
    p.addr = parts[0];
    parts.erase(parts.begin());
  }
  if (parts.size() != 2) return bad("wrong number of ':'-separated fields");
  auto port = [&](const std::string& t, int& out) -> bool {
    if (t.empty() || t.size() > 5 || t.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stoi(t);
    return out >= 1 && out <= 65535;
  };
  if (!port(parts[0], p.host_port)) return bad(fmt::format("host port {} is not in 1-65535", shown(parts[0])));
  if (!port(parts[1], p.guest_port)) return bad(fmt::format("guest port {} is not in 1-65535", shown(parts[1])));
  return p;
}

// What boot decided, kept in machine.json. The supervisor reads qemu_argv.
struct Spec {
  std::string name, cluster, network, ip, image, kernel_version;
  std::string backend = "qemu", container;  // apple: the container's id
  int cpus = 1;
  uint64_t memory_mib = 512;
  std::string accel;
  std::vector<std::string> publish, qemu_argv, command;
  std::vector<std::string> mounts;       // HOSTDIR:GUESTDIR[:ro], as given (host dir absolute)
  std::string virtiofsd;                 // qemu: the virtiofsd the supervisor starts per mount
  // qemu: this machine's identity, chosen at random once and kept for its
  // life: /etc/machine-id and the SMBIOS/kind product UUID.
  std::string machine_id, uuid;
  std::string ready;  // what boot waited for and reached: agent or systemd
  int64_t created_ms = 0;

  std::string to_json() const {
    auto w = begin_record("MachineSpec");
    w.field("name", name).field("cluster", cluster).field("network", network).field("ip", ip).field("image", image);
    w.field("backend", backend).field("container", container);
    w.field("kernel", kernel_version).field("cpus", cpus).field("memoryMiB", static_cast<unsigned long long>(memory_mib));
    w.field("accel", accel).string_array("publish", publish).string_array("command", command);
    w.string_array("mounts", mounts).field("virtiofsd", virtiofsd);
    w.field("machineID", machine_id).field("uuid", uuid).field("ready", ready);
    w.string_array("qemuArgv", qemu_argv).field("created", format_utc_ms(created_ms));
    w.end_object();
    return w.take();
  }

  static Result<Spec> load(const fsys::path& dir) {
    fsys::path p = dir / file::spec;
    auto text = read_file(p, 1 << 20);
    if (!text) return text.error();
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(*text).get(root) != simdjson::SUCCESS)
      return make_error(Exit::data, fmt::format("reading {}", p.string()), "invalid JSON");
    Spec s;
    auto str = [&](const char* k, std::string& dst) {
      std::string_view v;
      if (root[k].get(v) == simdjson::SUCCESS) dst = std::string(v);
    };
    auto arr = [&](const char* k, std::vector<std::string>& dst) {
      simdjson::dom::array a;
      if (root[k].get(a) != simdjson::SUCCESS) return;
      for (auto e : a) {
        std::string_view v;
        if (e.get(v) == simdjson::SUCCESS) dst.emplace_back(v);
      }
    };
    str("name", s.name), str("cluster", s.cluster), str("network", s.network), str("ip", s.ip), str("image", s.image);
    str("kernel", s.kernel_version), str("accel", s.accel), str("backend", s.backend), str("container", s.container);
    arr("publish", s.publish), arr("qemuArgv", s.qemu_argv), arr("command", s.command), arr("mounts", s.mounts);
    str("virtiofsd", s.virtiofsd), str("machineID", s.machine_id), str("uuid", s.uuid), str("ready", s.ready);
    int64_t cpus = 1;
    uint64_t mem = 0;
    if (root["cpus"].get(cpus) == simdjson::SUCCESS) s.cpus = static_cast<int>(cpus);
    if (root["memoryMiB"].get(mem) == simdjson::SUCCESS) s.memory_mib = mem;
    std::string created;
    str("created", created);
    if (auto t = parse_rfc3339_ms(created)) s.created_ms = *t;
    if (s.name.empty() || (s.backend == "qemu" && s.qemu_argv.empty()) || (s.backend == "apple" && s.container.empty()))
      return make_error(Exit::data, fmt::format("reading {}", p.string()), "missing name, qemuArgv or container");
    return s;
  }
};

inline std::optional<pid_t> read_pid(const fsys::path& p) {
  auto t = read_file(p, 64);
  if (!t) return std::nullopt;
  try {
    long v = std::stol(*t);
    if (v > 1) return static_cast<pid_t>(v);
  } catch (...) {
  }
  return std::nullopt;
}

// The argument vector of a live process; empty when it is gone, a zombie or
// unreadable.
inline std::vector<std::string> process_argv(pid_t pid) {
  std::vector<std::string> argv;
  if (pid <= 1 || (::kill(pid, 0) != 0 && errno == ESRCH)) return argv;
  auto cmd = read_file(fmt::format("/proc/{}/cmdline", pid), 1 << 16);
  if (!cmd) return argv;
  size_t pos = 0;
  while (pos < cmd->size()) {
    size_t end = cmd->find('\0', pos);
    if (end == std::string::npos) end = cmd->size();
    argv.push_back(cmd->substr(pos, end - pos));
    pos = end + 1;
  }
  return argv;
}

// True when PID is alive and its argv holds KEY immediately followed by
// VALUE, each compared whole (machine `web` never matches `web2`'s process;
// a recycled pid running something else never matches).
inline bool process_has_args(pid_t pid, std::string_view key, std::string_view value) {
  auto argv = process_argv(pid);
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == key && argv[i + 1] == value) return true;
  return false;
}

// True when PID's working directory is DIR (the supervisor and QEMU run in
// their machine directory).
inline bool process_in_dir(pid_t pid, const fsys::path& dir) {
  std::error_code ec;
  return fsys::equivalent(fmt::format("/proc/{}/cwd", pid), dir, ec) && !ec;
}

// When PID started, in clock ticks since boot (field 22 of /proc/PID/stat):
// with the pid, it names one process for good.
inline std::optional<unsigned long long> process_start_ticks(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid), 4096);
  if (!stat) return std::nullopt;
  auto close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // After "pid (comm)": field 3 (state) ... field 22 (starttime).
  char state = 0;
  unsigned long long start = 0;
  if (std::sscanf(stat->c_str() + close + 1,
                  " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &state,
                  &start) != 2 || state == 'Z')
    return std::nullopt;
  return start;
}

// The -name QEMU gets: lets a pid be checked against the machine it should be.
inline std::string qemu_tag(const fsys::path& dir) {
  return fmt::format("kina:{}/{}", dir.parent_path().parent_path().filename().string(), dir.filename().string());
}

// PID is DIR's supervisor: `kina-vm _supervise DIR`, running in DIR.
inline bool is_supervisor(pid_t pid, const fsys::path& dir) {
  auto argv = process_argv(pid);
  return argv.size() == 3 && argv[1] == "_supervise" && process_in_dir(pid, dir);
}

struct State {
  std::string state;   // starting, running, exited
  std::string reason;  // for exited
  bool paused = false;  // running, but QEMU holds the guest paused (file::paused)
  std::optional<pid_t> supervisor, qemu;
};

// Why a paused machine does not run (the Machine record's "paused").
inline constexpr const char* kPausedWhy =
    "a write to its disk failed on the host (no space left?); it runs again once its directory's file system has 16 MiB free";

inline State machine_state(const fsys::path& dir) {
  State st;
  auto sup = read_pid(dir / file::supervisor_pid);
  bool alive = sup && is_supervisor(*sup, dir);
  if (alive) st.supervisor = sup;
  auto q = read_pid(dir / file::qemu_pid);
  if (q && process_has_args(*q, "-name", qemu_tag(dir)) && process_in_dir(*q, dir)) st.qemu = q;
  bool ended = fsys::exists(dir / file::exit_info);
  if (alive && st.qemu && !ended) {
    st.state = fsys::exists(dir / file::ready) ? "running" : "starting";
    st.paused = fsys::exists(dir / file::paused);
    return st;
  }
  if (alive && !ended) {
    st.state = "starting";  // QEMU not started yet, or its pid file not written yet
    return st;
  }
  st.state = "exited";
  if (auto info = read_file(dir / file::exit_info, 1 << 16)) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    std::string_view why;
    if (parser.parse(*info).get(root) == simdjson::SUCCESS && root["reason"].get(why) == simdjson::SUCCESS)
      st.reason = std::string(why);
  }
  if (st.reason.empty()) st.reason = alive ? "QEMU is gone" : "the supervisor is gone";
  return st;
}

// The Machine record; BACKEND_FIELDS writes the fields only its backend has
// (in the middle of the record, after "mounts").
inline std::string machine_record(const fsys::path& dir, const Spec& s, const State& st,
                                  const std::function<void(json::Writer&)>& backend_fields) {
  auto w = begin_record("Machine");
  w.field("name", s.name).field("cluster", s.cluster).field("backend", s.backend).field("state", st.state);
  if (!st.reason.empty()) w.field("reason", st.reason);
  if (st.paused) w.field("paused", kPausedWhy);
  w.field("ip", s.ip);
  if (!s.network.empty()) w.field("network", s.network);
  w.field("cpus", s.cpus).field("memoryMiB", static_cast<unsigned long long>(s.memory_mib));
  // Published ports as objects, the shape kina-kube fetch and jq users read.
  w.key("ports").begin_array();
  for (const auto& spec : s.publish) {
    auto p = parse_publish(spec);
    if (!p) continue;  // validated at boot; a hand-edited spec is skipped
    w.begin_object().field("hostIP", p->addr).field("hostPort", p->host_port).field("guestPort", p->guest_port);
    w.field("protocol", p->proto).end_object();
  }
  w.end_array();
  w.string_array("mounts", s.mounts);
  backend_fields(w);
  if (!s.ready.empty() && st.state == "running") w.field("ready", s.ready);
  if (!s.image.empty()) w.field("image", s.image);
  w.field("dir", dir.string());
  if (st.qemu) w.field("pid", static_cast<long long>(*st.qemu));
  if (s.created_ms) w.field("created", format_utc_ms(s.created_ms));
  w.end_object();
  return w.take();
}

// Stops a machine's processes: the supervisor (which stops QEMU), then
// anything left by force. Returns once none is alive.
inline void kill_machine(const fsys::path& dir, std::chrono::milliseconds grace) {
  State st = machine_state(dir);
  if (st.supervisor) ::kill(*st.supervisor, SIGTERM);
  else if (st.qemu) ::kill(*st.qemu, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    st = machine_state(dir);
    if (!st.supervisor && !st.qemu) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (st.qemu) ::kill(*st.qemu, SIGKILL);
      if (st.supervisor) ::kill(*st.supervisor, SIGKILL);
      for (int i = 0; i < 40 && (machine_state(dir).qemu || machine_state(dir).supervisor); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Connects to a unix socket in DIR whatever the length of DIR's path: through
// /proc/self/fd/N/<name> of an O_PATH descriptor of the directory.
inline Result<UniqueFd> connect_unix(const fsys::path& dir, const char* name) {
  UniqueFd d(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!d.valid()) return os_error(fmt::format("opening {}", dir.string()), errno, Exit::no_input);
  std::string path = fmt::format("/proc/self/fd/{}/{}", d.get(), name);
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return os_error("socket");
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return make_error(Exit::internal, "socket path too long", path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return os_error(fmt::format("connecting to {}", (dir / name).string()), errno, Exit::unavailable);
  return s;
}

// Takes room for exit.json in DIR before a run begins: exit.reserve, 4 KiB
// allocated. 73 when the file system has not even that.
inline constexpr off_t kExitReserve = 4096;
inline Status reserve_exit_info(const fsys::path& dir) {
  const fsys::path p = dir / file::exit_reserve;
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) return os_error(fmt::format("removing {}", p.string()));
  UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) return os_error(fmt::format("creating {}", p.string()), errno, Exit::cant_create);
  if (int e = ::posix_fallocate(fd.get(), 0, kExitReserve); e != 0) {
    ::unlink(p.c_str());
    return os_error(fmt::format("allocating {}", p.string()), e, Exit::cant_create);
  }
  return {};
}

// Writes exit.json in DIR: into the room reserve_exit_info took (written,
// cut to its length, renamed), so that it needs no new space; without that
// room, an ordinary atomic write. Best effort: what fails is not reported
// (the machine reads as exited either way, by its processes).
inline void record_exit_info(const fsys::path& dir, std::string_view json) {
  const fsys::path res = dir / file::exit_reserve, out = dir / file::exit_info;
  UniqueFd fd(::open(res.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  struct stat sb {};
  if (fd.valid() && ::fstat(fd.get(), &sb) == 0 && S_ISREG(sb.st_mode) && static_cast<off_t>(json.size()) <= kExitReserve &&
      ::pwrite(fd.get(), json.data(), json.size(), 0) == static_cast<ssize_t>(json.size()) &&
      ::ftruncate(fd.get(), static_cast<off_t>(json.size())) == 0 && ::fdatasync(fd.get()) == 0 &&
      ::rename(res.c_str(), out.c_str()) == 0) {
    (void)fsync_dir(dir);
    return;
  }
  (void)write_file_atomic(out, json, 0644);
}

// The end of a run: exit.json says how it ended (JSON; none when empty, or
// when `unless_recorded` and one is there), then the files only a running
// machine has go (file::live_run), so that a reader who no longer finds
// them finds the end.
inline void end_run(const fsys::path& dir, std::string_view json, bool unless_recorded = false) {
  if (!json.empty() && !(unless_recorded && fsys::exists(dir / file::exit_info))) record_exit_info(dir, json);
  for (const char* f : file::live_run) ::unlink((dir / f).c_str());
}

// How a run ended, as exit.json says it: REASON and when, with QEMU's exit
// code when there is one.
inline std::string exit_info_json(const std::string& reason, std::optional<int> code = std::nullopt) {
  json::Writer w;
  w.begin_object().field("reason", reason).field("time", format_utc_ms(now_ms()));
  if (code) w.field("exitCode", *code);
  w.end_object();
  return w.str() + "\n";
}

// The last N lines of a file (the console, for error messages).
inline std::string tail_lines(const fsys::path& p, size_t n) {
  auto t = read_file(p, 64u << 20);
  if (!t) return {};
  std::string s = t->size() > 8192 ? t->substr(t->size() - 8192) : *t;
  // Serial consoles emit \r\n and escape sequences; keep the printable part.
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\x1b') {
      while (i < s.size() && !std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
      continue;
    }
    if (c == '\r') continue;
    clean += c;
  }
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < clean.size()) {
    size_t nl = clean.find('\n', pos);
    if (nl == std::string::npos) nl = clean.size();
    std::string l = clean.substr(pos, nl - pos);
    if (l.find_first_not_of(" \t") != std::string::npos) lines.push_back(l);
    pos = nl + 1;
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

}  // namespace kina::vm
