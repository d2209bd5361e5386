#define BOOST_TEST_MODULE kubeconfig
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "kubeconfig.hpp"

using namespace kina;
using kubeconfig::Node;

namespace {

const char* kExisting = R"(apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    insecure-skip-tls-verify: true
    extensions:
    - name: x
      extension: {a: 1}
contexts:
- name: prod
  context:
    cluster: prod
    user: ops
    namespace: web
current-context: prod
users:
- name: ops
  user:
    token: abc
preferences:
  colors: true
x-unknown-field: keep-me
)";

Node parse_ok(std::string_view text) {
  auto n = kubeconfig::parse(text, "test");
  BOOST_REQUIRE_MESSAGE(n.ok(), (n ? std::string() : n.error().message()));
  return std::move(*n);
}

Node single(const std::string& cluster, const std::string& user) {
  kubeconfig::Single s;
  s.cluster_name = s.context_name = kubeconfig::cluster_entry(cluster);
  s.user_name = kubeconfig::user_entry(user, cluster);
  s.server = "https://127.0.0.1:6443";
  s.ca_data = "Q0E=";
  s.client_cert_data = "Q0VSVA==";
  s.client_key_data = "S0VZ";
  return kubeconfig::build(s);
}

std::vector<std::string> names(const Node& cfg, std::string_view list) {
  std::vector<std::string> out;
  for (const auto& i : cfg.get(list)->items) out.push_back(kubeconfig::entry_name(i));
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(empty_is_empty_config) {
  Node n = parse_ok("");
  BOOST_TEST(n.is_map());
  BOOST_TEST(n.map.empty());
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_place) {
  auto e = kubeconfig::parse("clusters: 3\n", "f.yaml");
  BOOST_REQUIRE(!e.ok());
  BOOST_TEST((e.error().exit == Exit::data));
  BOOST_TEST(e.error().message() == "reading kubeconfig f.yaml: line 1 column 11: clusters is not a list");
  BOOST_TEST(!kubeconfig::parse("- a\n", "f").ok());
  BOOST_TEST(!kubeconfig::parse("users:\n- user: {}\n", "f").ok());
  BOOST_TEST(!kubeconfig::parse("kind: Pod\n", "f").ok());
  BOOST_TEST(!kubeconfig::parse("contexts:\n- name: a\n  context: [1]\n", "f").ok());
  BOOST_TEST(!kubeconfig::parse("a: [\n", "f").ok());
  BOOST_TEST((kubeconfig::parse("a: [\n", "f").error().exit == Exit::data));
}

BOOST_AUTO_TEST_CASE(merge_keeps_others_and_unknown_fields) {
  Node cfg = parse_ok(kExisting);
  kubeconfig::merge(cfg, single("c1", "alice"));
  BOOST_TEST((names(cfg, "clusters") == std::vector<std::string>{"prod", "kina-c1"}));
  BOOST_TEST((names(cfg, "users") == std::vector<std::string>{"ops", "alice@kina-c1"}));
  BOOST_TEST((names(cfg, "contexts") == std::vector<std::string>{"prod", "kina-c1"}));
  BOOST_TEST(kubeconfig::current_context(cfg) == "kina-c1");
  BOOST_TEST(cfg.get_string("x-unknown-field").value_or("") == "keep-me");
  BOOST_TEST(kubeconfig::find(cfg, "contexts", "prod")->get_string("namespace").value_or("") == "web");
  BOOST_TEST(kubeconfig::find(cfg, "clusters", "prod")->get("extensions") != nullptr);
}

BOOST_AUTO_TEST_CASE(merge_replaces_same_name_in_place) {
  Node cfg = parse_ok(kExisting);
  kubeconfig::merge(cfg, single("c1", "alice"));
  Node again = single("c1", "alice");
  kubeconfig::find(again, "clusters", "kina-c1");
  again.get("clusters")->items[0].get("cluster")->set("server", Node::scalar("https://10.0.0.9:6443"));
  kubeconfig::merge(cfg, again);
  BOOST_TEST((names(cfg, "clusters") == std::vector<std::string>{"prod", "kina-c1"}));
  BOOST_TEST(kubeconfig::find(cfg, "clusters", "kina-c1")->get_string("server").value_or("") == "https://10.0.0.9:6443");
}

BOOST_AUTO_TEST_CASE(unmerge_restores_the_original) {
  Node orig = parse_ok(kExisting);
  Node cfg = parse_ok(kExisting);
  kubeconfig::merge(cfg, single("c1", "alice"));
  kubeconfig::merge(cfg, single("c1", "bob"));
  kubeconfig::merge(cfg, single("c2", "alice"));
  BOOST_TEST(kubeconfig::unmerge(cfg, "c1", "prod") == 4u);
  BOOST_TEST((names(cfg, "users") == std::vector<std::string>{"ops", "alice@kina-c2"}));
  BOOST_TEST(kubeconfig::unmerge(cfg, "c2", "prod") == 3u);
  BOOST_TEST(kubeconfig::current_context(cfg) == "prod");
  BOOST_TEST(*yaml::emit(cfg) == *yaml::emit(orig));
}

BOOST_AUTO_TEST_CASE(unmerge_touches_only_kina_names) {
  Node cfg = parse_ok("clusters:\n- name: kina-c1x\n- name: c1\nusers:\n- name: kina-c1\n- name: x@kina-c1x\n- name: '@kina-c1'\n");
  BOOST_TEST(kubeconfig::unmerge(cfg, "c1") == 0u);
  BOOST_TEST(kubeconfig::current_context(cfg).empty());
}

BOOST_AUTO_TEST_CASE(built_config_reads_back) {
  auto text = yaml::emit(single("c1", "alice"));
  BOOST_REQUIRE(text.ok());
  Node back = parse_ok(*text);
  BOOST_TEST(kubeconfig::find(back, "users", "alice@kina-c1")->get_string("client-key-data").value_or("") == "S0VZ");
  BOOST_TEST(kubeconfig::find(back, "contexts", "kina-c1")->get_string("user").value_or("") == "alice@kina-c1");
}

// Regression: kubeconfig trees holding client keys were freed without being
// zeroed. wipe() overwrites every string in place before dropping the tree.
BOOST_AUTO_TEST_CASE(wipe_zeroes_secrets_in_place) {
  const std::string key(200, 'K');
  Node cfg = parse_ok("users:\n- name: alice\n  user:\n    client-key-data: " + key + "\n");
  Node* user = cfg.get("users")->items.front().get("user");
  std::string& held = user->get("client-key-data")->value;
  BOOST_REQUIRE(held == key);
  const char* buf = held.data();  // the heap buffer stays owned by `held` after clear()
  size_t n = held.size();
  kubeconfig::wipe(cfg);
  BOOST_TEST(held.empty());
  BOOST_TEST(std::all_of(buf, buf + n, [](char c) { return c == 0; }));
  BOOST_TEST(cfg.map.front().first.empty());
  BOOST_TEST(kubeconfig::entry_name(cfg.get("")->items.front()).empty());
}

// Regression: a few aliases of one large scalar passed the node limit and
// expanded to any size (a hostile admin.conf fetched from a node, say).
BOOST_AUTO_TEST_CASE(alias_expansion_is_bounded_in_bytes) {
  std::string text = "preferences:\n  big: &b " + std::string(256u << 10, 'x') + "\n  copies: [";
  for (int i = 0; i < 100; ++i) text += i ? ", *b" : "*b";
  text += "]\n";
  auto n = kubeconfig::parse(text, "bomb");
  BOOST_REQUIRE(!n.ok());
  BOOST_TEST((n.error().exit == Exit::data));
  BOOST_TEST(n.error().message().find("aliases expand to more than 16777216 bytes") != std::string::npos, n.error().message());
  // A modest use of aliases still reads.
  BOOST_TEST(kubeconfig::parse("preferences:\n  a: &x {k: v}\n  b: *x\n", "ok").ok());
}

// Regression: merging an empty file or YAML that is no kubeconfig did nothing
// and exited 0. Such input is bad data (65) naming the file.
BOOST_AUTO_TEST_CASE(incoming_must_hold_entries) {
  for (const char* text : {"", "  \n", "foo: bar\n", "apiVersion: apps/v1\nkind: Deployment\n",
                           "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n"}) {
    auto r = kubeconfig::parse_incoming(text, "f.yaml");
    BOOST_REQUIRE_MESSAGE(!r.ok(), text);
    BOOST_TEST(code(r.error().exit) == 65, text);
    BOOST_TEST(r.error().what == "reading kubeconfig f.yaml", text);
  }
  BOOST_TEST(kubeconfig::parse_incoming("", "f").error().why == "the file is empty");
  auto ok = kubeconfig::parse_incoming("clusters:\n- name: a\n  cluster:\n    server: https://h:1\n", "f");
  BOOST_TEST(ok.ok());
}
