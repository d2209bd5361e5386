// kind_config.hpp: reads kind's `kind.x-k8s.io/v1alpha4` Cluster config, and the
// same schema as `kina/v1alpha1` with kina's additions, strictly (unknown
// fields, wrong types and what kina cannot do are errors naming their path),
// applies kind's defaults and names the nodes as kind does (docs/cli.md, "kina-node").
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "kina/yaml.hpp"

#include "plan.hpp"
#include "policy.hpp"
#include "yaml_fields.hpp"

namespace kina::node {

inline constexpr size_t kMaxConfigBytes = 1u << 20;  // a config file is at most 1 MiB
inline constexpr size_t kMaxNodes = 99;              // per cluster
// "<name>-control-plane99" must be a DNS-1123 label (63 characters).
inline constexpr size_t kMaxClusterName = 63 - std::string_view("-control-plane99").size();

struct ConfigOptions {
  std::optional<std::string> name;   // --name: replaces the config's name
  std::optional<std::string> image;  // --image: every node's image
  std::string source;                // ClusterPlan.source: absolute path, "-" or ""
  fsys::path base_dir;               // relative hostPaths are relative to this (the config's directory)
  std::string home;                  // for ~ in the policy block's paths
};

struct ParsedConfig {
  Plan plan;
  std::optional<Policy> policy;                          // the kina/v1alpha1 `policy:` block
  std::map<std::string, std::string> given_host_paths;   // "nodes[i].extraMounts[j]" -> as written, when it resolved elsewhere
};

// ---- name checks (Kubernetes' rules) ----

// A qualified name's name part: 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends.
inline std::string qualified_name_problem(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > 63) return "must be at most 63 characters";
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  for (char c : s)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return "may contain only letters, digits, '-', '_' and '.'";
  if (!alnum(s.front()) || !alnum(s.back())) return "must start and end with a letter or digit";
  return {};
}

// A DNS-1123 subdomain: at most 253 characters, lower-case labels joined by '.'.
inline std::string subdomain_problem(std::string_view s) {
  if (s.empty() || s.size() > 253) return "must be 1-253 characters";
  size_t start = 0;
  for (;;) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return "each dot-separated part must be 1-63 characters";
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
        return "must consist of lower-case letters, digits, '-' and '.' (a DNS-1123 subdomain)";
    if (label.front() == '-' || label.back() == '-') return "each part must start and end with a letter or digit";
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

// A label key: [prefix/]name, prefix a DNS-1123 subdomain.
inline std::string label_key_problem(std::string_view k) {
  size_t slash = k.find('/');
  if (slash != std::string_view::npos) {
    if (auto p = subdomain_problem(k.substr(0, slash)); !p.empty()) return "its prefix " + p;
    k = k.substr(slash + 1);
  }
  if (auto p = qualified_name_problem(k); !p.empty()) return "its name " + p;
  return {};
}

inline std::string label_value_problem(std::string_view v) { return v.empty() ? std::string() : qualified_name_problem(v); }

// Text that reaches a component's command line as key=value,... (feature
// gates, runtime-config): letters, digits and . _ / - only, so nothing can
// add a flag or another pair.
inline bool flag_safe(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' || c == '-'))
      return false;
  return true;
}

inline std::string image_problem(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > 1024) return "is longer than 1024 characters";
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f) return "contains a space, a control character or a non-ASCII byte";
  return {};
}

namespace detail {

// One value out of the list: "must be one of a, b, c".
inline std::string one_of(const std::vector<std::string_view>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::string(v[i]);
  return s;
}

class ConfigReader {
 public:
  ConfigReader(Problems& p, const ConfigOptions& o) : p_(p), r_(p), o_(o) {}

  ParsedConfig read(const yaml::Node& doc) {
    ParsedConfig out;
    ClusterPlan& c = out.plan.cluster;
    c.source = o_.source;
    c.image = o_.image.value_or(std::string(kDefaultNodeImage));
    if (doc.is_null()) {
      p_.add("", "the config is empty (want kind: Cluster and apiVersion: kind.x-k8s.io/v1alpha4)");
      return out;
    }
    if (!r_.mapping(doc, "", false)) return out;
    auto api = doc.get_string("apiVersion");
    auto kind = doc.get_string("kind");
    if (!kind) p_.add("kind", "missing (want Cluster)");
    else if (*kind != "Cluster")
      p_.add("kind", fmt::format("{} is not Cluster{}", shown(*kind), *kind == "Policy" ? " (a policy file goes to --policy)" : ""), doc.get("kind"));
    if (!api) {
      p_.add("apiVersion", "missing (want kind.x-k8s.io/v1alpha4 or kina/v1alpha1)");
      return out;
    }
    if (*api != kKindApiVersion && *api != kKinaApiVersion) {
      p_.add("apiVersion", fmt::format("{} is not supported (kina reads kind.x-k8s.io/v1alpha4 and kina/v1alpha1)", shown(*api)),
             doc.get("apiVersion"));
      return out;
    }
    kina_ = *api == kKinaApiVersion;
    c.config_api_version = *api;

    std::vector<std::string_view> known = {"kind", "apiVersion", "name", "nodes", "networking", "featureGates", "runtimeConfig",
                                           "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
                                           "containerdConfigPatchesJSON6902"};
    r_.known_fields(doc, "", with_kina_fields(known, {"backend", "encryptSecrets", "policy"}), kina_only({"backend", "encryptSecrets", "policy"}));

    // name
    std::string name = "kind";
    if (const yaml::Node* n = doc.get("name")) {
      auto s = r_.string(*n, "name");
      if (s && !s->empty()) name = *s;
    }
    if (o_.name) name = *o_.name;
    else if (auto why = cluster_name_problem(name); !why.empty()) p_.add("name", fmt::format("{} {}", shown(name), why), doc.get("name"));
    c.name = name;

    if (const yaml::Node* n = doc.get("networking")) networking(*n, c.networking);
    else networking(yaml::Node::mapping(), c.networking);
    if (const yaml::Node* n = doc.get("featureGates")) {
      if (auto m = r_.bool_map(*n, "featureGates")) {
        for (const auto& [k, v] : *m)
          if (!flag_safe(k)) p_.add(join_path("featureGates", k), "a feature gate name has letters and digits only", n->get(k));
        c.feature_gates = std::move(*m);
      }
    }
    if (const yaml::Node* n = doc.get("runtimeConfig")) {
      if (auto m = r_.string_map(*n, "runtimeConfig")) {
        for (const auto& [k, v] : *m) {
          if (!flag_safe(k)) p_.add(join_path("runtimeConfig", k), "a key has letters, digits and . _ / - only", n->get(k));
          else if (!flag_safe(v)) p_.add(join_path("runtimeConfig", k), fmt::format("{}: a value has letters, digits and . _ / - only", shown(v)), n->get(k));
        }
        c.runtime_config = std::move(*m);
      }
    }
    if (const yaml::Node* n = doc.get("kubeadmConfigPatches")) c.kubeadm_patches = kubeadm_patches(*n, "kubeadmConfigPatches");
    if (const yaml::Node* n = doc.get("kubeadmConfigPatchesJSON6902")) c.kubeadm_patches_json6902 = json6902(*n, "kubeadmConfigPatchesJSON6902");
    if (const yaml::Node* n = doc.get("containerdConfigPatches"))
      c.containerd_patches = r_.strings(*n, "containerdConfigPatches").value_or(std::vector<std::string>{});
    if (const yaml::Node* n = doc.get("containerdConfigPatchesJSON6902"))
      c.containerd_patches_json6902 = r_.strings(*n, "containerdConfigPatchesJSON6902").value_or(std::vector<std::string>{});
    if (kina_) {
      if (const yaml::Node* n = doc.get("backend")) {
        auto s = r_.string(*n, "backend");
        if (s) {
          if (*s == "auto" || *s == "qemu" || *s == "apple") c.backend = *s;
          else if (!s->empty()) p_.add("backend", fmt::format("{} is not one of auto, qemu, apple", shown(*s)), n);
        }
      }
      if (const yaml::Node* n = doc.get("encryptSecrets"))
        if (auto b = r_.boolean(*n, "encryptSecrets")) c.encrypt_secrets = *b;
      if (const yaml::Node* n = doc.get("policy")) {
        Policy pol;
        read_policy_fields(r_, *n, "policy", o_.base_dir, o_.home, pol);
        r_.known_fields(*n, "policy", policy_fields());
        out.policy = std::move(pol);
      }
    }

    // nodes
    std::vector<NodePlan>& nodes = out.plan.nodes;
    const yaml::Node* ns = doc.get("nodes");
    if (ns && !ns->is_null() && r_.sequence(*ns, "nodes") && !ns->items.empty()) {
      if (ns->items.size() > kMaxNodes) p_.add("nodes", fmt::format("{} nodes; kina plans at most {}", ns->items.size(), kMaxNodes), ns);
      for (size_t i = 0; i < ns->items.size() && i < kMaxNodes; ++i) nodes.push_back(node(ns->items[i], i, out.given_host_paths));
    } else {
      NodePlan n;  // kind's default: one control plane
      n.role = "control-plane";
      nodes.push_back(std::move(n));
    }
    finish(c, nodes);
    return out;
  }

  static std::string cluster_name_problem(std::string_view name) {
    auto st = validate_name("cluster name", name);
    if (!st) return st.error().why;
    if (name.size() > kMaxClusterName)
      return fmt::format("must be at most {} characters (node names such as {}-control-plane99 must fit 63)", kMaxClusterName, name);
    return {};
  }

 private:
  // kind's field names, plus kina's additions in a kina/v1alpha1 config.
  std::vector<std::string_view> with_kina_fields(std::vector<std::string_view> known, std::initializer_list<std::string_view> extra) const {
    if (kina_) known.insert(known.end(), extra);
    return known;
  }
  // In a v1alpha4 config, kina's additions are unknown fields whose error says where they belong.
  std::map<std::string_view, std::string_view> kina_only(std::initializer_list<std::string_view> extra) const {
    std::map<std::string_view, std::string_view> m;
    if (!kina_)
      for (auto k : extra) m[k] = "a kina/v1alpha1 field; set apiVersion: kina/v1alpha1";
    return m;
  }

  void networking(const yaml::Node& n, Networking& net) {
    const std::string P = "networking";
    if (!r_.mapping(n, P)) return;
    r_.known_fields(n, P, {"ipFamily", "apiServerPort", "apiServerAddress", "podSubnet", "serviceSubnet", "disableDefaultCNI",
                           "kubeProxyMode", "dnsSearch"});
    auto str = [&](std::string_view k) -> std::optional<std::string> {
      const yaml::Node* v = n.get(k);
      if (!v) return std::nullopt;
      auto s = r_.string(*v, join_path(P, k));
      if (!s || s->empty()) return std::nullopt;
      return s;
    };
    if (auto f = str("ipFamily")) {
      if (*f == "ipv6" || *f == "dual")
        p_.add("networking.ipFamily", fmt::format("{}: kina supports only ipv4 clusters so far", *f), n.get("ipFamily"));
      else if (*f != "ipv4")
        p_.add("networking.ipFamily", fmt::format("{} is not one of ipv4, ipv6, dual", shown(*f)), n.get("ipFamily"));
    }
    if (const yaml::Node* v = n.get("disableDefaultCNI"))
      if (auto b = r_.boolean(*v, "networking.disableDefaultCNI")) net.disable_default_cni = *b;
    if (auto a = str("apiServerAddress")) {
      auto ip = parse_ip(*a);
      if (!ip) p_.add("networking.apiServerAddress", fmt::format("{} is not an IP address", shown(*a)), n.get("apiServerAddress"));
      else if (ip->family != AF_INET)
        p_.add("networking.apiServerAddress", fmt::format("{}: IPv6 addresses are not supported by kina so far", shown(*a)), n.get("apiServerAddress"));
      else net.api_server_address = ip->str();
    }
    if (const yaml::Node* v = n.get("apiServerPort"))
      if (auto port = r_.integer(*v, "networking.apiServerPort", -1, 65535)) net.api_server_port = *port < 0 ? 0 : static_cast<int>(*port);
    std::optional<Cidr> pod, svc;
    size_t before = p_.size();
    auto subnet = [&](std::string_view k, std::string& dst, std::optional<Cidr>& parsed) {
      auto s = str(k);
      if (!s) return;
      std::string path = join_path(P, k);
      if (s->find(',') != std::string::npos) {
        p_.add(path, fmt::format("{}: several subnets mean dual-stack, which kina does not support so far", shown(*s)), n.get(k));
        return;
      }
      auto cidr = parse_cidr(*s);
      if (!cidr) p_.add(path, cidr.error().why.empty() ? cidr.error().what : fmt::format("{}: {}", shown(*s), cidr.error().why), n.get(k));
      else if (cidr->network.family != AF_INET) p_.add(path, fmt::format("{}: IPv6 subnets are not supported by kina so far", shown(*s)), n.get(k));
      else {
        dst = cidr->str();
        parsed = *cidr;
      }
    };
    // kind leaves the pod subnet unset when the default CNI is disabled.
    if (net.disable_default_cni && !n.get("podSubnet")) net.pod_subnet.clear();
    subnet("podSubnet", net.pod_subnet, pod);
    subnet("serviceSubnet", net.service_subnet, svc);
    if (!pod && !net.pod_subnet.empty()) pod = *parse_cidr(net.pod_subnet);
    if (!svc) svc = *parse_cidr(net.service_subnet);
    bool subnets_ok = p_.size() == before;  // no overlap reported against a default standing in for a bad value
    if (subnets_ok && pod && (pod->contains(svc->network) || svc->contains(pod->network)))
      p_.add("networking.serviceSubnet", fmt::format("{} overlaps the pod subnet {}", svc->str(), pod->str()), n.get("serviceSubnet"));
    if (auto m = str("kubeProxyMode")) {
      if (*m == "ipvs")
        p_.add("networking.kubeProxyMode", "ipvs: kina's node image has no IPVS support (ipvsadm); use iptables or nftables", n.get("kubeProxyMode"));
      else if (*m != "iptables" && *m != "nftables" && *m != "none")
        p_.add("networking.kubeProxyMode", fmt::format("{} is not one of iptables, nftables, none", shown(*m)), n.get("kubeProxyMode"));
      else net.kube_proxy_mode = *m;
    }
    if (const yaml::Node* v = n.get("dnsSearch"); v && !v->is_null()) {
      if (auto list = r_.strings(*v, "networking.dnsSearch")) {
        if (list->size() > 32) p_.add("networking.dnsSearch", fmt::format("{} domains; at most 32", list->size()), v);
        for (size_t i = 0; i < list->size(); ++i)
          if (auto st = validate_host_name("search domain", (*list)[i], false); !st)
            p_.add(index_path("networking.dnsSearch", i), fmt::format("{}: {}", shown((*list)[i]), st.error().why), v);
        net.dns_search = std::move(*list);
      }
    }
  }

  std::vector<std::string> kubeadm_patches(const yaml::Node& n, const std::string& path) {
    auto list = r_.strings(n, path);
    if (!list) return {};
    for (size_t i = 0; i < list->size(); ++i) {
      yaml::Limits lim;
      lim.max_bytes = kMaxConfigBytes;
      lim.max_depth = 64;
      lim.max_nodes = 100000;
      lim.max_alias_bytes = kMaxConfigBytes;
      auto doc = yaml::parse((*list)[i], index_path(path, i), lim);
      if (!doc) p_.add(index_path(path, i), fmt::format("not YAML: {}", doc.error().why), &n.items[i]);
      else if (!doc->is_map()) p_.add(index_path(path, i), "a patch must be a YAML mapping (with kind and apiVersion)", &n.items[i]);
    }
    return std::move(*list);
  }

  std::vector<Json6902> json6902(const yaml::Node& n, const std::string& path) {
    std::vector<Json6902> out;
    if (!r_.sequence(n, path)) return out;
    for (size_t i = 0; i < n.items.size(); ++i) {
      const yaml::Node& e = n.items[i];
      std::string ep = index_path(path, i);
      if (!r_.mapping(e, ep, false)) continue;
      r_.known_fields(e, ep, {"group", "version", "kind", "patch"});
      Json6902 p;
      auto field = [&](std::string_view k, std::string& dst, bool required) {
        const yaml::Node* v = e.get(k);
        if (v) {
          if (auto s = r_.string(*v, join_path(ep, k))) dst = *s;
          else return;
        }
        if (required && dst.empty()) p_.add(join_path(ep, k), "missing", &e);
      };
      field("group", p.group, false);
      field("version", p.version, false);
      field("kind", p.kind, true);
      field("patch", p.patch, true);
      out.push_back(std::move(p));
    }
    return out;
  }

  NodePlan node(const yaml::Node& n, size_t i, std::map<std::string, std::string>& given) {
    NodePlan p;
    p.index = static_cast<int>(i);
    p.role = "control-plane";
    std::string np = index_path("nodes", i);
    if (!r_.mapping(n, np)) return p;  // an empty entry is a default node, as kind decodes it
    std::vector<std::string_view> known = {"role", "image", "labels", "extraMounts", "extraPortMappings", "gpus",
                                           "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902"};
    r_.known_fields(n, np, with_kina_fields(known, {"cpus", "memory"}), kina_only({"cpus", "memory"}));
    if (const yaml::Node* v = n.get("role")) {
      if (auto s = r_.string(*v, np + ".role"); s && !s->empty()) {
        if (*s == "control-plane" || *s == "worker") p.role = *s;
        else p_.add(np + ".role", fmt::format("{} is not a node role (control-plane or worker)", shown(*s)), v);
      }
    }
    if (const yaml::Node* v = n.get("image")) {
      if (auto s = r_.string(*v, np + ".image"); s && !s->empty()) {
        if (auto why = image_problem(*s); !why.empty()) p_.add(np + ".image", fmt::format("{} {}", shown(*s), why), v);
        else p.image = *s;
      }
    }
    if (const yaml::Node* v = n.get("gpus")) {
      if (auto s = r_.string(*v, np + ".gpus"); s && !s->empty())
        p_.add(np + ".gpus", fmt::format("{}: GPUs are not supported by kina (nodes are VMs)", shown(*s)), v);
    }
    if (const yaml::Node* v = n.get("labels")) {
      if (auto m = r_.string_map(*v, np + ".labels")) {
        for (const auto& [k, val] : *m) {
          if (auto why = label_key_problem(k); !why.empty()) p_.add(join_path(np + ".labels", k), fmt::format("invalid label key: {}", why), v->get(k));
          else if (auto vwhy = label_value_problem(val); !vwhy.empty())
            p_.add(join_path(np + ".labels", k), fmt::format("invalid label value {}: {}", shown(val), vwhy), v->get(k));
        }
        p.labels = std::move(*m);
      }
    }
    if (const yaml::Node* v = n.get("extraMounts"); v && r_.sequence(*v, np + ".extraMounts"))
      for (size_t j = 0; j < v->items.size(); ++j) p.mounts.push_back(mount(v->items[j], index_path(np + ".extraMounts", j), given));
    if (const yaml::Node* v = n.get("extraPortMappings"); v && r_.sequence(*v, np + ".extraPortMappings"))
      for (size_t j = 0; j < v->items.size(); ++j) p.ports.push_back(port(v->items[j], index_path(np + ".extraPortMappings", j)));
    if (const yaml::Node* v = n.get("kubeadmConfigPatches")) p.kubeadm_patches = kubeadm_patches(*v, np + ".kubeadmConfigPatches");
    if (const yaml::Node* v = n.get("kubeadmConfigPatchesJSON6902")) p.kubeadm_patches_json6902 = json6902(*v, np + ".kubeadmConfigPatchesJSON6902");
    if (kina_) {
      if (const yaml::Node* v = n.get("cpus"))
        if (auto c = r_.integer(*v, np + ".cpus", 1, kMaxCpus)) p.cpus = static_cast<int>(*c);
      if (const yaml::Node* v = n.get("memory"))
        if (auto m = r_.mebibytes(*v, np + ".memory", 256, kMaxMemoryMiB)) p.memory_mib = *m;
    }
    return p;
  }

  Mount mount(const yaml::Node& n, const std::string& mp, std::map<std::string, std::string>& given) {
    Mount m;
    if (!r_.mapping(n, mp, false)) return m;
    r_.known_fields(n, mp, {"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"});
    std::string host, container;
    if (const yaml::Node* v = n.get("hostPath")) host = r_.string(*v, mp + ".hostPath").value_or("");
    if (const yaml::Node* v = n.get("containerPath")) container = r_.string(*v, mp + ".containerPath").value_or("");
    if (host.empty()) p_.add(mp + ".hostPath", "missing", &n);
    else if (host.find('\0') != std::string::npos || host.size() > 4096) p_.add(mp + ".hostPath", "not a usable path", n.get("hostPath"));
    else {
      fsys::path hp(host);
      if (hp.is_relative()) hp = o_.base_dir / hp;
      m.host_path = resolve_path(hp);
      if (m.host_path != host) given[mp] = host;
    }
    if (container.empty()) p_.add(mp + ".containerPath", "missing", &n);
    else if (container.front() != '/' || container.find('\0') != std::string::npos || container.size() > 4096)
      p_.add(mp + ".containerPath", fmt::format("{} is not an absolute path", shown(container)), n.get("containerPath"));
    else {
      m.container_path = fsys::path(container).lexically_normal().string();
      while (m.container_path.size() > 1 && m.container_path.back() == '/') m.container_path.pop_back();
    }
    if (const yaml::Node* v = n.get("readOnly"))
      if (auto b = r_.boolean(*v, mp + ".readOnly")) m.read_only = *b;
    if (const yaml::Node* v = n.get("selinuxRelabel")) {
      if (auto b = r_.boolean(*v, mp + ".selinuxRelabel"); b && *b)
        p_.add(mp + ".selinuxRelabel", "true: SELinux relabelling of host paths is not supported by kina (nodes are VMs)", v);
    }
    if (const yaml::Node* v = n.get("propagation")) {
      if (auto s = r_.string(*v, mp + ".propagation"); s && !s->empty()) {
        if (*s == "None" || *s == "HostToContainer" || *s == "Bidirectional") m.propagation = *s;
        else {
          std::string why = fmt::format("{} is not one of None, HostToContainer, Bidirectional", shown(*s));
          if (auto near = nearest_name(*s, {"None", "HostToContainer", "Bidirectional"}); !near.empty())
            why += fmt::format("; did you mean \"{}\"?", near);
          p_.add(mp + ".propagation", why, v);
        }
      }
    }
    return m;
  }

  Port port(const yaml::Node& n, const std::string& pp) {
    Port p;
    if (!r_.mapping(n, pp, false)) return p;
    r_.known_fields(n, pp, {"containerPort", "hostPort", "listenAddress", "protocol"});
    const yaml::Node* cp = n.get("containerPort");
    if (!cp || cp->is_null()) p_.add(pp + ".containerPort", "missing", &n);
    else if (auto v = r_.integer(*cp, pp + ".containerPort", 1, 65535)) p.container_port = static_cast<int>(*v);
    if (const yaml::Node* v = n.get("hostPort"))
      if (auto h = r_.integer(*v, pp + ".hostPort", -1, 65535)) p.host_port = *h < 0 ? 0 : static_cast<int>(*h);
    if (const yaml::Node* v = n.get("listenAddress")) {
      if (auto s = r_.string(*v, pp + ".listenAddress"); s && !s->empty()) {
        auto ip = parse_ip(*s);
        if (!ip) p_.add(pp + ".listenAddress", fmt::format("{} is not an IP address", shown(*s)), v);
        else if (ip->family != AF_INET) p_.add(pp + ".listenAddress", fmt::format("{}: IPv6 addresses are not supported by kina so far", shown(*s)), v);
        else p.listen_address = ip->str();
      }
    }
    if (const yaml::Node* v = n.get("protocol")) {
      if (auto s = r_.string(*v, pp + ".protocol"); s && !s->empty()) {
        std::string up = *s;
        for (auto& c : up)
          if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (up == "TCP" || up == "UDP") p.protocol = up;
        else if (up == "SCTP") p_.add(pp + ".protocol", "SCTP: port mappings over SCTP are not supported by kina (TCP and UDP are)", v);
        else p_.add(pp + ".protocol", fmt::format("{} is not one of TCP, UDP, SCTP", shown(*s)), v);
      }
    }
    return p;
  }

  // Names, images, the bootstrap node and its API server mapping, counts.
  void finish(ClusterPlan& c, std::vector<NodePlan>& nodes) {
    int cps = 0, workers = 0;
    for (auto& n : nodes) {
      n.cluster = c.name;
      if (o_.image) n.image = *o_.image;
      else if (n.image.empty()) n.image = c.image;
      int& count = n.role == "control-plane" ? cps : workers;
      ++count;
      n.name = fmt::format("{}-{}{}", c.name, n.role, count == 1 ? std::string() : std::to_string(count));
      if (n.role == "control-plane" && count == 1) {
        n.bootstrap = true;
        Port api;
        api.listen_address = c.networking.api_server_address;
        api.host_port = c.networking.api_server_port;
        api.container_port = 6443;
        n.ports.insert(n.ports.begin(), api);
      }
      c.nodes.push_back(n.name);
    }
    if (cps == 0) p_.add("nodes", "no control-plane node (a cluster needs at least one)");
    c.control_planes = cps;
    c.workers = workers;
  }

  Problems& p_;
  FieldReader r_;
  const ConfigOptions& o_;
  bool kina_ = false;
};

}  // namespace detail

// Reads a config (text; `problems` names its source) into a plan. Every
// problem goes to `problems` (Exit::data); the result is valid only when it
// stays empty. Empty `text` with `defaults` gives kind's default cluster.
inline ParsedConfig parse_kind_config(std::string_view text, const ConfigOptions& opts, Problems& problems) {
  yaml::Limits lim;
  lim.max_bytes = kMaxConfigBytes;
  lim.max_depth = 64;
  lim.max_nodes = 100000;
  lim.max_alias_bytes = kMaxConfigBytes;
  detail::ConfigReader reader(problems, opts);
  auto doc = yaml::parse(text, problems.source(), lim);
  if (!doc) {
    problems.add("", doc.error().why);
    return {};
  }
  return reader.read(*doc);
}

// kind's default cluster: one control-plane node, every default.
inline ParsedConfig default_config(const ConfigOptions& opts, Problems& problems) {
  auto out = parse_kind_config("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n", opts, problems);
  out.plan.cluster.config_api_version = std::string(kKindApiVersion);
  return out;
}

}  // namespace kina::node
