// Unit tests of tools/kina-node/kind_config.hpp and policy.hpp with the host's
// facts given (CPUs, memory, root or not, home): what the CLI tests cannot
// vary on one machine.
#define BOOST_TEST_MODULE node_policy
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "kind_config.hpp"
#include "policy.hpp"

using namespace kina;
using namespace kina::node;

namespace {

HostFacts host() {
  HostFacts h;
  h.cpus = 4;
  h.memory_mib = 8192;
  h.root = false;
  h.unprivileged_port_start = 1024;
  h.home = "/home/u";
  h.kina_home = "/home/u/.kina";
  return h;
}

ParsedConfig parse(const std::string& text, Problems& p) {
  ConfigOptions o;
  o.source = "/cfg/kind.yaml";
  o.base_dir = "/cfg";
  o.home = "/home/u";
  return parse_kind_config(text, o, p);
}

std::vector<std::string> messages(const Problems& p) {
  std::vector<std::string> out;
  for (const auto& e : p.list()) out.push_back(e.message());
  return out;
}

bool any_contains(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v)
    if (s.find(needle) != std::string::npos) return true;
  return false;
}

Plan one_node(Mount m = {}, Port port = {}) {
  Plan p;
  NodePlan n;
  n.name = "kind-control-plane";
  n.role = "control-plane";
  if (!m.host_path.empty()) n.mounts.push_back(m);
  if (port.container_port) n.ports.push_back(port);
  p.nodes.push_back(n);
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(nodes_are_named_as_kind_names_them) {
  Problems p("config");
  auto c = parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: dev\nnodes:\n- role: worker\n- role: control-plane\n"
                 "- role: worker\n- {}\n",
                 p);
  BOOST_REQUIRE_MESSAGE(p.empty(), messages(p).front());
  std::vector<std::string> want = {"dev-worker", "dev-control-plane", "dev-worker2", "dev-control-plane2"};
  BOOST_TEST(c.plan.cluster.nodes == want, boost::test_tools::per_element());
  BOOST_TEST(c.plan.cluster.control_planes == 2);
  BOOST_TEST(c.plan.cluster.workers == 2);
  BOOST_TEST(!c.plan.nodes[0].bootstrap);
  BOOST_TEST(c.plan.nodes[1].bootstrap);
  BOOST_TEST(!c.plan.nodes[3].bootstrap);
  // The bootstrap node's first port is the API server's.
  BOOST_REQUIRE_EQUAL(c.plan.nodes[1].ports.size(), 1u);
  BOOST_TEST(c.plan.nodes[1].ports[0].container_port == 6443);
  BOOST_TEST(c.plan.nodes[3].ports.empty());
}

BOOST_AUTO_TEST_CASE(zero_control_planes_and_bad_names_are_refused) {
  Problems p("config");
  (void)parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: Dev_1\nnodes:\n- role: worker\n  labels:\n"
              "    \"-bad\": x\n    ok.example.com/fine: \"v\"\n    good: \"no spaces allowed\"\n",
              p);
  auto m = messages(p);
  BOOST_TEST(any_contains(m, "no control-plane node"));
  BOOST_TEST(any_contains(m, "name: \"Dev_1\""));
  BOOST_TEST(any_contains(m, "nodes[0].labels.-bad: invalid label key"));
  BOOST_TEST(any_contains(m, "nodes[0].labels.good: invalid label value"));
  BOOST_TEST(!any_contains(m, "ok.example.com/fine"));
  Problems q("config");
  (void)parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: " + std::string(48, 'a') + "\n", q);
  BOOST_TEST(any_contains(messages(q), "at most 47 characters"));
}

BOOST_AUTO_TEST_CASE(relative_host_paths_are_relative_to_the_config) {
  Problems p("config");
  auto c = parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- extraMounts:\n  - {hostPath: ./src/../data, containerPath: /d/}\n", p);
  BOOST_REQUIRE(p.empty());
  BOOST_TEST(c.plan.nodes[0].mounts[0].host_path == "/cfg/data");
  BOOST_TEST(c.plan.nodes[0].mounts[0].container_path == "/d");
  BOOST_TEST(c.given_host_paths.at("nodes[0].extraMounts[0]") == "./src/../data");
}

BOOST_AUTO_TEST_CASE(sensitive_paths_are_matched_exactly_inside_and_around) {
  HostFacts h = host();
  auto s = sensitive_paths(Policy{}, h);
  BOOST_TEST(exposes("/", s).has_value());
  BOOST_TEST(!exposes("/srv/data", s).has_value());  // "/" is sensitive only as itself
  BOOST_TEST(exposes("/etc/ssl", s)->path == "/etc");
  BOOST_TEST(exposes("/home/u", s)->path == "/home/u/.ssh");  // contains ~/.ssh
  BOOST_TEST(exposes("/home/u/.ssh/id_ed25519", s)->path == "/home/u/.ssh");
  BOOST_TEST(exposes("/home/u/.kina/clusters", s).has_value());
  BOOST_TEST(!exposes("/home/u/src", s).has_value());
  BOOST_TEST(!exposes("/etcetera", s).has_value());  // a prefix of the text is not a parent
  BOOST_TEST(exposes("/run", s)->path == "/run/docker.sock");
  Policy pol;
  pol.denied_host_paths = {"/srv/secret"};
  BOOST_TEST(exposes("/srv", sensitive_paths(pol, h)).has_value());
}

BOOST_AUTO_TEST_CASE(read_only_and_allowed_mounts_pass) {
  HostFacts h = host();
  Policy pol;
  BOOST_TEST(!check_policy(one_node({"/etc", "/e", false}), pol, h).empty());
  BOOST_TEST(check_policy(one_node({"/etc", "/e", true}), pol, h).empty());
  pol.allowed_host_paths = {"/etc/ssl"};
  BOOST_TEST(check_policy(one_node({"/etc/ssl/certs", "/e", false}), pol, h).empty());
  BOOST_TEST(!check_policy(one_node({"/etc", "/e", false}), pol, h).empty());
}

BOOST_AUTO_TEST_CASE(denied_paths_refuse_read_only_mounts_and_beat_allowed_ones) {
  HostFacts h = host();
  Policy pol;
  pol.denied_host_paths = {"/home/u/.ssh"};
  pol.allowed_host_paths = {"/home/u"};
  auto m = messages(check_policy(one_node({"/home/u/.ssh", "/k", true}), pol, h));
  BOOST_REQUIRE_EQUAL(m.size(), 1u);
  BOOST_TEST(m[0].find("deniedHostPaths); no mount of it is allowed, read-only or not") != std::string::npos, m[0]);
  BOOST_TEST(!check_policy(one_node({"/home/u/.ssh", "/k", false}), pol, h).empty());
  // Without the denial, the allowed home lifts the built-in ~/.ssh rule.
  pol.denied_host_paths.clear();
  BOOST_TEST(check_policy(one_node({"/home/u/.ssh", "/k", false}), pol, h).empty());
}

BOOST_AUTO_TEST_CASE(privileged_ports_need_root_or_a_lowered_sysctl) {
  HostFacts h = host();
  Port p{"127.0.0.1", 80, 80, "TCP"};
  auto m = messages(check_policy(one_node({}, p), Policy{}, h));
  BOOST_TEST(any_contains(m, "hostPort 80 is below 1024"));
  h.root = true;
  BOOST_TEST(check_policy(one_node({}, p), Policy{}, h).empty());
  h.root = false;
  h.unprivileged_port_start = 0;
  BOOST_TEST(check_policy(one_node({}, p), Policy{}, h).empty());
}

BOOST_AUTO_TEST_CASE(public_addresses_and_duplicates) {
  HostFacts h = host();
  Plan p = one_node({}, {"0.0.0.0", 8080, 80, "TCP"});
  NodePlan w;
  w.name = "kind-worker";
  w.role = "worker";
  w.index = 1;
  w.ports = {{"127.0.0.1", 8080, 80, "TCP"}, {"127.0.0.1", 8080, 80, "UDP"}, {"127.0.0.1", 0, 81, "TCP"}, {"127.0.0.1", 0, 82, "TCP"}};
  p.nodes.push_back(w);
  auto m = messages(check_policy(p, Policy{}, h));
  BOOST_TEST(any_contains(m, "nodes[0].extraPortMappings[0]: listen address \"0.0.0.0\""));
  BOOST_TEST(any_contains(m, "nodes[1].extraPortMappings[0]: 127.0.0.1:8080/TCP is already mapped"));
  BOOST_TEST(m.size() == 2u);  // UDP is another port; port 0 never collides
  Policy pub;
  pub.allow_public_ports = true;
  BOOST_TEST(messages(check_policy(p, pub, h)).size() == 1u);
}

BOOST_AUTO_TEST_CASE(cpus_and_memory_against_host_and_policy) {
  HostFacts h = host();
  Plan p = one_node();
  p.nodes[0].cpus = 5;
  p.nodes[0].memory_mib = 4096;
  NodePlan w = p.nodes[0];
  w.index = 1;
  w.cpus = 1;
  w.bootstrap = false;
  p.nodes.push_back(w);
  p.nodes.push_back(w);
  auto m = messages(check_policy(p, Policy{}, h));
  BOOST_TEST(any_contains(m, "nodes[0].cpus: 5 CPUs is more than the host's 4 CPUs"));
  BOOST_TEST(any_contains(m, "adds up to 12288Mi, more than the host's memory (8192Mi)"));
  BOOST_TEST(m.size() == 2u);
  // A policy file may allow more than the host (overcommit) ...
  Policy big;
  big.max_cpus_per_node = 8;
  big.max_total_memory_mib = 16384;
  BOOST_TEST(check_policy(p, big, h).empty());
  // ... a config's policy block may only lower.
  Policy block;
  block.max_cpus_per_node = 16;
  block.max_memory_per_node_mib = 1024;
  block.allow_public_ports = true;
  block.allowed_host_paths = {"/etc"};
  block.denied_host_paths = {"/srv"};
  Problems refusals("policy", Exit::policy);
  Policy eff = tighten(big, block, h, refusals);
  auto r = messages(refusals);
  BOOST_TEST(any_contains(r, "policy.maxCpusPerNode: 16 is above the policy's 8"));
  BOOST_TEST(any_contains(r, "policy.allowPublicPorts"));
  BOOST_TEST(any_contains(r, "policy.allowedHostPaths: \"/etc\""));
  BOOST_TEST(eff.max_cpus_per_node.value() == 8);
  BOOST_TEST(eff.max_memory_per_node_mib.value() == 1024);
  BOOST_TEST(eff.denied_host_paths.back() == "/srv");
  BOOST_TEST(!eff.allow_public_ports);
}

BOOST_AUTO_TEST_CASE(policy_files_are_strict) {
  Problems p("policy");
  auto pol = parse_policy("apiVersion: kina/v1alpha1\nkind: Policy\nallowedHostPaths: [~/src, rel]\nmaxMemoryPerNode: 4Gi\n"
                          "maxCpusPerNod: 2\n",
                          "/pol", "/home/u", p);
  auto m = messages(p);
  BOOST_REQUIRE_EQUAL(m.size(), 1u);
  BOOST_TEST(m[0].find("maxCpusPerNod: unknown field \"maxCpusPerNod\"; did you mean \"maxCpusPerNode\"?") != std::string::npos, m[0]);
  BOOST_TEST(pol.allowed_host_paths[0] == "/home/u/src");
  BOOST_TEST(pol.allowed_host_paths[1] == "/pol/rel");
  BOOST_TEST(pol.max_memory_per_node_mib.value() == 4096);
  Problems q("policy");
  (void)parse_policy("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n", "/", "", q);
  BOOST_TEST(q.size() == 2u);
}
