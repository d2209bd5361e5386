// policy.hpp: kina's cluster policy (docs/security.md, "Cluster policy"): the
// policy file and a config's `policy:` block, the host's facts, and the checks
// `kina-node plan` runs on a plan, every problem reported at once (exit 80).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/validate.hpp"
#include "kina/yaml.hpp"

#include "plan.hpp"
#include "yaml_fields.hpp"

namespace kina::node {

inline constexpr size_t kMaxPolicyBytes = 64u << 10;
inline constexpr int64_t kMaxMemoryMiB = int64_t{4} << 20;  // 4 TiB: the largest size any field takes
inline constexpr int kMaxCpus = 1024;

struct Policy {
  std::vector<std::string> allowed_host_paths;  // absolute; read-write mounts inside them are accepted
  std::vector<std::string> denied_host_paths;   // absolute; added to the sensitive paths
  bool allow_public_ports = false;
  std::optional<int64_t> max_cpus_per_node, max_memory_per_node_mib, max_total_memory_mib;  // unset: the host's
};

// What the host has, and whose paths are sensitive.
struct HostFacts {
  int64_t cpus = 1;
  int64_t memory_mib = 0;
  bool root = false;
  int unprivileged_port_start = 1024;  // net.ipv4.ip_unprivileged_port_start
  std::string home;                    // the user's home ("" when unknown)
  std::string kina_home;               // $KINA_HOME or ~/.kina
};

// Lexically normal, with symbolic links of the longest existing prefix resolved
// (std::filesystem::weakly_canonical): a link cannot hide where a path leads.
inline std::string resolve_path(const fsys::path& p) {
  std::error_code ec;
  fsys::path abs = p.is_absolute() ? p : fsys::absolute(p, ec);
  if (ec) abs = p;
  fsys::path c = fsys::weakly_canonical(abs, ec);
  if (ec) c = abs.lexically_normal();
  std::string s = c.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// `~/x` is the user's home; a relative path is relative to `base`.
inline std::string policy_path(std::string_view given, const fsys::path& base, const std::string& home) {
  fsys::path p;
  if ((given == "~" || given.substr(0, 2) == "~/") && !home.empty()) p = fsys::path(home) / std::string(given.substr(given.size() > 1 ? 2 : 1));
  else p = fsys::path(std::string(given));
  if (p.is_relative()) p = base / p;
  return resolve_path(p);
}

inline Result<HostFacts> host_facts() {
  HostFacts h;
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  h.cpus = n > 0 ? n : 1;
  auto meminfo = read_file("/proc/meminfo", 1u << 20);
  if (!meminfo) return meminfo.error();
  size_t at = meminfo->find("MemTotal:");
  if (at == std::string::npos) return make_error(Exit::os, "reading /proc/meminfo", "no MemTotal line");
  int64_t kib = 0;
  for (size_t i = at + 9; i < meminfo->size() && (*meminfo)[i] != '\n'; ++i)
    if ((*meminfo)[i] >= '0' && (*meminfo)[i] <= '9' && kib < (int64_t{1} << 50)) kib = kib * 10 + ((*meminfo)[i] - '0');
  h.memory_mib = kib / 1024;
  h.root = ::geteuid() == 0;
  if (auto s = read_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", 64)) {
    std::string v = *s;
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    if (auto p = parse_int_flag("port", v, 0, 65536)) h.unprivileged_port_start = static_cast<int>(*p);
  }
  if (auto home = user_home()) h.home = resolve_path(*home);
  auto kh = kina_home(false);
  if (!kh) return kh.error();
  h.kina_home = resolve_path(*kh);
  return h;
}

// ---- reading ----

inline const std::vector<std::string_view>& policy_fields() {
  static const std::vector<std::string_view> f = {"allowedHostPaths", "deniedHostPaths", "allowPublicPorts",
                                                  "maxCpusPerNode",   "maxMemoryPerNode", "maxTotalMemory"};
  return f;
}

// The policy fields of mapping `n` (a policy file's body, or a config's
// `policy:` block) into `out`. Paths are made absolute against `base`.
inline void read_policy_fields(FieldReader& r, const yaml::Node& n, std::string_view path, const fsys::path& base,
                               const std::string& home, Policy& out) {
  if (!r.mapping(n, path)) return;
  for (const auto& [k, v] : n.map) {
    std::string p = join_path(path, k);
    if (k == "allowedHostPaths" || k == "deniedHostPaths") {
      auto list = r.strings(v, p);
      if (!list) continue;
      for (size_t i = 0; i < list->size(); ++i) {
        const std::string& s = (*list)[i];
        if (s.empty()) {
          r.problems().add(index_path(p, i), "an empty path", &v);
          continue;
        }
        (k == "allowedHostPaths" ? out.allowed_host_paths : out.denied_host_paths).push_back(policy_path(s, base, home));
      }
    } else if (k == "allowPublicPorts") {
      if (auto b = r.boolean(v, p)) out.allow_public_ports = *b;
    } else if (k == "maxCpusPerNode") {
      if (auto i = r.integer(v, p, 1, kMaxCpus)) out.max_cpus_per_node = *i;
    } else if (k == "maxMemoryPerNode") {
      if (auto m = r.mebibytes(v, p, 1, kMaxMemoryMiB)) out.max_memory_per_node_mib = *m;
    } else if (k == "maxTotalMemory") {
      if (auto m = r.mebibytes(v, p, 1, kMaxMemoryMiB)) out.max_total_memory_mib = *m;
    }
  }
}

// A policy file: apiVersion kina/v1alpha1, kind Policy, the policy fields.
// All problems go to `problems` (Exit::data); the result is valid when it is empty.
inline Policy parse_policy(std::string_view text, const fsys::path& base, const std::string& home, Problems& problems) {
  Policy pol;
  yaml::Limits lim;
  lim.max_bytes = kMaxPolicyBytes;
  lim.max_depth = 16;
  lim.max_nodes = 10000;
  lim.max_alias_bytes = kMaxPolicyBytes;
  auto doc = yaml::parse(text, problems.source(), lim);
  if (!doc) {
    problems.add("", doc.error().why);
    return pol;
  }
  FieldReader r(problems);
  if (doc->is_null() || !doc->is_map()) {
    problems.add("", doc->is_null() ? "an empty policy (want apiVersion: kina/v1alpha1, kind: Policy)" : "expected a mapping", &*doc);
    return pol;
  }
  std::vector<std::string_view> known = {"apiVersion", "kind"};
  known.insert(known.end(), policy_fields().begin(), policy_fields().end());
  r.known_fields(*doc, "", known);
  auto api = doc->get_string("apiVersion");
  if (!api) problems.add("apiVersion", "missing (want kina/v1alpha1)");
  else if (*api != kKinaApiVersion) problems.add("apiVersion", fmt::format("{} is not kina/v1alpha1", shown(*api)), doc->get("apiVersion"));
  auto kind = doc->get_string("kind");
  if (!kind) problems.add("kind", "missing (want Policy)");
  else if (*kind != "Policy") problems.add("kind", fmt::format("{} is not Policy", shown(*kind)), doc->get("kind"));
  read_policy_fields(r, *doc, "", base, home, pol);
  return pol;
}

// ---- combining ----

// The policy in force: the defaults, the --policy file over them, then the
// config's `policy:` block, which may only tighten: it adds denied paths and
// lowers ceilings; an allowed path, allowPublicPorts: true or a higher ceiling
// there is a policy problem (a config file must not grant itself trust).
inline Policy tighten(Policy base, const Policy& block, const HostFacts& host, Problems& problems) {
  for (const auto& a : block.allowed_host_paths)
    problems.add("policy.allowedHostPaths", fmt::format("{}: a config cannot allow host paths; put it in a --policy file", shown(a)));
  if (block.allow_public_ports && !base.allow_public_ports)
    problems.add("policy.allowPublicPorts", "true: a config cannot allow public ports; pass --allow-public or use a --policy file");
  for (const auto& d : block.denied_host_paths) base.denied_host_paths.push_back(d);
  auto lower = [&](std::optional<int64_t>& cur, const std::optional<int64_t>& want, int64_t host_value, std::string_view name,
                   std::string_view unit) {
    if (!want) return;
    int64_t limit = cur.value_or(host_value);
    if (*want > limit)
      problems.add(fmt::format("policy.{}", name), fmt::format("{}{} is above the policy's {}{}; a config may only lower it", *want, unit, limit, unit));
    else
      cur = *want;
  };
  lower(base.max_cpus_per_node, block.max_cpus_per_node, host.cpus, "maxCpusPerNode", "");
  lower(base.max_memory_per_node_mib, block.max_memory_per_node_mib, host.memory_mib, "maxMemoryPerNode", "Mi");
  lower(base.max_total_memory_mib, block.max_total_memory_mib, host.memory_mib, "maxTotalMemory", "Mi");
  return base;
}

// ---- checking ----

// True when `p` is `dir` or lies inside it.
inline bool path_within(std::string_view p, std::string_view dir) {
  if (dir == "/") return true;
  return p == dir || (p.size() > dir.size() && p.substr(0, dir.size()) == dir && p[dir.size()] == '/');
}

struct SensitivePath {
  std::string path;     // resolved
  std::string why;      // "the host's root", "your SSH keys" ...
  bool denied = false;  // from deniedHostPaths: refused read-only too, and allowedHostPaths do not lift it
};

// The default sensitive paths, then the policy's denied ones; each both as
// written and resolved (a link such as /var/run -> /run must match either way).
inline std::vector<SensitivePath> sensitive_paths(const Policy& pol, const HostFacts& host) {
  std::vector<std::tuple<std::string, std::string, bool>> raw = {
      {"/", "the host's root", false},
      {"/etc", "the host's configuration", false},
      {"/var/run/docker.sock", "the Docker socket, root on the host", false},
      {"/run/docker.sock", "the Docker socket, root on the host", false},
      {"/proc", "the host's processes", false},
      {"/sys", "the host's kernel interfaces", false},
      {"/dev", "the host's devices", false},
      {"/boot", "the host's boot files", false},
  };
  if (!host.home.empty()) raw.emplace_back(host.home + "/.ssh", "your SSH keys", false);
  if (!host.kina_home.empty()) raw.emplace_back(host.kina_home, "kina's own state (KINA_HOME)", false);
  for (const auto& d : pol.denied_host_paths) raw.emplace_back(d, "denied by the policy", true);
  std::vector<SensitivePath> out;
  std::set<std::pair<std::string, bool>> seen;
  for (const auto& [p, why, denied] : raw) {
    std::string lex = fsys::path(p).lexically_normal().string();
    while (lex.size() > 1 && lex.back() == '/') lex.pop_back();
    for (const std::string& form : {lex, resolve_path(p)})
      if (seen.insert({form, denied}).second) out.push_back({form, why, denied});
  }
  return out;
}

// The sensitive path a mount of `p` exposes: p is it, lies inside it, or
// contains it ("/" only when p is "/" itself). Nothing when p is harmless.
// Denied paths are looked at first; `denied_only` looks at nothing else.
inline std::optional<SensitivePath> exposes(std::string_view p, const std::vector<SensitivePath>& sensitive, bool denied_only = false) {
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& s : sensitive) {
      if (s.denied != (pass == 0) || (denied_only && !s.denied)) continue;
      if (s.path == "/") {
        if (p == "/") return s;
        continue;
      }
      if (path_within(p, s.path) || path_within(s.path, p)) return s;
    }
  }
  return std::nullopt;
}

inline bool is_loopback(std::string_view addr) {
  auto ip = parse_ip(addr);
  return ip && ip->family == AF_INET && ip->bytes[0] == 127;
}

// Where a NodePlan's port came from in the config: the bootstrap node's first
// port is the API server's (networking.apiServerAddress).
inline std::string port_path(const NodePlan& n, size_t i) {
  if (n.bootstrap) {
    if (i == 0) return "networking.apiServerAddress";
    --i;
  }
  return fmt::format("nodes[{}].extraPortMappings[{}]", n.index, i);
}

// Every policy problem of the plan (Exit::policy), in node order.
// `given_paths` maps "nodes[i].extraMounts[j]" to the hostPath as written when
// it differs from the resolved one (for the message).
inline Problems check_policy(const Plan& plan, const Policy& pol, const HostFacts& host,
                             const std::map<std::string, std::string>& given_paths = {}, Problems problems = Problems("policy", Exit::policy)) {
  auto sensitive = sensitive_paths(pol, host);
  std::vector<std::string> allowed;
  for (const auto& a : pol.allowed_host_paths) allowed.push_back(resolve_path(a));
  int64_t max_cpus = pol.max_cpus_per_node.value_or(host.cpus);
  int64_t max_mem = pol.max_memory_per_node_mib.value_or(host.memory_mib);
  int64_t max_total = pol.max_total_memory_mib.value_or(host.memory_mib);
  std::string cpu_src = pol.max_cpus_per_node ? "the policy's maxCpusPerNode" : fmt::format("the host's {} CPUs", host.cpus);
  std::string mem_src = pol.max_memory_per_node_mib ? "the policy's maxMemoryPerNode" : "the host's memory";
  std::string total_src = pol.max_total_memory_mib ? "the policy's maxTotalMemory" : "the host's memory";

  // (port, protocol) -> the addresses bound so far, with where they came from.
  std::map<std::pair<int, std::string>, std::vector<std::pair<std::string, std::string>>> bound;
  int64_t total_mem = 0;
  for (const auto& n : plan.nodes) {
    std::string np = fmt::format("nodes[{}]", n.index);
    for (size_t j = 0; j < n.mounts.size(); ++j) {
      const Mount& m = n.mounts[j];
      // A denied path is refused read-only too, whatever allowedHostPaths say;
      // the built-in sensitive paths only read-write and outside allowedHostPaths.
      auto s = exposes(m.host_path, sensitive, m.read_only);
      if (!s) continue;
      bool ok = false;
      if (!s->denied)
        for (const auto& a : allowed) ok = ok || path_within(m.host_path, a);
      if (ok) continue;
      std::string key = fmt::format("{}.extraMounts[{}]", np, j);
      std::string shown_path = shown(m.host_path);
      if (auto it = given_paths.find(key); it != given_paths.end())
        shown_path = fmt::format("{} (resolves to {})", shown(it->second), shown(m.host_path));
      std::string rel = m.host_path == s->path ? "is" : path_within(m.host_path, s->path) ? "lies inside" : "contains";
      if (s->denied)
        problems.add(key + ".hostPath", fmt::format("{} {} {} ({}: deniedHostPaths); no mount of it is allowed, read-only or not",
                                                    shown_path, rel, shown(s->path), s->why));
      else
        problems.add(key + ".hostPath", fmt::format("{} {} {} ({}) and is mounted read-write; set readOnly: true, or allow it "
                                                    "in a --policy file (allowedHostPaths)",
                                                    shown_path, rel, shown(s->path), s->why));
    }
    for (size_t j = 0; j < n.ports.size(); ++j) {
      const Port& p = n.ports[j];
      std::string pp = port_path(n, j);
      if (!pol.allow_public_ports && !is_loopback(p.listen_address))
        problems.add(pp, fmt::format("listen address {} is not a loopback address: the port would be reachable from other "
                                     "hosts; use 127.0.0.1, or pass --allow-public",
                                     shown(p.listen_address)));
      if (p.host_port > 0 && p.host_port < host.unprivileged_port_start && !host.root)
        problems.add(pp, fmt::format("hostPort {} is below {} (net.ipv4.ip_unprivileged_port_start) and kina does not run as "
                                     "root; use a port from {} up",
                                     p.host_port, host.unprivileged_port_start, host.unprivileged_port_start));
      if (p.host_port > 0) {
        auto& addrs = bound[{p.host_port, p.protocol}];
        for (const auto& [addr, where] : addrs) {
          if (addr == p.listen_address || addr == "0.0.0.0" || p.listen_address == "0.0.0.0") {
            problems.add(pp, fmt::format("{}:{}/{} is already mapped by {}", p.listen_address, p.host_port, p.protocol, where));
            break;
          }
        }
        addrs.emplace_back(p.listen_address, pp);
      }
    }
    if (n.cpus > max_cpus)
      problems.add(np + ".cpus", fmt::format("{} CPUs is more than {} ({})", n.cpus, cpu_src, max_cpus));
    if (n.memory_mib > max_mem)
      problems.add(np + ".memory", fmt::format("{}Mi is more than {} ({}Mi)", n.memory_mib, mem_src, max_mem));
    total_mem += n.memory_mib;
  }
  if (total_mem > max_total)
    problems.add("nodes", fmt::format("the nodes' memory adds up to {}Mi, more than {} ({}Mi)", total_mem, total_src, max_total));
  return problems;
}

}  // namespace kina::node
