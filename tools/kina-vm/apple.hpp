// apple.hpp: the apple backend (macOS 26, Apple silicon): drives Apple's
// `container` CLI. Only its argument building and the parsing of every JSON
// shape `container list --format json` has printed are exercised here (by
// contract tests with a scripted `container`); see docs/backends.md.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/error.hpp"
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
  auto r = run_process(spec);
  if (!r) return r.error();
  if (!r->success()) {
    std::string err = r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return make_error(Exit::unavailable, fmt::format("container {}", argv.size() > 1 ? argv[1] : ""),
                      fmt::format("{}: {}", r->describe(), err));
  }
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

}  // namespace kina::vm::apple
