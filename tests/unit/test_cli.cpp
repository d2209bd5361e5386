// Unit tests for cli.hpp: "did you mean" for a mistyped subcommand, and the
// exit-code footer every --help ends with.
#define BOOST_TEST_MODULE cli
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "kina/cli.hpp"

namespace {

// A two-level app like kina-kube's: merge (with --kubeconfig FILE), pki init/export.
struct Fixture {
  CLI::App app{"tool"};
  std::string kubeconfig;
  Fixture() {
    kina::setup_app(app, "tool");
    app.add_subcommand("merge", "")->add_option("--kubeconfig", kubeconfig);
    auto* pki = app.add_subcommand("pki", "");
    pki->require_subcommand(1);
    pki->add_subcommand("init", "");
    pki->add_subcommand("export", "");
    app.add_option("--log", kubeconfig);
  }
  std::optional<kina::UnknownSubcommand> find(std::vector<std::string> words) {
    words.insert(words.begin(), "tool");
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    return kina::find_unknown_subcommand(app, static_cast<int>(argv.size()), argv.data());
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(edit_distance) {
  BOOST_TEST(kina::edit_distance("merge", "merge") == 0u);
  BOOST_TEST(kina::edit_distance("mrege", "merge") == 2u);
  BOOST_TEST(kina::edit_distance("apend", "append") == 1u);
  BOOST_TEST(kina::edit_distance("", "abc") == 3u);
}

BOOST_FIXTURE_TEST_CASE(unknown_subcommand_found_at_its_level, Fixture) {
  auto u = find({"mrege"});
  BOOST_REQUIRE(u);
  BOOST_TEST(u->word == "mrege");
  BOOST_TEST(u->app == &app);
  auto e = kina::unknown_subcommand_error("tool", *u);
  BOOST_TEST(e.message() == "usage: tool has no subcommand \"mrege\"; did you mean \"merge\"?");
  BOOST_TEST(kina::code(e.exit) == 64);

  // The value of a known option is skipped; nested subcommands are descended.
  u = find({"--log", "x", "pki", "int"});
  BOOST_REQUIRE(u);
  BOOST_TEST(u->word == "int");
  BOOST_TEST(kina::unknown_subcommand_error("tool", *u).message() ==
             "usage: tool pki has no subcommand \"int\"; did you mean \"init\"?");

  // Nothing close: no suggestion.
  u = find({"zzzzzz"});
  BOOST_REQUIRE(u);
  BOOST_TEST(kina::unknown_subcommand_error("tool", *u).message() == "usage: tool has no subcommand \"zzzzzz\"");
}

BOOST_FIXTURE_TEST_CASE(no_guess_when_argv_is_fine_or_unclear, Fixture) {
  BOOST_TEST(!find({"merge", "--kubeconfig", "pki"}));  // "pki" is merge's option value
  BOOST_TEST(!find({"pki", "init"}));
  BOOST_TEST(!find({"--unknown", "mrege"}));  // cannot tell whether --unknown takes a value
  BOOST_TEST(!find({"--", "mrege"}));
}

BOOST_AUTO_TEST_CASE(every_help_lists_the_exit_codes) {
  Fixture f;
  kina::add_exit_code_footers(f.app);
  std::vector<const CLI::App*> apps{&f.app, f.app.get_subcommand("merge"),
                                     f.app.get_subcommand("pki")->get_subcommand("init")};
  for (const CLI::App* a : apps) {
    std::string help = a->help();
    BOOST_TEST(help.find("Exit codes:") != std::string::npos);
    BOOST_TEST(help.find("  64  usage error") != std::string::npos);
    BOOST_TEST(help.find("  80  refused by policy") != std::string::npos);
  }
}
