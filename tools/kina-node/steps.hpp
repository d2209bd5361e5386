// steps.hpp: what kina-node does to nodes: `init` (kubeadm init on the first
// control plane), `join` (kubeadm join of another node, the CA pinned),
// `addons` (the node image's CNI and storage manifests) and `wait` (every
// node Ready). Each step acts through a Transport only (transport.hpp).
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/json.hpp"
#include "kina/keystore.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "kina/secret.hpp"
#include "kina/validate.hpp"

#include "containerd_patch.hpp"
#include "kubeadm.hpp"
#include "plan.hpp"
#include "transport.hpp"

namespace kina::node {

inline constexpr std::string_view kKubeadmConfigPath = "/kina/kubeadm.yaml";
inline constexpr std::string_view kEncryptionConfigPath = "/etc/kubernetes/encryption/config.yaml";
inline constexpr std::string_view kAdminConf = "/etc/kubernetes/admin.conf";
// The host as a qemu node sees it (QEMU's user-mode network maps it to the host's loopback).
inline constexpr std::string_view kHostFromGuest = "10.0.2.2";
// The group kina's own admin kubeconfigs carry, bound to cluster-admin by init
// (not system:masters, which bypasses RBAC and cannot be revoked).
inline constexpr std::string_view kAdminGroup = "kina:cluster-admins";

// A bootstrap token as kina-kube token prints it (the secret travels on pipes only).
struct JoinToken {
  std::string id, token, expires;
  std::vector<std::string> ca_cert_hashes;
};

// Everything a step reads from its input records.
struct StepInput {
  Plan plan;
  std::map<std::string, MachineInfo> machines;  // by node name (= machine name)
  std::optional<JoinToken> token;
};

struct StepOptions {
  std::chrono::milliseconds timeout = std::chrono::minutes(30);  // kubeadm init/join, wait
  bool verbose = false;
};

inline Result<const NodePlan*> find_node(const Plan& plan, const std::string& name) {
  for (const auto& n : plan.nodes)
    if (n.name == name) return &n;
  return make_error(Exit::no_input, fmt::format("node {}", shown(name)),
                    fmt::format("not in the plan of cluster {}", plan.cluster.name));
}

inline const NodePlan* bootstrap_node(const Plan& plan) {
  for (const auto& n : plan.nodes)
    if (n.bootstrap) return &n;
  return plan.nodes.empty() ? nullptr : &plan.nodes.front();
}

inline Result<MachineInfo> machine_of(const StepInput& in, const std::string& node) {
  auto it = in.machines.find(node);
  if (it == in.machines.end() || it->second.ip.empty())
    return make_error(Exit::no_input, fmt::format("node {}", node),
                      "no Machine record with an ip for it on stdin (pipe kina-vm boot or kina-vm ls into kina-node)");
  return it->second;
}

// The Kubernetes version the node image carries (/kind/version, as kind reads it).
inline Result<std::string> node_kubernetes_version(Transport& t, const std::string& node) {
  auto r = t.run(node, {"cat", "/kind/version"}, fmt::format("reading /kind/version on {}", node));
  if (!r) return r.error();
  std::string v = r->out;
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
  if (v.empty() || v[0] != 'v' || v.size() > 64 || v.find_first_not_of("v0123456789.-+abcdefghijklmnopqrstuvwxyz") != std::string::npos)
    return make_error(Exit::data, fmt::format("/kind/version on {}", node), fmt::format("not a version: {}", shown(v)));
  return v;
}

// A new bootstrap token from kina-kube (its stdout is our pipe, never a file).
inline Result<JoinToken> new_token(const std::string& cluster, const std::string& ttl = "2h") {
  ProcessSpec spec;
  spec.env = tool_env();
  spec.argv = {"kina-kube", "token", "--cluster", cluster, "--ttl", ttl};
  auto r = run_checked_tool(std::move(spec), "making a bootstrap token", [](int c) {
    return c == 66 ? Exit::no_input : Exit::unavailable;
  });
  if (!r) return r.error();
  auto reader = RecordReader::from_string(std::move(r->out), "kina-kube token");
  for (;;) {
    auto rec = reader.next();
    if (!rec) return rec.error();
    if (!rec->has_value()) break;
    if ((*rec)->kind != "JoinToken") continue;
    JoinToken tok;
    auto id = (*rec)->required_string("tokenID");
    auto secret = (*rec)->required_string("token");
    auto exp = (*rec)->required_string("expires");
    if (!id) return id.error();
    if (!secret) return secret.error();
    if (!exp) return exp.error();
    tok.id = *id, tok.token = *secret, tok.expires = *exp;
    simdjson::dom::array hashes;
    if ((*rec)->root()["caCertHashes"].get(hashes) == simdjson::SUCCESS)
      for (auto h : hashes) {
        std::string_view s;
        if (h.get(s) == simdjson::SUCCESS) tok.ca_cert_hashes.emplace_back(s);
      }
    if (tok.ca_cert_hashes.empty())
      return make_error(Exit::data, "kina-kube token", "its JoinToken has no caCertHashes (joins must pin the CA)");
    return tok;
  }
  return make_error(Exit::data, "kina-kube token", "printed no JoinToken record");
}

// A private directory outside $KINA_HOME for the CA keys in clear, removed
// when this goes out of scope (kina-kube refuses clear keys inside the home).
class PrivateTmp {
 public:
  static Result<PrivateTmp> make() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = fmt::format("{}/kina-node.XXXXXX", base && *base ? base : "/tmp");
    if (!::mkdtemp(tmpl.data())) return os_error("making a private temporary directory", errno, Exit::cant_create);
    return PrivateTmp(tmpl);
  }
  PrivateTmp(PrivateTmp&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  PrivateTmp(const PrivateTmp&) = delete;
  ~PrivateTmp() {
    if (!path_.empty()) {
      std::error_code ec;
      fsys::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }

 private:
  explicit PrivateTmp(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

// Copies the cluster's CAs and service-account pair (kina-kube pki export)
// to /etc/kubernetes/pki on the node; kubeadm signs the leaves with them.
inline Status install_pki(Transport& t, const std::string& cluster, const std::string& node) {
  auto tmp = PrivateTmp::make();
  if (!tmp) return tmp.error();
  std::string dir = tmp->path() + "/pki";
  ProcessSpec spec;
  spec.env = tool_env();
  spec.argv = {"kina-kube", "pki", "export", "--cluster", cluster, "--dir", dir};
  auto r = run_checked_tool(std::move(spec), fmt::format("exporting the PKI of cluster {}", cluster),
                            [](int c) { return c == 66 ? Exit::no_input : static_cast<Exit>(c < 128 ? c : 70); });
  if (!r) return r.error();
  if (auto st = t.run(node, {"mkdir", "-p", "-m", "0755", "/etc/kubernetes"}, "making /etc/kubernetes"); !st)
    return st.error();
  return t.copy_in(dir, node, "/etc/kubernetes/pki");
}

// The key that encrypts Secrets in etcd: made once per cluster, kept sealed
// in $KINA_HOME/clusters/C/secrets-encryption.key.sealed.
inline Result<std::string> encryption_config(const std::string& cluster) {
  auto home = kina_home();
  if (!home) return home.error();
  fsys::path dir = *home / "clusters" / cluster;
  if (auto st = ensure_dir(dir, 0700); !st) return st.error();
  fsys::path file = dir / "secrets-encryption.key.sealed";
  std::string role = fmt::format("kina-node/{}/secrets-encryption", cluster);
  std::error_code ec;
  if (!fsys::exists(fsys::symlink_status(file, ec))) {
    Secret fresh = Secret::random(32);
    if (auto st = keystore::store(file, fresh, role); !st) return st.error();
  }
  auto key = keystore::load(file, role);
  if (!key) return key.error();
  if (key->size() != 32)
    return make_error(Exit::data, file.string(), fmt::format("holds a {}-byte key, want 32", key->size()));
  return fmt::format(
      "apiVersion: apiserver.config.k8s.io/v1\n"
      "kind: EncryptionConfiguration\n"
      "resources:\n"
      "- resources: [secrets]\n"
      "  providers:\n"
      "  - secretbox:\n"
      "      keys:\n"
      "      - name: kina-1\n"
      "        secret: {}\n"
      "  - identity: {{}}\n",
      to_base64(key->data(), key->size()));
}

// kubectl on a control plane with the admin.conf kubeadm wrote there.
inline std::vector<std::string> kubectl(std::vector<std::string> args) {
  std::vector<std::string> argv = {"kubectl", "--kubeconfig", std::string(kAdminConf)};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

inline Status apply_manifest(Transport& t, const std::string& node, const std::string& yaml, const std::string& what) {
  auto r = t.run(node, kubectl({"apply", "-f", "-"}), fmt::format("applying {}", what), yaml, std::chrono::minutes(10));
  if (!r) return r.error();
  return {};
}

inline ConfigInputs config_inputs(const Plan& plan, const MachineInfo& cp, const std::string& version,
                                  const JoinToken& tok, const StepInput& in) {
  ConfigInputs ci;
  ci.kubernetes_version = version;
  ci.control_plane_endpoint = cp.ip + ":6443";
  ci.api_server_cert_sans = {"localhost", "127.0.0.1", cp.ip};
  // Several control planes: the endpoint is kina-node lb on the host, which
  // the nodes reach at QEMU's user-mode address of the host.
  if (plan.cluster.control_planes > 1 && plan.cluster.networking.api_server_port > 0) {
    ci.control_plane_endpoint = fmt::format("{}:{}", kHostFromGuest, plan.cluster.networking.api_server_port);
    ci.api_server_cert_sans.emplace_back(kHostFromGuest);
  }
  for (const auto& [name, m] : in.machines)
    if (m.ip != cp.ip) ci.api_server_cert_sans.push_back(m.ip);
  const auto& addr = plan.cluster.networking.api_server_address;
  if (!addr.empty() && addr != "127.0.0.1" && addr != "0.0.0.0") ci.api_server_cert_sans.push_back(addr);
  ci.token = tok.token;
  ci.ca_cert_hashes = tok.ca_cert_hashes;
  if (plan.cluster.encrypt_secrets) ci.encryption_config_path = std::string(kEncryptionConfigPath);
  return ci;
}

// The containerd patches of the plan, applied and containerd restarted.
inline Status apply_containerd_patches(Transport& t, const Plan& plan, const std::string& node) {
  if (plan.cluster.containerd_patches.empty() && plan.cluster.containerd_patches_json6902.empty()) return {};
  auto base = t.run(node, {"cat", "/etc/containerd/config.toml"}, fmt::format("reading containerd's config on {}", node));
  if (!base) return base.error();
  auto toml = generate_containerd_patch(plan.cluster, base->out, node + ":/etc/containerd/config.toml");
  if (!toml) return toml.error();
  if (toml->empty()) return {};
  if (auto st = t.put(node, "/etc/containerd/config.toml", *toml, 0644); !st) return st;
  auto r = t.run(node, {"systemctl", "restart", "containerd"}, fmt::format("restarting containerd on {}", node));
  if (!r) return r.error();
  return {};
}

inline std::string node_record(const Plan& plan, const NodePlan& n, const MachineInfo& m, const std::string& version,
                               std::optional<bool> ready) {
  auto w = begin_record("Node");
  w.field("name", n.name).field("cluster", plan.cluster.name).field("role", n.role).field("machine", m.name);
  w.field("ip", m.ip).field("kubernetesVersion", version);
  if (ready) w.field("ready", *ready);
  w.end_object();
  return w.take();
}

// The ClusterRoleBinding that gives kina's admin group cluster-admin.
inline std::string admin_binding_manifest() {
  return fmt::format(
      "apiVersion: rbac.authorization.k8s.io/v1\n"
      "kind: ClusterRoleBinding\n"
      "metadata:\n"
      "  name: kina-cluster-admins\n"
      "  labels: {{app.kubernetes.io/managed-by: kina}}\n"
      "roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\n"
      "subjects:\n"
      "- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"{}\"}}\n",
      kAdminGroup);
}

inline void progress(const StepOptions& o, const std::string& msg) {
  if (o.verbose) fmt::print(stderr, "kina-node: {}\n", msg);
}

// Runs `attempt` until it succeeds, at most kAttempts times from a clean
// node: under software emulation an API call of kubeadm's can outlast its
// fixed client timeout (10 s for the API server, 2 s for etcd) while the
// control plane is busy, and kubeadm gives up. Between attempts `kubeadm reset
// -f` returns the node to where it was (reset also empties
// /etc/kubernetes/pki, so an attempt installs everything again), unless
// `resumes` says the failure can be resumed where it stopped: then the next
// attempt goes on without a reset, at most kResumes times. Errors other than a
// failed kubeadm (exit 69 from the transport) are not retried. `attempt` gets
// its number (1..) and whether it resumes the one before (`resumes` said
// where); otherwise it starts from a clean node.
inline constexpr int kAttempts = 3;
inline constexpr int kResumes = 4;
template <class Fn>
Status with_retries(Transport& t, const std::string& node, std::string_view what, const StepOptions& o, Fn&& attempt,
                    const std::function<std::optional<std::string>(const Error&)>& resumes = {}) {
  int resets = 0, resumed = 0;
  bool resuming = false;
  for (int i = 1;; ++i) {
    Status st = attempt(i, resuming);
    if (st || st.error().exit != Exit::unavailable) return st;
    resuming = false;
    if (resumed < kResumes && resumes) {
      if (auto where = resumes(st.error())) {
        ++resumed;
        resuming = true;
        warn("kina-node", fmt::format("{} on {} failed (attempt {}): {}; resuming at {} ({} of {})", what, node, i,
                                      st.error().message(), *where, resumed, kResumes));
        continue;
      }
    }
    if (resets == kAttempts - 1) return st;
    ++resets;
    warn("kina-node", fmt::format("{} on {} failed (attempt {}): {}; kubeadm reset and again ({} of {})", what, node,
                                  i, st.error().message(), resets, kAttempts - 1));
    auto r = t.run(node, {"kubeadm", "reset", "-f"}, fmt::format("kubeadm reset on {}", node), std::nullopt,
                   std::chrono::minutes(5));
    if (!r) return r.error();
    progress(o, fmt::format("{}: kubeadm reset done", node));
  }
}

// kubeadm init on the bootstrap control plane.
inline Result<std::string> init(Transport& t, const StepInput& in, const StepOptions& o) {
  const NodePlan* n = bootstrap_node(in.plan);
  if (!n) return make_error(Exit::data, "the plan", "has no nodes");
  auto m = machine_of(in, n->name);
  if (!m) return m.error();
  auto version = node_kubernetes_version(t, n->name);
  if (!version) return version.error();
  JoinToken tok;
  if (in.token) tok = *in.token;
  else if (auto made = new_token(in.plan.cluster.name, "24h"); made) tok = *made;
  else return made.error();
  auto cfg = generate_node_config(in.plan.cluster, *n, *m, config_inputs(in.plan, *m, *version, tok, in));
  if (!cfg) return cfg.error();
  auto attempt = [&](int, bool) -> Status {
    progress(o, fmt::format("{}: installing the cluster CAs", n->name));
    if (auto st = install_pki(t, in.plan.cluster.name, n->name); !st) return st;
    if (in.plan.cluster.encrypt_secrets) {
      auto enc = encryption_config(in.plan.cluster.name);
      if (!enc) return enc.error();
      if (auto st = t.put(n->name, std::string(kEncryptionConfigPath), *enc, 0600); !st) return st;
    }
    if (auto st = apply_containerd_patches(t, in.plan, n->name); !st) return st;
    if (auto st = t.put(n->name, std::string(kKubeadmConfigPath), *cfg, 0600); !st) return st;
    progress(o, fmt::format("{}: kubeadm init (Kubernetes {})", n->name, *version));
    auto r = t.run(n->name,
                   {"kubeadm", "init", "--config", std::string(kKubeadmConfigPath), "--skip-phases=preflight",
                    "--skip-token-print", "--v=1"},
                   fmt::format("kubeadm init on {}", n->name), std::nullopt, o.timeout);
    if (!r) return r.error();
    return {};
  };
  if (auto st = with_retries(t, n->name, "kubeadm init", o, attempt); !st) return st.error();
  if (auto st = apply_manifest(t, n->name, admin_binding_manifest(), "the kina-cluster-admins binding"); !st)
    return st.error();
  return node_record(in.plan, *n, *m, *version, std::nullopt);
}

// A bootstrap token Secret made on the bootstrap control plane, so that a
// join can use a token of its own (sent on stdin, never in an argument).
inline Status register_token(Transport& t, const std::string& cp, const JoinToken& tok) {
  auto dot = tok.token.find('.');
  if (dot == std::string::npos) return make_error(Exit::data, "bootstrap token", "not of the form ID.SECRET");
  std::string yaml = fmt::format(
      "apiVersion: v1\nkind: Secret\ntype: bootstrap.kubernetes.io/token\n"
      "metadata: {{name: bootstrap-token-{0}, namespace: kube-system}}\n"
      "stringData:\n  token-id: \"{0}\"\n  token-secret: \"{1}\"\n  expiration: \"{2}\"\n"
      "  usage-bootstrap-authentication: \"true\"\n  usage-bootstrap-signing: \"true\"\n"
      "  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token\n",
      tok.token.substr(0, dot), tok.token.substr(dot + 1), tok.expires);
  return apply_manifest(t, cp, yaml, "a bootstrap token");
}

// kubeadm join's top-level phases, in order, as kubeadm 1.35 to 1.37 run
// them (cmd/kubeadm/app/cmd/join.go; older ones had etcd inside
// control-plane-join and no kubelet-wait-bootstrap).
inline constexpr std::string_view kJoinPhases[] = {"preflight",  "control-plane-prepare",  "check-etcd",
                                                   "kubelet-start", "etcd-join", "kubelet-wait-bootstrap",
                                                   "control-plane-join", "wait-control-plane"};
inline constexpr int kJoinPhasesSince = 35;  // the first minor version with the list above

// Where a failed kubeadm join can go on without a reset: the top-level phase
// its error names ("error execution phase P" or "P/SUB"), when it comes after
// kubelet-start. By then the node has registered and, for a control plane,
// its etcd member may exist; each later phase checks what is already done
// (etcd-join finds its member by peer URL, a promoted member is left as it
// is), so running it again is safe, where a reset would remove the member and
// start over. Returns the phase and the phases to skip to resume there, or
// nothing.
struct JoinResume {
  std::string phase;
  std::string skips;  // for --skip-phases
};
inline std::optional<JoinResume> join_resume(std::string_view kubeadm_error) {
  const std::string_view mark = "error execution phase ";
  auto at = kubeadm_error.rfind(mark);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = kubeadm_error.substr(at + mark.size());
  size_t end = rest.find_first_of("/: ");
  std::string_view phase = rest.substr(0, end);
  std::string skips;
  bool after_kubelet_start = false;
  for (auto p : kJoinPhases) {
    if (p == phase) return after_kubelet_start ? std::optional<JoinResume>({std::string(p), skips}) : std::nullopt;
    if (!skips.empty()) skips += ',';
    skips += p;
    if (p == "kubelet-start") after_kubelet_start = true;
  }
  return std::nullopt;
}

// The attempts of one kubeadm join, within with_retries' bounds: `fresh(i)`
// from a clean node, `resumed(r)` at the phase where the attempt before it
// failed (join_resume; only when `can_resume`).
template <class Fresh, class Resumed>
Status join_attempts(Transport& t, const std::string& node, const StepOptions& o, bool can_resume, Fresh&& fresh,
                     Resumed&& resumed) {
  std::optional<JoinResume> resume;  // where the last attempt failed, when it can be resumed
  auto attempt = [&](int i, bool resuming) -> Status { return resuming && resume ? resumed(*resume) : fresh(i); };
  auto resumes = [&](const Error& e) -> std::optional<std::string> {
    resume = can_resume ? join_resume(e.message()) : std::nullopt;
    if (!resume) return std::nullopt;
    return "kubeadm's phase " + resume->phase;
  };
  return with_retries(t, node, "kubeadm join", o, attempt, resumes);
}

// kubeadm join of one node; control planes get the CAs first.
inline Result<std::string> join(Transport& t, const StepInput& in, const std::string& name, const StepOptions& o) {
  auto n = find_node(in.plan, name);
  if (!n) return n.error();
  if ((*n)->bootstrap) return make_error(Exit::usage, fmt::format("node {}", name), "is the bootstrap control plane: run init");
  const NodePlan* cpn = bootstrap_node(in.plan);
  auto cp = machine_of(in, cpn->name);
  if (!cp) return cp.error();
  auto m = machine_of(in, name);
  if (!m) return m.error();
  auto version = node_kubernetes_version(t, name);
  if (!version) return version.error();
  JoinToken tok;
  if (in.token) tok = *in.token;
  else if (auto made = new_token(in.plan.cluster.name); made) tok = *made;
  else return made.error();
  if (auto st = register_token(t, cpn->name, tok); !st) return st.error();
  auto cfg = generate_node_config(in.plan.cluster, **n, *m, config_inputs(in.plan, *cp, *version, tok, in));
  if (!cfg) return cfg.error();
  auto kv = parse_kube_version(*version);
  bool can_resume = kv && kv->major == 1 && kv->minor >= kJoinPhasesSince;
  auto resumed = [&](const JoinResume& at) -> Status {
    progress(o, fmt::format("{}: kubeadm join from its phase {}", name, at.phase));
    auto r = t.run(name,
                   {"kubeadm", "join", "--config", std::string(kKubeadmConfigPath), "--skip-phases=" + at.skips, "--v=1"},
                   fmt::format("kubeadm join on {}", name), std::nullopt, o.timeout);
    if (!r) return r.error();
    return {};
  };
  auto fresh = [&](int i) -> Status {
    if ((*n)->role == "control-plane") {
      if (auto st = install_pki(t, in.plan.cluster.name, name); !st) return st;
      if (in.plan.cluster.encrypt_secrets) {
        auto enc = encryption_config(in.plan.cluster.name);
        if (!enc) return enc.error();
        if (auto st = t.put(name, std::string(kEncryptionConfigPath), *enc, 0600); !st) return st;
      }
    }
    if (auto st = apply_containerd_patches(t, in.plan, name); !st) return st;
    if (auto st = t.put(name, std::string(kKubeadmConfigPath), *cfg, 0600); !st) return st;
    progress(o, fmt::format("{}: kubeadm join ({})", name, (*n)->role));
    // A control plane's failed attempt can leave its etcd member behind (a
    // learner that never started: kubeadm adds it, then fails before writing
    // the node's etcd manifest, so `kubeadm reset` does not know to remove
    // it). kubeadm's hidden check-etcd phase then polls that member's status
    // until the etcdAPICall timeout and fails again. Later attempts skip the
    // check (the first passed it); etcd-join finds the member by its peer URL
    // and starts it.
    std::string skip = "--skip-phases=preflight";
    if ((*n)->role == "control-plane" && i > 1) skip += ",check-etcd";
    auto r = t.run(name, {"kubeadm", "join", "--config", std::string(kKubeadmConfigPath), skip, "--v=1"},
                   fmt::format("kubeadm join on {}", name), std::nullopt, o.timeout);
    if (!r) return r.error();
    return {};
  };
  if (auto st = join_attempts(t, name, o, can_resume, fresh, resumed); !st) return st.error();
  return node_record(in.plan, **n, *m, *version, std::nullopt);
}

// The node image's default CNI (with the pod subnet) and storage manifests.
inline Status addons(Transport& t, const StepInput& in, const StepOptions& o) {
  const NodePlan* cpn = bootstrap_node(in.plan);
  if (!cpn) return make_error(Exit::data, "the plan", "has no nodes");
  if (!in.plan.cluster.networking.disable_default_cni) {
    auto r = t.run(cpn->name, {"cat", "/kind/manifests/default-cni.yaml"}, "reading the node image's CNI manifest");
    if (!r) return r.error();
    std::string yaml = r->out;
    const std::string field = "{{ .PodSubnet }}";
    for (size_t at = yaml.find(field); at != std::string::npos; at = yaml.find(field, at))
      yaml.replace(at, field.size(), in.plan.cluster.networking.pod_subnet);
    progress(o, "installing the CNI (pod subnet " + in.plan.cluster.networking.pod_subnet + ")");
    if (auto st = apply_manifest(t, cpn->name, yaml, "the default CNI manifest"); !st) return st;
  }
  progress(o, "installing the default StorageClass");
  auto r = t.run(cpn->name, kubectl({"apply", "-f", "/kind/manifests/default-storage.yaml"}),
                 "applying the node image's storage manifest");
  if (!r) return r.error();
  return {};
}

// The Ready condition of every node the API server knows.
inline Result<std::map<std::string, bool>> node_readiness(Transport& t, const std::string& cp) {
  auto r = t.exec(cp, kubectl({"get", "nodes", "-o", "json"}), std::nullopt, std::chrono::minutes(2));
  if (!r) return r.error();
  std::map<std::string, bool> ready;
  if (!r->success()) return ready;  // the API server may be restarting: not ready yet
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r->out).get(doc) != simdjson::SUCCESS) return ready;
  simdjson::dom::array items;
  if (doc["items"].get(items) != simdjson::SUCCESS) return ready;
  for (auto item : items) {
    std::string_view name;
    if (item["metadata"]["name"].get(name) != simdjson::SUCCESS) continue;
    bool ok = false;
    simdjson::dom::array conds;
    if (item["status"]["conditions"].get(conds) == simdjson::SUCCESS)
      for (auto c : conds) {
        std::string_view type, status;
        if (c["type"].get(type) == simdjson::SUCCESS && type == "Ready" && c["status"].get(status) == simdjson::SUCCESS)
          ok = status == "True";
      }
    ready[std::string(name)] = ok;
  }
  return ready;
}

// Waits until every node of the plan is Ready; one Node record each.
inline Result<std::vector<std::string>> wait_ready(Transport& t, const StepInput& in, const StepOptions& o) {
  const NodePlan* cpn = bootstrap_node(in.plan);
  if (!cpn) return make_error(Exit::data, "the plan", "has no nodes");
  auto version = node_kubernetes_version(t, cpn->name);
  if (!version) return version.error();
  auto deadline = std::chrono::steady_clock::now() + o.timeout;
  std::vector<std::string> waiting;
  for (;;) {
    auto ready = node_readiness(t, cpn->name);
    if (!ready) return ready.error();
    waiting.clear();
    for (const auto& n : in.plan.nodes)
      if (!(*ready)[n.name]) waiting.push_back(n.name);
    if (waiting.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(Exit::temp_fail, "waiting for the nodes to be Ready",
                        fmt::format("still not Ready after {}s: {}",
                                    std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count(),
                                    fmt::join(waiting, ", ")));
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  std::vector<std::string> out;
  for (const auto& n : in.plan.nodes) {
    MachineInfo m{n.name, ""};
    if (auto it = in.machines.find(n.name); it != in.machines.end()) m = it->second;
    out.push_back(node_record(in.plan, n, m, *version, true));
  }
  return out;
}

}  // namespace kina::node
