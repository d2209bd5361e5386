// invocation.hpp: what a running subcommand gets besides its options (which
// options were given, the signal handling) and what it reports for its audit
// event (the cluster and the object it acted on).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include "kina/interrupt.hpp"

namespace kina {

class Invocation {
 public:
  Invocation() = default;
  Invocation(std::function<size_t(const std::string&)> count, const Interrupts* interrupts)
      : count_(std::move(count)), interrupts_(interrupts) {}

  // Whether the option (e.g. "--entrypoint") was given, even with an empty value.
  bool given(const std::string& option) const { return count_ && count_(option) > 0; }

  // SIGINT, SIGTERM and SIGHUP: set for a command that is audited (else null);
  // register temporaries with it and rename under its critical().
  const Interrupts* interrupts() const { return interrupts_; }

  // The audit event's cluster and target. The signal thread may read them
  // at any time, so they change only here, with signals held off.
  void set_cluster(std::string c) {
    Interrupts::critical(interrupts_, [&] { cluster_ = std::move(c); });
  }
  void set_target(std::string t) {
    Interrupts::critical(interrupts_, [&] { target_ = std::move(t); });
  }
  const std::string& cluster() const { return cluster_; }

  // A command that succeeds but ends with another status (kina-vm exec: the
  // status of the command it ran): the tool exits with it, and its audit
  // event records it, without an error message.
  void set_exit_status(int status) { exit_status_ = status; }
  int exit_status() const { return exit_status_; }
  const std::string& target() const { return target_; }

 private:
  std::function<size_t(const std::string&)> count_;
  const Interrupts* interrupts_ = nullptr;
  std::string cluster_, target_;
  int exit_status_ = 0;
};

}  // namespace kina
