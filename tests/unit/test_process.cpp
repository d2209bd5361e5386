#define BOOST_TEST_MODULE process
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "kina/process.hpp"
#include "test_support.hpp"

using namespace kina;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(captures_stdout_stderr_and_status) {
  ProcessSpec s;
  s.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"};
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->out == "out\n");
  BOOST_TEST(r->err == "err\n");
  BOOST_TEST(r->exited);
  BOOST_TEST(r->exit_code() == 3);
}

BOOST_AUTO_TEST_CASE(argv_is_not_interpreted_by_a_shell) {
  ProcessSpec s;
  s.argv = {"printf", "%s|", "a b", "$(id)", ";rm -rf /"};
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->out == "a b|$(id)|;rm -rf /|");
}

BOOST_AUTO_TEST_CASE(environment_is_only_the_allowlist) {
  ::setenv("KINA_TEST_SECRET", "hunter2", 1);
  ProcessSpec s;
  s.argv = {"env"};
  s.env = build_env({"PATH"}, {"EXTRA=1"});
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->out.find("hunter2") == std::string::npos);
  BOOST_TEST(r->out.find("EXTRA=1") != std::string::npos);
  BOOST_TEST(r->out.find("PATH=") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(signal_death_is_128_plus_n) {
  ProcessSpec s;
  s.argv = {"sh", "-c", "kill -KILL $$"};
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(!r->exited);
  BOOST_TEST(r->term_signal == SIGKILL);
  BOOST_TEST(r->exit_code() == 128 + 9);
}

BOOST_AUTO_TEST_CASE(timeout_kills_the_whole_process_group) {
  ProcessSpec s;
  // The grandchild ignores SIGTERM; only SIGKILL to the group stops it.
  s.argv = {"sh", "-c", "trap '' TERM; (trap '' TERM; sleep 30; echo late) & sleep 30"};
  s.timeout = 300ms;
  s.kill_grace = 200ms;
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_process(s);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->timed_out);
  BOOST_TEST(r->out.find("late") == std::string::npos);
  BOOST_TEST(took < 10s);
}

BOOST_AUTO_TEST_CASE(output_is_capped) {
  ProcessSpec s;
  s.argv = {"head", "-c", "1000000", "/dev/zero"};
  s.max_output = 1000;
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->out.size() == 1000u);
  BOOST_TEST(r->out_truncated);
  BOOST_TEST(r->exit_code() == 0);
}

BOOST_AUTO_TEST_CASE(on_stdout_streams_and_can_stop_the_output) {
  ProcessSpec s;
  s.argv = {"head", "-c", "300000", "/dev/zero"};
  size_t got = 0;
  s.on_stdout = [&](std::string_view chunk) {
    got += chunk.size();
    return true;
  };
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(got == 300000u);
  BOOST_TEST(r->out.empty());
  // Refusing the first chunk closes the pipe: a writer that never ends
  // (yes) is ended by SIGPIPE instead of running on (no timeout set).
  ProcessSpec y;
  y.argv = {"yes"};
  int calls = 0;
  y.on_stdout = [&](std::string_view) {
    ++calls;
    return false;
  };
  auto ry = run_process(y);
  BOOST_REQUIRE(ry.ok());
  BOOST_TEST(calls == 1);
  BOOST_TEST(!ry->exited);
  BOOST_TEST(ry->term_signal == SIGPIPE);
}

BOOST_AUTO_TEST_CASE(feeds_stdin) {
  ProcessSpec s;
  s.argv = {"wc", "-c"};
  s.input = std::string(300000, 'x');
  auto r = run_process(s);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(std::stoi(r->out) == 300000);
}

BOOST_AUTO_TEST_CASE(missing_program_is_unavailable) {
  ProcessSpec s;
  s.argv = {"kina-no-such-program-xyz"};
  auto r = run_process(s);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 69);
}

BOOST_AUTO_TEST_CASE(run_checked_names_the_program_its_end_and_first_stderr_line) {
  ProcessSpec s;
  s.argv = {"/bin/sh", "-c", "echo 'disk full' >&2; echo second >&2; exit 3"};
  auto r = run_checked(s, "creating disk d.ext4", Exit::cant_create, "give a larger --disk-size");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 73);
  BOOST_TEST(r.error().message() == "creating disk d.ext4: sh exited with status 3: disk full\\x0asecond");
  BOOST_TEST(r.error().hint == "give a larger --disk-size");

  // Nothing on stderr: stdout says why (e2fsck -n reports there).
  s.argv = {"/bin/sh", "-c", "echo 'inode 12 bad'; exit 4"};
  r = run_checked(s, "checking disk d.ext4", Exit::internal);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.error().message() == "checking disk d.ext4: sh exited with status 4: inode 12 bad");

  s.argv = {"/bin/sh", "-c", "printf ok"};
  r = run_checked(s, "x");
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->out == "ok");
}

BOOST_AUTO_TEST_CASE(run_checked_tool_passes_a_kina_tools_message_on_and_maps_its_exit) {
  auto map = [](int status) { return status == 66 ? Exit::no_input : Exit::unavailable; };
  ProcessSpec s;
  s.argv = {"/bin/sh", "-c", "echo 'kina-vm: error: machine \"ghost\": not found' >&2; exit 66"};
  auto r = run_checked_tool(s, "kina-vm inspect ghost", map);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 66);
  BOOST_TEST(r.error().message() == "kina-vm inspect ghost: kina-vm: error: machine \"ghost\": not found");

  s.argv = {"/bin/sh", "-c", "echo 'kina-vm: error: agent: refused' >&2; exit 69"};
  r = run_checked_tool(s, "copying f", map, "boot it");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 69);
  BOOST_TEST(r.error().hint == "boot it");

  // Silent: how it ended, naming the program; a signal is 128+N to the mapping.
  int seen = 0;
  s.argv = {"/bin/sh", "-c", "kill -9 $$"};
  r = run_checked_tool(s, "x", [&](int status) { seen = status; return Exit::unavailable; });
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(seen == 137);
  BOOST_TEST(r.error().message().starts_with("x: sh killed by signal 9"));

  s.argv = {"/bin/sh", "-c", "printf ok"};
  r = run_checked_tool(s, "x", map);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r->out == "ok");
}

// die_with_us: a child outlives a parent killed with -9 unless it is set,
// and with it is gone (the control case shows the test can fail).
namespace {
using kina::unit::pid_alive;

// Forks a parent that runs `sleep 300` (die_with_us as given), kills the
// parent with -9 once the sleep runs, and says whether the sleep is gone
// within 5 s (it is killed either way after).
bool child_ends_with_killed_parent(bool die_with_us) {
  char dir[] = "/tmp/kina-proc-XXXXXX";
  if (!::mkdtemp(dir)) return false;
  std::string pidfile = std::string(dir) + "/pid";
  pid_t parent = ::fork();
  if (parent == 0) {
    ProcessSpec s;
    s.argv = {"sh", "-c", "echo $$ > \"$0.tmp\" && mv \"$0.tmp\" \"$0\" && exec sleep 300", pidfile};
    s.die_with_us = die_with_us;
    (void)run_process(s);
    ::_exit(0);
  }
  long pid = 0;
  for (int i = 0; i < 1000 && pid == 0; ++i) {
    if (FILE* f = std::fopen(pidfile.c_str(), "r")) {
      if (std::fscanf(f, "%ld", &pid) != 1) pid = 0;
      std::fclose(f);
    }
    if (pid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(parent, SIGKILL);
  ::waitpid(parent, nullptr, 0);
  bool gone = pid != 0;
  for (int i = 0; pid != 0 && i < 500 && !(gone = !pid_alive(pid)); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (pid != 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
  ::unlink(pidfile.c_str());
  ::rmdir(dir);
  return pid != 0 && gone;
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_child_set_to_die_with_us_ends_with_a_parent_killed_with_9) {
  BOOST_TEST(!child_ends_with_killed_parent(false), "without die_with_us the child outlives its parent (control)");
  BOOST_TEST(child_ends_with_killed_parent(true), "with die_with_us the child ended with its parent");
}
