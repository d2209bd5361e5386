// kubeconfig_lock.hpp: client-go's PATH.lock, taken by kubectl, kind and kina
// before writing a kubeconfig, so none of them loses the others' writes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/interrupt.hpp"

namespace kina::kube {

// kubectl and kind take `PATH.lock` with O_CREAT|O_EXCL before writing a
// kubeconfig; kina does the same. kina writes its pid into the file so a lock
// left by a crash can be named (when there is room for it). While kina holds it, SIGINT, SIGTERM and SIGHUP
// (given `intr`, interrupt.hpp) remove it before the process ends: a lock left
// behind makes every kubectl write fail.
class KubeconfigLock {
 public:
  KubeconfigLock() = default;
  KubeconfigLock(KubeconfigLock&& o) noexcept
      : path_(std::move(o.path_)), intr_(o.intr_), on_signal_(std::move(o.on_signal_)) {
    o.path_.clear();
  }
  KubeconfigLock& operator=(KubeconfigLock&&) = delete;
  KubeconfigLock(const KubeconfigLock&) = delete;
  ~KubeconfigLock() {
    if (path_.empty()) return;
    Interrupts::critical(intr_, [&] {
      ::unlink(path_.c_str());
      on_signal_.release();
    });
  }

  static Result<KubeconfigLock> acquire(const fsys::path& target, std::chrono::milliseconds timeout,
                                        const Interrupts* intr = nullptr) {
    fsys::path path = target.string() + ".lock";
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::milliseconds(5);
    for (;;) {
      // Creating the lock and arming its removal on a signal are one step.
      KubeconfigLock l;
      int err = 0;
      UniqueFd fd = Interrupts::critical(intr, [&] {
        UniqueFd f(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        err = errno;
        if (f.valid()) {
          l.path_ = path;
          l.intr_ = intr;
          if (intr) l.on_signal_ = intr->on_signal([p = path] { ::unlink(p.c_str()); });
        }
        return f;
      });
      if (fd.valid()) {
        // The pid only names the holder of a lock left behind: on a full
        // disk the lock is held empty, as kubectl's and kind's are.
        std::string info = fmt::format("pid={} cmd=kina-kube\n", ::getpid());
        if (!write_all(fd.get(), info, "writing " + path.string())) (void)!::ftruncate(fd.get(), 0);
        return l;
      }
      errno = err;
      if (errno != EEXIST) return os_error(fmt::format("creating lock {}", path.string()), errno, Exit::cant_create);
      std::string holder;
      if (auto text = read_file(path, 4096)) holder = *text;
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\r')) holder.pop_back();
      long pid = 0;
      if (holder.rfind("pid=", 0) == 0) pid = std::strtol(holder.c_str() + 4, nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        return make_error(Exit::temp_fail, fmt::format("stale lock {}", path.string()),
                          fmt::format("held by {} (pid {} is not running)", detail::one_line(holder), pid),
                          fmt::format("if no kubectl, kind or kina is writing {}, remove {}", target.string(), path.string()));
      if (std::chrono::steady_clock::now() >= deadline)
        return make_error(Exit::temp_fail, fmt::format("lock {}", path.string()),
                          fmt::format("held by {} (waited {} ms)",
                                      holder.empty() ? "another process (kubectl or kind write no pid)" : detail::one_line(holder),
                                      timeout.count()),
                          "retry; if nothing is writing the kubeconfig, remove the lock file");
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::milliseconds(50)) pause *= 2;
    }
  }

 private:
  fsys::path path_;
  const Interrupts* intr_ = nullptr;
  Interrupts::Guard on_signal_;
};

}  // namespace kina::kube
