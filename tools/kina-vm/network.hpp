// network.hpp: a cluster's L2 segment (a vde_switch daemon) and the host-side
// allocation of static addresses on it, serialised by the network's lock.
#pragma once

#include <signal.h>

#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/lock.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "machine.hpp"

namespace kina::vm {


struct Network {
  std::string name, cluster;
  Cidr subnet;
  fsys::path dir;

  fsys::path switch_dir() const { return dir / "switch"; }
  std::string gateway() const { return host_address(1); }
  std::string host_address(uint32_t n) const {
    uint32_t base = (static_cast<uint32_t>(subnet.network.bytes[0]) << 24) | (subnet.network.bytes[1] << 16) |
                    (subnet.network.bytes[2] << 8) | subnet.network.bytes[3];
    uint32_t a = base + n;
    return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  }
  uint32_t capacity() const { return subnet.prefix >= 31 ? 0 : (1u << (32 - subnet.prefix)) - 2; }

  std::string record(std::string_view state) const {
    auto w = begin_record("Network");
    w.field("name", name).field("cluster", cluster).field("backend", "qemu").field("subnet", subnet.str());
    w.field("gateway", gateway()).field("switch", switch_dir().string()).field("state", state);
    w.end_object();
    return w.take();
  }
};

// Where network NAME of CLUSTER is kept (nothing is created).
inline Result<fsys::path> network_dir(const ClusterName& cluster, const NetworkName& name) {
  auto c = cluster_dir(cluster);
  if (!c) return c.error();
  return *c / "networks" / name.str();
}

// Creates a network's directory under the cluster lock; an existing one is 73.
inline Status claim_network_dir(const ClusterName& cluster, const NetworkName& name, const fsys::path& dir) {
  auto cdir = cluster_dir(cluster);
  if (!cdir) return cdir.error();
  if (auto st = ensure_dir(*cdir / "networks", 0700); !st) return st;
  auto lock = FileLock::acquire(*cdir / "lock", std::chrono::seconds(30), "kina-vm network create");
  if (!lock) return lock.error();
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST)
      return make_error(Exit::cant_create, fmt::format("network {}", name.str()),
                        fmt::format("it exists in cluster {}", cluster.str()));
    return os_error(fmt::format("creating {}", dir.string()), errno, Exit::cant_create);
  }
  return {};
}

// network.json of a network; a missing one is 66 with the command that creates it.
inline Result<std::string> read_network_json(const ClusterName& cluster, const NetworkName& name,
                                             std::string_view create_flags) {
  auto dir = network_dir(cluster, name);
  if (!dir) return dir.error();
  auto text = read_file(*dir / "network.json", 1 << 16);
  if (!text && text.error().exit == Exit::no_input)
    return make_error(Exit::no_input, fmt::format("network {}", name.str()),
                      fmt::format("no such network in cluster {}", cluster.str()),
                      fmt::format("create it with: kina-vm network create {} --cluster {}{}", name.str(), cluster.str(),
                                  create_flags));
  return text;
}

inline Result<Network> load_network(const ClusterName& cluster, const NetworkName& name) {
  auto dir = network_dir(cluster, name);
  if (!dir) return dir.error();
  auto text = read_network_json(cluster, name, "");
  if (!text) return text.error();
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view subnet;
  if (parser.parse(*text).get(root) != simdjson::SUCCESS || root["subnet"].get(subnet) != simdjson::SUCCESS)
    return make_error(Exit::data, fmt::format("reading {}", (*dir / "network.json").string()), "invalid network file");
  if (std::string_view backend; root["backend"].get(backend) == simdjson::SUCCESS && backend != "qemu")
    return make_error(Exit::usage, fmt::format("network {}", name.str()), fmt::format("it belongs to the {} backend", backend));
  auto cidr = parse_cidr(subnet);
  if (!cidr) return cidr.error();
  return Network{name.str(), cluster.str(), *cidr, *dir};
}

// --- apple backend: the network is `container`'s; kina keeps its id and addresses.

struct AppleNetwork {
  std::string name, cluster, container, subnet, gateway;
  fsys::path dir;

  std::string record(std::string_view state) const {
    auto w = begin_record("Network");
    w.field("name", name).field("cluster", cluster).field("backend", "apple").field("subnet", subnet);
    w.field("gateway", gateway).field("container", container).field("state", state);
    w.end_object();
    return w.take();
  }
  std::string file_json() const {
    json::Writer w;
    w.begin_object().field("backend", "apple").field("container", container).field("subnet", subnet).field("gateway", gateway).end_object();
    return w.str() + "\n";
  }
};

// The backend that owns a network directory: network.json's "backend" (absent: qemu).
inline std::string network_backend(const fsys::path& dir) {
  auto text = read_file(dir / "network.json", 1 << 16);
  if (!text) return "qemu";
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view b;
  if (parser.parse(*text).get(root) != simdjson::SUCCESS || root["backend"].get(b) != simdjson::SUCCESS) return "qemu";
  return std::string(b);
}

inline Result<AppleNetwork> load_apple_network(const ClusterName& cluster, const NetworkName& name) {
  auto dir = network_dir(cluster, name);
  if (!dir) return dir.error();
  auto text = read_network_json(cluster, name, " --backend apple");
  if (!text) return text.error();
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view backend, container, subnet, gateway;
  if (parser.parse(*text).get(root) != simdjson::SUCCESS)
    return make_error(Exit::data, fmt::format("reading {}", (*dir / "network.json").string()), "invalid network file");
  if (root["backend"].get(backend) != simdjson::SUCCESS || backend != "apple")
    return make_error(Exit::usage, fmt::format("network {}", name.str()), "it does not belong to the apple backend");
  if (root["container"].get(container) != simdjson::SUCCESS)
    return make_error(Exit::data, fmt::format("reading {}", (*dir / "network.json").string()), "invalid network file");
  if (root["subnet"].get(subnet) != simdjson::SUCCESS) subnet = {};
  if (root["gateway"].get(gateway) != simdjson::SUCCESS) gateway = {};
  return AppleNetwork{name.str(), cluster.str(), std::string(container), std::string(subnet), std::string(gateway), *dir};
}

// PID is N's vde_switch: started with `--pidfile <N's switch.pid>` exactly.
inline bool is_switch(pid_t pid, const Network& n) {
  return process_has_args(pid, "--pidfile", (n.dir / "switch.pid").string());
}

inline bool switch_running(const Network& n) {
  auto pid = read_pid(n.dir / "switch.pid");
  return pid && is_switch(*pid, n);
}

// --- subnets: host-side checks only (nothing is sent to the addresses) ---

inline bool overlaps(const Cidr& a, const Cidr& b) { return a.contains(b.network) || b.contains(a.network); }

// IPv4 blocks a cluster network may never use (RFC 6890 special-purpose
// blocks that are neither private nor shared space).
struct ReservedBlock {
  std::string_view cidr, what;
};
inline constexpr ReservedBlock kReservedBlocks[] = {
    {"0.0.0.0/8", "\"this network\" (0.0.0.0/8)"}, {"127.0.0.0/8", "loopback (127.0.0.0/8)"},
    {"169.254.0.0/16", "link-local (169.254.0.0/16)"}, {"224.0.0.0/4", "multicast (224.0.0.0/4)"},
    {"240.0.0.0/4", "reserved and broadcast (240.0.0.0/4)"}};
// The subnet of every qemu machine's user-mode NIC (QEMU's default).
inline constexpr std::string_view kUserNicSubnet = "10.0.2.0/24";

// Every kina network of every cluster with its subnet: (cluster/name, subnet).
inline std::vector<std::pair<std::string, Cidr>> existing_subnets() {
  std::vector<std::pair<std::string, Cidr>> out;
  auto root = kina_subdir("clusters");
  if (!root) return out;
  std::error_code ec;
  for (const auto& c : fsys::directory_iterator(*root, ec)) {
    std::error_code nec;
    for (const auto& n : fsys::directory_iterator(c.path() / "networks", nec)) {
      auto text = read_file(n.path() / "network.json", 1 << 16);
      if (!text) continue;
      simdjson::dom::parser parser;
      simdjson::dom::element root_el;
      std::string_view subnet;
      if (parser.parse(*text).get(root_el) != simdjson::SUCCESS || root_el["subnet"].get(subnet) != simdjson::SUCCESS)
        continue;
      if (auto cidr = parse_cidr(subnet))
        out.emplace_back(fmt::format("network {} of cluster {}", n.path().filename().string(), c.path().filename().string()), *cidr);
    }
  }
  return out;
}

// A subnet a new network may use: IPv4, /16 to /29, clear of
// the reserved blocks, of the machines' user-mode NIC (qemu) and of every
// existing kina network. Refusals are 65 naming what it overlaps.
inline Status check_subnet(const Cidr& c, std::string_view given, bool qemu) {
  std::string what = fmt::format("invalid --subnet {}", shown(given));
  if (c.network.family != AF_INET || c.prefix < 16 || c.prefix > 29)
    return make_error(Exit::usage, what, "an IPv4 prefix from /16 to /29");
  for (const auto& r : kReservedBlocks)
    if (overlaps(c, *parse_cidr(r.cidr))) return make_error(Exit::data, what, fmt::format("it overlaps {}", r.what));
  if (qemu && overlaps(c, *parse_cidr(kUserNicSubnet)))
    return make_error(Exit::data, what,
                      fmt::format("it overlaps the subnet of every machine's user-mode NIC ({})", kUserNicSubnet));
  for (const auto& [name, other] : existing_subnets())
    if (overlaps(c, other))
      return make_error(Exit::data, what, fmt::format("it overlaps {} ({})", name, other.str()), "pick another --subnet");
  return {};
}

// Choosing a subnet and recording it in network.json is one step for every
// cluster of this KINA_HOME: `network create` holds $KINA_HOME/locks/subnets.lock
// from the check against existing networks until its network.json is written,
// so two creates at once (two clusters, or two networks of one) never take the
// same subnet.
inline Result<FileLock> lock_subnets(std::string_view who) {
  auto home = kina_home();
  if (!home) return home.error();
  if (auto st = ensure_dir(*home / "locks", 0700); !st) return st.error();
  return FileLock::acquire(*home / "locks" / "subnets.lock", std::chrono::minutes(3), who);
}

// The default subnet of a new qemu network: the first 10.213.N.0/24 that no
// kina network uses yet.
inline Result<Cidr> default_subnet() {
  auto taken = existing_subnets();
  for (int n = 0; n < 256; ++n) {
    auto c = parse_cidr(fmt::format("10.213.{}.0/24", n));
    bool free = true;
    for (const auto& [name, other] : taken) free = free && !overlaps(*c, other);
    if (free) return *c;
  }
  return make_error(Exit::temp_fail, "choosing a subnet", "every 10.213.N.0/24 is taken", "give --subnet");
}

// leases: "ADDRESS MACHINE" lines. A missing file is no lease; a file that
// cannot be read or parsed is an error (never "every address is free", which
// would hand out addresses twice).
inline Result<std::map<std::string, std::string>> read_leases(const Network& n) {
  std::map<std::string, std::string> out;
  fsys::path p = n.dir / "leases";
  auto t = read_file(p, 1 << 20);
  if (!t) {
    if (t.error().exit == Exit::no_input) return out;
    return t.error();
  }
  size_t pos = 0;
  for (int lineno = 1; pos < t->size(); ++lineno) {
    size_t nl = t->find('\n', pos);
    if (nl == std::string::npos)
      return make_error(Exit::data, fmt::format("reading {}", p.string()), fmt::format("line {} is cut short", lineno));
    std::string line = t->substr(pos, nl - pos);
    pos = nl + 1;
    auto sp = line.find(' ');
    std::string ip = line.substr(0, sp), machine = sp == std::string::npos ? "" : line.substr(sp + 1);
    auto addr = parse_ip(ip);
    if (!addr || addr->family != AF_INET || !n.subnet.contains(*addr) || !validate_name("machine name", machine) ||
        out.count(ip))
      return make_error(Exit::data, fmt::format("reading {}", p.string()),
                        fmt::format("line {} {} is not \"ADDRESS MACHINE\" with a new address in {}", lineno, shown(line),
                                    n.subnet.str()),
                        "repair or remove the file; addresses are not handed out until then");
    out[ip] = machine;
  }
  return out;
}

inline Status write_leases(const Network& n, const std::map<std::string, std::string>& leases) {
  std::string text;
  for (const auto& [ip, m] : leases) text += ip + " " + m + "\n";
  return write_file_atomic(n.dir / "leases", text, 0644);
}

inline Result<FileLock> lock_network(const Network& n) {
  return FileLock::acquire(n.dir / "lock", std::chrono::seconds(30), "kina-vm network");
}

// Leases are taken after the machine's directory is made and given back
// after it is removed, so a lease whose machine has no directory is stale: a
// failed boot that could not rewrite the leases (a full disk) or a kill -9
// between the two. allocate_ip drops those before it picks an address.
inline void drop_stale_leases(const Network& n, std::map<std::string, std::string>& leases) {
  fsys::path machines = n.dir.parent_path().parent_path() / "machines";
  for (auto it = leases.begin(); it != leases.end();) {
    struct stat st {};
    bool stale = MachineName::parse(it->second).ok() && ::lstat((machines / it->second).c_str(), &st) != 0 && errno == ENOENT;
    it = stale ? leases.erase(it) : std::next(it);
  }
}

inline Result<std::string> allocate_ip(const Network& n, const std::string& machine) {
  auto lock = lock_network(n);
  if (!lock) return lock.error();
  auto leases = read_leases(n);
  if (!leases) return leases.error();
  drop_stale_leases(n, *leases);
  for (uint32_t i = 2; i <= n.capacity(); ++i) {
    std::string ip = n.host_address(i);
    if (leases->count(ip)) continue;
    (*leases)[ip] = machine;
    if (auto st = write_leases(n, *leases); !st) return st.error();
    return ip;
  }
  return make_error(Exit::temp_fail, fmt::format("network {}", n.name), fmt::format("no free address left in {}", n.subnet.str()));
}

// Takes exactly IP for MACHINE again (start of a stopped machine): kept when
// it is still MACHINE's, leased anew when free, refused (73) when another
// machine holds it.
inline Status reserve_ip(const Network& n, const std::string& machine, const std::string& ip) {
  auto addr = parse_ip(ip);
  if (!addr || addr->family != AF_INET || !n.subnet.contains(*addr))
    return make_error(Exit::data, fmt::format("machine {}", machine),
                      fmt::format("its recorded address {} is not in network {} ({})", shown(ip), n.name, n.subnet.str()),
                      "the network was recreated with another subnet; remove the machine and boot it again");
  auto lock = lock_network(n);
  if (!lock) return lock.error();
  auto leases = read_leases(n);
  if (!leases) return leases.error();
  auto it = leases->find(ip);
  if (it != leases->end()) {
    if (it->second == machine) return {};
    return make_error(Exit::cant_create, fmt::format("machine {}", machine),
                      fmt::format("its address {} on network {} is now leased to machine {}", ip, n.name, it->second),
                      fmt::format("remove {} first, or remove {} and boot it again", it->second, machine));
  }
  (*leases)[ip] = machine;
  return write_leases(n, *leases);
}

inline Status release_ip(const Network& n, const std::string& machine) {
  auto lock = lock_network(n);
  if (!lock) return lock.error();
  auto leases = read_leases(n);
  if (!leases) return leases.error();
  size_t before = leases->size();
  for (auto it = leases->begin(); it != leases->end();) it = it->second == machine ? leases->erase(it) : std::next(it);
  if (leases->size() == before) return {};
  if (leases->empty()) {  // (a missing file is no lease: as before the first boot, and no room needed)
    if (::unlink((n.dir / "leases").c_str()) != 0 && errno != ENOENT)
      return os_error(fmt::format("removing {}", (n.dir / "leases").string()));
    return fsync_dir(n.dir);
  }
  return write_leases(n, *leases);
}

inline Status start_switch(const Network& n) {
  ProcessSpec spec;
  // Relative paths from the network directory keep the socket paths short.
  spec.argv = {"vde_switch", "--sock", "switch", "--daemon", "--pidfile", (n.dir / "switch.pid").string()};
  spec.cwd = n.dir.string();
  spec.timeout = std::chrono::seconds(20);
  if (auto r = run_checked(spec, fmt::format("starting vde_switch for network {}", n.name), Exit::unavailable, "install vde2"); !r)
    return r.error();
  for (int i = 0; i < 100 && !(fsys::exists(n.switch_dir() / "ctl") && switch_running(n)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!switch_running(n))
    return make_error(Exit::unavailable, fmt::format("starting vde_switch for network {}", n.name), "it did not stay up");
  return {};
}

// Starts the switch of a network whose vde_switch died (a host reboot, a
// kill): the pid file the dead one left makes vde_switch refuse to start
// ("Error in pidfile creation: File exists"), and its socket directory is
// stale, so both go first. Call with the network's lock held, after
// switch_running said no.
inline Status restart_switch(const Network& n) {
  if (::unlink((n.dir / "switch.pid").c_str()) != 0 && errno != ENOENT)
    return os_error(fmt::format("removing {}", (n.dir / "switch.pid").string()));
  std::error_code ec;
  fsys::remove_all(n.switch_dir(), ec);
  if (ec) return os_error(fmt::format("removing {}", n.switch_dir().string()), ec.value());
  return start_switch(n);
}

inline void stop_switch(const Network& n) {
  auto pid = read_pid(n.dir / "switch.pid");
  if (!pid || !is_switch(*pid, n)) return;
  ::kill(*pid, SIGTERM);
  for (int i = 0; i < 50 && is_switch(*pid, n); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (is_switch(*pid, n)) ::kill(*pid, SIGKILL);
}

}  // namespace kina::vm
