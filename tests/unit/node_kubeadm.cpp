// Unit tests of tools/kina-node/kubeadm.hpp: the kubeadm config of each node,
// compared with golden files in tests/cli/node/golden/kubeadm-<case>.yaml.
//
// Regenerate the goldens after an intended change (then read the diff!):
//   KINA_UPDATE_GOLDENS=1 meson test -C build --no-rebuild node-kubeadm node-patch
// The test then writes the files instead of comparing them, and fails so that a
// run with the variable set never passes by accident.
#define BOOST_TEST_MODULE node_kubeadm
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "kubeadm.hpp"

using namespace kina;
using namespace kina::node;

namespace {

const std::string kToken = "abcdef.0123456789abcdef";
const std::string kHash = "sha256:" + std::string(64, 'a');

std::string golden_dir() {
  const char* src = std::getenv("KINA_SRC");
  BOOST_REQUIRE_MESSAGE(src, "KINA_SRC is not set (meson test sets it)");
  return std::string(src) + "/tests/cli/node/golden/";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Compares `got` with the golden file, or writes it with KINA_UPDATE_GOLDENS=1.
void check_golden(const std::string& name, const std::string& got) {
  std::string path = golden_dir() + name;
  if (std::getenv("KINA_UPDATE_GOLDENS")) {
    std::ofstream(path, std::ios::binary) << got;
    BOOST_ERROR("wrote " + path + " (KINA_UPDATE_GOLDENS is set: unset it to compare)");
    return;
  }
  std::ifstream probe(path);
  BOOST_REQUIRE_MESSAGE(probe.good(), "missing golden " + path + " (KINA_UPDATE_GOLDENS=1 writes it)");
  std::string want = read_file(path);
  BOOST_TEST(got == want, "output differs from " + path + ":\n" + got);
}

struct Case {
  ClusterPlan cluster;
  NodePlan node;
  MachineInfo self;
  ConfigInputs in;
};

// A cluster of `cps` control planes and `workers` workers, and its node `name`.
Case make_case(const std::string& version, const std::string& role, bool bootstrap, int cps = 1, int workers = 1) {
  Case c;
  c.cluster.name = "kind";
  c.cluster.config_api_version = "kind.x-k8s.io/v1alpha4";
  c.cluster.image = "kina.local/node:" + version;
  c.cluster.control_planes = cps;
  c.cluster.workers = workers;
  c.node.cluster = "kind";
  c.node.role = role;
  c.node.bootstrap = bootstrap;
  c.node.image = c.cluster.image;
  if (bootstrap) {
    c.node.name = "kind-control-plane";
    c.node.index = 0;
    c.self = {"kind-control-plane", "10.89.0.2"};
  } else if (role == "control-plane") {
    c.node.name = "kind-control-plane2";
    c.node.index = 1;
    c.self = {"kind-control-plane2", "10.89.0.3"};
  } else {
    c.node.name = "kind-worker";
    c.node.index = cps;
    c.self = {"kind-worker", "10.89.0.5"};
  }
  c.in.kubernetes_version = version;
  c.in.control_plane_endpoint = "10.89.0.2:6443";
  c.in.api_server_cert_sans = {"localhost", "127.0.0.1", "10.89.0.2"};
  c.in.token = kToken;
  if (!bootstrap) c.in.ca_cert_hashes = {kHash};
  c.in.encryption_config_path = "/etc/kubernetes/encryption/config.yaml";
  return c;
}

std::string gen(const Case& c) {
  auto r = generate_node_config(c.cluster, c.node, c.self, c.in);
  BOOST_REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message()));
  return *r;
}

Error gen_error(const Case& c) {
  auto r = generate_node_config(c.cluster, c.node, c.self, c.in);
  BOOST_REQUIRE_MESSAGE(!r.ok(), "expected an error");
  return r.error();
}

std::vector<yaml::Node> docs_of(const std::string& text) {
  auto d = yaml::parse_all(text, "generated");
  BOOST_REQUIRE_MESSAGE(d.ok(), (d.ok() ? "" : d.error().message()));
  return *d;
}

const yaml::Node* doc_of_kind(const std::vector<yaml::Node>& docs, const std::string& kind) {
  for (const auto& d : docs)
    if (d.get_string("kind") == kind) return &d;
  return nullptr;
}

// The value at a /-separated path of mapping keys and list indexes.
const yaml::Node* at(const yaml::Node& n, const std::string& path) {
  const yaml::Node* cur = &n;
  std::istringstream s(path);
  std::string tok;
  while (std::getline(s, tok, '/')) {
    if (tok.empty()) continue;
    if (cur->is_seq()) {
      size_t i = std::stoul(tok);
      if (i >= cur->items.size()) return nullptr;
      cur = &cur->items[i];
    } else {
      cur = cur->get(tok);
    }
    if (!cur) return nullptr;
  }
  return cur;
}

std::string value_at(const yaml::Node& n, const std::string& path) {
  const yaml::Node* v = at(n, path);
  return v && v->is_scalar() ? v->value : std::string("<missing>");
}

}  // namespace

// ---------------------------------------------------------------------------
// Goldens.

BOOST_AUTO_TEST_CASE(golden_v1_35_init) { check_golden("kubeadm-v1.35-init.yaml", gen(make_case("v1.35.4", "control-plane", true))); }
BOOST_AUTO_TEST_CASE(golden_v1_37_init) { check_golden("kubeadm-v1.37-init.yaml", gen(make_case("v1.37.2", "control-plane", true))); }
BOOST_AUTO_TEST_CASE(golden_v1_37_control_plane_join) {
  check_golden("kubeadm-v1.37-control-plane-join.yaml", gen(make_case("v1.37.2", "control-plane", false, 3, 1)));
}
BOOST_AUTO_TEST_CASE(golden_v1_37_worker_join) {
  check_golden("kubeadm-v1.37-worker-join.yaml", gen(make_case("v1.37.2", "worker", false)));
}
BOOST_AUTO_TEST_CASE(golden_v1_35_worker_join) {
  check_golden("kubeadm-v1.35-worker-join.yaml", gen(make_case("v1.35.4", "worker", false)));
}
BOOST_AUTO_TEST_CASE(golden_v1_22_init_v1beta2) {
  check_golden("kubeadm-v1.22-init.yaml", gen(make_case("v1.22.17", "control-plane", true)));
}
BOOST_AUTO_TEST_CASE(golden_v1_20_worker_join_v1beta2) {
  check_golden("kubeadm-v1.20-worker-join.yaml", gen(make_case("v1.20.2", "worker", false)));
}
BOOST_AUTO_TEST_CASE(golden_v1_37_single_node) {
  check_golden("kubeadm-v1.37-single-node.yaml", gen(make_case("v1.37.2", "control-plane", true, 1, 0)));
}

BOOST_AUTO_TEST_CASE(golden_v1_37_feature_gates_runtime_config) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.cluster.feature_gates = {{"InPlacePodVerticalScaling", true}, {"AllAlpha", false}};
  c.cluster.runtime_config = {{"api/alpha", "false"}, {"resource.k8s.io/v1beta1", "true"}};
  c.node.labels = {{"ingress-ready", "true"}, {"tier", "front"}};
  check_golden("kubeadm-v1.37-feature-gates.yaml", gen(c));
}
BOOST_AUTO_TEST_CASE(golden_v1_35_feature_gates_runtime_config) {
  Case c = make_case("v1.35.4", "control-plane", true);
  c.cluster.feature_gates = {{"InPlacePodVerticalScaling", true}, {"AllAlpha", false}};
  c.cluster.runtime_config = {{"api/alpha", "false"}};
  check_golden("kubeadm-v1.35-feature-gates.yaml", gen(c));
}

BOOST_AUTO_TEST_CASE(golden_v1_37_kube_proxy_nftables) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.cluster.networking.kube_proxy_mode = "nftables";
  check_golden("kubeadm-v1.37-proxy-nftables.yaml", gen(c));
}
BOOST_AUTO_TEST_CASE(golden_v1_37_kube_proxy_none) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.cluster.networking.kube_proxy_mode = "none";
  check_golden("kubeadm-v1.37-proxy-none.yaml", gen(c));
}
BOOST_AUTO_TEST_CASE(golden_v1_37_encryption_off) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.cluster.encrypt_secrets = false;
  c.in.encryption_config_path.clear();
  check_golden("kubeadm-v1.37-encryption-off.yaml", gen(c));
}
BOOST_AUTO_TEST_CASE(golden_v1_35_encryption_off) {
  Case c = make_case("v1.35.4", "control-plane", true);
  c.cluster.encrypt_secrets = false;
  c.in.encryption_config_path.clear();
  check_golden("kubeadm-v1.35-encryption-off.yaml", gen(c));
}

// Cluster-wide then per-node merge patches, kind's usual examples among them.
Case strategic_case(const std::string& version) {
  Case c = make_case(version, "worker", false);
  c.cluster.kubeadm_patches = {
      // no apiVersion: matches every version's ClusterConfiguration; the old map
      // form of extraArgs is converted for v1beta4.
      "kind: ClusterConfiguration\n"
      "apiServer:\n"
      "  certSANs: [my.example.com, localhost]\n"
      "  extraArgs:\n"
      "    audit-log-maxage: \"7\"\n"
      "    runtime-config: null\n"
      "controllerManager:\n"
      "  extraArgs:\n"
      "    enable-hostpath-provisioner: \"false\"\n",
      // two documents in one entry; a KubeletConfiguration patch and one for
      // InitConfiguration (matches nothing on a worker: skipped, as kind does).
      "kind: KubeletConfiguration\n"
      "maxPods: 150\n"
      "evictionHard:\n"
      "  memory.available: null\n"
      "---\n"
      "kind: InitConfiguration\n"
      "nodeRegistration:\n"
      "  kubeletExtraArgs:\n"
      "    v: \"4\"\n",
  };
  c.node.kubeadm_patches = {
      "kind: JoinConfiguration\n"
      "nodeRegistration:\n"
      "  kubeletExtraArgs:\n"
      "    node-labels: \"ingress-ready=true\"\n"
      "    max-pods: \"120\"\n",
      // a patch for the other API version matches nothing
      std::string("apiVersion: kubeadm.k8s.io/") + (version == "v1.37.2" ? "v1beta3" : "v1beta4") +
          "\nkind: JoinConfiguration\nnodeRegistration:\n  name: not-applied\n",
  };
  return c;
}

BOOST_AUTO_TEST_CASE(golden_v1_37_strategic_patches) {
  check_golden("kubeadm-v1.37-strategic-patches.yaml", gen(strategic_case("v1.37.2")));
}
BOOST_AUTO_TEST_CASE(golden_v1_35_strategic_patches) {
  check_golden("kubeadm-v1.35-strategic-patches.yaml", gen(strategic_case("v1.35.4")));
}

BOOST_AUTO_TEST_CASE(golden_v1_37_json6902_patches) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.cluster.kubeadm_patches_json6902 = {
      {"kubeadm.k8s.io", "v1beta4", "ClusterConfiguration",
       "- op: add\n  path: /apiServer/extraArgs/-\n  value: {name: audit-log-maxage, value: \"7\"}\n"
       "- op: test\n  path: /networking/dnsDomain\n  value: cluster.local\n"
       "- op: replace\n  path: /networking/serviceSubnet\n  value: 10.97.0.0/16\n"},
      {"kubelet.config.k8s.io", "v1beta1", "KubeletConfiguration",
       R"([{"op": "add", "path": "/maxPods", "value": 200}, {"op": "remove", "path": "/evictionHard/memory.available"}])"},
      // group/version not matching: skipped
      {"kubeadm.k8s.io", "v1beta3", "ClusterConfiguration", "- op: remove\n  path: /nothing\n"},
  };
  c.node.kubeadm_patches_json6902 = {
      {"", "", "InitConfiguration",  // no group/version: matched by kind only
       "- op: copy\n  from: /localAPIEndpoint/advertiseAddress\n  path: /nodeRegistration/kubeletExtraArgs/0/value\n"
       "- op: move\n  from: /skipPhases\n  path: /x-skipped\n"
       "- op: add\n  path: /skipPhases\n  value: [preflight]\n"
       "- op: remove\n  path: /x-skipped\n"},
  };
  check_golden("kubeadm-v1.37-json6902-patches.yaml", gen(c));
}

// ---------------------------------------------------------------------------
// Semantics.

BOOST_AUTO_TEST_CASE(version_boundaries) {
  auto api = [](const std::string& v) {
    auto p = parse_kube_version(v);
    BOOST_REQUIRE_MESSAGE(p.ok(), v);
    auto a = kubeadm_api_for(*p);
    return a.ok() ? std::string(api_name(*a)) : std::string("refused");
  };
  BOOST_TEST(api("v1.19.16") == "refused");
  BOOST_TEST(api("v1.20.2") == "kubeadm.k8s.io/v1beta2");
  BOOST_TEST(api("v1.22.17") == "kubeadm.k8s.io/v1beta2");
  BOOST_TEST(api("v1.23.0") == "kubeadm.k8s.io/v1beta3");
  BOOST_TEST(api("v1.35.4") == "kubeadm.k8s.io/v1beta3");
  BOOST_TEST(api("v1.36.0-rc.1") == "kubeadm.k8s.io/v1beta4");
  BOOST_TEST(api("v1.37.2") == "kubeadm.k8s.io/v1beta4");
  BOOST_TEST(api("v2.0.0") == "refused");
  for (const char* bad : {"", "1.37.2", "v1.37", "v1.37.", "v1..2", "v01.37.2", "v1.37.2x", "v1.37.2 ", "v1.37.2\n"})
    BOOST_TEST(!parse_kube_version(bad).ok(), bad);
  Case c = make_case("v1.19.16", "control-plane", true);
  Error e = gen_error(c);
  BOOST_TEST(e.message().find("Kubernetes v1.19.16") != std::string::npos, e.message());
  BOOST_TEST(int(e.exit) == 65);
}

BOOST_AUTO_TEST_CASE(init_has_the_token_joins_pin_the_ca) {
  auto init = docs_of(gen(make_case("v1.37.2", "control-plane", true)));
  BOOST_TEST(init.size() == 4u);
  BOOST_TEST(!doc_of_kind(init, "JoinConfiguration"));
  const auto* ic = doc_of_kind(init, "InitConfiguration");
  BOOST_REQUIRE(ic);
  BOOST_TEST(value_at(*ic, "bootstrapTokens/0/token") == kToken);
  BOOST_TEST(value_at(*ic, "localAPIEndpoint/advertiseAddress") == "10.89.0.2");
  BOOST_TEST(value_at(*ic, "localAPIEndpoint/bindPort") == "6443");

  std::string join_text = gen(make_case("v1.37.2", "worker", false));
  BOOST_TEST(join_text.find("unsafeSkipCAVerification") == std::string::npos);
  auto join = docs_of(join_text);
  BOOST_TEST(!doc_of_kind(join, "InitConfiguration"));
  const auto* jc = doc_of_kind(join, "JoinConfiguration");
  BOOST_REQUIRE(jc);
  BOOST_TEST(value_at(*jc, "discovery/bootstrapToken/token") == kToken);
  BOOST_TEST(value_at(*jc, "discovery/bootstrapToken/caCertHashes/0") == kHash);
  BOOST_TEST(value_at(*jc, "discovery/bootstrapToken/apiServerEndpoint") == "10.89.0.2:6443");
  BOOST_TEST(!at(*jc, "controlPlane"));

  auto cpj = docs_of(gen(make_case("v1.37.2", "control-plane", false, 3, 1)));
  const auto* cj = doc_of_kind(cpj, "JoinConfiguration");
  BOOST_REQUIRE(cj);
  BOOST_TEST(value_at(*cj, "controlPlane/localAPIEndpoint/advertiseAddress") == "10.89.0.3");
  BOOST_TEST(!at(*cj, "controlPlane/certificateKey"));
}

BOOST_AUTO_TEST_CASE(a_join_without_a_ca_hash_is_refused) {
  Case c = make_case("v1.37.2", "worker", false);
  c.in.ca_cert_hashes.clear();
  Error e = gen_error(c);
  BOOST_TEST(e.message().find("never skips CA verification") != std::string::npos, e.message());
  c.in.ca_cert_hashes = {"sha256:ABC"};
  BOOST_TEST(gen_error(c).message().find("CA certificate hash") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_bad_token_is_refused_without_echoing_it) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.in.token = "secret-not-a-token";
  Error e = gen_error(c);
  BOOST_TEST(e.message().find("bootstrap token") != std::string::npos);
  BOOST_TEST(e.message().find("secret-not-a-token") == std::string::npos);
  BOOST_TEST(int(e.exit) == 64);
}

BOOST_AUTO_TEST_CASE(feature_gates_reach_every_component) {
  Case c = make_case("v1.35.4", "control-plane", true);
  c.cluster.feature_gates = {{"B", false}, {"A", true}};
  auto d = docs_of(gen(c));
  const auto* cc = doc_of_kind(d, "ClusterConfiguration");
  BOOST_TEST(value_at(*cc, "apiServer/extraArgs/feature-gates") == "A=true,B=false");
  BOOST_TEST(value_at(*cc, "controllerManager/extraArgs/feature-gates") == "A=true,B=false");
  BOOST_TEST(value_at(*cc, "scheduler/extraArgs/feature-gates") == "A=true,B=false");
  BOOST_TEST(value_at(*doc_of_kind(d, "KubeletConfiguration"), "featureGates/A") == "true");
  BOOST_TEST(value_at(*doc_of_kind(d, "KubeProxyConfiguration"), "featureGates/B") == "false");
  c.cluster.feature_gates = {{"A,B", true}};
  BOOST_TEST(gen_error(c).message().find("featureGates") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(kube_proxy_modes) {
  Case c = make_case("v1.37.2", "control-plane", true);
  c.cluster.networking.kube_proxy_mode = "none";
  auto d = docs_of(gen(c));
  BOOST_TEST(!doc_of_kind(d, "KubeProxyConfiguration"));
  BOOST_TEST(value_at(*doc_of_kind(d, "InitConfiguration"), "skipPhases/1") == "addon/kube-proxy");
  c.cluster.networking.kube_proxy_mode = "nftables";
  d = docs_of(gen(c));
  BOOST_TEST(value_at(*doc_of_kind(d, "KubeProxyConfiguration"), "conntrack/tcpBeLiberal") == "true");
  c.cluster.networking.kube_proxy_mode = "ipvs";
  d = docs_of(gen(c));
  BOOST_TEST(value_at(*doc_of_kind(d, "KubeProxyConfiguration"), "mode") == "ipvs");
  BOOST_TEST(!at(*doc_of_kind(d, "KubeProxyConfiguration"), "conntrack/tcpBeLiberal"));
  c.cluster.networking.kube_proxy_mode = "userspace";
  BOOST_TEST(gen_error(c).message().find("kubeProxyMode") != std::string::npos);
}

// disableDefaultCNI and dnsSearch are not kubeadm settings: the config is the
// same (the CNI addon step and the node's resolv.conf carry them).
BOOST_AUTO_TEST_CASE(disable_default_cni_and_dns_search_leave_the_config_alone) {
  Case base = make_case("v1.37.2", "control-plane", true);
  std::string want = gen(base);
  Case c = base;
  c.cluster.networking.disable_default_cni = true;
  BOOST_TEST(gen(c) == want);
  c = base;
  c.cluster.networking.dns_search = std::vector<std::string>{"example.com"};
  BOOST_TEST(gen(c) == want);
}

BOOST_AUTO_TEST_CASE(dns_search_rewrites_resolv_conf_as_kind_does) {
  std::string resolv = "nameserver 10.89.0.1\nsearch old.example\noptions ndots:1\n";
  auto rewrite = [&](std::optional<std::vector<std::string>> s) {
    auto r = resolv_conf_with_search(resolv, s);
    return r.ok() ? *r : "error: " + r.error().message();
  };
  BOOST_TEST(rewrite(std::nullopt) == resolv);
  BOOST_TEST(rewrite(std::vector<std::string>{}) == "nameserver 10.89.0.1\noptions ndots:1\n");
  BOOST_TEST(rewrite(std::vector<std::string>{"a.example", "b.example"}) ==
             "search a.example b.example\nnameserver 10.89.0.1\noptions ndots:1\n");
  // a domain cannot smuggle in a line of its own
  BOOST_TEST(rewrite(std::vector<std::string>{"a.example\nnameserver 6.6.6.6"}).rfind("error: invalid networking.dnsSearch domain", 0) == 0);
  BOOST_TEST(rewrite(std::vector<std::string>{"a b"}).rfind("error: ", 0) == 0);
}

BOOST_AUTO_TEST_CASE(encryption_mounts_its_directory_read_only) {
  auto d = docs_of(gen(make_case("v1.37.2", "control-plane", true)));
  const auto* cc = doc_of_kind(d, "ClusterConfiguration");
  BOOST_TEST(value_at(*cc, "apiServer/extraArgs/1/name") == "encryption-provider-config");
  BOOST_TEST(value_at(*cc, "apiServer/extraArgs/1/value") == "/etc/kubernetes/encryption/config.yaml");
  BOOST_TEST(value_at(*cc, "apiServer/extraVolumes/0/hostPath") == "/etc/kubernetes/encryption");
  BOOST_TEST(value_at(*cc, "apiServer/extraVolumes/0/mountPath") == "/etc/kubernetes/encryption");
  BOOST_TEST(value_at(*cc, "apiServer/extraVolumes/0/readOnly") == "true");
  BOOST_TEST(value_at(*cc, "apiServer/extraVolumes/0/pathType") == "DirectoryOrCreate");
  Case c = make_case("v1.37.2", "control-plane", true);
  for (const char* bad : {"", "/etc/kubernetes/encryption/", "/etc/kubernetes/encryption/../pki/ca.key",
                          "/etc/kubernetes/config.yaml", "/etc/kubernetes/encryption//x"}) {
    c.in.encryption_config_path = bad;
    BOOST_TEST(gen_error(c).message().find("encryption config path") != std::string::npos, bad);
  }
  c.cluster.encrypt_secrets = false;
  c.in.encryption_config_path.clear();
  std::string off = gen(c);
  BOOST_TEST(off.find("encryption") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(node_registration_and_kubelet) {
  Case c = make_case("v1.35.4", "worker", false);
  c.node.labels = {{"b", "2"}, {"a", "1"}};
  auto d = docs_of(gen(c));
  const auto* jc = doc_of_kind(d, "JoinConfiguration");
  BOOST_TEST(value_at(*jc, "nodeRegistration/kubeletExtraArgs/node-ip") == "10.89.0.5");
  BOOST_TEST(value_at(*jc, "nodeRegistration/kubeletExtraArgs/node-labels") == "a=1,b=2");
  BOOST_TEST(value_at(*jc, "nodeRegistration/criSocket") == "unix:///run/containerd/containerd.sock");
  BOOST_TEST(value_at(*jc, "nodeRegistration/name") == "kind-worker");
  BOOST_TEST(!at(*jc, "nodeRegistration/taints"));
  const auto* kc = doc_of_kind(d, "KubeletConfiguration");
  BOOST_TEST(value_at(*kc, "cgroupDriver") == "systemd");
  BOOST_TEST(value_at(*kc, "failSwapOn") == "false");
  BOOST_TEST(value_at(*kc, "imageGCHighThresholdPercent") == "100");
  BOOST_TEST(value_at(*kc, "evictionHard/nodefs.available") == "0%");
  c.node.labels = {{"a", "x,y"}};
  BOOST_TEST(gen_error(c).message().find("labels") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_named) {
  Case c = make_case("v1.37.2", "worker", false);
  c.self.ip = "10.89.0";
  BOOST_TEST(gen_error(c).message().find("address") != std::string::npos);
  c = make_case("v1.37.2", "worker", true);
  BOOST_TEST(gen_error(c).message().find("bootstrap") != std::string::npos);
  c = make_case("v1.37.2", "control-plane", true);
  c.cluster.networking.ip_family = "ipv6";
  BOOST_TEST(gen_error(c).message().find("ipFamily") != std::string::npos);
  c = make_case("v1.37.2", "control-plane", true);
  c.in.api_server_cert_sans = {"bad name"};
  BOOST_TEST(gen_error(c).message().find("SAN") != std::string::npos);
  c = make_case("v1.37.2", "control-plane", true);
  c.cluster.networking.pod_subnet = "10.244.0.1/16";
  BOOST_TEST(gen_error(c).message().find("podSubnet") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(patch_errors_name_the_patch) {
  Case c = make_case("v1.37.2", "worker", false);
  c.node.index = 1;
  c.node.kubeadm_patches_json6902 = {
      {"", "", "JoinConfiguration", "- op: test\n  path: /kind\n  value: JoinConfiguration\n"
                                    "- op: remove\n  path: /x/y\n"}};
  Error e = gen_error(c);
  BOOST_TEST(e.message() == "nodes[1].kubeadmConfigPatchesJSON6902[0].patch: op 1: path \"/x/y\" does not exist");
  BOOST_TEST(int(e.exit) == 65);

  c = make_case("v1.37.2", "worker", false);
  c.cluster.kubeadm_patches = {"kind: JoinConfiguration\n", "kind: JoinConfiguration\n", "kind: [\n"};
  e = gen_error(c);
  BOOST_TEST(e.message().rfind("kubeadmConfigPatches[2]: ", 0) == 0, e.message());
  BOOST_TEST(int(e.exit) == 65);

  c = make_case("v1.37.2", "worker", false);
  c.cluster.kubeadm_patches = {"kind: JoinConfiguration\na: 1\na: 2\n"};
  e = gen_error(c);
  BOOST_TEST(e.message().find("duplicate key") != std::string::npos, e.message());

  c = make_case("v1.37.2", "worker", false);
  c.cluster.kubeadm_patches = {"kind: JoinConfiguration\nnodeRegistration:\n  $patch: delete\n"};
  e = gen_error(c);
  BOOST_TEST(e.message().find("\"$patch\" is not supported") != std::string::npos, e.message());

  c = make_case("v1.37.2", "worker", false);
  c.cluster.kubeadm_patches_json6902 = {{"", "", "KubeletConfiguration", "- op: test\n  path: /failSwapOn\n  value: true\n"}};
  e = gen_error(c);
  BOOST_TEST(e.message() == "kubeadmConfigPatchesJSON6902[0].patch: op 0: test failed: the value at \"/failSwapOn\" differs");
}

// The token is in the output (it must be), and only where it belongs.
BOOST_AUTO_TEST_CASE(the_token_appears_only_in_its_fields) {
  std::string t = gen(make_case("v1.37.2", "worker", false));
  size_t n = 0;
  for (size_t p = t.find(kToken); p != std::string::npos; p = t.find(kToken, p + 1)) ++n;
  BOOST_TEST(n == 1u);
}
