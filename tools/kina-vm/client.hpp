// client.hpp: the host side of exec and cp: talks to a machine's supervisor on
// ctl.sock with the agent protocol (docs/agent.md).
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/interrupt.hpp"
#include "machine.hpp"
#include "guest/transfer.hpp"
#include "guest/wire.hpp"

namespace kina::vm {

class AgentConnection {
 public:
  static Result<AgentConnection> open(const fsys::path& dir, const std::string& name) {
    auto fd = connect_unix(dir, file::ctl_sock);
    if (!fd) {
      Error e = fd.error();
      e.what = fmt::format("machine {} is not running", name);
      e.hint = fmt::format("see: kina-vm ls; kina-vm logs {}", name);
      return e;
    }
    AgentConnection c;
    c.fd_ = std::move(*fd);
    c.name_ = name;
    return c;
  }

  Status send(wire::Type t, std::string_view payload = {}) {
    if (!wire::write_fully(fd_.get(), wire::encode(t, 0, payload)))
      return os_error(fmt::format("talking to machine {}", name_), errno, Exit::unavailable);
    return {};
  }

  // Queues a frame to be sent by flush_queued() without blocking: an exec
  // keeps taking its output while the supervisor holds its input back.
  // Returns the stream offset at which the frame is completely sent.
  uint64_t queue(wire::Type t, std::string_view payload = {}) {
    out_ += wire::encode(t, 0, payload);
    return sent_ + out_.size();
  }
  size_t queued() const { return out_.size(); }
  uint64_t sent() const { return sent_; }
  Status flush_queued() {
    while (!out_.empty()) {
      ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
        return os_error(fmt::format("talking to machine {}", name_), errno, Exit::unavailable);
      }
      out_.erase(0, static_cast<size_t>(n));
      sent_ += static_cast<uint64_t>(n);
    }
    return {};
  }

  // The next frame; nullopt when the supervisor closed the connection.
  Result<std::optional<wire::Frame>> next(int timeout_ms = -1) {
    for (;;) {
      if (auto f = in_.next()) return std::optional<wire::Frame>{std::move(*f)};
      if (in_.bad()) return make_error(Exit::data, fmt::format("talking to machine {}", name_), "malformed frame");
      if (timeout_ms >= 0) {
        pollfd p{fd_.get(), POLLIN, 0};
        int r = ::poll(&p, 1, timeout_ms);
        if (r == 0) return make_error(Exit::temp_fail, fmt::format("talking to machine {}", name_), "no answer in time");
      }
      if (auto st = fill(); !st) return st.error();
      if (eof_) return std::optional<wire::Frame>{};
    }
  }

  Status fill() {
    char buf[65536];
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) return {};
      return os_error(fmt::format("talking to machine {}", name_), errno, Exit::unavailable);
    }
    if (n == 0) eof_ = true;
    in_.append(buf, static_cast<size_t>(n));
    return {};
  }
  std::optional<wire::Frame> buffered() { return in_.next(); }
  bool eof() const { return eof_; }
  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }

 private:
  UniqueFd fd_;
  std::string name_;
  wire::FrameBuffer in_;
  std::string out_;
  uint64_t sent_ = 0;
  bool eof_ = false;
};

inline Error session_error(const std::string& name, const wire::Frame& f) {
  wire::Decoder d(f.payload);
  std::string msg = d.str();
  if (f.type == wire::Type::not_ready)
    return make_error(Exit::unavailable, fmt::format("machine {}", name), msg, fmt::format("see: kina-vm logs {}", name));
  return make_error(Exit::unavailable, fmt::format("machine {}", name), msg);
}

// What a command run by exec_capture said and how it ended.
struct Captured {
  int status = 0;
  std::string out, err;  // each cut at the cap exec_capture was given
};

// Runs ARGV in the guest with no stdin and collects its output (at most CAP
// bytes of each stream are kept): for kina-vm's own checks, not for users.
// A command still running after TIMEOUT_MS is a temp_fail error; closing the
// connection then makes the supervisor kill it.
inline Result<Captured> exec_capture(const fsys::path& dir, const std::string& name, std::vector<std::string> argv,
                                     int timeout_ms, size_t cap = 64 * 1024) {
  auto conn = AgentConnection::open(dir, name);
  if (!conn) return conn.error();
  wire::ExecRequest req;
  req.argv = std::move(argv);
  if (auto st = conn->send(wire::Type::exec, req.encode()); !st) return st.error();
  if (auto st = conn->send(wire::Type::stdin_close); !st) return st.error();
  Captured c;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    auto f = conn->next(static_cast<int>(std::max<int64_t>(0, left)));
    if (!f) return f.error();
    if (!f->has_value())
      return make_error(Exit::unavailable, fmt::format("machine {}", name), "the connection closed before the command ended");
    const wire::Frame& fr = **f;
    auto keep = [&](std::string& to) { to.append(fr.payload, 0, std::min(fr.payload.size(), cap - std::min(cap, to.size()))); };
    switch (fr.type) {
      case wire::Type::stdout_data: keep(c.out); break;
      case wire::Type::stderr_data: keep(c.err); break;
      case wire::Type::exit: {
        wire::Decoder d(fr.payload);
        c.status = d.i32();
        return c;
      }
      case wire::Type::error:
      case wire::Type::not_ready: return session_error(name, fr);
      default: break;
    }
  }
}

// Restores the terminal on every path out of a tty session.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// Runs a command in the guest, streaming stdio; the exit status ends up in
// *status. SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to the command
// (the first three held through INTR when there is one), SIGWINCH resizes
// its terminal.
inline Status run_exec(AgentConnection& conn, wire::ExecRequest req, bool interactive, int* status,
                       const Interrupts* intr = nullptr) {
  bool local_tty = req.tty && ::isatty(0);
  if (local_tty) {
    winsize ws{};
    if (::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row) req.rows = ws.ws_row, req.cols = ws.ws_col;
  }
  if (auto st = conn.send(wire::Type::exec, req.encode()); !st) return st;
  if (!interactive)
    if (auto st = conn.send(wire::Type::stdin_close); !st) return st;

  auto held = Interrupts::hold(intr);
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGQUIT, SIGWINCH}) sigaddset(&mask, s);
  if (!intr)
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&mask, s);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC));
  std::optional<RawTerminal> raw;
  if (local_tty) raw.emplace(0);

  bool stdin_open = interactive;
  uint64_t signal_sent_at = 0;  // stream offset at which the last signal frame is sent
  std::vector<char> buf(wire::kChunk);
  for (;;) {
    while (auto f = conn.buffered()) {
      switch (f->type) {
        case wire::Type::stdout_data:
          if (auto st = write_all(1, f->payload, "writing stdout"); !st) return st;
          break;
        case wire::Type::stderr_data:
          if (auto st = write_all(2, f->payload, "writing stderr"); !st) return st;
          break;
        case wire::Type::exit: {
          wire::Decoder d(f->payload);
          *status = d.i32();
          return {};
        }
        case wire::Type::error:
        case wire::Type::not_ready: return session_error(conn.name(), *f);
        default: break;
      }
    }
    if (conn.eof())
      return make_error(Exit::unavailable, fmt::format("machine {}", conn.name()), "the connection closed before the command ended");
    // Stdin is read only while little waits to be sent: the supervisor stops
    // taking it while the command has a window of unread input.
    bool take_stdin = stdin_open && conn.queued() < 2 * wire::kChunk;
    pollfd fds[4] = {{conn.fd(), static_cast<short>(POLLIN | (conn.queued() ? POLLOUT : 0)), 0},
                     {sfd.get(), POLLIN, 0},
                     {take_stdin ? 0 : -1, POLLIN, 0},
                     {Interrupts::fd(intr), POLLIN, 0}};
    if (::poll(fds, 4, -1) < 0 && errno != EINTR) return os_error("poll");
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (auto st = conn.fill(); !st) return st;
    }
    std::vector<uint32_t> signals;
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      if (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) signals.push_back(si.ssi_signo);
    }
    for (int sig; (sig = Interrupts::take(intr)) != 0;) signals.push_back(static_cast<uint32_t>(sig));
    for (uint32_t sig : signals) {
      if (sig == SIGWINCH) {
        winsize ws{};
        if (::ioctl(0, TIOCGWINSZ, &ws) == 0)
          conn.queue(wire::Type::resize, wire::Encoder().u16(ws.ws_row).u16(ws.ws_col).take());
      } else if (signal_sent_at > conn.sent()) {
        // The previous signal is still queued behind input the command does
        // not read: give up the session. Disconnecting makes the supervisor
        // kill the command.
        warn("kina-vm", fmt::format("exec on {}: signal {} could not be delivered (the command is not reading its "
                                    "input); disconnecting, which kills the command",
                                    conn.name(), sig));
        *status = 128 + static_cast<int>(sig);
        return {};
      } else {
        signal_sent_at = conn.queue(wire::Type::signal, wire::Encoder().u32(sig).take());
      }
    }
    if (take_stdin && fds[2].revents) {
      ssize_t n = ::read(0, buf.data(), buf.size());
      if (n > 0) {
        conn.queue(wire::Type::stdin_data, std::string_view(buf.data(), static_cast<size_t>(n)));
      } else if (n == 0 || errno != EINTR) {
        stdin_open = false;
        conn.queue(wire::Type::stdin_close);
      }
    }
    if (auto st = conn.flush_queued(); !st) return st;
  }
}

// --- cp ------------------------------------------------------------------------------------

// Sends the tree at src as entry/data frames.
inline Status send_local_tree(AgentConnection& conn, const fsys::path& src) {
  wire::TreeSource source(src.string());
  for (;;) {
    auto step = source.next();
    if (step.kind == wire::TreeSource::Step::done) return {};
    if (step.kind == wire::TreeSource::Step::failed) {
      std::string what = fmt::format("reading {}", step.path);
      if (step.op == wire::TreeSource::Step::read && step.err == 0)
        return make_error(Exit::io, what, "file shrank while being read");
      bool missing = step.op == wire::TreeSource::Step::stat || step.op == wire::TreeSource::Step::open;
      return os_error(what, step.err, missing ? Exit::no_input : Exit::io);
    }
    if (auto s = conn.send(step.type, step.payload); !s) return s;
  }
}

inline Status copy_in(AgentConnection& conn, const fsys::path& src, const std::string& dst) {
  struct stat st {};
  if (::lstat(src.c_str(), &st) != 0) return os_error(fmt::format("cp: {}", src.string()), errno, Exit::no_input);
  std::string base = fsys::absolute(src).lexically_normal().filename().string();
  if (base.empty()) base = fsys::absolute(src).lexically_normal().parent_path().filename().string();
  if (auto s = conn.send(wire::Type::put, wire::Encoder().str(dst).str(base).take()); !s) return s;
  if (auto s = send_local_tree(conn, src); !s) return s;
  if (auto s = conn.send(wire::Type::end); !s) return s;
  for (;;) {
    auto f = conn.next();
    if (!f) return f.error();
    if (!f->has_value())
      return make_error(Exit::unavailable, fmt::format("machine {}", conn.name()), "the connection closed during cp");
    if ((*f)->type == wire::Type::exit) return {};
    if ((*f)->type == wire::Type::error || (*f)->type == wire::Type::not_ready) {
      Error e = session_error(conn.name(), **f);
      e.exit = Exit::cant_create;
      e.what = fmt::format("cp into {}:{}", conn.name(), dst);
      return e;
    }
  }
}

// How long copy_out waits for the next frame before it gives up (69).
inline constexpr std::chrono::seconds kCopyStall{120};

// Writes the guest's tree at dst (or dst/basename for an existing directory)
// through wire::TreeSink: never outside it, never through a symlink, holes
// kept, at most max_bytes of data; on any failure what was written is removed.
inline Status copy_out(AgentConnection& conn, const std::string& src, const fsys::path& dst,
                       uint64_t max_bytes = wire::TreeSink::kDefaultMaxBytes, const Interrupts* intr = nullptr) {
  fsys::path root = dst;
  std::error_code ec;
  std::string base = fsys::path(src).lexically_normal().filename().string();
  if (fsys::is_directory(dst, ec) && !base.empty()) root = dst / base;
  if (auto s = conn.send(wire::Type::get, wire::Encoder().str(src).take()); !s) return s;
  wire::TreeSink sink(root.string(), ::geteuid() == 0, max_bytes);
  std::string what = fmt::format("cp from {}:{} to {}", conn.name(), src, root.string());
  auto failed = [&]() -> Error {
    Exit code = Exit::cant_create;
    switch (sink.failure()) {
      case wire::TreeSink::Failure::protocol:
      case wire::TreeSink::Failure::unsafe:
      case wire::TreeSink::Failure::too_large: code = Exit::data; break;
      default: break;
    }
    return make_error(code, what, wire::sink_failure_why(sink));
  };
  // SIGINT, SIGTERM and SIGHUP end the copy like a failure (exit 128+N): the
  // sink's destructor removes what it wrote. They are held through INTR, or
  // without one taken by a signalfd while the copy runs (then the previous
  // mask is back).
  auto held = Interrupts::hold(intr);
  sigset_t mask, old;
  sigemptyset(&mask);
  if (!intr)
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, &old);
  struct Restore {
    sigset_t m;
    ~Restore() { ::sigprocmask(SIG_SETMASK, &m, nullptr); }
  } restore{old};
  UniqueFd sfd(intr ? -1 : ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  const int signal_fd = intr ? Interrupts::fd(intr) : sfd.get();
  const std::string undone = "what it wrote was removed";
  // A guest that stops sending (stalled, say, on a console it cannot write)
  // ends the copy after kCopyStall without a frame, instead of never.
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    if (auto st = Interrupts::check(intr, what, undone); !st) return st;
    auto f = conn.next(0);
    if (!f && f.error().exit == Exit::temp_fail) {  // nothing buffered: wait for a frame or a signal
      auto idle = std::chrono::steady_clock::now() - last;
      if (idle >= kCopyStall)
        return make_error(Exit::unavailable, what,
                          fmt::format("the machine sent nothing for {} s; {}", kCopyStall.count(), undone));
      int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kCopyStall - idle).count()) + 1;
      pollfd fds[2] = {{conn.fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}};
      if (::poll(fds, 2, wait_ms) < 0 && errno != EINTR) return os_error("poll");
      signalfd_siginfo si;
      if (sfd.valid() && ::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si))
        return Interrupts::interrupted(static_cast<int>(si.ssi_signo), what, undone);
      continue;
    }
    if (!f) return f.error();
    if (!f->has_value())
      return make_error(Exit::unavailable, fmt::format("machine {}", conn.name()), "the connection closed during cp");
    last = std::chrono::steady_clock::now();
    const wire::Frame& fr = **f;
    if (fr.type == wire::Type::error || fr.type == wire::Type::not_ready) {
      Error e = session_error(conn.name(), fr);
      e.exit = Exit::no_input;
      e.what = what;
      return e;
    }
    if (fr.type == wire::Type::entry) {
      if (!sink.entry(fr.payload)) return failed();
    } else if (fr.type == wire::Type::data) {
      if (!sink.data(fr.payload)) return failed();
    } else if (fr.type == wire::Type::end) {
      if (!sink.finish()) return failed();
      return {};
    }
  }
}

}  // namespace kina::vm
