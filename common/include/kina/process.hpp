// process.hpp: run a child from an argv vector (never a shell) with an explicit
// environment, a timeout that kills its whole process group, and capped output.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/interrupt.hpp"

extern char** environ;

namespace kina {

// Environment variables a child inherits by default: enough to find programs,
// name the user and pick a locale; nothing that carries a secret.
inline const std::vector<std::string>& default_env_allowlist() {
  static const std::vector<std::string> names = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
                                                 "KINA_HOME"};
  return names;
}

// Builds a child environment: the named variables taken from ours (when set),
// then `extra` ("K=V") added or overriding.
inline std::vector<std::string> build_env(const std::vector<std::string>& allow = default_env_allowlist(),
                                          const std::vector<std::string>& extra = {}) {
  std::vector<std::string> env;
  auto set = [&env](const std::string& kv) {
    auto name = kv.substr(0, kv.find('='));
    for (auto& e : env) {
      if (e.compare(0, name.size() + 1, name + "=") == 0) {
        e = kv;
        return;
      }
    }
    env.push_back(kv);
  };
  for (const auto& name : allow) {
    if (const char* v = std::getenv(name.c_str())) set(name + "=" + v);
  }
  for (const auto& kv : extra) set(kv);
  return env;
}

struct ProcessSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env = build_env();
  std::string cwd;                                 // empty: inherit
  std::optional<std::string> input;                // written to stdin; else /dev/null
  bool inherit_stdin = false;                      // pass our stdin through instead
  bool capture_stdout = true;                      // false: inherit our stdout
  bool capture_stderr = true;                      // false: inherit our stderr
  size_t max_output = 16u << 20;                   // per stream; the rest is read and dropped
  std::chrono::milliseconds timeout{0};            // 0: no limit
  std::chrono::milliseconds kill_grace{2000};      // SIGTERM, then SIGKILL after this
  // Interactive children (exec -it, logs -f): the child stays in our process
  // group, so the terminal treats it as foreground (it may read the terminal;
  // Ctrl-C reaches it). While it runs we ignore SIGINT and SIGQUIT (they are
  // the child's to answer, as with system(3)) and pass SIGTERM and SIGHUP on
  // to it, so it never outlives us.
  bool foreground = false;
  // With foreground, in a command whose SIGTERM and SIGHUP are held
  // (Interrupts::hold): where they are taken to be passed on.
  const Interrupts* interrupts = nullptr;
  // With capture_stdout: each chunk of stdout as it arrives, instead of
  // collecting it in ProcessResult::out (logs -f through a filter, output
  // whose writes are checked). Returning false stops taking it: the pipe is
  // closed, so the child's next write fails (EPIPE, or SIGPIPE).
  std::function<bool(std::string_view)> on_stdout;
  // The child is killed (SIGKILL) when we are, even by kill -9 (Linux's
  // PR_SET_PDEATHSIG): a writer into our temporary must not go on writing
  // into what the next run sweeps (run_writing sets it).
  bool die_with_us = false;
};

struct ProcessResult {
  bool exited = false;
  int exit_status = 0;     // when exited
  int term_signal = 0;     // when killed by a signal
  bool timed_out = false;
  std::string out, err;
  bool out_truncated = false, err_truncated = false;

  // The 128+N rule for signals.
  int exit_code() const { return exited ? exit_status : 128 + term_signal; }
  bool success() const { return exited && exit_status == 0; }
  std::string describe() const {
    if (timed_out) return "timed out";
    if (exited) return fmt::format("exited with status {}", exit_status);
    return fmt::format("killed by signal {} ({})", term_signal, ::strsignal(term_signal));
  }
};

namespace detail {

inline std::string find_program(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
  for (const auto& kv : env)
    if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string cand = dir + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return {};
}

inline void set_cloexec_nonblock(int fd) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace detail

// Finds a program on PATH (ours); empty when absent.
inline std::string which(const std::string& name) { return detail::find_program(name, build_env({"PATH"})); }

inline Result<ProcessResult> run_process(const ProcessSpec& spec) {
  using clock = std::chrono::steady_clock;
  if (spec.argv.empty()) return make_error(Exit::internal, "running a process", "empty argv");
  const std::string& prog = spec.argv[0];
  std::string path = detail::find_program(prog, spec.env);
  if (path.empty())
    return make_error(Exit::unavailable, fmt::format("running {}", prog), "program not found on PATH");

  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {in_pipe, out_pipe, err_pipe, exec_pipe})
      for (int i = 0; i < 2; ++i)
        if (p[i] >= 0) ::close(p[i]), p[i] = -1;
  };
  if ((spec.input && ::pipe(in_pipe) != 0) || (spec.capture_stdout && ::pipe(out_pipe) != 0) ||
      (spec.capture_stderr && ::pipe(err_pipe) != 0) || ::pipe(exec_pipe) != 0) {
    int e = errno;
    close_all();
    return os_error(fmt::format("running {}: creating pipes", prog), e);
  }
  ::fcntl(exec_pipe[1], F_SETFD, FD_CLOEXEC);

  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // SIGCHLD (and, for a foreground child, the signals passed on to it) is
  // blocked and waited for with sigtimedwait: no polling while the child runs.
  // The old mask and dispositions come back before returning.
  sigset_t wait_set, old_mask;
  sigemptyset(&wait_set);
  sigaddset(&wait_set, SIGCHLD);
  if (spec.foreground) sigaddset(&wait_set, SIGTERM), sigaddset(&wait_set, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &wait_set, &old_mask);
  struct sigaction ignore {}, old_int {}, old_quit {};
  ignore.sa_handler = SIG_IGN;
  if (spec.foreground) ::sigaction(SIGINT, &ignore, &old_int), ::sigaction(SIGQUIT, &ignore, &old_quit);
  struct Restore {
    const ProcessSpec& spec;
    sigset_t& wait_set;
    sigset_t& old_mask;
    struct sigaction &old_int, &old_quit;
    ~Restore() {
      // Discard what was consumed by waiting (a SIGCHLD left pending would
      // reach a caller's handler late), then restore.
      // A SIGTERM or SIGHUP that came after the child ended was its too.
      timespec zero{};
      sigset_t drain;
      sigemptyset(&drain);
      for (int sig : {SIGCHLD, SIGTERM, SIGHUP})
        if (sigismember(&wait_set, sig) && !sigismember(&old_mask, sig)) sigaddset(&drain, sig);
      while (::sigtimedwait(&drain, nullptr, &zero) > 0) {
      }
      if (spec.foreground) ::sigaction(SIGINT, &old_int, nullptr), ::sigaction(SIGQUIT, &old_quit, nullptr);
      ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    }
  } restore{spec, wait_set, old_mask, old_int, old_quit};
  const pid_t group = spec.foreground ? 0 : -1;  // kill(-pid) for a group of its own
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    close_all();
    return os_error(fmt::format("running {}: fork", prog), e);
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to execve.
    if (!spec.foreground) ::setpgid(0, 0);
#ifdef __linux__
    // (the parent may have died before the call: then it never fires)
    if (spec.die_with_us && (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)) ::_exit(127);
#endif
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP}) ::sigaction(s, &sa, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (spec.input) {
      ::dup2(in_pipe[0], 0);
    } else if (!spec.inherit_stdin) {
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
    }
    if (spec.capture_stdout) ::dup2(out_pipe[1], 1);
    if (spec.capture_stderr) ::dup2(err_pipe[1], 2);
    for (int* p : {in_pipe, out_pipe, err_pipe})
      for (int i = 0; i < 2; ++i)
        if (p[i] > 2) ::close(p[i]);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(exec_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execve(path.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  if (!spec.foreground) ::setpgid(pid, pid);  // also from the parent, so the group exists before any kill
  auto signal_child = [&](int sig) { ::kill(group < 0 ? -pid : pid, sig); };
  ::close(exec_pipe[1]);
  exec_pipe[1] = -1;
  int child_errno = 0;
  ssize_t got;
  do got = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  while (got < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  exec_pipe[0] = -1;
  if (in_pipe[0] >= 0) ::close(in_pipe[0]), in_pipe[0] = -1;
  if (out_pipe[1] >= 0) ::close(out_pipe[1]), out_pipe[1] = -1;
  if (err_pipe[1] >= 0) ::close(err_pipe[1]), err_pipe[1] = -1;
  if (got == static_cast<ssize_t>(sizeof child_errno)) {
    int st;
    ::waitpid(pid, &st, 0);
    close_all();
    return os_error(fmt::format("running {}", prog), child_errno,
                    child_errno == ENOENT || child_errno == EACCES ? Exit::unavailable : Exit::os);
  }

  ProcessResult res;
  for (int fd : {in_pipe[1], out_pipe[0], err_pipe[0]})
    if (fd >= 0) detail::set_cloexec_nonblock(fd);
  size_t in_off = 0;
  const std::string empty;
  const std::string& input = spec.input ? *spec.input : empty;
  if (in_pipe[1] >= 0 && input.empty()) ::close(in_pipe[1]), in_pipe[1] = -1;

  const auto start = clock::now();
  auto deadline = spec.timeout.count() > 0 ? start + spec.timeout : clock::time_point::max();
  bool term_sent = false;
  auto kill_at = clock::time_point::max();
  int status = 0;
  bool reaped = false;

  auto drain = [&](int& fd, std::string& buf, bool& trunc) {
    char chunk[65536];
    for (;;) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n > 0) {
        if (spec.on_stdout && fd == out_pipe[0]) {
          if (spec.on_stdout(std::string_view(chunk, static_cast<size_t>(n)))) continue;
          ::close(fd);
          fd = -1;
          return;
        }
        size_t room = spec.max_output > buf.size() ? spec.max_output - buf.size() : 0;
        size_t take = std::min(room, static_cast<size_t>(n));
        buf.append(chunk, take);
        if (take < static_cast<size_t>(n)) trunc = true;
        continue;
      }
      if (n == 0) {
        ::close(fd);
        fd = -1;
      } else if (errno == EINTR) {
        continue;
      }
      return;
    }
  };

  while (!reaped) {
    auto now = clock::now();
    if (!term_sent && now >= deadline) {
      res.timed_out = true;
      signal_child(SIGTERM);
      term_sent = true;
      kill_at = now + spec.kill_grace;
    }
    if (term_sent && now >= kill_at) {
      signal_child(SIGKILL);
      kill_at = clock::time_point::max();
    }
    std::vector<pollfd> fds;
    if (in_pipe[1] >= 0) fds.push_back({in_pipe[1], POLLOUT, 0});
    if (out_pipe[0] >= 0) fds.push_back({out_pipe[0], POLLIN, 0});
    if (err_pipe[0] >= 0) fds.push_back({err_pipe[0], POLLIN, 0});
    // Signals to pass on to a foreground child (none pending otherwise).
    auto forward = [&](int sig) {
      if (sig == SIGTERM || sig == SIGHUP) signal_child(sig);
    };
    if (fds.empty()) {
      // All pipes closed: wait for the exit (SIGCHLD), still honouring the
      // deadline. At most 1 s per wait, in case another thread took SIGCHLD.
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        reaped = true;
        break;
      }
      for (int sig; (sig = Interrupts::take(spec.interrupts)) != 0;) forward(sig);
      auto step = spec.interrupts ? std::chrono::milliseconds(50) : std::chrono::milliseconds(1000);
      auto until = std::min({term_sent ? kill_at : deadline, now + step});
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(until - now, clock::duration::zero())).count();
      timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      forward(::sigtimedwait(&wait_set, nullptr, &ts));
      continue;
    }
    int wait_ms = 50;
    int rc = ::poll(fds.data(), fds.size(), wait_ms);
    if (rc < 0 && errno != EINTR) break;
    if (spec.foreground) {
      timespec zero{};
      for (int sig; (sig = ::sigtimedwait(&wait_set, nullptr, &zero)) > 0;) forward(sig);
      for (int sig; (sig = Interrupts::take(spec.interrupts)) != 0;) forward(sig);
    }
    for (const auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == in_pipe[1]) {
        if (p.revents & (POLLERR | POLLHUP)) {
          ::close(in_pipe[1]);
          in_pipe[1] = -1;
          continue;
        }
        ssize_t n = ::write(in_pipe[1], input.data() + in_off, input.size() - in_off);
        if (n > 0) in_off += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == input.size()) {
          ::close(in_pipe[1]);
          in_pipe[1] = -1;
        }
      } else if (p.fd == out_pipe[0]) {
        drain(out_pipe[0], res.out, res.out_truncated);
      } else if (p.fd == err_pipe[0]) {
        drain(err_pipe[0], res.err, res.err_truncated);
      }
    }
    // The child may have exited while a grandchild keeps the pipes open.
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
      for (auto* fdp : {&out_pipe[0], &err_pipe[0]}) {
        if (*fdp >= 0) {
          if (fdp == &out_pipe[0]) drain(out_pipe[0], res.out, res.out_truncated);
          else drain(err_pipe[0], res.err, res.err_truncated);
        }
      }
    }
  }
  if (!reaped) ::waitpid(pid, &status, 0);
  // Leave nothing of the group behind after a timeout.
  if (res.timed_out) signal_child(SIGKILL);
  close_all();
  if (WIFEXITED(status)) {
    res.exited = true;
    res.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    res.term_signal = WTERMSIG(status);
  }
  return res;
}

namespace detail {
// "PROG exited with status N" (or how else it ended), PROG being the last
// component of the child's argv[0].
inline std::string child_end(const ProcessSpec& spec, const ProcessResult& r) {
  std::string_view prog = spec.argv[0];
  if (auto slash = prog.rfind('/'); slash != std::string_view::npos) prog.remove_prefix(slash + 1);
  return fmt::format("{} {}", prog, r.describe());
}
}  // namespace detail

// Runs spec (with a 10-minute limit when it sets none) and requires exit
// status 0. A child that fails is the error
// `on_failure` with `what`, naming the program, how it ended and what it
// said on stderr (or on stdout when stderr is empty), at most 400 bytes, on
// one line; a program that cannot be started keeps run_process's error.
inline Result<ProcessResult> run_checked(ProcessSpec spec, std::string what, Exit on_failure = Exit::unavailable,
                                         std::string hint = {}) {
  if (spec.timeout.count() == 0) spec.timeout = std::chrono::minutes(10);
  auto r = run_process(spec);
  if (!r) return r.error();
  if (!r->success()) {
    const std::string& said = r->err.empty() ? r->out : r->err;
    std::string why = detail::child_end(spec, *r);
    std::string_view text = std::string_view(said).substr(0, 400);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) text.remove_suffix(1);
    if (!text.empty()) why += ": " + detail::one_line(text);
    return make_error(on_failure, std::move(what), std::move(why), std::move(hint));
  }
  return r;
}

// run_checked for a child that writes under DIR (an unpack, a download, a
// file system image): when it fails on a full disk, the failure is that
// (74, with the child's line that names it, full_disk_why), whatever else
// it said; otherwise `on_failure` with its first complaint. The child dies
// with us (die_with_us). Call it before removing what the child wrote: the
// full disk is seen while it is full.
inline Result<ProcessResult> run_writing(ProcessSpec spec, std::string what, const fsys::path& dir,
                                         Exit on_failure = Exit::unavailable) {
  if (spec.timeout.count() == 0) spec.timeout = std::chrono::minutes(10);
  spec.die_with_us = true;
  auto r = run_process(spec);
  if (!r) return r.error();
  if (r->success()) return r;
  std::string said = full_disk_why(r->err.empty() ? r->out : r->err, dir);
  bool full = said.find("No space left on device") != std::string::npos;
  std::string why = detail::child_end(spec, *r);
  if (!said.empty()) why += ": " + said;
  return make_error(full ? Exit::io : on_failure, std::move(what), std::move(why));
}

// run_checked for a child that is one of kina's own tools: its stderr already
// reads "kina-X: error: WHAT: WHY" (and maybe a hint line), so that text,
// trailing newlines removed, is the reason as it stands; a child that said
// nothing gives "PROG exited with status N" (or how else it ended).
// `on_failure` maps the child's exit code (128+N for a signal, as
// ProcessResult::exit_code) to ours, so that "not found" (66) can stay 66.
// Like run_checked, a 10-minute limit when spec sets none; a program that
// cannot be started keeps run_process's error.
inline Result<ProcessResult> run_checked_tool(ProcessSpec spec, std::string what,
                                              const std::function<Exit(int)>& on_failure, std::string hint = {}) {
  if (spec.timeout.count() == 0) spec.timeout = std::chrono::minutes(10);
  auto r = run_process(spec);
  if (!r) return r.error();
  if (r->success()) return r;
  std::string why = r->err;
  while (!why.empty() && why.back() == '\n') why.pop_back();
  if (why.empty()) why = detail::child_end(spec, *r);
  return make_error(on_failure(r->exit_code()), std::move(what), std::move(why), std::move(hint));
}

}  // namespace kina
