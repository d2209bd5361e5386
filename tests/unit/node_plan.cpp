// Unit tests of tools/kina-node/plan.hpp: ClusterPlan/NodePlan records written
// and read back are the same plan; the reader refuses incomplete plans and
// hands other records to the caller.
#define BOOST_TEST_MODULE node_plan
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "kina/fs.hpp"
#include "kina/record.hpp"
#include "plan.hpp"

using namespace kina;
using namespace kina::node;

namespace {

Plan full_plan() {
  Plan p;
  ClusterPlan& c = p.cluster;
  c.name = "dev";
  c.source = "/home/u/kind.yaml";
  c.config_api_version = "kina/v1alpha1";
  c.backend = "qemu";
  c.image = "kina.local/node:v1.37.2";
  c.networking.api_server_address = "127.0.0.2";
  c.networking.api_server_port = 6443;
  c.networking.pod_subnet = "10.100.0.0/16";
  c.networking.disable_default_cni = true;
  c.networking.kube_proxy_mode = "nftables";
  c.networking.dns_search = std::vector<std::string>{"example.com", "corp"};
  c.feature_gates = {{"SomeGate", true}, {"Other", false}};
  c.runtime_config = {{"api/alpha", "true"}};
  c.kubeadm_patches = {"kind: ClusterConfiguration\nnetworking:\n  dnsDomain: \"x\\ty\"\n"};
  c.kubeadm_patches_json6902 = {{"kubeadm.k8s.io", "v1beta3", "ClusterConfiguration", "- op: add\n  path: /a\n  value: 1\n"}};
  c.containerd_patches = {"[plugins]\n"};
  c.containerd_patches_json6902 = {"- op: remove\n  path: /x\n"};
  c.control_planes = 1;
  c.workers = 2;
  c.encrypt_secrets = false;
  c.nodes = {"dev-control-plane", "dev-worker", "dev-worker2"};
  NodePlan cp;
  cp.cluster = "dev";
  cp.name = "dev-control-plane";
  cp.role = "control-plane";
  cp.bootstrap = true;
  cp.image = c.image;
  cp.ports = {{"127.0.0.2", 6443, 6443, "TCP"}, {"127.0.0.1", 0, 30080, "UDP"}};
  cp.mounts = {{"/src", "/mnt/src", true, false, "HostToContainer"}};
  cp.labels = {{"tier", "web"}, {"example.com/x", ""}};
  cp.kubeadm_patches = {"kind: InitConfiguration\n"};
  cp.kubeadm_patches_json6902 = {{"", "", "JoinConfiguration", "[]"}};
  NodePlan w1;
  w1.cluster = "dev";
  w1.name = "dev-worker";
  w1.role = "worker";
  w1.index = 1;
  w1.image = "kindest/node:v1.31.0@sha256:0123";
  w1.cpus = 4;
  w1.memory_mib = 8192;
  NodePlan w2 = w1;
  w2.name = "dev-worker2";
  w2.index = 2;
  w2.mounts = {{"/data \"quoted\"", "/data", false, false, "Bidirectional"}};
  p.nodes = {cp, w1, w2};
  return p;
}

std::string records(const Plan& p) {
  std::string out = cluster_plan_json(p.cluster) + "\n";
  for (const auto& n : p.nodes) out += node_plan_json(n) + "\n";
  return out;
}

Result<Plan> read(std::string text, std::vector<std::string>* others = nullptr) {
  auto in = RecordReader::from_string(std::move(text));
  return read_plan_records(in, [&](const Record& r) -> Status {
    if (others) others->push_back(r.raw);
    return {};
  });
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_keeps_every_field) {
  Plan p = full_plan();
  auto back = read(records(p));
  BOOST_REQUIRE_MESSAGE(back.ok(), (back.ok() ? std::string() : back.error().message()));
  BOOST_TEST((back->cluster == p.cluster));
  BOOST_REQUIRE_EQUAL(back->nodes.size(), 3u);
  for (size_t i = 0; i < 3; ++i) BOOST_TEST((back->nodes[i] == p.nodes[i]), "node " << i);
  // And writing it again gives the same bytes.
  BOOST_TEST(records(*back) == records(p));
}

BOOST_AUTO_TEST_CASE(dns_search_absent_and_empty_are_different) {
  Plan p = full_plan();
  p.cluster.networking.dns_search.reset();
  auto a = read(records(p));
  BOOST_REQUIRE(a.ok());
  BOOST_TEST(!a->cluster.networking.dns_search.has_value());
  BOOST_TEST(cluster_plan_json(p.cluster).find("dnsSearch") == std::string::npos);
  p.cluster.networking.dns_search = std::vector<std::string>{};
  auto b = read(records(p));
  BOOST_REQUIRE(b.ok());
  BOOST_REQUIRE(b->cluster.networking.dns_search.has_value());
  BOOST_TEST(b->cluster.networking.dns_search->empty());
}

BOOST_AUTO_TEST_CASE(write_plan_prints_cluster_then_nodes) {
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  RecordWriter w(fds[1], "pipe");
  Plan p = full_plan();
  BOOST_REQUIRE(write_plan(w, p).ok());
  ::close(fds[1]);
  RecordReader in(fds[0], "pipe");
  auto back = read_plan_records(in);
  ::close(fds[0]);
  BOOST_REQUIRE(back.ok());
  BOOST_TEST((*back == p));
  BOOST_TEST(w.written() == 4u);
}

BOOST_AUTO_TEST_CASE(other_records_go_to_the_caller_in_order) {
  Plan p = full_plan();
  std::string a = R"({"apiVersion":"kina/v1alpha1","kind":"Image","reference":"x"})";
  std::string b = R"({"apiVersion":"kina/v1alpha1","kind":"Machine","name":"m"})";
  std::vector<std::string> others;
  auto back = read(a + "\n" + records(p) + b + "\n", &others);
  BOOST_REQUIRE(back.ok());
  BOOST_REQUIRE_EQUAL(others.size(), 2u);
  BOOST_TEST(others[0] == a);
  BOOST_TEST(others[1] == b);
}

BOOST_AUTO_TEST_CASE(incomplete_or_inconsistent_plans_are_refused) {
  Plan p = full_plan();
  auto expect_65 = [](const Result<Plan>& r, const std::string& needle) {
    BOOST_REQUIRE(!r.ok());
    BOOST_TEST(code(r.error().exit) == 65);
    BOOST_TEST(r.error().message().find(needle) != std::string::npos, r.error().message());
  };
  expect_65(read(""), "no ClusterPlan");
  expect_65(read(node_plan_json(p.nodes[0]) + "\n"), "no ClusterPlan");
  // A node missing.
  expect_65(read(cluster_plan_json(p.cluster) + "\n" + node_plan_json(p.nodes[0]) + "\n"), "3 nodes");
  // Two ClusterPlans.
  expect_65(read(cluster_plan_json(p.cluster) + "\n" + records(p)), "a second ClusterPlan");
  // Nodes out of order.
  Plan swapped = p;
  std::swap(swapped.nodes[1], swapped.nodes[2]);
  expect_65(read(records(swapped)), "is not the ClusterPlan's node 1");
  // A node of another cluster.
  Plan other = p;
  other.nodes[2].cluster = "prod";
  expect_65(read(records(other)), "belongs to cluster");
  // No bootstrap node, or a bootstrap worker.
  Plan nob = p;
  nob.nodes[0].bootstrap = false;
  expect_65(read(records(nob)), "0 bootstrap");
  Plan bw = p;
  bw.nodes[1].bootstrap = true;
  expect_65(read(records(bw)), "bootstrap worker");
  // Wrong types and missing fields name the field.
  std::string bad = records(p);
  auto pos = bad.find("\"cpus\":2");
  BOOST_REQUIRE(pos != std::string::npos);
  bad.replace(pos, 8, "\"cpus\":\"2\"");
  expect_65(read(bad), "field \"cpus\" is not an integer");
  std::string missing = records(p);
  pos = missing.find(",\"containerPath\":\"/mnt/src\"");
  BOOST_REQUIRE(pos != std::string::npos);
  missing.erase(pos, std::string(",\"containerPath\":\"/mnt/src\"").size());
  expect_65(read(missing), "extraMounts[0].containerPath\" is missing");
  std::string role = records(p);
  pos = role.find("\"role\":\"worker\"");
  role.replace(pos, 15, "\"role\":\"master\"");
  expect_65(read(role), "field \"role\"");
}

// The record contract (tests/records/*.jsonl, docs/protocol.md "Every kind"):
// the reader accepts every fixture variant.
BOOST_AUTO_TEST_CASE(reads_every_fixture_variant) {
  const char* src = std::getenv("KINA_SRC");
  BOOST_REQUIRE(src);
  for (std::string kind : {"ClusterPlan", "NodePlan"}) {
    auto text = kina::read_file(std::string(src) + "/tests/records/" + kind + ".jsonl");
    BOOST_REQUIRE(text.ok());
    auto in = RecordReader::from_string(*text, kind + ".jsonl");
    size_t n = 0;
    for (;;) {
      auto r = in.next();
      BOOST_REQUIRE(r.ok());
      if (!r->has_value()) break;
      ++n;
      if (kind == "ClusterPlan") {
        auto c = parse_cluster_plan(**r);
        BOOST_TEST(c.ok(), (c.ok() ? std::string() : c.error().message()));
      } else {
        auto p = parse_node_plan(**r);
        BOOST_TEST(p.ok(), (p.ok() ? std::string() : p.error().message()));
      }
    }
    BOOST_TEST(n >= 2u);
  }
}
