// interrupt.hpp: SIGINT, SIGTERM and SIGHUP held back while a command builds
// something it must undo (boot): it polls for them and cleans up first.
#pragma once

#include <signal.h>
#include <string.h>

#include <string>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/exit.hpp"

namespace kina::vm {

inline sigset_t interrupt_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  return set;
}

// While alive, the interrupt signals stay pending instead of killing the
// process; on destruction the ones still pending are discarded (the command
// has answered them by cleaning up) and the old mask comes back.
class HeldInterrupts {
 public:
  HeldInterrupts() {
    sigset_t set = interrupt_signals();
    ::sigprocmask(SIG_BLOCK, &set, &old_);
  }
  HeldInterrupts(const HeldInterrupts&) = delete;
  HeldInterrupts& operator=(const HeldInterrupts&) = delete;
  ~HeldInterrupts() {
    sigset_t set = interrupt_signals();
    timespec zero{};
    while (::sigtimedwait(&set, nullptr, &zero) > 0) {
    }
    ::sigprocmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t old_;
};

// An error (exit 128+N) when an interrupt signal is pending; consumes it.
// UNDONE says what the command does about it.
inline Status check_interrupt(std::string_view what, std::string_view undone = "what it had started was removed") {
  sigset_t set = interrupt_signals();
  timespec zero{};
  int s = ::sigtimedwait(&set, nullptr, &zero);
  if (s <= 0) return {};
  const char* name = ::sigabbrev_np(s);
  return make_error(static_cast<Exit>(signal_exit(s)), std::string(what),
                    fmt::format("interrupted by SIG{}; {}", name ? name : "?", undone));
}

}  // namespace kina::vm
