#define BOOST_TEST_MODULE kube_merge
#include <boost/test/unit_test.hpp>

#include <map>
#include <optional>
#include <string>

#include "kubeconfig.hpp"
#include "kubeconfig_file.hpp"
#include "merge.hpp"

using namespace kina;
using namespace kina::kube;

namespace {

yaml::Node parse_ok(std::string_view text) {
  auto n = kubeconfig::parse(text, "test");
  BOOST_REQUIRE(n.ok());
  return std::move(*n);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_kubeconfig_is_the_flag_else_the_first_of_KUBECONFIG) {
  auto flag = named_kubeconfig(std::string("/k/flag"), "/k/env");
  BOOST_REQUIRE(flag.ok());
  BOOST_TEST(flag->value() == fsys::path("/k/flag"));
  auto env = named_kubeconfig(std::nullopt, "::/k/a:/k/b");
  BOOST_REQUIRE(env.ok());
  BOOST_TEST(env->value() == fsys::path("/k/a"));
  auto rel = named_kubeconfig(std::nullopt, "rel/config:/k/b");
  BOOST_REQUIRE(rel.ok());
  BOOST_TEST(rel->value() == fsys::current_path() / "rel" / "config");
  auto slash = named_kubeconfig(std::string("/k/dir/."), nullptr);
  BOOST_REQUIRE(slash.ok());
  BOOST_TEST(slash->value() == fsys::path("/k/dir"));
  for (const char* none : {static_cast<const char*>(nullptr), "", ":", ":::"}) {
    auto n = named_kubeconfig(std::nullopt, none);
    BOOST_REQUIRE(n.ok());
    BOOST_TEST(!n->has_value());
  }
  // --kubeconfig "" is an error, not "use the default".
  auto empty = named_kubeconfig(std::string(), "/k/env");
  BOOST_REQUIRE(!empty.ok());
  BOOST_TEST((empty.error().exit == Exit::usage));
}

BOOST_AUTO_TEST_CASE(the_merge_state_gives_the_previous_context_for_its_kubeconfig_only) {
  std::string state = merge_state_text("/home/u/.kube/config", "prod");
  BOOST_TEST(state.back() == '\n');
  BOOST_TEST(previous_from_state(state, "/home/u/.kube/config") == "prod");
  BOOST_TEST(previous_from_state(state, "/home/u/other").empty());
  BOOST_TEST(previous_from_state(merge_state_text("/k", ""), "/k").empty());
  BOOST_TEST(previous_from_state("{not json", "/k").empty());
  BOOST_TEST(previous_from_state("{\"kubeconfig\":\"/k\"}", "/k").empty());
  BOOST_TEST(previous_from_state("{\"kubeconfig\":\"/k\",\"previousContext\":7}", "/k").empty());
  // A name with quotes survives the JSON round trip.
  BOOST_TEST(previous_from_state(merge_state_text("/k", "a\"b\\c"), "/k") == "a\"b\\c");
}

// Unmerge of kina-b when kina-b was merged over kina-a, and kina-a (merged
// over prod) has since been removed: current-context goes back to prod.
BOOST_AUTO_TEST_CASE(follow_previous_skips_kina_contexts_that_are_gone) {
  yaml::Node cfg = parse_ok("contexts:\n- name: prod\n  context: {cluster: p, user: p}\n- name: kina-b\n  context: {cluster: kina-b, user: u@kina-b}\n");
  std::map<std::string, std::string> saved{{"a", "prod"}, {"x", "kina-y"}, {"y", "kina-x"}};
  std::vector<std::string> asked;
  auto lookup = [&](const std::string& c) -> std::optional<std::string> {
    asked.push_back(c);
    auto it = saved.find(c);
    if (it == saved.end()) return std::nullopt;
    return it->second;
  };
  BOOST_TEST(follow_previous(cfg, "b", "kina-a", lookup) == "prod");
  BOOST_TEST(asked == std::vector<std::string>{"a"});
  // A context still present, a non-kina context, or the cluster's own: taken as it is.
  asked.clear();
  BOOST_TEST(follow_previous(cfg, "c", "kina-b", lookup) == "kina-b");
  BOOST_TEST(follow_previous(cfg, "b", "dev", lookup) == "dev");
  BOOST_TEST(follow_previous(cfg, "a", "kina-a", lookup) == "kina-a");
  BOOST_TEST(asked.empty());
  // A cluster with no state ends the walk where it is.
  BOOST_TEST(follow_previous(cfg, "b", "kina-gone", lookup) == "kina-gone");
  // A cycle ends after 16 hops.
  asked.clear();
  std::string end = follow_previous(cfg, "b", "kina-x", lookup);
  BOOST_TEST(asked.size() == 16u);
  BOOST_TEST((end == "kina-x" || end == "kina-y"));
}

// merge then unmerge (kubeconfig.hpp) with the context follow_previous gives:
// the user's kubeconfig is as it was.
BOOST_AUTO_TEST_CASE(merge_then_unmerge_gives_the_document_back) {
  const char* mine = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: 'https://prod:6443'}\n"
                     "contexts:\n- name: prod\n  context: {cluster: prod, user: ops}\ncurrent-context: prod\n"
                     "users:\n- name: ops\n  user: {token: abc}\n";
  yaml::Node cfg = parse_ok(mine);
  kubeconfig::Single s;
  s.cluster_name = s.context_name = kubeconfig::cluster_entry("c1");
  s.user_name = kubeconfig::user_entry("admin", "c1");
  s.server = "https://127.0.0.1:6443";
  s.ca_data = "Q0E=";
  s.client_cert_data = "Q0VSVA==";
  s.client_key_data = "S0VZ";
  std::string before = kubeconfig::current_context(cfg);
  std::string state = merge_state_text("/k", before);
  kubeconfig::merge(cfg, kubeconfig::build(s));
  BOOST_TEST(kubeconfig::current_context(cfg) == "kina-c1");
  BOOST_TEST(kubeconfig::find(cfg, "users", "admin@kina-c1"));
  std::string previous = follow_previous(cfg, "c1", previous_from_state(state, "/k"),
                                         [](const std::string&) { return std::optional<std::string>(); });
  BOOST_TEST(kubeconfig::unmerge(cfg, "c1", previous) == 3u);
  auto out = yaml::emit(cfg), orig = yaml::emit(parse_ok(mine));
  BOOST_REQUIRE(out.ok());
  BOOST_REQUIRE(orig.ok());
  BOOST_TEST(*out == *orig);
}
