// Unit tests for cli.hpp: "did you mean" for a mistyped subcommand, the
// exit-code footer every --help ends with, and the subcommand table: what
// run_tool records in the audit log (nested commands, read-only ones, refused
// command lines, signals).
#define BOOST_TEST_MODULE cli
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kina/cli.hpp"
#include "test_support.hpp"

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

// --- the subcommand table (run_tool with a Tool) ------------------------------------

namespace {

struct TableOptions {
  std::string name;
};

void act_options(CLI::App& c, TableOptions& o) { c.add_option("--name", o.name, "A name")->required(); }

kina::Status act_fails(TableOptions& o, kina::Invocation& inv) {
  inv.set_cluster("c1");
  inv.set_target(o.name);
  return kina::make_error(kina::Exit::no_input, "finding " + o.name, "not there");
}

kina::Status look_ok(TableOptions&, kina::Invocation&) { return {}; }

kina::Status act_killed(TableOptions& o, kina::Invocation& inv) {
  inv.set_target(o.name);
  ::kill(::getpid(), SIGTERM);
  for (;;) ::pause();
}

// A tool with a nested audited command (grp act), a killed one (grp die) and
// a read-only one (look).
kina::Tool<TableOptions> table_tool(bool audit_refused) {
  return {"tool",
          "A test tool",
          {{"grp", "A group",
            {{"act", "Acts", act_options, act_fails, "grp-act"}, {"die", "Is killed", act_options, act_killed, "grp-die"}}},
           {"look", "Reads", nullptr, look_ok}},
          nullptr,
          audit_refused,
          [](const TableOptions& o) { return o.name; }};
}

// Runs the tool with `words`, stderr captured; returns the exit code.
struct Ran {
  int code;
  std::string err;
};
Ran run_table(const kina::Tool<TableOptions>& t, std::vector<std::string> words, const std::filesystem::path& dir) {
  words.insert(words.begin(), "tool");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  std::string errf = (dir / "stderr").string();
  std::fflush(stderr);
  int saved = ::dup(2);
  int fd = ::open(errf.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(fd, 2);
  ::close(fd);
  int rc = kina::run_tool(t, static_cast<int>(argv.size()), argv.data());
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::ifstream in(errf);
  return {rc, std::string(std::istreambuf_iterator<char>(in), {})};
}

std::vector<std::string> log_lines(const std::filesystem::path& log) {
  std::vector<std::string> out;
  std::ifstream in(log);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

struct TableFixture {
  kina::unit::TempDir tmp;
  std::filesystem::path log = tmp.path / "audit.jsonl";
  TableFixture() { ::setenv("KINA_AUDIT_LOG", log.c_str(), 1); }
  ~TableFixture() { ::unsetenv("KINA_AUDIT_LOG"); }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(table_records_a_nested_command_with_its_real_exit_code, TableFixture) {
  auto r = run_table(table_tool(false), {"grp", "act", "--name", "x"}, tmp.path);
  BOOST_TEST(r.code == 66);
  auto lines = log_lines(log);
  BOOST_REQUIRE(lines.size() == 1u);
  const std::string& e = lines[0];
  BOOST_TEST(e.find("\"tool\":\"tool\",\"action\":\"grp-act\",\"cluster\":\"c1\",\"target\":\"x\"") != std::string::npos, e);
  BOOST_TEST(e.find("\"args\":[\"grp\",\"act\",\"--name\",\"x\"]") != std::string::npos, e);
  BOOST_TEST(e.find("\"outcome\":\"error\",\"exitCode\":66") != std::string::npos, e);
}

BOOST_FIXTURE_TEST_CASE(table_does_not_record_a_read_only_command, TableFixture) {
  auto r = run_table(table_tool(true), {"look"}, tmp.path);
  BOOST_TEST(r.code == 0);
  BOOST_TEST(log_lines(log).empty());
}

BOOST_FIXTURE_TEST_CASE(table_suggests_the_nearest_subcommand, TableFixture) {
  auto r = run_table(table_tool(false), {"grp", "atc"}, tmp.path);
  BOOST_TEST(r.code == 64);
  BOOST_TEST(r.err.find("tool grp has no subcommand \"atc\"; did you mean \"act\"?") != std::string::npos, r.err);
  r = run_table(table_tool(false), {"lok"}, tmp.path);
  BOOST_TEST(r.code == 64);
  BOOST_TEST(r.err.find("did you mean \"look\"?") != std::string::npos, r.err);
  BOOST_TEST(log_lines(log).empty());
}

BOOST_FIXTURE_TEST_CASE(table_records_a_refused_command_line_only_when_asked, TableFixture) {
  auto r = run_table(table_tool(false), {"grp", "act"}, tmp.path);  // --name is required
  BOOST_TEST(r.code == 64);
  BOOST_TEST(log_lines(log).empty());
  r = run_table(table_tool(true), {"grp", "act"}, tmp.path);
  BOOST_TEST(r.code == 64);
  auto lines = log_lines(log);
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].find("\"action\":\"grp-act\"") != std::string::npos, lines[0]);
  BOOST_TEST(lines[0].find("\"outcome\":\"error\",\"exitCode\":64") != std::string::npos, lines[0]);
  // What was parsed before the refusal names the target.
  r = run_table(table_tool(true), {"grp", "act", "--name", "z", "--bogus"}, tmp.path);
  BOOST_TEST(r.code == 64);
  lines = log_lines(log);
  BOOST_REQUIRE(lines.size() == 2u);
  BOOST_TEST(lines[1].find("\"action\":\"grp-act\",\"target\":\"z\"") != std::string::npos, lines[1]);
}

BOOST_FIXTURE_TEST_CASE(table_records_a_command_ended_by_a_signal, TableFixture) {
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    std::vector<std::string> words{"tool", "grp", "die", "--name", "y"};
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    ::_exit(kina::run_tool(table_tool(false), static_cast<int>(argv.size()), argv.data()));
  }
  int status = 0;
  BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 143);
  auto lines = log_lines(log);
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].find("\"action\":\"grp-die\",\"target\":\"y\"") != std::string::npos, lines[0]);
  BOOST_TEST(lines[0].find("\"details\":{\"signal\":\"TERM\"},\"outcome\":\"error\",\"exitCode\":143") != std::string::npos,
             lines[0]);
}
