#define BOOST_TEST_MODULE interrupt
#include <boost/test/unit_test.hpp>

// kina/interrupt.hpp: the signal thread. Each case runs in a child process of
// its own (the thread, once started, stays for the life of the process), and
// reports through its exit status.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "kina/interrupt.hpp"
#include "kina/process.hpp"
#include "test_support.hpp"

using namespace kina;

namespace {

// Runs fn in a child; its wait status.
int in_child(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  int st = 0;
  ::waitpid(pid, &st, 0);
  return st;
}

// Waits up to 10 s for fd to be readable.
bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 10000) == 1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(unheld_signal_runs_cleanups_newest_first_then_the_hook_and_exits_128_plus_n) {
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  int st = in_child([&] {
    Interrupts intr([&](int signo) { (void)!::write(fds[1], signo == SIGTERM ? "H" : "?", 1); });
    auto a = intr.on_signal([&] { (void)!::write(fds[1], "a", 1); });
    auto b = intr.on_signal([&] { (void)!::write(fds[1], "b", 1); });
    ::kill(::getpid(), SIGTERM);
    ::sleep(10);
    return 0;  // not reached: the thread exits
  });
  ::close(fds[1]);
  char buf[8] = {};
  BOOST_TEST(::read(fds[0], buf, sizeof buf) == 3);
  ::close(fds[0]);
  BOOST_TEST(std::string(buf) == "baH");
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 128 + SIGTERM);
}

BOOST_AUTO_TEST_CASE(held_signals_are_queued_for_the_command_in_order) {
  int st = in_child([] {
    Interrupts intr;
    auto held = intr.hold();
    if (intr.take() != 0 || !Interrupts::check(&intr, "x")) return 1;  // nothing queued yet
    ::kill(::getpid(), SIGINT);
    if (!readable(intr.fd())) return 2;
    ::kill(::getpid(), SIGHUP);
    for (int i = 0; i < 200 && intr.take() == 0; ++i) {
    }
    // SIGINT was taken above (or by the loop); wait for SIGHUP the same way.
    for (int i = 0; i < 1000; ++i) {
      auto c = Interrupts::check(&intr, "copying", "what it wrote was removed");
      if (!c) {
        if (code(c.error().exit) != 128 + SIGHUP) return 3;
        if (c.error().message() != "copying: interrupted by SIGHUP; what it wrote was removed") return 4;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 5;
  });
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 0);
}

BOOST_AUTO_TEST_CASE(a_signal_not_taken_during_a_hold_is_discarded_and_the_next_one_ends_the_process) {
  int st = in_child([] {
    Interrupts intr;
    {
      auto held = intr.hold();
      auto inner = Interrupts::hold(&intr);  // holds nest
      ::kill(::getpid(), SIGINT);
      if (!readable(intr.fd())) return 1;
    }
    // Queued, never taken: gone with the hold, so the process goes on.
    if (intr.take() != 0) return 2;
    ::kill(::getpid(), SIGTERM);
    ::sleep(10);
    return 3;  // not reached
  });
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 128 + SIGTERM);
}

// The thread is never where a signal meant for the command lands: a process
// SIGQUIT reaches the command's signalfd instead of killing the process (the
// thread once had SIGQUIT, SIGCHLD and SIGWINCH unblocked).
BOOST_AUTO_TEST_CASE(other_signals_are_left_to_the_command) {
  int st = in_child([] {
    Interrupts intr;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGQUIT);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);
    ::kill(::getpid(), SIGQUIT);
    // Not read at once: a thread that could take it has time to (and the
    // process dies of it).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (!readable(sfd)) return 1;
    signalfd_siginfo si;
    if (::read(sfd, &si, sizeof si) != static_cast<ssize_t>(sizeof si) || si.ssi_signo != SIGQUIT) return 2;
    return 0;
  });
  BOOST_TEST(WIFEXITED(st), "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0));
  BOOST_TEST(WEXITSTATUS(st) == 0);
}

// run_process of a foreground child in a command that holds its signals:
// SIGTERM to the command is passed on to the child (apple exec).
BOOST_AUTO_TEST_CASE(held_sigterm_is_passed_on_to_a_foreground_child) {
  char dir[] = "/tmp/kina-intr-XXXXXX";
  BOOST_TEST_REQUIRE(::mkdtemp(dir) != nullptr);
  std::string ready = std::string(dir) + "/ready";
  int st = in_child([&] {
    Interrupts intr;
    auto held = intr.hold();
    std::thread([&] {
      struct stat sb {};
      for (int i = 0; i < 1000 && ::stat(ready.c_str(), &sb) != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      ::kill(::getpid(), SIGTERM);
    }).detach();
    ProcessSpec s;
    s.argv = {"sh", "-c", "trap 'exit 7' TERM; : > \"$0\"; while :; do sleep 0.1; done", ready};
    s.capture_stdout = s.capture_stderr = false;
    s.foreground = true;
    s.interrupts = &intr;
    s.timeout = std::chrono::seconds(60);
    auto r = run_process(s);
    if (!r) return 1;
    return r->exit_code() == 7 ? 0 : 10 + r->exit_code() % 100;
  });
  ::unlink(ready.c_str());
  ::rmdir(dir);
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 0);
}

// A signal that ends the command ends the children it started too (each in
// its process group: run_process gives a non-foreground child its own), so
// that no mke2fs or `kina-vm exec` outlives an interrupted command.
BOOST_AUTO_TEST_CASE(children_end_with_the_command) {
  char dir[] = "/tmp/kina-intr-XXXXXX";
  BOOST_TEST_REQUIRE(::mkdtemp(dir) != nullptr);
  std::string pidfile = std::string(dir) + "/pid";
  int st = in_child([&] {
    Interrupts intr;
    std::thread([&] {
      ProcessSpec s;
      // A child of the child: in the same group, it must go too.
      s.argv = {"sh", "-c", "sleep 300 & echo $! > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"; wait", pidfile};
      (void)run_process(s);
    }).detach();
    struct stat sb {};
    for (int i = 0; i < 1000 && ::stat(pidfile.c_str(), &sb) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ::kill(::getpid(), SIGTERM);
    ::sleep(10);
    return 0;  // not reached
  });
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 128 + SIGTERM);
  FILE* f = std::fopen(pidfile.c_str(), "r");
  BOOST_TEST_REQUIRE(f != nullptr);
  long pid = 0;
  BOOST_TEST_REQUIRE(std::fscanf(f, "%ld", &pid) == 1);
  std::fclose(f);
  bool gone = false;
  for (int i = 0; i < 500 && !(gone = !kina::unit::pid_alive(pid)); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!gone) ::kill(static_cast<pid_t>(pid), SIGKILL);
  BOOST_TEST(gone, "the grandchild sleep " << pid << " outlived the interrupted command");
  ::unlink(pidfile.c_str());
  ::rmdir(dir);
}
