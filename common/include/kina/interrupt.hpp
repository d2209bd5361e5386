// interrupt.hpp: SIGINT, SIGTERM and SIGHUP end a command cleanly: the
// temporaries it registered are removed (a lock file, a staging directory),
// its audit event is written, and the process exits 128+signal, as a shell
// reports it. The one signal mechanism of the tools (kina-vm's own goes too,
// docs/architecture.md).
#pragma once

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include "kina/exit.hpp"

namespace kina {

namespace detail {
struct InterruptState {
  std::recursive_mutex mu;
  std::list<std::function<void(int signo)>> cleanups;
  std::function<void(int)> hook;
};
}  // namespace detail

// Create one in main() before any other thread starts: the signals are then
// blocked in every thread and taken by one waiting thread, which runs the
// cleanups in ordinary (not signal-handler) context, then the hook, then
// _exit(128+signal). Children started with run_process reset their mask.
class Interrupts {
 public:
  using Hook = std::function<void(int signo)>;

  explicit Interrupts(Hook on_signal = {}) : state_(std::make_shared<detail::InterruptState>()) {
    state_->hook = std::move(on_signal);
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([s = state_, set] {
      int signo = 0;
      while (::sigwait(&set, &signo) != 0) {
      }
      s->mu.lock();  // held until _exit: no guard is released, no rename happens meanwhile
      for (auto it = s->cleanups.rbegin(); it != s->cleanups.rend(); ++it) (*it)(signo);  // newest first
      if (s->hook) s->hook(signo);
      ::_exit(signal_exit(signo));
    }).detach();
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
  template <class Fn>
  auto critical(Fn&& fn) const {
    std::lock_guard<std::recursive_mutex> l(state_->mu);
    return fn();
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
