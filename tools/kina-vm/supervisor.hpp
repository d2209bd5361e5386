// supervisor.hpp: one per VM, started detached by `boot`. Launches QEMU (QMP
// socket for control), owns the agent's virtio-serial channel, serves many
// exec/cp clients on ctl.sock by giving each its own agent session, and
// records how QEMU ended in exit.json. It keeps the guest's console: QEMU
// writes the serial port into console.fifo, the supervisor appends what it
// reads to console.log under a cap (console_log.hpp). It runs inside the
// machine directory.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "kina/clock.hpp"
#include "console_log.hpp"
#include "kina/fs.hpp"
#include "machine.hpp"
#include "guest/wire.hpp"

namespace kina::vm {

namespace detail_sup {

inline int listen_unix(const char* name) {
  ::unlink(name);
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, name, sizeof sa.sun_path - 1);
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(s, 64) != 0) return -1;
  ::chmod(name, 0600);
  return s;
}

inline int connect_rel(const char* name) {
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, name, sizeof sa.sun_path - 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

// Runs one QMP command on a connection of its own and returns QEMU's answer
// (the line with "return" or "error"; events before it are skipped), or
// nothing when QMP does not answer within a second per line.
inline std::optional<std::string> qmp_execute(std::string_view command) {
  int s = connect_rel(file::qmp_sock);
  if (s < 0) return std::nullopt;
  timeval tv{1, 0};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  auto line = [&]() -> std::optional<std::string> {
    char buf[4096];
    for (;;) {
      if (auto nl = in.find('\n'); nl != std::string::npos) {
        std::string l = in.substr(0, nl);
        in.erase(0, nl + 1);
        return l;
      }
      ssize_t n = ::read(s, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || in.size() > (64u << 10)) return std::nullopt;
      in.append(buf, static_cast<size_t>(n));
    }
  };
  auto answer = [&]() -> std::optional<std::string> {
    for (;;) {
      auto l = line();
      if (!l || l->find("\"return\"") != std::string::npos || l->find("\"error\"") != std::string::npos) return l;
    }
  };
  std::optional<std::string> out;
  // Wait for the answer: QEMU drops a command whose client already left.
  if (line() && wire::write_fully(s, "{\"execute\":\"qmp_capabilities\"}\n") && answer() &&
      wire::write_fully(s, std::string(command) + "\n"))
    out = answer();
  ::close(s);
  return out;
}

// Asks QEMU to quit over QMP; false when QMP does not answer.
inline bool qmp_quit() { return qmp_execute("{\"execute\":\"quit\"}").has_value(); }

}  // namespace detail_sup

class Supervisor {
 public:
  // Runs the machine until QEMU ends. An exception (a bug, or memory
  // exhausted) never reaches std::terminate: it is logged to supervisor.log,
  // QEMU is stopped and exit.json says why.
  int run(const fsys::path& dir) {
    try {
      return run_machine(dir);
    } catch (const std::exception& e) {
      return failed(e.what());
    } catch (...) {
      return failed("an unknown exception");
    }
  }

 private:
  int failed(const char* what) noexcept {
    try {
      log(fmt::format("internal error: {}; stopping QEMU", what));
      std::string end;
      if (qemu_ > 0) {
        ::kill(qemu_, SIGKILL);
        int status = 0;
        ::waitpid(qemu_, &status, 0);
        end = exit_info_json(fmt::format("the supervisor failed: {}", what), 70);
      }
      end_run(".", end);
    } catch (...) {
      if (qemu_ > 0) ::kill(qemu_, SIGKILL);
    }
    return 70;
  }

  int run_machine(const fsys::path& dir) {
    if (::chdir(dir.c_str()) != 0) return 71;
    auto spec = Spec::load(".");
    if (!spec) {
      log("cannot read machine.json: " + spec.error().message());
      return 65;
    }
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    sfd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    listen_ = detail_sup::listen_unix(file::ctl_sock);
    if (listen_ < 0) {
      log(std::string("cannot listen on ctl.sock: ") + std::strerror(errno));
      return 71;
    }
    if (!open_console()) return 71;
    for (size_t i = 0; i < spec->mounts.size(); ++i) {
      auto m = parse_mount(spec->mounts[i]);
      if (!m || !start_virtiofsd(spec->virtiofsd, i, m->host, m->read_only)) return 71;
    }
    if (!start_qemu(spec->qemu_argv)) return 71;
    loop();
    return 0;
  }

  struct Client {
    int fd = -1;
    wire::FrameBuffer in;
    std::string out;
    uint32_t session = 0;
    bool close_after_flush = false;
    // Flow control: bytes of the session's output frames queued in out and
    // not yet credited to the agent (owed), and taken by the client but not
    // yet granted back (grant; sent in batches of kCreditBatch). in_unacked:
    // stdin bytes passed to the agent that it has not credited back; the
    // client is not read while that reaches kWindow.
    size_t owed = 0, grant = 0, in_unacked = 0;
  };

  void log(const std::string& msg) {
    std::string line = fmt::format("{} kina-vm supervisor: {}\n", format_utc_ms(now_ms()), msg);
    (void)!::write(2, line.data(), line.size());
  }

  // In a forked child before exec: the default signal mask (the supervisor
  // blocks some), killed with the supervisor whatever kills it, stdin from
  // /dev/null, stdout and stderr appended to `log`.
  static void child_prologue(const char* log) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) ::_exit(127);  // the supervisor died before the prctl
    int null = ::open("/dev/null", O_RDONLY);
    int out = ::open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(null, 0), ::dup2(out, 1), ::dup2(out, 2);
  }

  // One virtiofsd per --mount, serving vfsN.sock in the machine directory;
  // QEMU connects at start-up. The supervisor binds the socket and hands
  // virtiofsd the listening descriptor (--fd): given a --socket-path instead,
  // virtiofsd locks a pid file named after that path in a system-wide
  // directory (/var/run/virtiofsd/vfs0.sock.pid), so two machines collided
  // and a read-only mount of / (where that directory is read-only too) could
  // not start at all.
  // A read-only mount is enforced on the host: that virtiofsd runs in its own
  // mount namespace where the shared directory is a read-only bind mount, so
  // a guest that remounts its side read-write still cannot write.
  bool start_virtiofsd(const std::string& path, size_t i, const std::string& dir, bool read_only) {
    std::string sock = fmt::format("vfs{}.sock", i);
    int lfd = detail_sup::listen_unix(sock.c_str());
    if (lfd < 0) {
      log(fmt::format("cannot listen on {}: {}", sock, std::strerror(errno)));
      return false;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(lfd);
      return false;
    }
    if (pid == 0) {
      child_prologue(file::virtiofsd_log);
      // The listening socket as descriptor 3, blocking, kept across exec.
      if (lfd != 3 && ::dup2(lfd, 3) < 0) ::_exit(126);
      ::fcntl(3, F_SETFD, 0);
      ::fcntl(3, F_SETFL, ::fcntl(3, F_GETFL) & ~O_NONBLOCK);
      if (read_only && !private_read_only(dir)) {
        std::string msg = fmt::format("kina-vm supervisor: cannot make {} read-only for virtiofsd: {}\n", dir, std::strerror(errno));
        (void)!::write(2, msg.data(), msg.size());
        ::_exit(126);
      }
      std::string src = "source=" + dir;
      const char* argv[] = {path.c_str(), "--fd=3", "-o", src.c_str(), "-o", "cache=auto", "-o", "sandbox=chroot", nullptr};
      ::execv(path.c_str(), const_cast<char**>(argv));
      ::_exit(127);
    }
    // Only virtiofsd listens now: if it dies, QEMU's connection is refused
    // and the boot fails showing virtiofsd.log, instead of hanging.
    ::close(lfd);
    virtiofsd_[pid] = dir;
    log(fmt::format("started virtiofsd for {}, pid {}, socket {}", dir, pid, sock));
    return true;
  }

  // In a new mount namespace (nothing propagates back to the host), makes dir
  // a read-only bind mount of itself, recursively (submounts too).
  static bool private_read_only(const std::string& dir) {
    if (::unshare(CLONE_NEWNS) != 0) return false;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) return false;
    if (::mount(nullptr, dir.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) return false;
    // Submounts under dir keep their own flags: make each read-only as well.
    if (FILE* f = std::fopen("/proc/self/mountinfo", "re")) {
      char line[4096];
      std::string prefix = dir.back() == '/' ? dir : dir + "/";
      while (std::fgets(line, sizeof line, f)) {
        char mp[4096];
        if (std::sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1) continue;
        if (std::strncmp(mp, prefix.c_str(), prefix.size()) != 0) continue;
        ::mount(nullptr, mp, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr);
      }
      std::fclose(f);
    }
    return true;
  }

  // The FIFO QEMU's serial chardev writes into (`-chardev
  // file,path=console.fifo`), opened for reading before QEMU starts so that
  // QEMU's open for writing does not wait. A machine recorded by an older
  // kina-vm has QEMU write console.log itself; the FIFO then stays unused.
  bool open_console() {
    ::unlink(file::console_fifo);
    if (::mkfifo(file::console_fifo, 0600) != 0) {
      log(std::string("cannot make console.fifo: ") + std::strerror(errno));
      return false;
    }
    console_fd_ = ::open(file::console_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (console_fd_ < 0) {
      log(std::string("cannot open console.fifo: ") + std::strerror(errno));
      return false;
    }
    return true;
  }

  // Moves what QEMU wrote to the console into console.log (up to 1 MiB a
  // round: the other descriptors get their turn); false once QEMU closed it.
  bool drain_console(std::vector<char>& buf) {
    if (console_fd_ < 0) return false;
    for (size_t moved = 0; moved < (1u << 20);) {
      ssize_t n = ::read(console_fd_, buf.data(), buf.size());
      if (n > 0) {
        console_.write(std::string_view(buf.data(), static_cast<size_t>(n)));
        moved += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return true;
      ::close(console_fd_);  // end of file: QEMU is gone (or closed it)
      console_fd_ = -1;
      return false;
    }
    return true;
  }

  // QEMU pauses the guest when a write to its disk fails for want of space
  // on the host (virtio-blk's werror=enospc), and would leave it paused. Every
  // kIoErrorCheck the supervisor asks QEMU's status; a guest paused so is
  // resumed once the machine directory's file system has kResumeRoom free
  // (if its write fails again, QEMU pauses it again, and so on).
  static constexpr auto kIoErrorCheck = std::chrono::seconds(3);
  static constexpr uint64_t kResumeRoom = 16ull << 20;
  void check_io_error() {
    auto st = detail_sup::qmp_execute("{\"execute\":\"query-status\"}");
    if (!st) return;
    bool io_error = st->find("\"io-error\"") != std::string::npos;
    if (!io_error) {
      if (paused_) {
        log("the guest runs again");
        ::unlink(file::paused);
      }
      paused_ = false;
      return;
    }
    if (!paused_) {
      log("QEMU paused the guest: a write to its disk failed on the host (no space left?); it resumes once there is room");
      // An empty file: it takes no data block, so it is made on a full disk.
      int fd = ::open(file::paused, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);
    }
    paused_ = true;
    if (auto free = free_bytes("."); free && *free >= kResumeRoom)
      (void)detail_sup::qmp_execute("{\"execute\":\"cont\"}");
  }

  bool start_qemu(const std::vector<std::string>& argv) {
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      child_prologue(file::qemu_log);  // QEMU never outlives its supervisor
      ::signal(SIGPIPE, SIG_DFL);
      std::vector<char*> a;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      ::execvp(a[0], a.data());
      ::_exit(127);
    }
    qemu_ = pid;
    (void)write_file_atomic(file::qemu_pid, fmt::format("{}\n", pid), 0644);
    log(fmt::format("started QEMU, pid {}", pid));
    return true;
  }

  void queue_client(Client& c, wire::Type t, std::string_view payload) { c.out += wire::encode(t, 0, payload); }
  void queue_agent(wire::Type t, uint32_t session, std::string_view payload) {
    if (agent_ >= 0) agent_out_ += wire::encode(t, session, payload);
  }

  void drop_client(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    if (it->second.session) {
      // The client went away mid-session: end what it started. Unlimited
      // credit lets the agent drain (and drop) what the command still writes.
      sessions_.erase(it->second.session);
      queue_agent(wire::Type::credit, it->second.session, wire::Encoder().u32(0xffffffffu).take());
      queue_agent(wire::Type::stdin_close, it->second.session, {});
      queue_agent(wire::Type::signal, it->second.session, wire::Encoder().u32(SIGKILL).take());
    }
    ::close(fd);
    clients_.erase(it);
  }

  void on_client_frame(Client& c, const wire::Frame& f) {
    using wire::Type;
    switch (f.type) {
      case Type::ping:
        if (ready_) queue_client(c, Type::hello, wire::Encoder().str(release_).str(hostname_).take());
        else queue_client(c, Type::not_ready, wire::Encoder().str("the guest agent has not answered yet").take());
        return;
      case Type::poweroff:
        if (ready_) {
          stopping_ = true;  // a requested poweroff: its exit reads "stopped"
          queue_agent(Type::poweroff, 0, {});
        }
        else queue_client(c, Type::not_ready, wire::Encoder().str("the guest agent has not answered yet").take());
        return;
      case Type::exec:
      case Type::put:
      case Type::get:
        if (c.session) return queue_client(c, Type::error, wire::Encoder().str("one session per connection").take());
        if (!ready_)
          return queue_client(c, Type::not_ready, wire::Encoder().str("the guest agent has not answered yet").take());
        c.session = next_session_++;
        sessions_[c.session] = c.fd;
        queue_agent(f.type, c.session, f.payload);
        return;
      default:
        if (!c.session) return;
        if (f.type == Type::stdin_data) c.in_unacked += f.payload.size();
        queue_agent(f.type, c.session, f.payload);
        return;
    }
  }

  void on_agent_frame(const wire::Frame& f) {
    using wire::Type;
    if (f.type == Type::hello) {
      wire::Decoder d(f.payload);
      release_ = d.str();
      hostname_ = d.str();
      if (!ready_) {
        ready_ = true;
        (void)write_file_atomic(file::ready, release_ + "\n", 0644);
        log("guest agent ready, kernel " + release_);
      }
      return;
    }
    auto it = sessions_.find(f.session);
    if (it == sessions_.end()) return;
    auto c = clients_.find(it->second);
    if (c == clients_.end()) return;
    if (f.type == Type::credit) {  // the command took that much of its stdin
      wire::Decoder d(f.payload);
      uint32_t n = d.u32();
      if (!d.failed()) c->second.in_unacked -= std::min<size_t>(n, c->second.in_unacked);
      return;
    }
    c->second.out += wire::encode(f.type, 0, f.payload);
    if (f.type == Type::stdout_data || f.type == Type::stderr_data || f.type == Type::entry || f.type == Type::data)
      c->second.owed += wire::kHeader + f.payload.size();
    if (f.type == Type::exit || f.type == Type::error || f.type == Type::end) {
      sessions_.erase(it);
      c->second.session = 0;
      c->second.in_unacked = 0;
      c->second.close_after_flush = true;
    }
  }

  bool flush(int fd, std::string& out) {
    while (!out.empty()) {
      ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN;
      }
      out.erase(0, static_cast<size_t>(n));
    }
    return true;
  }

  // Sends what the client can take now and grants the agent credit for the
  // output bytes among them; false when the client is gone.
  bool flush_client(Client& c) {
    size_t before = c.out.size();
    bool ok = flush(c.fd, c.out);
    size_t taken = std::min(before - c.out.size(), c.owed);
    c.owed -= taken;
    c.grant += taken;
    if (c.session && c.grant > 0 && (c.grant >= wire::kCreditBatch || c.out.empty())) {
      queue_agent(wire::Type::credit, c.session, wire::Encoder().u32(static_cast<uint32_t>(c.grant)).take());
      c.grant = 0;
    }
    return ok;
  }

  void try_agent() {
    auto now = std::chrono::steady_clock::now();
    if (agent_ < 0) {
      if (now < next_try_) return;
      next_try_ = now + std::chrono::milliseconds(50);
      agent_ = detail_sup::connect_rel(file::agent_sock);
      if (agent_ < 0) return;
      ::fcntl(agent_, F_SETFL, ::fcntl(agent_, F_GETFL) | O_NONBLOCK);
      agent_in_ = wire::FrameBuffer();
      next_ping_ = now;
    }
    if (!ready_ && now >= next_ping_) {
      queue_agent(wire::Type::ping, 0, {});
      next_ping_ = now + std::chrono::milliseconds(100);
    }
  }

  void qemu_exited(int status) {
    std::string reason;
    // A guest held paused never finished its shutdown: its stop was forced.
    if (stopping_) reason = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !paused_ ? "stopped" : "stopped (forced)";
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) reason = "powered off";
    else if (WIFEXITED(status)) reason = fmt::format("QEMU exited with status {}", WEXITSTATUS(status));
    else reason = fmt::format("QEMU was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
    if (!ready_ && !stopping_) reason += " before the guest agent answered";
    log(reason);
    end_run(".", exit_info_json(reason, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)));
  }

  void loop() {
    std::vector<char> buf(1u << 16);
    bool kill_pending = false;
    auto kill_at = std::chrono::steady_clock::now();
    for (;;) {
      try_agent();
      std::vector<pollfd> fds;
      fds.push_back({sfd_, POLLIN, 0});
      fds.push_back({listen_, POLLIN, 0});
      fds.push_back({agent_, static_cast<short>(agent_ >= 0 ? (POLLIN | (agent_out_.empty() ? 0 : POLLOUT)) : 0), 0});
      // Backpressure towards clients: while the agent channel is backed up,
      // or a session's command has a window of stdin not taken yet, their
      // frames are left in their sockets.
      bool queue_room = agent_out_.size() < wire::kAgentQueueCap;
      auto take_input = [&](const Client& c) { return queue_room && c.in_unacked < wire::kWindow; };
      fds.push_back({console_fd_, static_cast<short>(console_fd_ >= 0 ? POLLIN : 0), 0});
      for (auto& [fd, c] : clients_)
        fds.push_back({fd, static_cast<short>((take_input(c) ? POLLIN : 0) | (c.out.empty() ? 0 : POLLOUT)), 0});
      auto now = std::chrono::steady_clock::now();
      // Also while the guest powers off (its last writes may be what
      // failed), not once QEMU is being stopped by force.
      if (now >= next_io_check_ && !forcing_) {
        check_io_error();
        next_io_check_ = std::chrono::steady_clock::now() + kIoErrorCheck;
      }
      int timeout = agent_ < 0 ? 50 : (!ready_ ? 100 : -1);
      if (kill_pending) timeout = 100;
      auto to_check = std::chrono::duration_cast<std::chrono::milliseconds>(next_io_check_ - now).count() + 1;
      if (timeout < 0 || timeout > to_check) timeout = static_cast<int>(std::max<int64_t>(to_check, 1));
      ::poll(fds.data(), fds.size(), timeout);

      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si;
        while (::read(sfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          if (si.ssi_signo == SIGCHLD) {
            int status = 0;
            pid_t p;
            while ((p = ::waitpid(-1, &status, WNOHANG)) > 0) {
              if (p == qemu_) {
                for (int i = 0; i < 64 && drain_console(buf); ++i) {}  // its last words (a panic, say)
                qemu_exited(status);
                return;
              }
              if (auto v = virtiofsd_.find(p); v != virtiofsd_.end()) {
                log(fmt::format("virtiofsd for {} (pid {}) {} (see virtiofsd.log)", v->second, p, describe_status(status)));
                virtiofsd_.erase(v);
              }
            }
          } else if (!forcing_) {
            // Forced stop, also of a guest asked to power off that has not
            // (paused on a full disk, say): QMP quit, then SIGKILL if QEMU
            // is still there.
            stopping_ = forcing_ = true;
            log(fmt::format("signal {}: stopping QEMU", si.ssi_signo));
            if (!detail_sup::qmp_quit()) ::kill(qemu_, SIGTERM);
            kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(3);
            kill_pending = true;
          }
        }
      }
      if (kill_pending && std::chrono::steady_clock::now() >= kill_at) {
        ::kill(qemu_, SIGKILL);
        kill_pending = false;
      }
      if (fds[1].revents & POLLIN) {
        for (;;) {
          int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (c < 0) break;
          clients_[c].fd = c;
        }
      }
      if (agent_ >= 0 && fds[2].revents) {
        bool lost = false;
        if (fds[2].revents & POLLOUT) lost = !flush(agent_, agent_out_);
        if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t n = ::read(agent_, buf.data(), buf.size());
          if (n > 0) {
            agent_in_.append(buf.data(), static_cast<size_t>(n));
            while (auto f = agent_in_.next()) on_agent_frame(*f);
            lost = lost || agent_in_.bad();
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            lost = true;
          }
        }
        if (lost) {
          log("lost the agent channel");
          ::close(agent_);
          agent_ = -1;
          agent_out_.clear();
        }
      }
      if (fds[3].revents) drain_console(buf);
      for (size_t i = 4; i < fds.size(); ++i) {
        int fd = fds[i].fd;
        auto it = clients_.find(fd);
        if (it == clients_.end() || !fds[i].revents) continue;
        Client& c = it->second;
        bool gone = false;
        bool hup = fds[i].revents & (POLLHUP | POLLERR);
        // A client that hung up while its input is held back is dropped at
        // once (its session is killed either way), not polled in a busy loop.
        if (hup && !take_input(c)) gone = true;
        else if ((fds[i].revents & POLLIN) || hup) {
          ssize_t n = ::read(fd, buf.data(), buf.size());
          if (n > 0) {
            c.in.append(buf.data(), static_cast<size_t>(n));
            while (auto f = c.in.next()) on_client_frame(c, *f);
            gone = c.in.bad();
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            gone = true;
          }
        }
        if (!gone && !flush_client(c)) gone = true;
        if (gone) drop_client(fd);
      }
      // Opportunistic flushes of what was queued this round.
      if (agent_ >= 0 && !agent_out_.empty()) flush(agent_, agent_out_);
      for (auto it = clients_.begin(); it != clients_.end();) {
        Client& c = it->second;
        flush_client(c);
        if (c.close_after_flush && c.out.empty()) {
          ::shutdown(c.fd, SHUT_WR);
          c.close_after_flush = false;
        }
        ++it;
      }
    }
  }

  static std::string describe_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  }

  int sfd_ = -1, listen_ = -1, agent_ = -1, console_fd_ = -1;
  ConsoleLog console_;
  std::map<pid_t, std::string> virtiofsd_;  // pid -> shared directory
  pid_t qemu_ = -1;
  // stopping_: a stop was asked for (a poweroff or a signal); forcing_: by a signal.
  bool ready_ = false, stopping_ = false, forcing_ = false, paused_ = false;
  std::string release_, hostname_, agent_out_;
  wire::FrameBuffer agent_in_;
  std::map<int, Client> clients_;
  std::map<uint32_t, int> sessions_;
  uint32_t next_session_ = 1;
  std::chrono::steady_clock::time_point next_try_{}, next_ping_{}, next_io_check_{};
};

}  // namespace kina::vm
