// fetch.hpp: `fetch`: the node's /etc/kubernetes/admin.conf copied with kina-vm,
// cleaned (admin_conf.hpp) and kept as clusters/C/admin.kubeconfig; the
// Machine record it starts from (stdin or `kina-vm inspect`).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/cli.hpp"
#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/invocation.hpp"
#include "kina/fs.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

#include "admin_conf.hpp"
#include "cluster.hpp"
#include "kubeconfig.hpp"
#include "kubeconfig_file.hpp"
#include "sweep.hpp"

namespace kina::kube {

// What fetch reads of kina-vm's Machine record.
struct Machine {
  std::string name, cluster, backend, ip;
  struct Port {
    std::string host_ip;
    int64_t host_port = 0, guest_port = 0;
    std::string protocol;
  };
  std::vector<Port> ports;
};

inline Result<Machine> machine_from_record(const Record& r) {
  Machine m;
  auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("record {} (Machine)", r.where()), why); };
  auto name = r.required_string("name");
  if (!name) return name.error();
  m.name = *name;
  for (auto [key, dst] : {std::pair{"cluster", &m.cluster}, {"backend", &m.backend}, {"ip", &m.ip}}) {
    auto v = r.string_field(key);
    if (!v) return v.error();
    *dst = v->value_or("");
  }
  if (auto ports = r.root()["ports"]; ports.error() != simdjson::NO_SUCH_FIELD) {
    simdjson::dom::array arr;
    if (ports.get(arr) != simdjson::SUCCESS) return bad("field \"ports\" is not an array");
    for (auto p : arr) {
      Machine::Port port;
      std::string_view s;
      if (p["hostIP"].get(s) == simdjson::SUCCESS) port.host_ip = std::string(s);
      if (p["protocol"].get(s) == simdjson::SUCCESS) port.protocol = std::string(s);
      if (p["hostPort"].get(port.host_port) != simdjson::SUCCESS || p["guestPort"].get(port.guest_port) != simdjson::SUCCESS)
        return bad("a port lacks an integer hostPort or guestPort");
      m.ports.push_back(port);
    }
  }
  return m;
}

// The API server as the host reaches it: the published guest port 6443, or the
// VM's own address on the apple backend (its VMs are reachable from the host).
inline Result<std::string> host_endpoint(const Machine& m) {
  auto host = [](const std::string& ip) { return ip.find(':') != std::string::npos ? "[" + ip + "]" : ip; };
  if (m.backend == "apple") {
    if (m.ip.empty()) return make_error(Exit::data, fmt::format("machine {}", m.name), "has no IP address");
    if (auto ip = parse_ip(m.ip); !ip) return make_error(Exit::data, fmt::format("machine {}", m.name), ip.error().message());
    return fmt::format("https://{}:6443", host(m.ip));
  }
  for (const auto& p : m.ports) {
    if (p.guest_port != 6443 || (!p.protocol.empty() && p.protocol != "tcp" && p.protocol != "TCP")) continue;
    if (p.host_port <= 0 || p.host_port > 65535)
      return make_error(Exit::data, fmt::format("machine {}", m.name), fmt::format("invalid host port {}", p.host_port));
    std::string ip = p.host_ip.empty() || p.host_ip == "0.0.0.0" ? "127.0.0.1" : p.host_ip == "::" ? "::1" : p.host_ip;
    if (auto pip = parse_ip(ip); !pip) return make_error(Exit::data, fmt::format("machine {}", m.name), pip.error().message());
    return fmt::format("https://{}:{}", host(ip), p.host_port);
  }
  return make_error(Exit::data, fmt::format("machine {}", m.name), "publishes no port for the API server (guest port 6443)",
                    "create the machine with the API server port published");
}

// `kina-vm inspect NAME`'s Machine record; a machine kina-vm does not know is 66.
inline Result<Machine> inspect_machine(const std::string& name) {
  ProcessSpec spec;
  spec.argv = {"kina-vm", "inspect", name};
  spec.timeout = std::chrono::seconds(60);
  auto r = run_checked_tool(std::move(spec), fmt::format("kina-vm inspect {}", name),
                            [](int status) { return status == code(Exit::no_input) ? Exit::no_input : Exit::unavailable; });
  if (!r) return r.error();
  auto reader = RecordReader::from_string(r->out, "kina-vm inspect");
  for (;;) {
    auto rec = reader.next();
    if (!rec) return rec.error();
    if (!rec->has_value()) break;
    if ((*rec)->kind != "Machine") continue;
    auto m = machine_from_record(**rec);
    if (!m) return m.error();
    if (m->name == name) return m;
  }
  return make_error(Exit::data, fmt::format("kina-vm inspect {}", name), "printed no Machine record for it");
}

// Copies the node's admin.conf into `dir` with `kina-vm cp` and returns its text.
inline Result<std::string> copy_admin_conf(const std::string& machine, const fsys::path& dir) {
  ProcessSpec spec;
  // The node is trusted less than the host: kina-vm stops writing at the same
  // 16 MiB that the read below accepts, instead of its 64Gi default.
  spec.argv = {"kina-vm", "cp", "--max-bytes", "16Mi", machine + ":/etc/kubernetes/admin.conf", (dir / "admin.conf").string()};
  spec.timeout = std::chrono::seconds(120);
  auto r = run_checked_tool(std::move(spec), fmt::format("copying /etc/kubernetes/admin.conf from {}", machine),
                            [](int) { return Exit::unavailable; });
  if (!r) return r.error();
  return read_file(dir / "admin.conf", 16u << 20);
}

struct FetchArgs {
  std::string machine;  // empty: a Machine record on stdin
  std::string cluster;  // empty: the machine's
};

// fetch: prints a Kubeconfig record.
inline Status fetch(const FetchArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  RecordWriter out;
  std::optional<Machine> machine;
  if (stdin_has_records()) {
    RecordReader in(0);
    auto st = filter_records(in, out, [&](const Record& rec) -> Result<bool> {
      if (rec.kind != "Machine" || machine) return false;
      auto m = machine_from_record(rec);
      if (!m) return m.error();
      if (!a.machine.empty() && m->name != a.machine) return false;
      machine = std::move(*m);
      return true;
    });
    if (!st) return st;
  }
  if (!machine) {
    if (a.machine.empty()) return usage_error("fetch", "give --machine NAME or pipe a Machine record to stdin");
    auto m = inspect_machine(a.machine);
    if (!m) return m.error();
    machine = std::move(*m);
  }
  inv.set_target(machine->name);
  std::string cluster = a.cluster.empty() ? machine->cluster : a.cluster;
  if (cluster.empty()) return usage_error("fetch", fmt::format("machine {} names no cluster: give --cluster", machine->name));
  auto server = host_endpoint(*machine);
  if (!server) return server.error();
  auto cdir = cluster_dir(cluster, true);
  if (!cdir) return cdir.error();

  sweep_dead_temps(*cdir, ".fetch.");
  auto tmp = ScopedTempDir::make(*cdir, ".fetch.");
  if (!tmp) return tmp.error();
  auto text = copy_admin_conf(machine->name, tmp->path());
  if (!text) return text.error();
  std::string source = fmt::format("{}:/etc/kubernetes/admin.conf", machine->name);
  auto cfg = kubeconfig::parse(*text, source);
  sodium_memzero(text->data(), text->size());
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);  // the cluster admin's client key
  std::vector<std::string> ignored;
  auto admin = clean_admin_conf(*cfg, source, cluster, *server, ignored);
  for (const auto& what : ignored) warn(kTool, fmt::format("{}: ignoring {}", source, what));
  if (!admin) return admin.error();
  kubeconfig::WipeOnExit wipe_admin(admin->kubeconfig);

  auto lock = lock_cluster(*cdir, "fetch");
  if (!lock) return lock.error();
  fsys::path path = admin_kubeconfig_path(*cdir);
  inv.set_target(path.string());
  sweep_write_temps(path);
  if (auto st = write_target(path, admin->kubeconfig); !st) return st;
  auto w = begin_record("Kubeconfig");
  w.field("cluster", cluster).field("user", admin->user).string_array("groups", admin->groups);
  w.field("context", kubeconfig::cluster_entry(cluster)).field("server", *server).field("path", path.string());
  w.field("machine", machine->name);
  if (!admin->not_after.empty()) w.field("notAfter", admin->not_after);
  return print_record(w);
}

}  // namespace kina::kube
