// plan.hpp: the validated cluster plan (ClusterPlan, NodePlan: docs/protocol.md),
// its record writer and its reader (read_plan_records).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/error.hpp"
#include "kina/json.hpp"
#include "kina/record.hpp"

namespace kina::node {

inline constexpr std::string_view kDefaultNodeImage = "kina.local/node:v1.37.2";
inline constexpr std::string_view kKindApiVersion = "kind.x-k8s.io/v1alpha4";
inline constexpr std::string_view kKinaApiVersion = "kina/v1alpha1";

struct Mount {
  std::string host_path, container_path;
  bool read_only = false;
  bool selinux_relabel = false;
  std::string propagation = "None";  // None | HostToContainer | Bidirectional
  bool operator==(const Mount&) const = default;
};

struct Port {
  std::string listen_address = "127.0.0.1";
  int host_port = 0;  // 0: picked at create time
  int container_port = 0;
  std::string protocol = "TCP";  // TCP | UDP (SCTP is refused when reading the config)
  bool operator==(const Port&) const = default;
};

struct Json6902 {
  std::string group, version, kind, patch;  // patch: the YAML/JSON text of the op list
  bool operator==(const Json6902&) const = default;
};

struct NodePlan {
  std::string cluster, name;  // <cluster>-control-plane, <cluster>-control-plane2, <cluster>-worker, <cluster>-worker2 ...
  std::string role;           // control-plane | worker
  int index = 0;              // position in the config's nodes list
  bool bootstrap = false;     // the first control plane (kubeadm init runs there)
  std::string image;
  int cpus = 2;
  int64_t memory_mib = 2048;
  std::map<std::string, std::string> labels;
  std::vector<Mount> mounts;
  std::vector<Port> ports;
  std::vector<std::string> kubeadm_patches;
  std::vector<Json6902> kubeadm_patches_json6902;
  bool operator==(const NodePlan&) const = default;
};

struct Networking {
  std::string ip_family = "ipv4", api_server_address = "127.0.0.1";
  int api_server_port = 0;  // 0: picked at create time
  std::string pod_subnet = "10.244.0.0/16", service_subnet = "10.96.0.0/16";
  bool disable_default_cni = false;
  std::string kube_proxy_mode = "iptables";
  std::optional<std::vector<std::string>> dns_search;
  bool operator==(const Networking&) const = default;
};

struct ClusterPlan {
  std::string name = "kind";
  std::string source;              // absolute config file path, "-" for stdin, "" for the defaults
  std::string config_api_version;  // kind.x-k8s.io/v1alpha4 | kina/v1alpha1
  std::string backend = "auto";    // auto | qemu | apple
  std::string image;               // the default node image
  Networking networking;
  std::map<std::string, bool> feature_gates;
  std::map<std::string, std::string> runtime_config;
  std::vector<std::string> kubeadm_patches;
  std::vector<Json6902> kubeadm_patches_json6902;
  std::vector<std::string> containerd_patches;
  std::vector<std::string> containerd_patches_json6902;
  int control_planes = 1, workers = 0;
  bool encrypt_secrets = true;
  std::vector<std::string> nodes;  // node names in order
  bool operator==(const ClusterPlan&) const = default;
};

struct Plan {
  ClusterPlan cluster;
  std::vector<NodePlan> nodes;
  bool operator==(const Plan&) const = default;
};

// ---- writing ----

namespace detail {

inline void write_patches_json6902(json::Writer& w, std::string_view key, const std::vector<Json6902>& ps) {
  w.key(key).begin_array();
  for (const auto& p : ps)
    w.begin_object().field("group", p.group).field("version", p.version).field("kind", p.kind).field("patch", p.patch).end_object();
  w.end_array();
}

}  // namespace detail

inline std::string cluster_plan_json(const ClusterPlan& c) {
  json::Writer w = begin_record("ClusterPlan");
  w.field("name", c.name).field("source", c.source).field("configApiVersion", c.config_api_version);
  w.field("backend", c.backend).field("image", c.image);
  const Networking& n = c.networking;
  w.key("networking").begin_object();
  w.field("ipFamily", n.ip_family).field("apiServerAddress", n.api_server_address).field("apiServerPort", n.api_server_port);
  w.field("podSubnet", n.pod_subnet).field("serviceSubnet", n.service_subnet);
  w.field("disableDefaultCNI", n.disable_default_cni).field("kubeProxyMode", n.kube_proxy_mode);
  if (n.dns_search) w.string_array("dnsSearch", *n.dns_search);
  w.end_object();
  w.key("featureGates").begin_object();
  for (const auto& [k, v] : c.feature_gates) w.field(k, v);
  w.end_object();
  w.key("runtimeConfig").begin_object();
  for (const auto& [k, v] : c.runtime_config) w.field(k, v);
  w.end_object();
  w.string_array("kubeadmConfigPatches", c.kubeadm_patches);
  detail::write_patches_json6902(w, "kubeadmConfigPatchesJSON6902", c.kubeadm_patches_json6902);
  w.string_array("containerdConfigPatches", c.containerd_patches);
  w.string_array("containerdConfigPatchesJSON6902", c.containerd_patches_json6902);
  w.field("controlPlanes", c.control_planes).field("workers", c.workers).field("encryptSecrets", c.encrypt_secrets);
  w.string_array("nodes", c.nodes);
  w.end_object();
  return w.take();
}

inline std::string node_plan_json(const NodePlan& p) {
  json::Writer w = begin_record("NodePlan");
  w.field("cluster", p.cluster).field("name", p.name).field("role", p.role).field("index", p.index);
  w.field("bootstrap", p.bootstrap).field("image", p.image).field("cpus", p.cpus).field("memoryMiB", static_cast<long long>(p.memory_mib));
  w.key("labels").begin_object();
  for (const auto& [k, v] : p.labels) w.field(k, v);
  w.end_object();
  w.key("extraMounts").begin_array();
  for (const auto& m : p.mounts)
    w.begin_object()
        .field("hostPath", m.host_path)
        .field("containerPath", m.container_path)
        .field("readOnly", m.read_only)
        .field("selinuxRelabel", m.selinux_relabel)
        .field("propagation", m.propagation)
        .end_object();
  w.end_array();
  w.key("extraPortMappings").begin_array();
  for (const auto& pm : p.ports)
    w.begin_object()
        .field("listenAddress", pm.listen_address)
        .field("hostPort", pm.host_port)
        .field("containerPort", pm.container_port)
        .field("protocol", pm.protocol)
        .end_object();
  w.end_array();
  w.string_array("kubeadmConfigPatches", p.kubeadm_patches);
  detail::write_patches_json6902(w, "kubeadmConfigPatchesJSON6902", p.kubeadm_patches_json6902);
  w.end_object();
  return w.take();
}

// One ClusterPlan record, then one NodePlan per node.
inline Status write_plan(RecordWriter& out, const Plan& plan) {
  if (auto st = out.write_line(cluster_plan_json(plan.cluster)); !st) return st;
  for (const auto& n : plan.nodes)
    if (auto st = out.write_line(node_plan_json(n)); !st) return st;
  return {};
}

// ---- reading ----

namespace detail {

// The fields of one JSON object of a record, each error naming the record and the field path.
class Fields {
 public:
  Fields(simdjson::dom::object o, std::string where, std::string prefix = {})
      : o_(o), where_(std::move(where)), prefix_(std::move(prefix)) {}

  Error bad(std::string_view key, std::string_view why) const {
    return make_error(Exit::data, fmt::format("record {}", where_), fmt::format("field \"{}{}\" {}", prefix_, key, why));
  }
  std::string path(std::string_view key) const { return prefix_ + std::string(key); }
  const std::string& where() const { return where_; }

  Result<simdjson::dom::element> get(std::string_view key) const {
    simdjson::dom::element e;
    if (o_[key].get(e) != simdjson::SUCCESS) return bad(key, "is missing");
    return e;
  }
  Result<std::string> str(std::string_view key) const {
    auto e = get(key);
    if (!e) return e.error();
    std::string_view s;
    if (e->get(s) != simdjson::SUCCESS) return bad(key, "is not a string");
    return std::string(s);
  }
  Result<int64_t> integer(std::string_view key, int64_t min, int64_t max) const {
    auto e = get(key);
    if (!e) return e.error();
    int64_t i = 0;
    if (e->get(i) != simdjson::SUCCESS) return bad(key, "is not an integer");
    if (i < min || i > max) return bad(key, fmt::format("is out of range ({} to {})", min, max));
    return i;
  }
  Result<bool> boolean(std::string_view key) const {
    auto e = get(key);
    if (!e) return e.error();
    bool b = false;
    if (e->get(b) != simdjson::SUCCESS) return bad(key, "is not a boolean");
    return b;
  }
  Result<simdjson::dom::object> object(std::string_view key) const {
    auto e = get(key);
    if (!e) return e.error();
    simdjson::dom::object o;
    if (e->get(o) != simdjson::SUCCESS) return bad(key, "is not an object");
    return o;
  }
  Result<simdjson::dom::array> array(std::string_view key) const {
    auto e = get(key);
    if (!e) return e.error();
    simdjson::dom::array a;
    if (e->get(a) != simdjson::SUCCESS) return bad(key, "is not an array");
    return a;
  }
  Result<std::vector<std::string>> strings(std::string_view key) const {
    auto a = array(key);
    if (!a) return a.error();
    std::vector<std::string> out;
    size_t i = 0;
    for (auto e : *a) {
      std::string_view s;
      if (e.get(s) != simdjson::SUCCESS) return bad(fmt::format("{}[{}]", key, i), "is not a string");
      out.emplace_back(s);
      ++i;
    }
    return out;
  }
  Result<std::map<std::string, std::string>> string_map(std::string_view key) const {
    auto o = object(key);
    if (!o) return o.error();
    std::map<std::string, std::string> out;
    for (auto [k, v] : *o) {
      std::string_view s;
      if (v.get(s) != simdjson::SUCCESS) return bad(fmt::format("{}.{}", key, std::string_view(k)), "is not a string");
      out[std::string(k)] = std::string(s);
    }
    return out;
  }
  Result<std::map<std::string, bool>> bool_map(std::string_view key) const {
    auto o = object(key);
    if (!o) return o.error();
    std::map<std::string, bool> out;
    for (auto [k, v] : *o) {
      bool b = false;
      if (v.get(b) != simdjson::SUCCESS) return bad(fmt::format("{}.{}", key, std::string_view(k)), "is not a boolean");
      out[std::string(k)] = b;
    }
    return out;
  }
  // Each element of an array of objects, as Fields named key[i].
  Result<std::vector<Fields>> objects(std::string_view key) const {
    auto a = array(key);
    if (!a) return a.error();
    std::vector<Fields> out;
    size_t i = 0;
    for (auto e : *a) {
      simdjson::dom::object o;
      if (e.get(o) != simdjson::SUCCESS) return bad(fmt::format("{}[{}]", key, i), "is not an object");
      out.emplace_back(o, where_, fmt::format("{}{}[{}].", prefix_, key, i));
      ++i;
    }
    return out;
  }
  Result<Fields> nested(std::string_view key) const {
    auto o = object(key);
    if (!o) return o.error();
    return Fields(*o, where_, fmt::format("{}{}.", prefix_, key));
  }

 private:
  simdjson::dom::object o_;
  std::string where_, prefix_;
};

// Assigns *r to dst or returns its error from the enclosing function.
#define KINA_NODE_TAKE(dst, expr)      \
  do {                                 \
    auto kina_take_ = (expr);          \
    if (!kina_take_) return kina_take_.error(); \
    dst = std::move(*kina_take_);      \
  } while (0)

inline Result<std::vector<Json6902>> read_json6902(const Fields& f, std::string_view key) {
  auto items = f.objects(key);
  if (!items) return items.error();
  std::vector<Json6902> out;
  for (const auto& i : *items) {
    Json6902 p;
    KINA_NODE_TAKE(p.group, i.str("group"));
    KINA_NODE_TAKE(p.version, i.str("version"));
    KINA_NODE_TAKE(p.kind, i.str("kind"));
    KINA_NODE_TAKE(p.patch, i.str("patch"));
    out.push_back(std::move(p));
  }
  return out;
}

inline Result<simdjson::dom::object> record_object(const Record& r) {
  simdjson::dom::object o;
  if (r.root().get(o) != simdjson::SUCCESS)
    return make_error(Exit::data, fmt::format("record {}", r.where()), "a record must be a JSON object");
  return o;
}

}  // namespace detail

inline Result<ClusterPlan> parse_cluster_plan(const Record& r) {
  auto obj = detail::record_object(r);
  if (!obj) return obj.error();
  detail::Fields f(*obj, fmt::format("{} (ClusterPlan)", r.where()));
  ClusterPlan c;
  KINA_NODE_TAKE(c.name, f.str("name"));
  KINA_NODE_TAKE(c.source, f.str("source"));
  KINA_NODE_TAKE(c.config_api_version, f.str("configApiVersion"));
  KINA_NODE_TAKE(c.backend, f.str("backend"));
  KINA_NODE_TAKE(c.image, f.str("image"));
  auto net = f.nested("networking");
  if (!net) return net.error();
  Networking& n = c.networking;
  KINA_NODE_TAKE(n.ip_family, net->str("ipFamily"));
  KINA_NODE_TAKE(n.api_server_address, net->str("apiServerAddress"));
  KINA_NODE_TAKE(n.api_server_port, net->integer("apiServerPort", 0, 65535));
  KINA_NODE_TAKE(n.pod_subnet, net->str("podSubnet"));
  KINA_NODE_TAKE(n.service_subnet, net->str("serviceSubnet"));
  KINA_NODE_TAKE(n.disable_default_cni, net->boolean("disableDefaultCNI"));
  KINA_NODE_TAKE(n.kube_proxy_mode, net->str("kubeProxyMode"));
  if (net->get("dnsSearch")) KINA_NODE_TAKE(n.dns_search, net->strings("dnsSearch"));
  KINA_NODE_TAKE(c.feature_gates, f.bool_map("featureGates"));
  KINA_NODE_TAKE(c.runtime_config, f.string_map("runtimeConfig"));
  KINA_NODE_TAKE(c.kubeadm_patches, f.strings("kubeadmConfigPatches"));
  KINA_NODE_TAKE(c.kubeadm_patches_json6902, detail::read_json6902(f, "kubeadmConfigPatchesJSON6902"));
  KINA_NODE_TAKE(c.containerd_patches, f.strings("containerdConfigPatches"));
  KINA_NODE_TAKE(c.containerd_patches_json6902, f.strings("containerdConfigPatchesJSON6902"));
  KINA_NODE_TAKE(c.control_planes, f.integer("controlPlanes", 1, 1000));
  KINA_NODE_TAKE(c.workers, f.integer("workers", 0, 1000));
  KINA_NODE_TAKE(c.encrypt_secrets, f.boolean("encryptSecrets"));
  KINA_NODE_TAKE(c.nodes, f.strings("nodes"));
  if (c.nodes.size() != static_cast<size_t>(c.control_planes + c.workers))
    return f.bad("nodes", fmt::format("lists {} nodes, controlPlanes + workers is {}", c.nodes.size(), c.control_planes + c.workers));
  return c;
}

inline Result<NodePlan> parse_node_plan(const Record& r) {
  auto obj = detail::record_object(r);
  if (!obj) return obj.error();
  detail::Fields f(*obj, fmt::format("{} (NodePlan)", r.where()));
  NodePlan p;
  KINA_NODE_TAKE(p.cluster, f.str("cluster"));
  KINA_NODE_TAKE(p.name, f.str("name"));
  KINA_NODE_TAKE(p.role, f.str("role"));
  if (p.role != "control-plane" && p.role != "worker") return f.bad("role", "is neither \"control-plane\" nor \"worker\"");
  KINA_NODE_TAKE(p.index, f.integer("index", 0, 1000));
  KINA_NODE_TAKE(p.bootstrap, f.boolean("bootstrap"));
  KINA_NODE_TAKE(p.image, f.str("image"));
  KINA_NODE_TAKE(p.cpus, f.integer("cpus", 1, 1024));
  KINA_NODE_TAKE(p.memory_mib, f.integer("memoryMiB", 1, int64_t{1} << 40));
  KINA_NODE_TAKE(p.labels, f.string_map("labels"));
  auto mounts = f.objects("extraMounts");
  if (!mounts) return mounts.error();
  for (const auto& m : *mounts) {
    Mount x;
    KINA_NODE_TAKE(x.host_path, m.str("hostPath"));
    KINA_NODE_TAKE(x.container_path, m.str("containerPath"));
    KINA_NODE_TAKE(x.read_only, m.boolean("readOnly"));
    KINA_NODE_TAKE(x.selinux_relabel, m.boolean("selinuxRelabel"));
    KINA_NODE_TAKE(x.propagation, m.str("propagation"));
    p.mounts.push_back(std::move(x));
  }
  auto ports = f.objects("extraPortMappings");
  if (!ports) return ports.error();
  for (const auto& m : *ports) {
    Port x;
    KINA_NODE_TAKE(x.listen_address, m.str("listenAddress"));
    KINA_NODE_TAKE(x.host_port, m.integer("hostPort", 0, 65535));
    KINA_NODE_TAKE(x.container_port, m.integer("containerPort", 1, 65535));
    KINA_NODE_TAKE(x.protocol, m.str("protocol"));
    p.ports.push_back(std::move(x));
  }
  KINA_NODE_TAKE(p.kubeadm_patches, f.strings("kubeadmConfigPatches"));
  KINA_NODE_TAKE(p.kubeadm_patches_json6902, detail::read_json6902(f, "kubeadmConfigPatchesJSON6902"));
  return p;
}

#undef KINA_NODE_TAKE

// Reads the plan from a record stream: exactly one ClusterPlan and its
// NodePlans (every node the ClusterPlan names, in that order, once). Records of
// other kinds go to `other` (the caller forwards them, the filter rule); without
// `other` they are skipped. A plan that is missing, repeated or incomplete is Exit::data.
inline Result<Plan> read_plan_records(RecordReader& in, const std::function<Status(const Record&)>& other = {}) {
  std::optional<ClusterPlan> cluster;
  std::vector<NodePlan> nodes;
  std::string first_node_where;
  for (;;) {
    auto r = in.next();
    if (!r) return r.error();
    if (!r->has_value()) break;
    const Record& rec = **r;
    if (rec.kind == "ClusterPlan") {
      if (cluster)
        return make_error(Exit::data, fmt::format("record {} (ClusterPlan)", rec.where()), "a second ClusterPlan in one stream");
      auto c = parse_cluster_plan(rec);
      if (!c) return c.error();
      cluster = std::move(*c);
    } else if (rec.kind == "NodePlan") {
      auto n = parse_node_plan(rec);
      if (!n) return n.error();
      if (first_node_where.empty()) first_node_where = rec.where();
      nodes.push_back(std::move(*n));
    } else if (other) {
      if (auto st = other(rec); !st) return st.error();
    }
  }
  std::string what = fmt::format("reading the cluster plan from {}", in.source());
  if (!cluster) return make_error(Exit::data, what, "no ClusterPlan record", "pipe `kina-node plan` into this command");
  if (nodes.size() != cluster->nodes.size())
    return make_error(Exit::data, what,
                      fmt::format("the ClusterPlan names {} nodes, the stream has {} NodePlan records", cluster->nodes.size(), nodes.size()));
  int bootstraps = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].cluster != cluster->name)
      return make_error(Exit::data, what, fmt::format("NodePlan {} belongs to cluster {}, the ClusterPlan is {}",
                                                      json::quote(nodes[i].name), json::quote(nodes[i].cluster), json::quote(cluster->name)));
    if (nodes[i].name != cluster->nodes[i])
      return make_error(Exit::data, what, fmt::format("NodePlan {} is not the ClusterPlan's node {} ({})", json::quote(nodes[i].name),
                                                      i, json::quote(cluster->nodes[i])));
    if (nodes[i].bootstrap) {
      ++bootstraps;
      if (nodes[i].role != "control-plane")
        return make_error(Exit::data, what, fmt::format("NodePlan {} is a bootstrap worker", json::quote(nodes[i].name)));
    }
  }
  if (bootstraps != 1) return make_error(Exit::data, what, fmt::format("{} bootstrap control planes (want exactly one)", bootstraps));
  return Plan{std::move(*cluster), std::move(nodes)};
}

}  // namespace kina::node
