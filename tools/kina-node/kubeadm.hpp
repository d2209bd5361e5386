// kubeadm.hpp: one node's kubeadm config (ClusterConfiguration, Init- or
// JoinConfiguration, KubeletConfiguration, KubeProxyConfiguration) for its
// Kubernetes version, with the cluster's and the node's patches applied.
// What is generated and why: docs/node-config.md.
#pragma once

#include <sodium.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "kina/yaml.hpp"

#include "patch.hpp"
#include "plan.hpp"

namespace kina::node {

using yaml::Node;

struct MachineInfo {
  std::string name, ip;  // the node's address on the cluster network (kina-vm Machine.ip)
};

struct ConfigInputs {
  std::string kubernetes_version;                // "v1.37.2"
  std::string control_plane_endpoint;            // "IP:6443" of the bootstrap node (or a load balancer)
  std::vector<std::string> api_server_cert_sans;  // empty: kind's [localhost, apiServerAddress]
  std::string token;                             // bootstrap token (secret)
  std::vector<std::string> ca_cert_hashes;       // "sha256:<64 hex>", pinned by joins
  std::string encryption_config_path;            // under /etc/kubernetes/encryption/ when encrypt_secrets
};

// Fixed values of the generated config.
inline constexpr int kApiServerBindPort = 6443;
inline constexpr std::string_view kCriSocket = "unix:///run/containerd/containerd.sock";
inline constexpr std::string_view kEncryptionDir = "/etc/kubernetes/encryption";
inline constexpr std::string_view kBootstrapTokenTtl = "4h0m0s";  // joins happen during create
inline constexpr std::string_view kSlowTimeout = "20m0s";
// Leader election of the controller-manager and the scheduler (see node_config_documents).
inline constexpr std::pair<const char*, const char*> kLeaderElection[] = {
    {"leader-elect-lease-duration", "60s"}, {"leader-elect-renew-deadline", "40s"}, {"leader-elect-retry-period", "10s"}};
// etcd's raft timing (milliseconds; etcd's defaults are 100 and 1000): see node_config_documents.
inline constexpr std::pair<const char*, const char*> kEtcdTiming[] = {{"heartbeat-interval", "500"},
                                                                     {"election-timeout", "5000"}};         // nodes may run under emulation

// ---------------------------------------------------------------------------
// Versions.

struct KubeVersion {
  int major = 0, minor = 0, patch = 0;
  std::string text;  // as given, "v1.37.2"
};

inline Result<KubeVersion> parse_kube_version(std::string_view s) {
  auto bad = [&] {
    return make_error(Exit::usage, fmt::format("invalid Kubernetes version {}", shown(s)),
                      "expected vMAJOR.MINOR.PATCH, e.g. v1.37.2");
  };
  KubeVersion v;
  v.text = std::string(s);
  if (s.size() < 6 || s.size() > 64 || s[0] != 'v') return bad();
  std::string_view rest = s.substr(1);
  int* parts[] = {&v.major, &v.minor, &v.patch};
  for (int i = 0; i < 3; ++i) {
    size_t n = 0;
    int val = 0;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9' && n < 6) val = val * 10 + (rest[n++] - '0');
    if (n == 0 || (n > 1 && rest[0] == '0')) return bad();
    *parts[i] = val;
    rest.remove_prefix(n);
    if (i < 2) {
      if (rest.empty() || rest[0] != '.') return bad();
      rest.remove_prefix(1);
    }
  }
  // A pre-release or build suffix (-rc.1, +abc) is kept as given.
  if (!rest.empty() && rest[0] != '-' && rest[0] != '+') return bad();
  for (char c : rest)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
          c == '+'))
      return bad();
  return v;
}

enum class KubeadmApi { v1beta2, v1beta3, v1beta4 };

inline std::string_view api_name(KubeadmApi a) {
  switch (a) {
    case KubeadmApi::v1beta2: return "kubeadm.k8s.io/v1beta2";
    case KubeadmApi::v1beta3: return "kubeadm.k8s.io/v1beta3";
    case KubeadmApi::v1beta4: return "kubeadm.k8s.io/v1beta4";
  }
  return "";
}

// kind's boundaries: v1beta4 from 1.36, v1beta3 from 1.23; v1beta2 only for
// 1.20 to 1.22 (the Debian-source fallback image); anything older is refused.
inline Result<KubeadmApi> kubeadm_api_for(const KubeVersion& v) {
  if (v.major != 1 || v.minor < 20)
    return make_error(Exit::data, fmt::format("Kubernetes {}", v.text),
                      "older than v1.20, the oldest version kina configures (kubeadm.k8s.io/v1beta2 from v1.20 to "
                      "v1.22, v1beta3 to v1.35, v1beta4 from v1.36)");
  if (v.minor < 23) return KubeadmApi::v1beta2;
  if (v.minor < 36) return KubeadmApi::v1beta3;
  return KubeadmApi::v1beta4;
}

// ---------------------------------------------------------------------------
// Building blocks.

namespace detail {

inline Node str(std::string_view s) { return Node::scalar(std::string(s)); }  // quoted when it would read as non-string
inline Node num(long long n) { return Node::scalar(std::to_string(n), yaml::Style::plain); }
inline Node boolean(bool b) { return Node::scalar(b ? "true" : "false", yaml::Style::plain); }
inline Node str_list(const std::vector<std::string>& v) {
  Node l = Node::sequence();
  for (const auto& s : v) l.items.push_back(str(s));
  return l;
}

using Args = std::vector<std::pair<std::string, std::string>>;

// extraArgs / kubeletExtraArgs: a map before v1beta4, a list of {name, value} from it.
inline Node extra_args(const Args& args, KubeadmApi api) {
  if (api == KubeadmApi::v1beta4) {
    Node l = Node::sequence();
    for (const auto& [k, v] : args) {
      Node item = Node::mapping();
      item.set("name", str(k));
      item.set("value", str(v));
      l.items.push_back(std::move(item));
    }
    return l;
  }
  Node m = Node::mapping();
  for (const auto& [k, v] : args) m.set(k, str(v));
  return m;
}

inline Node type_header(std::string_view api_version, std::string_view kind) {
  Node d = Node::mapping();
  d.set("apiVersion", str(api_version));
  d.set("kind", str(kind));
  return d;
}

// "k1=v1,k2=v2" in key order (kind's form of --feature-gates, --runtime-config, --node-labels).
template <class Map, class Fmt>
std::string joined(const Map& m, Fmt f) {
  std::string out;
  for (const auto& [k, v] : m) {
    if (!out.empty()) out += ',';
    out += k;
    out += '=';
    out += f(v);
  }
  return out;
}

inline Node feature_gate_map(const std::map<std::string, bool>& gates) {
  Node m = Node::mapping();
  for (const auto& [k, v] : gates) m.set(k, boolean(v));
  return m;
}

inline Node timeouts() {
  Node t = Node::mapping();
  for (const char* k : {"controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall", "etcdAPICall",
                        "tlsBootstrap", "discovery"})
    t.set(k, str(kSlowTimeout));
  return t;
}

// A key=value list item must not carry the separators of its flag.
inline Status check_pairs_field(std::string_view field, std::string_view key, std::string_view value,
                                bool value_may_have_equals) {
  auto bad = [&](std::string why) {
    return make_error(Exit::data, fmt::format("{} {}", field, shown(key)), std::move(why));
  };
  if (key.empty()) return bad("empty name");
  if (key.find_first_of(",= \t\r\n") != std::string_view::npos) return bad("a name must not contain ',', '=' or spaces");
  if (value.find_first_of(",\r\n") != std::string_view::npos ||
      (!value_may_have_equals && value.find('=') != std::string_view::npos))
    return bad("the value must not contain ',' or line breaks");
  return ok_status();
}

inline bool is_token(std::string_view t) {
  if (t.size() != 23) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (!(i == 6 ? c == '.' : (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

inline bool is_ca_hash(std::string_view h) {
  if (h.size() != 7 + 64 || h.substr(0, 7) != "sha256:") return false;
  for (char c : h.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Zeroes a tree's strings (the documents hold the bootstrap token).
inline void wipe(Node& n) {
  auto zero = [](std::string& s) {
    if (!s.empty()) sodium_memzero(s.data(), s.size());
    s.clear();
  };
  zero(n.value);
  for (Node& i : n.items) wipe(i);
  for (auto& kv : n.map) {
    zero(kv.first);
    wipe(kv.second);
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Checks of what the generator is given.

inline Status check_config_inputs(const ClusterPlan& c, const NodePlan& n, const MachineInfo& self,
                                  const ConfigInputs& in) {
  auto usage = [](std::string what, std::string why) { return make_error(Exit::usage, std::move(what), std::move(why)); };
  auto data = [](std::string what, std::string why) { return make_error(Exit::data, std::move(what), std::move(why)); };
  if (c.name.empty()) return data("cluster plan", "the cluster has no name");
  if (n.name.empty()) return data("node plan", "the node has no name");
  if (n.role != "control-plane" && n.role != "worker")
    return data(fmt::format("node {}", n.name), fmt::format("role {}: expected control-plane or worker", shown(n.role)));
  if (n.bootstrap && n.role != "control-plane")
    return data(fmt::format("node {}", n.name), "only a control-plane node can be the bootstrap node");
  if (c.networking.ip_family != "ipv4")
    return data(fmt::format("networking.ipFamily {}", c.networking.ip_family), "kina supports only ipv4 so far");
  const std::string& mode = c.networking.kube_proxy_mode;
  if (mode != "iptables" && mode != "ipvs" && mode != "nftables" && mode != "none")
    return data(fmt::format("networking.kubeProxyMode {}", shown(mode)), "expected iptables, ipvs, nftables or none");
  for (auto [field, v] : {std::pair<const char*, const std::string*>{"networking.podSubnet", &c.networking.pod_subnet},
                          {"networking.serviceSubnet", &c.networking.service_subnet}})
    if (auto r = parse_cidr(*v); !r) return data(field, r.error().what + ": " + r.error().why);
  for (const auto& [k, v] : c.feature_gates) {
    (void)v;
    if (auto st = detail::check_pairs_field("featureGates", k, "", false); !st) return st;
  }
  for (const auto& [k, v] : c.runtime_config)
    if (auto st = detail::check_pairs_field("runtimeConfig", k, v, false); !st) return st;
  for (const auto& [k, v] : n.labels)
    if (auto st = detail::check_pairs_field(fmt::format("nodes[{}].labels", n.index), k, v, false); !st) return st;

  if (auto ip = parse_ip(self.ip); !ip || ip->family != AF_INET)
    return usage(fmt::format("node {} address {}", n.name, shown(self.ip)), "expected an IPv4 address");
  if (in.control_plane_endpoint.empty()) return usage("control plane endpoint", "missing (expected HOST:PORT)");
  if (in.control_plane_endpoint.find_first_of(" \t\r\n\"',") != std::string::npos ||
      in.control_plane_endpoint.find(':') == std::string::npos)
    return usage(fmt::format("control plane endpoint {}", shown(in.control_plane_endpoint)), "expected HOST:PORT");
  for (const auto& san : in.api_server_cert_sans)
    if (!parse_ip(san))
      if (auto st = validate_host_name("API server certificate SAN", san, true); !st) return st;
  // The token is a secret: never quoted in a message.
  if (!detail::is_token(in.token))
    return usage("bootstrap token", "missing or malformed (expected [a-z0-9]{6}.[a-z0-9]{16})");
  if (!n.bootstrap) {
    if (in.ca_cert_hashes.empty())
      return usage(fmt::format("node {}", n.name),
                   "a join needs the cluster CA's hash (sha256:...): kina never skips CA verification");
    for (const auto& h : in.ca_cert_hashes)
      if (!detail::is_ca_hash(h)) return usage(fmt::format("CA certificate hash {}", shown(h)), "expected sha256:<64 hex digits>");
  }
  if (c.encrypt_secrets) {
    const std::string& p = in.encryption_config_path;
    std::string dir = std::string(kEncryptionDir) + "/";
    if (p.size() <= dir.size() || p.compare(0, dir.size(), dir) != 0 || p.find("/..") != std::string::npos ||
        p.find("/./") != std::string::npos || p.find("//") != std::string::npos || p.back() == '/' ||
        p.find_first_of(" \t\r\n,\"'") != std::string::npos)
      return usage(fmt::format("encryption config path {}", shown(p)),
                   fmt::format("secrets encryption is on: expected a file in {}/", kEncryptionDir));
  }
  return ok_status();
}

// ---------------------------------------------------------------------------
// The documents, before patches.

inline Result<std::vector<Node>> node_config_documents(const ClusterPlan& c, const NodePlan& n, const MachineInfo& self,
                                                       const ConfigInputs& in) {
  if (auto st = check_config_inputs(c, n, self, in); !st) return st.error();
  auto ver = parse_kube_version(in.kubernetes_version);
  if (!ver) return ver.error();
  auto api = kubeadm_api_for(*ver);
  if (!api) return api.error();
  const KubeadmApi a = *api;
  const std::string_view kubeadm_api = api_name(a);
  const bool control_plane = n.role == "control-plane";
  const bool proxy = c.networking.kube_proxy_mode != "none";
  using detail::num;
  using detail::str;

  std::string gates = detail::joined(c.feature_gates, [](bool b) { return b ? "true" : "false"; });
  std::string runtime = detail::joined(c.runtime_config, [](const std::string& s) { return s; });
  std::string labels = detail::joined(n.labels, [](const std::string& s) { return s; });

  std::vector<Node> docs;

  // ClusterConfiguration.
  {
    Node d = detail::type_header(kubeadm_api, "ClusterConfiguration");
    d.set("kubernetesVersion", str(ver->text));
    d.set("clusterName", str(c.name));
    if (ver->minor == 20) {  // kind: kubeadm's own dual-stack gate, needed on 1.20 only
      Node fg = Node::mapping();
      fg.set("IPv6DualStack", detail::boolean(true));
      d.set("featureGates", std::move(fg));
    }
    d.set("controlPlaneEndpoint", str(in.control_plane_endpoint));

    Node apiserver = Node::mapping();
    std::vector<std::string> sans;
    const auto& given = in.api_server_cert_sans.empty()
                            ? std::vector<std::string>{"localhost", c.networking.api_server_address}
                            : in.api_server_cert_sans;
    for (const auto& s : given)
      if (std::find(sans.begin(), sans.end(), s) == sans.end()) sans.push_back(s);
    apiserver.set("certSANs", detail::str_list(sans));
    detail::Args args{{"runtime-config", runtime}};
    if (!gates.empty()) args.emplace_back("feature-gates", gates);
    if (c.encrypt_secrets) args.emplace_back("encryption-provider-config", in.encryption_config_path);
    apiserver.set("extraArgs", detail::extra_args(args, a));
    if (c.encrypt_secrets) {
      Node vol = Node::mapping();
      vol.set("name", str("encryption-config"));
      vol.set("hostPath", str(kEncryptionDir));
      vol.set("mountPath", str(kEncryptionDir));
      vol.set("readOnly", detail::boolean(true));
      vol.set("pathType", str("DirectoryOrCreate"));
      Node vols = Node::sequence();
      vols.items.push_back(std::move(vol));
      apiserver.set("extraVolumes", std::move(vols));
    }
    if (a != KubeadmApi::v1beta4) apiserver.set("timeoutForControlPlane", str(kSlowTimeout));
    d.set("apiServer", std::move(apiserver));

    detail::Args cm, sched_le;
    if (!gates.empty()) cm.emplace_back("feature-gates", gates);
    cm.emplace_back("enable-hostpath-provisioner", "true");
    // Leader election with room for emulation: with the defaults (15 s lease,
    // 10 s renew deadline) a control plane under TCG loses the lease whenever
    // the API server is slow to answer (seen after `kina start cluster`: the
    // controller-manager exited "leaderelection lost" again and again, and
    // EndpointSlices went stale). Same values for the scheduler.
    for (detail::Args* list : {&cm, &sched_le})
      for (const auto& [k, v] : kLeaderElection) list->emplace_back(k, v);
    Node cmn = Node::mapping();
    cmn.set("extraArgs", detail::extra_args(cm, a));
    d.set("controllerManager", std::move(cmn));

    detail::Args sched;
    if (!gates.empty()) sched.emplace_back("feature-gates", gates);
    sched.insert(sched.end(), sched_le.begin(), sched_le.end());
    Node sn = Node::mapping();
    sn.set("extraArgs", detail::extra_args(sched, a));
    d.set("scheduler", std::move(sn));

    // etcd with room for emulation: under TCG a leader of three members missed
    // its 100 ms heartbeats for seconds at a time ("leader failed to send out
    // heartbeat on time"), and kubeadm's 2 s etcd calls of a joining control
    // plane timed out. One member is not affected.
    detail::Args etcd_args(std::begin(kEtcdTiming), std::end(kEtcdTiming));
    Node local = Node::mapping();
    local.set("extraArgs", detail::extra_args(etcd_args, a));
    Node etcd = Node::mapping();
    etcd.set("local", std::move(local));
    d.set("etcd", std::move(etcd));

    Node net = Node::mapping();
    net.set("podSubnet", str(c.networking.pod_subnet));
    net.set("serviceSubnet", str(c.networking.service_subnet));
    net.set("dnsDomain", str("cluster.local"));
    d.set("networking", std::move(net));
    docs.push_back(std::move(d));
  }

  // nodeRegistration, shared by Init and Join.
  Node reg = Node::mapping();
  reg.set("name", str(n.name));
  reg.set("criSocket", str(kCriSocket));
  reg.set("kubeletExtraArgs", detail::extra_args({{"node-ip", self.ip}, {"node-labels", labels}}, a));
  // kind removes the control-plane taint when there are no workers (after
  // init); kina says so in the config, for every control plane.
  if (control_plane && c.workers == 0) reg.set("taints", Node::sequence());

  Node local_endpoint = Node::mapping();
  local_endpoint.set("advertiseAddress", str(self.ip));
  local_endpoint.set("bindPort", num(kApiServerBindPort));

  if (n.bootstrap) {
    Node d = detail::type_header(kubeadm_api, "InitConfiguration");
    Node tok = Node::mapping();
    tok.set("token", str(in.token));
    tok.set("ttl", str(kBootstrapTokenTtl));
    Node toks = Node::sequence();
    toks.items.push_back(std::move(tok));
    d.set("bootstrapTokens", std::move(toks));
    d.set("localAPIEndpoint", std::move(local_endpoint));
    d.set("nodeRegistration", std::move(reg));
    if (a != KubeadmApi::v1beta2) {  // skipPhases is v1beta3+
      std::vector<std::string> skip{"preflight"};
      if (!proxy) skip.push_back("addon/kube-proxy");
      d.set("skipPhases", detail::str_list(skip));
    }
    if (a == KubeadmApi::v1beta4) d.set("timeouts", detail::timeouts());
    docs.push_back(std::move(d));
  } else {
    Node d = detail::type_header(kubeadm_api, "JoinConfiguration");
    if (control_plane) {
      Node cp = Node::mapping();
      cp.set("localAPIEndpoint", std::move(local_endpoint));
      d.set("controlPlane", std::move(cp));
    }
    d.set("nodeRegistration", std::move(reg));
    Node bt = Node::mapping();
    bt.set("apiServerEndpoint", str(in.control_plane_endpoint));
    bt.set("token", str(in.token));
    bt.set("caCertHashes", detail::str_list(in.ca_cert_hashes));
    Node disc = Node::mapping();
    disc.set("bootstrapToken", std::move(bt));
    if (a != KubeadmApi::v1beta4) disc.set("timeout", str(kSlowTimeout));
    d.set("discovery", std::move(disc));
    if (a != KubeadmApi::v1beta2) d.set("skipPhases", detail::str_list({"preflight"}));
    if (a == KubeadmApi::v1beta4) d.set("timeouts", detail::timeouts());
    docs.push_back(std::move(d));
  }

  // KubeletConfiguration.
  {
    Node d = detail::type_header("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration");
    d.set("cgroupDriver", str("systemd"));
    d.set("failSwapOn", detail::boolean(false));
    d.set("imageGCHighThresholdPercent", num(100));
    Node ev = Node::mapping();
    for (const char* k : {"nodefs.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree"})
      ev.set(k, str("0%"));
    ev.set("memory.available", str("100Mi"));
    d.set("evictionHard", std::move(ev));
    if (!c.feature_gates.empty()) d.set("featureGates", detail::feature_gate_map(c.feature_gates));
    docs.push_back(std::move(d));
  }

  // KubeProxyConfiguration (none: no document, and init skips the addon).
  if (proxy) {
    Node d = detail::type_header("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration");
    d.set("mode", str(c.networking.kube_proxy_mode));
    if (!c.feature_gates.empty()) d.set("featureGates", detail::feature_gate_map(c.feature_gates));
    Node ipt = Node::mapping();
    ipt.set("minSyncPeriod", str("1s"));
    d.set("iptables", std::move(ipt));
    Node ct = Node::mapping();
    ct.set("maxPerCore", num(0));
    if (c.networking.kube_proxy_mode == "nftables") ct.set("tcpBeLiberal", detail::boolean(true));
    d.set("conntrack", std::move(ct));
    docs.push_back(std::move(d));
  }
  return docs;
}

// Serialises documents as one YAML stream ("---" between documents).
inline Result<std::string> emit_documents(const std::vector<Node>& docs) {
  std::string out;
  for (size_t i = 0; i < docs.size(); ++i) {
    auto text = yaml::emit(docs[i]);
    if (!text) {
      if (!out.empty()) sodium_memzero(out.data(), out.size());
      return text.error();
    }
    if (i) out += "---\n";
    out += *text;
    sodium_memzero(text->data(), text->size());
  }
  return out;
}

// The node's kubeadm config: the documents above, then the cluster's
// kubeadmConfigPatches and kubeadmConfigPatchesJSON6902, then the node's.
inline Result<std::string> generate_node_config(const ClusterPlan& c, const NodePlan& n, const MachineInfo& self,
                                                const ConfigInputs& in) {
  auto docs = node_config_documents(c, n, self, in);
  if (!docs) return docs.error();
  struct Wipe {
    std::vector<Node>& d;
    ~Wipe() {
      for (Node& x : d) detail::wipe(x);
    }
  } wipe{*docs};
  if (auto st = apply_patches(*docs, c.kubeadm_patches, c.kubeadm_patches_json6902, ""); !st) return st.error();
  if (auto st = apply_patches(*docs, n.kubeadm_patches, n.kubeadm_patches_json6902,
                              fmt::format("nodes[{}].", n.index));
      !st)
    return st.error();
  return emit_documents(*docs);
}

// ---------------------------------------------------------------------------
// networking.dnsSearch: kind does not put it in the kubeadm config; its node
// entrypoint rewrites the node's /etc/resolv.conf (which kubelet hands to
// pods): unset leaves the file alone, an empty list removes every `search`
// line, a list replaces them with one `search` line first. The same rewrite
// for a VM node's resolv.conf.
// Each domain must be a DNS name (nothing that could add a line or an option).
inline Result<std::string> resolv_conf_with_search(std::string_view resolv,
                                                   const std::optional<std::vector<std::string>>& search) {
  if (!search) return std::string(resolv);
  if (search->size() > 32)
    return make_error(Exit::data, "networking.dnsSearch", "more than 32 domains");
  for (const auto& d : *search)
    if (auto st = validate_host_name("networking.dnsSearch domain", d, false); !st)
      return make_error(Exit::data, st.error().what, st.error().why);
  std::string out;
  if (!search->empty()) {
    out = "search";
    for (const auto& d : *search) out += " " + d;
    out += "\n";
  }
  size_t pos = 0;
  while (pos < resolv.size()) {
    size_t nl = resolv.find('\n', pos);
    std::string_view line = resolv.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? resolv.size() : nl + 1;
    if (line.substr(0, 6) == "search") continue;
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace kina::node
