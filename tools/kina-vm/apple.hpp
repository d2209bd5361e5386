// apple.hpp: the apple backend (macOS 26, Apple silicon): drives Apple's
// `container` CLI. Only its argument building and the parsing of every JSON
// shape `container list --format json` has printed are exercised here (by
// contract tests with a scripted `container`); see docs/backends.md.
#pragma once

#include <stdlib.h>

#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/process.hpp"
#include "machine.hpp"

namespace kina::vm::apple {

struct Container {
  std::string id, state, ip, image;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string label(std::string_view k) const {
    for (const auto& [lk, lv] : labels)
      if (lk == k) return lv;
    return {};
  }
};

namespace detail_apple {

inline std::string strip_prefix_len(std::string_view a) { return std::string(a.substr(0, a.find('/'))); }

// The first IPv4 address of a networks[] array, whichever key names it:
// 0.5 "address", 0.9-0.12 and 1.x "ipv4Address" (both "A.B.C.D/len").
inline std::string first_address(simdjson::dom::element networks) {
  simdjson::dom::array arr;
  if (networks.get(arr) != simdjson::SUCCESS) return {};
  for (auto n : arr) {
    std::string_view a;
    if (n["ipv4Address"].get(a) == simdjson::SUCCESS || n["address"].get(a) == simdjson::SUCCESS) return strip_prefix_len(a);
  }
  return {};
}

}  // namespace detail_apple

// Parses `container list --all --format json` of any known version:
//   0.5:       [{"status":"running","configuration":{...},"networks":[{"address":"192.168.64.3/24"}]}]
//   0.9-0.12:  [{"status":"running","configuration":{...},"networks":[{"ipv4Address":"192.168.64.3/24"}]}]
//   1.x:       [{"configuration":{...},"status":{"state":"running","networks":[{"ipv4Address":...}]}}]
inline Result<std::vector<Container>> parse_list(std::string_view json) {
  auto bad = [](std::string why) { return make_error(Exit::data, "parsing `container list --format json`", why); };
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) return bad("invalid JSON");
  simdjson::dom::array arr;
  if (root.get(arr) != simdjson::SUCCESS) return bad("not a JSON array");
  std::vector<Container> out;
  for (auto item : arr) {
    Container c;
    simdjson::dom::element cfg;
    if (item["configuration"].get(cfg) != simdjson::SUCCESS) return bad("an entry has no \"configuration\"");
    std::string_view s;
    if (cfg["id"].get(s) != simdjson::SUCCESS) return bad("an entry has no \"configuration.id\"");
    c.id = std::string(s);
    simdjson::dom::element img;
    if (cfg["image"].get(img) == simdjson::SUCCESS && img.is_object() && img["reference"].get(s) == simdjson::SUCCESS)
      c.image = std::string(s);
    simdjson::dom::object labels;
    if (cfg["labels"].get(labels) == simdjson::SUCCESS)
      for (auto [k, v] : labels)
        if (v.get(s) == simdjson::SUCCESS) c.labels.emplace_back(std::string(k), std::string(s));
    simdjson::dom::element status;
    if (item["status"].get(status) != simdjson::SUCCESS) return bad(fmt::format("entry {} has no \"status\"", c.id));
    if (status.get(s) == simdjson::SUCCESS) {
      c.state = std::string(s);
      simdjson::dom::element nets;
      if (item["networks"].get(nets) == simdjson::SUCCESS) c.ip = detail_apple::first_address(nets);
    } else if (status.is_object()) {
      if (status["state"].get(s) == simdjson::SUCCESS) c.state = std::string(s);
      simdjson::dom::element nets;
      if (status["networks"].get(nets) == simdjson::SUCCESS) c.ip = detail_apple::first_address(nets);
      if (c.ip.empty() && item["networks"].get(nets) == simdjson::SUCCESS) c.ip = detail_apple::first_address(nets);
    } else {
      return bad(fmt::format("entry {} has no \"status\"", c.id));
    }
    out.push_back(std::move(c));
  }
  return out;
}

// The container id kina gives a machine: unique per cluster.
inline std::string container_id(const std::string& cluster, const std::string& name) {
  return fmt::format("kina-{}-{}", cluster, name);
}

struct RunRequest {
  std::string cluster, name, image, network;
  int cpus = 1;
  uint64_t memory_mib = 512;
  std::vector<Publish> publish;
  std::vector<std::string> env, volumes, command;
};

// `container run -d ...`: node images need every capability and no masked or
// read-only /proc and /sys paths (they run systemd, containerd, kubelet).
inline std::vector<std::string> run_argv(const RunRequest& r) {
  std::vector<std::string> a = {"container", "run", "-d", "--name", container_id(r.cluster, r.name),
                                "--cpus", std::to_string(r.cpus), "--memory", fmt::format("{}M", r.memory_mib),
                                "--label", "kina.cluster=" + r.cluster, "--label", "kina.machine=" + r.name};
  for (const auto& p : r.publish)
    a.insert(a.end(), {"--publish", fmt::format("{}:{}:{}/{}", p.addr, p.host_port, p.guest_port, p.proto)});
  for (const auto& v : r.volumes) a.insert(a.end(), {"--volume", v});
  for (const auto& e : r.env) a.insert(a.end(), {"--env", e});
  if (!r.network.empty()) a.insert(a.end(), {"--network", r.network});
  a.insert(a.end(), {"--cap-add", "ALL", "--masked-path", "NONE", "--read-only-path", "NONE", r.image});
  a.insert(a.end(), r.command.begin(), r.command.end());
  return a;
}

// A stopped `container` system is a 69 that says how to start it.
inline Status check_system() {
  if (which("container").empty())
    return make_error(Exit::unavailable, "the apple backend", "the `container` command is not on PATH",
                      "install Apple's container (https://github.com/apple/container)");
  ProcessSpec spec;
  spec.argv = {"container", "system", "status"};
  spec.timeout = std::chrono::seconds(30);
  auto r = run_process(spec);
  if (!r) return r.error();
  if (!r->success())
    return make_error(Exit::unavailable, "the apple backend", "the container system is not running",
                      "start it with: container system start");
  return {};
}

inline Result<std::string> run_container(const std::vector<std::string>& argv, std::chrono::seconds timeout = std::chrono::seconds(300)) {
  ProcessSpec spec;
  spec.argv = argv;
  spec.timeout = timeout;
  auto r = run_checked(spec, fmt::format("container {}", argv.size() > 1 ? argv[1] : ""));
  if (!r) return r.error();
  return std::move(r->out);
}

inline Result<std::optional<Container>> find(const std::string& id) {
  auto out = run_container({"container", "list", "--all", "--format", "json"}, std::chrono::seconds(60));
  if (!out) return out.error();
  auto list = parse_list(*out);
  if (!list) return list.error();
  for (auto& c : *list)
    if (c.id == id) return std::optional<Container>{std::move(c)};
  return std::optional<Container>{};
}

// kina's state words for container's.
inline std::string kina_state(const std::string& s) {
  if (s == "running") return "running";
  if (s == "stopped" || s == "exited") return "exited";
  return s.empty() ? "unknown" : s;
}


// --- networks -----------------------------------------------------------------------------

// A network as `container network list --format json` shows it.
struct NetworkInfo {
  std::string id, state, subnet, gateway;
};

// The `container` network a kina network is (one namespace for all clusters,
// so the cluster is part of the id, as for containers).
inline std::string network_id(const std::string& cluster, const std::string& name) { return container_id(cluster, name); }

// `container network create [--subnet CIDR] ID` (--subnet exists from 0.6 on).
inline std::vector<std::string> network_create_argv(const std::string& id, const std::string& subnet) {
  std::vector<std::string> a = {"container", "network", "create"};
  if (!subnet.empty()) a.insert(a.end(), {"--subnet", subnet});
  a.push_back(id);
  return a;
}

// Parses `container network list --format json` of any known version:
//   0.5-0.7:  [{"id":..,"state":"running","config":{"id":..,"mode":"nat",..},"status":{"address":CIDR,"gateway":IP}}]
//   0.8-0.12: [{"id":..,"state":"running","config":{..,"ipv4Subnet":CIDR},"status":{"ipv4Subnet":CIDR,"ipv4Gateway":IP}}]
//   1.x:      [{"id":..,"configuration":{"name":..,..},"status":{"ipv4Subnet":CIDR,"ipv4Gateway":IP}}] (no state: running)
// "status" is absent or null for a 0.x network that is only "created".
inline Result<std::vector<NetworkInfo>> parse_network_list(std::string_view json) {
  auto bad = [](std::string why) { return make_error(Exit::data, "parsing `container network list --format json`", why); };
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) return bad("invalid JSON");
  simdjson::dom::array arr;
  if (root.get(arr) != simdjson::SUCCESS) return bad("not a JSON array");
  std::vector<NetworkInfo> out;
  for (auto item : arr) {
    NetworkInfo n;
    std::string_view s;
    if (item["id"].get(s) == simdjson::SUCCESS) n.id = std::string(s);
    else if (item["configuration"]["name"].get(s) == simdjson::SUCCESS) n.id = std::string(s);
    else if (item["config"]["id"].get(s) == simdjson::SUCCESS) n.id = std::string(s);
    else return bad("an entry has no \"id\"");
    simdjson::dom::element status;
    bool has_status = item["status"].get(status) == simdjson::SUCCESS && status.is_object();
    if (item["state"].get(s) == simdjson::SUCCESS) n.state = std::string(s);
    else n.state = has_status ? "running" : "created";
    if (has_status) {
      if (status["ipv4Subnet"].get(s) == simdjson::SUCCESS || status["address"].get(s) == simdjson::SUCCESS) n.subnet = std::string(s);
      if (status["ipv4Gateway"].get(s) == simdjson::SUCCESS || status["gateway"].get(s) == simdjson::SUCCESS) n.gateway = std::string(s);
    }
    out.push_back(std::move(n));
  }
  return out;
}

inline Result<std::optional<NetworkInfo>> find_network(const std::string& id) {
  auto out = run_container({"container", "network", "list", "--format", "json"}, std::chrono::seconds(60));
  if (!out) return out.error();
  auto list = parse_network_list(*out);
  if (!list) return list.error();
  for (auto& n : *list)
    if (n.id == id) return std::optional<NetworkInfo>{std::move(n)};
  return std::optional<NetworkInfo>{};
}

// --- cp --------------------------------------------------------------------------------------
// Both directions are tar streams through `container exec` (every version has
// exec; `container cp` exists only from 1.0). At most kMaxCopy bytes of tar.

inline constexpr size_t kMaxCopy = size_t{1} << 30;

// Run in the guest as `sh -c SCRIPT kina-cp DST BASE` with the tar on stdin:
// into DST when it is a directory, else as DST (through a temporary directory
// beside it, so a failed copy leaves nothing). 66: DST's parent is missing.
inline constexpr std::string_view kCopyInScript =
    "set -e; d=$1; b=$2\n"
    "if [ -d \"$d\" ]; then exec tar -x -p -f - -C \"$d\"; fi\n"
    "p=$(dirname \"$d\")\n"
    "[ -d \"$p\" ] || { echo \"$p: no such directory\" >&2; exit 66; }\n"
    "t=$(mktemp -d \"$p/.kina-cp.XXXXXX\")\n"
    "if tar -x -p -f - -C \"$t\" && mv -f \"$t/$b\" \"$d\"; then rmdir \"$t\"; else rm -rf \"$t\"; exit 1; fi\n";

namespace detail_apple {

// "/a/b/" -> ("/a", "b"); "/" has no base.
inline std::pair<std::string, std::string> split_guest(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  std::string parent = slash == 0 ? "/" : p.substr(0, slash);
  return {parent, p.substr(slash + 1)};
}

}  // namespace detail_apple

inline std::vector<std::string> copy_in_argv(const std::string& container, const std::string& dst, const std::string& base) {
  return {"container", "exec", "-i", container, "sh", "-c", std::string(kCopyInScript), "kina-cp", dst, base};
}

inline std::vector<std::string> copy_out_argv(const std::string& container, const std::string& parent, const std::string& base) {
  return {"container", "exec", container, "tar", "-c", "-f", "-", "-C", parent, base};
}

// cp SRC NAME:DST
inline Status copy_in(const std::string& machine, const std::string& container, const std::string& src, const std::string& dst) {
  std::string where = fmt::format("cp {} {}:{}", src, machine, dst);
  fsys::path abs = fsys::absolute(src).lexically_normal();
  if (abs.filename().empty()) abs = abs.parent_path();
  struct stat st {};
  if (::lstat(abs.c_str(), &st) != 0) return os_error(fmt::format("cp: {}", src), errno, Exit::no_input);
  std::string base = abs.filename().string();
  if (base.empty() || base == "/") return make_error(Exit::usage, where, "cannot copy the root directory");
  std::string gdst = dst.substr(0, dst.find_last_not_of('/') + 1);
  if (gdst.empty()) gdst = "/";
  ProcessSpec pack;
  pack.argv = {"tar", "-c", "-f", "-", "-C", abs.parent_path().string(), base};
  pack.max_output = kMaxCopy;
  pack.timeout = std::chrono::minutes(10);
  auto p = run_process(pack);
  if (!p) return p.error();
  if (!p->success()) return make_error(Exit::io, where, fmt::format("tar {}: {}", p->describe(), detail::first_complaint(p->err)));
  if (p->out_truncated) return make_error(Exit::data, where, "more than 1 GiB of tar", "use --mount for large trees");
  ProcessSpec ex;
  ex.argv = copy_in_argv(container, gdst, base);
  ex.input = std::move(p->out);
  ex.timeout = std::chrono::minutes(10);
  auto r = run_process(ex);
  if (!r) return r.error();
  if (!r->success())
    return make_error(r->exit_code() == 66 ? Exit::no_input : Exit::unavailable, where,
                      fmt::format("in the guest: {}: {}", r->describe(), detail::first_complaint(r->err)));
  return {};
}

// cp NAME:SRC DST
inline Status copy_out(const std::string& machine, const std::string& container, const std::string& src, const std::string& dst) {
  std::string where = fmt::format("cp {}:{} {}", machine, src, dst);
  auto [gparent, gbase] = detail_apple::split_guest(src);
  if (gbase.empty()) return make_error(Exit::usage, where, "cannot copy the root directory");
  fsys::path abs = fsys::absolute(dst).lexically_normal();
  if (abs.filename().empty()) abs = abs.parent_path();
  std::error_code ec;
  bool into = fsys::is_directory(abs, ec);
  fsys::path parent = into ? abs : abs.parent_path();
  fsys::path final_path = into ? abs / gbase : abs;
  if (!fsys::is_directory(parent, ec)) return make_error(Exit::no_input, where, fmt::format("{}: no such directory", parent.string()));
  ProcessSpec ex;
  ex.argv = copy_out_argv(container, gparent, gbase);
  ex.max_output = kMaxCopy;
  ex.timeout = std::chrono::minutes(10);
  auto r = run_process(ex);
  if (!r) return r.error();
  if (!r->success()) {
    bool missing = r->err.find("No such file") != std::string::npos || r->err.find("no such file") != std::string::npos;
    return make_error(missing ? Exit::no_input : Exit::unavailable, where,
                      fmt::format("in the guest: {}: {}", r->describe(), detail::first_complaint(r->err)));
  }
  if (r->out_truncated) return make_error(Exit::data, where, "more than 1 GiB of tar", "use --mount for large trees");
  // Unpacked beside the destination, checked, then renamed into place: a
  // failed copy leaves nothing, and the guest's tar cannot name other paths.
  std::string tmpl = (parent / ".kina-cp.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return os_error(fmt::format("cp: creating a directory in {}", parent.string()), errno, Exit::cant_create);
  fsys::path tmp = tmpl;
  auto cleanup = [&] { fsys::remove_all(tmp, ec); };
  ProcessSpec unpack;
  unpack.argv = {"tar", "-x", "-p", "-f", "-", "-C", tmp.string()};
  unpack.input = std::move(r->out);
  unpack.timeout = std::chrono::minutes(10);
  auto u = run_process(unpack);
  if (!u || !u->success()) {
    // (read while the partial copy still fills the disk)
    std::string why = u ? full_disk_why(u->err, parent) : std::string();
    cleanup();
    if (!u) return u.error();
    return make_error(Exit::cant_create, where, fmt::format("tar {}: {}", u->describe(), why));
  }
  size_t entries = 0;
  bool named = false;
  for (const auto& e : fsys::directory_iterator(tmp, ec)) ++entries, named = named || e.path().filename() == gbase;
  if (entries != 1 || !named) {
    cleanup();
    return make_error(Exit::data, where, fmt::format("the guest's tar did not hold exactly {}", gbase));
  }
  if (fsys::is_directory(final_path, ec) && fsys::is_directory(tmp / gbase, ec)) {
    // Into an existing directory: its contents are merged, like cp -r.
    fsys::path from = tmp / gbase;
    for (auto it = fsys::recursive_directory_iterator(from, ec); !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
      auto target = final_path / it->path().lexically_relative(from);
      std::error_code sec;
      bool src_dir = fsys::is_directory(fsys::symlink_status(it->path(), sec));
      if (src_dir && fsys::is_directory(fsys::symlink_status(target, sec))) continue;  // merged entry by entry
      if (src_dir) it.disable_recursion_pending();  // moved whole
      if (::rename(it->path().c_str(), target.c_str()) != 0) {
        int err = errno;
        cleanup();
        return os_error(fmt::format("cp: writing {}", target.string()), err, Exit::cant_create);
      }
    }
    cleanup();
    return {};
  }
  if (::rename((tmp / gbase).c_str(), final_path.c_str()) != 0) {
    int err = errno;
    cleanup();
    return os_error(fmt::format("cp: writing {}", final_path.string()), err, Exit::cant_create);
  }
  cleanup();
  return {};
}

}  // namespace kina::vm::apple
