// interrupt.hpp: SIGINT, SIGTERM and SIGHUP end a command cleanly: the
// temporaries it registered are removed (a lock file, a staging directory),
// its audit event is written, and the process exits 128+signal, as a shell
// reports it. A command that must answer them itself at a safe point (kina-vm
// boot undoes the machine it started, exec passes them to the guest's command,
// cp removes what it wrote) holds them instead (hold()): they are then queued
// for it to take. The one signal mechanism of the tools (docs/architecture.md).
#pragma once

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/exit.hpp"

namespace kina {

namespace detail {
struct InterruptState {
  std::recursive_mutex mu;
  std::list<std::function<void(int signo)>> cleanups;
  std::function<void(int)> hook;
  std::atomic<int> holds{0};   // hold()s alive: signals are queued, not acted on
  // A signal the thread will act on as soon as it has the lock: a command
  // leaving critical() must not take the lock again before it (a mutex is
  // not fair), or it could finish and exit 0 with the signal unanswered.
  std::atomic<int> ending{0};
  std::deque<int> pending;   // queued signals, oldest first
  int pipe[2] = {-1, -1};    // readable while a signal is queued (for poll loops)
};
// Sends SIGTERM to this process's children (those of every thread, from
// /proc/self/task/*/children): to the child's process group when it leads
// one (run_process puts a non-foreground child in a group of its own, so a
// tool such as mke2fs or a `kina-vm exec` goes with everything it started),
// else to the child alone. A command's helpers thus end with it. Daemons
// (the VM supervisor, a switch) are reparented away and are not children.
// Only system calls and fixed buffers: it runs while the process is ending.
inline void terminate_children() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (!tasks) return;
  while (dirent* t = ::readdir(tasks)) {
    if (t->d_name[0] < '0' || t->d_name[0] > '9') continue;
    char path[300];  // d_name is at most 255 bytes
    std::snprintf(path, sizeof path, "/proc/self/task/%.255s/children", t->d_name);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    for (char* p = buf; *p;) {
      char* end = nullptr;
      long pid = std::strtol(p, &end, 10);
      if (end == p) break;
      p = end;
      while (*p == ' ' || *p == '\n') ++p;
      if (pid <= 0) continue;
      if (::getpgid(static_cast<pid_t>(pid)) == static_cast<pid_t>(pid)) ::kill(-static_cast<pid_t>(pid), SIGTERM);
      else ::kill(static_cast<pid_t>(pid), SIGTERM);
    }
  }
  ::closedir(tasks);
}

}  // namespace detail

// Create one in main() before any other thread starts: the signals are then
// blocked in every thread and taken by one waiting thread, which sends
// SIGTERM to the process's children (detail::terminate_children), runs the
// cleanups in ordinary (not signal-handler) context, then the hook, then
// _exit(128+signal). Children started with run_process reset their mask.
class Interrupts {
 public:
  using Hook = std::function<void(int signo)>;

  explicit Interrupts(Hook on_signal = {}) : state_(std::make_shared<detail::InterruptState>()) {
    state_->hook = std::move(on_signal);
    if (::pipe2(state_->pipe, O_CLOEXEC | O_NONBLOCK) != 0) state_->pipe[0] = state_->pipe[1] = -1;
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
    // The thread starts with every signal blocked, so that none meant for
    // the command (SIGCHLD, SIGQUIT, SIGWINCH) is ever delivered to it.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old);
    std::thread([s = state_, set] {
      for (;;) {
        int signo = 0;
        while (::sigwait(&set, &signo) != 0) {
        }
        if (s->holds.load() == 0) s->ending.store(signo);
        s->mu.lock();  // held until _exit: no guard is released, no rename happens meanwhile
        if (s->holds > 0) {  // the command takes it (take(), check())
          s->ending.store(0);
          s->pending.push_back(signo);
          if (s->pipe[1] >= 0) (void)!::write(s->pipe[1], "s", 1);
          s->mu.unlock();
          continue;
        }
        s->ending.store(0);  // the lock is ours until _exit (a cleanup may call critical())
        detail::terminate_children();  // first: a cleanup may remove what a child writes into
        for (auto it = s->cleanups.rbegin(); it != s->cleanups.rend(); ++it) (*it)(signo);  // newest first
        if (s->hook) s->hook(signo);
        ::_exit(signal_exit(signo));
      }
    }).detach();
    sigaddset(&old, SIGINT), sigaddset(&old, SIGTERM), sigaddset(&old, SIGHUP);
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  Interrupts(const Interrupts&) = delete;
  Interrupts& operator=(const Interrupts&) = delete;
  // The hook may refer to objects that go with us; a later signal only exits.
  ~Interrupts() {
    std::lock_guard<std::recursive_mutex> l(state_->mu);
    state_->hook = nullptr;
  }

  // Forgets its cleanup when it goes out of scope or on release().
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& o) noexcept : state_(std::move(o.state_)), it_(o.it_) {}
    Guard& operator=(Guard&& o) noexcept {
      if (this != &o) {
        release();
        state_ = std::move(o.state_);
        it_ = o.it_;
      }
      return *this;
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { release(); }
    bool active() const { return state_ != nullptr; }
    // The temporary became the result, or is already gone.
    void release() {
      if (auto s = std::move(state_)) {
        std::lock_guard<std::recursive_mutex> g(s->mu);
        s->cleanups.erase(it_);
      }
    }

   private:
    friend class Interrupts;
    std::shared_ptr<detail::InterruptState> state_;
    std::list<std::function<void(int)>>::iterator it_;
  };

  // Runs `fn` (or `fn(signo)`) if a signal ends the process while the
  // returned guard lives. Cleanups run newest first, in the signal thread,
  // under the same lock as critical(): what they read, set it in critical().
  template <class Fn>
  Guard on_signal(Fn fn) const {
    std::function<void(int)> f;
    if constexpr (std::is_invocable_v<Fn&, int>) f = std::move(fn);
    else f = [fn = std::move(fn)](int) mutable { fn(); };
    Guard g;
    std::lock_guard<std::recursive_mutex> l(state_->mu);
    state_->cleanups.push_back(std::move(f));
    g.it_ = std::prev(state_->cleanups.end());
    g.state_ = state_;
    return g;
  }

  // Runs `fn` with signals held off until it returns: a rename that turns a
  // temporary into the result and the release of its guard happen together.
  // A signal that came meanwhile is answered before the next critical()
  // begins (the outermost one of this thread waits for the signal thread).
  template <class Fn>
  auto critical(Fn&& fn) const {
    thread_local int depth = 0;  // critical() inside critical() never waits
    if (depth == 0)
      while (state_->ending.load() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::recursive_mutex> l(state_->mu);
    ++depth;
    struct Leave {
      ~Leave() { --depth; }
    } leave;
    return fn();
  }

  // While the returned object lives, SIGINT, SIGTERM and SIGHUP are queued
  // for the command (take(), check(), fd()) instead of ending the process.
  // When the last hold goes, queued ones that were not taken are discarded:
  // the command finished before it looked (boot's machine is up by then).
  class Hold {
   public:
    Hold() = default;
    Hold(Hold&& o) noexcept : state_(std::move(o.state_)) {}
    Hold& operator=(Hold&&) = delete;
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() {
      if (!state_) return;
      std::lock_guard<std::recursive_mutex> l(state_->mu);
      if (--state_->holds == 0) {
        state_->pending.clear();
        char buf[64];
        while (state_->pipe[0] >= 0 && ::read(state_->pipe[0], buf, sizeof buf) > 0) {
        }
      }
    }

   private:
    friend class Interrupts;
    std::shared_ptr<detail::InterruptState> state_;
  };
  Hold hold() const {
    Hold h;
    std::lock_guard<std::recursive_mutex> l(state_->mu);
    ++state_->holds;
    h.state_ = state_;
    return h;
  }
  // hold() when there is an Interrupts, else nothing (a unit test).
  static Hold hold(const Interrupts* intr) { return intr ? intr->hold() : Hold(); }

  // The oldest queued signal, taken (0: none).
  int take() const {
    std::lock_guard<std::recursive_mutex> l(state_->mu);
    if (state_->pending.empty()) return 0;
    int signo = state_->pending.front();
    state_->pending.pop_front();
    char c;
    if (state_->pipe[0] >= 0) (void)!::read(state_->pipe[0], &c, 1);
    return signo;
  }
  static int take(const Interrupts* intr) { return intr ? intr->take() : 0; }
  // Readable while a signal is queued (poll it with the command's own fds); -1 without one.
  int fd() const { return state_->pipe[0]; }
  static int fd(const Interrupts* intr) { return intr ? intr->fd() : -1; }

  // An error (exit 128+N) when a signal is queued, taken; UNDONE says what
  // the command did about it.
  static Status check(const Interrupts* intr, std::string_view what,
                      std::string_view undone = "what it had started was removed") {
    int signo = take(intr);
    if (signo == 0) return {};
    return interrupted(signo, what, undone);
  }
  // The error (exit 128+N) of WHAT interrupted by SIGNO; UNDONE says what the
  // command did about it.
  static Error interrupted(int signo, std::string_view what, std::string_view undone) {
    const char* name = ::sigabbrev_np(signo);
    return make_error(static_cast<Exit>(signal_exit(signo)), std::string(what),
                      fmt::format("interrupted by SIG{}; {}", name ? name : "?", undone));
  }

  // critical() when there is an Interrupts, else just fn(): for code that
  // runs both in a tool (signals handled) and in a unit test (none).
  template <class Fn>
  static auto critical(const Interrupts* intr, Fn&& fn) {
    if (intr) return intr->critical(std::forward<Fn>(fn));
    return fn();
  }

 private:
  std::shared_ptr<detail::InterruptState> state_;
};

}  // namespace kina
