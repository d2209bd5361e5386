// signal_guard.hpp: SIGINT, SIGTERM and SIGHUP held back around kina-kube's
// renames, and a kubeconfig lock file removed before the process dies of them.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <string>

namespace kina::kube::lock_signals {

inline constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

// What the handler reads. A signal handler can reach nothing else, so this is
// the one mutable global of kina-kube: set only with the signals blocked.
struct HandlerState {
  char path[4096];
  volatile sig_atomic_t armed;
  struct sigaction old[3];
};
inline HandlerState g_state{};

inline void on_signal(int sig) {
  if (g_state.armed) ::unlink(g_state.path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Blocks the three signals for the life of the guard (so taking and releasing
// the lock and (dis)arming the handler happen as one step).
struct Blocked {
  sigset_t old;
  Blocked() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kSignals) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &old);
  }
  ~Blocked() { ::sigprocmask(SIG_SETMASK, &old, nullptr); }
  Blocked(const Blocked&) = delete;
  Blocked& operator=(const Blocked&) = delete;
};

// While armed, the three signals remove `path` before the process dies of them.
inline void arm(const std::string& path) {
  if (path.size() >= sizeof g_state.path) return;  // the lock is then only removed on a normal exit
  std::copy(path.begin(), path.end(), g_state.path);
  g_state.path[path.size()] = '\0';
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &g_state.old[i]);
  g_state.armed = 1;
}

inline void disarm() {
  if (!g_state.armed) return;
  g_state.armed = 0;
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &g_state.old[i], nullptr);
}

}  // namespace kina::kube::lock_signals
