#define BOOST_TEST_MODULE yaml
#include <boost/test/unit_test.hpp>

#include "kina/yaml.hpp"

using namespace kina;

BOOST_AUTO_TEST_CASE(parses_a_kubeconfig_shape) {
  auto n = yaml::parse(
      "apiVersion: v1\nkind: Config\nclusters:\n- name: kina-dev\n  cluster:\n    server: https://127.0.0.1:6443\n"
      "current-context: kina-dev\npreferences: {}\nusers: []\n",
      "kubeconfig");
  BOOST_REQUIRE(n.ok());
  BOOST_TEST(n->get_string("kind").value() == "Config");
  const auto* clusters = n->get("clusters");
  BOOST_REQUIRE(clusters && clusters->is_seq());
  BOOST_TEST(clusters->items[0].get("cluster")->get_string("server").value() == "https://127.0.0.1:6443");
  BOOST_TEST(n->get("users")->items.empty());
}

BOOST_AUTO_TEST_CASE(errors_carry_line_and_column) {
  auto n = yaml::parse("a: 1\nb: [1, 2\n", "cfg.yaml");
  BOOST_REQUIRE(!n.ok());
  BOOST_TEST(code(n.error().exit) == 65);
  BOOST_TEST(n.error().what == "reading YAML cfg.yaml");
  BOOST_TEST(n.error().why.find("line ") == 0u);
  auto d = yaml::parse("a: 1\nb: 2\na: 3\n", "dup.yaml");
  BOOST_REQUIRE(!d.ok());
  BOOST_TEST(d.error().why == "line 3 column 1: duplicate key \"a\"");
}

BOOST_AUTO_TEST_CASE(alias_bombs_are_bounded) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += fmt::format("{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n", c, c, prev, prev, prev, prev,
                        prev, prev, prev, prev, prev, prev);
    prev = c;
  }
  auto n = yaml::parse(bomb, "bomb");
  BOOST_REQUIRE(!n.ok());
  BOOST_TEST(n.error().why.find("aliases expand") != std::string::npos);
  std::string deep(500, '[');
  BOOST_TEST(!yaml::parse(deep + std::string(500, ']'), "deep").ok());
}

BOOST_AUTO_TEST_CASE(emit_round_trips_and_quotes_ambiguous_strings) {
  auto root = yaml::Node::mapping();
  root.set("name", yaml::Node::scalar("kina-dev"));
  root.set("flag", yaml::Node::scalar("true"));   // a string, must stay one
  root.set("num", yaml::Node::scalar("0123"));
  root.set("empty", yaml::Node::scalar(""));
  auto seq = yaml::Node::sequence();
  seq.items.push_back(yaml::Node::scalar("a: b"));
  root.set("list", seq);
  auto text = yaml::emit(root);
  BOOST_REQUIRE(text.ok());
  auto back = yaml::parse(*text, "emitted");
  BOOST_REQUIRE(back.ok());
  BOOST_TEST((back->get("flag")->style != yaml::Style::plain));
  BOOST_TEST(back->get_string("num").value() == "0123");
  BOOST_TEST((back->get("num")->style != yaml::Style::plain));
  BOOST_TEST(back->get("list")->items[0].value == "a: b");
  BOOST_TEST(back->get("empty")->value == "");
  BOOST_TEST(!back->get("empty")->is_null());
}

BOOST_AUTO_TEST_CASE(multi_document_streams) {
  auto docs = yaml::parse_all("a: 1\n---\nb: 2\n", "multi");
  BOOST_REQUIRE(docs.ok());
  BOOST_TEST(docs->size() == 2u);
  BOOST_TEST(!yaml::parse("a: 1\n---\nb: 2\n", "multi").ok());
}
