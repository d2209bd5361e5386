// agent.cpp: the guest agent. Runs inside the guest's root (forked by kina-init
// just before the workload is exec'd) and serves the host over the
// virtio-serial port: exec sessions with streamed stdio, signals, window size,
// file put/get, poweroff. Plain libc and syscalls only: it is linked statically.
// Guest code (tools/kina-vm/guest/): static, libc only, no exceptions (kina-init
// is linked -static -fno-exceptions); the host shares wire.hpp and transfer.hpp.
#include "agent.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "transfer.hpp"
#include "wire.hpp"

namespace {

using namespace kina::wire;

int g_port = -1;

void send(Type t, uint32_t session, std::string_view payload = {}) {
  // A failed write to the port means the host is gone; the next read tells.
  (void)write_fully(g_port, encode(t, session, payload));
}

void send_error(uint32_t session, const std::string& msg) { send(Type::error, session, Encoder().str(msg).take()); }

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home = "/";
};

// Looks a user up in /etc/passwd (no NSS in a static binary): NAME, UID or UID:GID.
bool find_account(const std::string& spec, Account& acct, std::string& err) {
  std::string user = spec, group;
  if (auto c = spec.find(':'); c != std::string::npos) {
    user = spec.substr(0, c);
    group = spec.substr(c + 1);
  }
  bool numeric = !user.empty() && user.find_first_not_of("0123456789") == std::string::npos;
  bool found = false;
  if (FILE* f = std::fopen("/etc/passwd", "re")) {
    char line[1024];
    while (std::fgets(line, sizeof line, f)) {
      std::vector<std::string> parts;
      std::string cur;
      for (char* p = line; *p && *p != '\n'; ++p) {
        if (*p == ':') {
          parts.push_back(cur);
          cur.clear();
        } else {
          cur += *p;
        }
      }
      parts.push_back(cur);
      if (parts.size() < 7) continue;
      if ((numeric && parts[2] == user) || (!numeric && parts[0] == user)) {
        acct.uid = static_cast<uid_t>(std::strtoul(parts[2].c_str(), nullptr, 10));
        acct.gid = static_cast<gid_t>(std::strtoul(parts[3].c_str(), nullptr, 10));
        acct.home = parts[5];
        found = true;
        break;
      }
    }
    std::fclose(f);
  }
  if (!found) {
    if (!numeric) {
      err = "unknown user " + user;
      return false;
    }
    acct.uid = static_cast<uid_t>(std::strtoul(user.c_str(), nullptr, 10));
    acct.gid = static_cast<gid_t>(acct.uid);
  }
  if (!group.empty()) {
    if (group.find_first_not_of("0123456789") != std::string::npos) {
      err = "group must be numeric: " + group;
      return false;
    }
    acct.gid = static_cast<gid_t>(std::strtoul(group.c_str(), nullptr, 10));
  }
  return true;
}

struct Session {
  enum Kind { exec, put, get } kind = exec;
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;  // tty: in == out == pty master, err == -1
  bool tty = false;
  bool exited = false;
  int status = 0;
  // stdin frames not yet written to the command (at most about kWindow: the
  // host sends no more until credited), and bytes written but not credited yet.
  std::string pending_in;
  size_t in_done = 0;
  bool close_in_after = false;
  // Flow control (docs/agent.md): bytes of output frames (stdout/stderr, or a
  // get's entry/data) the host has not credited back yet; no more output is
  // read or sent for the session while this reaches kWindow. unlimited: the
  // host stopped counting (its client is gone).
  size_t unacked = 0;
  bool unlimited = false;
  std::unique_ptr<TreeSink> sink;      // put
  std::unique_ptr<TreeSource> source;  // get
};

std::map<uint32_t, Session> g_sessions;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void set_nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A command that cannot be started ends its session like docker's: the reason
// on stderr and status 126.
void cannot_start(uint32_t id, const std::string& why) {
  send(Type::stderr_data, id, why + "\n");
  send(Type::exit, id, Encoder().i32(126).take());
}

void start_exec(uint32_t id, const std::string& payload) {
  auto req = ExecRequest::decode(payload);
  if (!req) return cannot_start(id, "malformed exec request");
  Account acct;
  std::string err;
  if (!req->user.empty() && !find_account(req->user, acct, err)) return cannot_start(id, err);

  std::vector<std::string> env = req->env;
  auto has = [&env](const char* name) {
    size_t n = std::strlen(name);
    for (const auto& e : env)
      if (e.compare(0, n, name) == 0 && e.size() > n && e[n] == '=') return true;
    return false;
  };
  if (!has("PATH")) env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has("HOME")) env.push_back("HOME=" + (req->user.empty() ? std::string("/root") : acct.home));
  if (req->tty && !has("TERM")) env.push_back("TERM=xterm");

  int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, exec_p[2] = {-1, -1};
  int master = -1, slave = -1;
  if (req->tty) {
    struct winsize ws {};
    ws.ws_row = req->rows;
    ws.ws_col = req->cols;
    if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0)
      return cannot_start(id, std::string("openpty: ") + std::strerror(errno));
  } else if (::pipe2(in_p, O_CLOEXEC) != 0 || ::pipe2(out_p, O_CLOEXEC) != 0 || ::pipe2(err_p, O_CLOEXEC) != 0) {
    return cannot_start(id, std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(exec_p, O_CLOEXEC) != 0) return cannot_start(id, std::string("pipe: ") + std::strerror(errno));

  std::vector<char*> argv, envp;
  for (auto& a : req->argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return cannot_start(id, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);  // the agent ignores it; commands get the default back
    if (req->tty) {
      ::ioctl(slave, TIOCSCTTY, 0);
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      if (slave > 2) ::close(slave);
      ::close(master);
    } else {
      ::dup2(in_p[0], 0);
      ::dup2(out_p[1], 1);
      ::dup2(err_p[1], 2);
    }
    auto fail = [&](const char* what) {
      std::string m = std::string(what) + ": " + std::strerror(errno);
      int code = errno == ENOENT ? 127 : 126;
      std::string msg = std::to_string(code) + " " + m;
      (void)!::write(exec_p[1], msg.data(), msg.size());
      ::_exit(code);
    };
    if (!req->user.empty()) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(acct.gid) != 0 || ::setuid(acct.uid) != 0) fail("switching user");
    }
    std::string cwd = req->cwd.empty() ? (req->user.empty() ? std::string("/") : acct.home) : req->cwd;
    if (::chdir(cwd.c_str()) != 0) {
      if (!req->cwd.empty()) fail(("chdir " + cwd).c_str());
      (void)!::chdir("/");
    }
    for (const auto& e : env)
      if (e.rfind("PATH=", 0) == 0) ::setenv("PATH", e.c_str() + 5, 1);  // execvpe searches our PATH
    ::execvpe(argv[0], argv.data(), envp.data());
    fail(("exec " + req->argv[0]).c_str());
  }
  close_fd(exec_p[1]);
  std::string msg;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(exec_p[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  close_fd(exec_p[0]);
  if (!msg.empty()) {
    // The child failed before exec: reap it and report why, with its code.
    ::waitpid(pid, nullptr, 0);
    close_fd(in_p[0]), close_fd(in_p[1]), close_fd(out_p[0]), close_fd(out_p[1]), close_fd(err_p[0]),
        close_fd(err_p[1]), close_fd(master), close_fd(slave);
    auto sp = msg.find(' ');
    send(Type::stderr_data, id, msg.substr(sp + 1) + "\n");
    send(Type::exit, id, Encoder().i32(std::atoi(msg.substr(0, sp).c_str())).take());
    return;
  }
  Session s;
  s.pid = pid;
  s.tty = req->tty;
  if (req->tty) {
    close_fd(slave);
    s.in = s.out = master;
  } else {
    close_fd(in_p[0]), close_fd(out_p[1]), close_fd(err_p[1]);
    s.in = in_p[1];
    s.out = out_p[0];
    s.err = err_p[0];
  }
  set_nonblock(s.in);
  if (s.err >= 0) set_nonblock(s.err);
  if (!s.tty) set_nonblock(s.out);
  g_sessions[id] = std::move(s);
}

void finish_if_done(uint32_t id) {
  auto it = g_sessions.find(id);
  if (it == g_sessions.end()) return;
  Session& s = it->second;
  if (s.kind != Session::exec || !s.exited || s.out >= 0 || s.err >= 0) return;
  if (s.in >= 0 && s.in != s.out) close_fd(s.in);
  int code = WIFEXITED(s.status) ? WEXITSTATUS(s.status) : 128 + WTERMSIG(s.status);
  send(Type::exit, id, Encoder().i32(code).take());
  g_sessions.erase(it);
}

// Writes pending stdin to the command and credits the host for what the
// command took (or what was dropped because nobody reads it any more).
void flush_stdin(uint32_t id, Session& s) {
  size_t done = 0;
  while (!s.pending_in.empty()) {
    ssize_t n = s.in >= 0 ? ::write(s.in, s.pending_in.data(), s.pending_in.size()) : (errno = EPIPE, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      n = static_cast<ssize_t>(s.pending_in.size());  // the reader is gone (EPIPE): drop the rest
    }
    done += static_cast<size_t>(n);
    s.pending_in.erase(0, static_cast<size_t>(n));
  }
  s.in_done += done;
  if (s.in_done > 0 && (s.in_done >= kCreditBatch || s.pending_in.empty())) {
    send(Type::credit, id, Encoder().u32(static_cast<uint32_t>(s.in_done)).take());
    s.in_done = 0;
  }
  if (s.pending_in.empty() && s.close_in_after && !s.tty) close_fd(s.in);
}

// --- file transfer -----------------------------------------------------------------

void put_end(uint32_t id, Session& s) {
  if (s.sink->finish()) {
    send(Type::exit, id, Encoder().i32(0).take());
  } else {
    send_error(id, std::string("writing ") + s.sink->root() + ": " + sink_failure_why(*s.sink));
  }
  g_sessions.erase(id);
}

void start_put(uint32_t id, const std::string& payload) {
  Decoder d(payload);
  std::string dest = d.str(), base = d.str();
  if (d.failed() || dest.empty() || (!base.empty() && !safe_relative(base)) || base.find('/') != std::string::npos)
    return send_error(id, "malformed put request");
  // Like cp: into an existing directory as its basename, else as the destination itself.
  struct stat st {};
  std::string root = dest;
  if (::stat(dest.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && !base.empty()) root = dest + "/" + base;
  Session s;
  s.kind = Session::put;
  s.sink = std::make_unique<TreeSink>(root, true);
  g_sessions[id] = std::move(s);
}

// A get is a session like an exec: its entry and data frames count against
// the window, and get_step sends what the window allows each time round the
// main loop, so a slow client holds back only its own transfer.
void start_get(uint32_t id, const std::string& payload) {
  Decoder d(payload);
  std::string src = d.str();
  if (d.failed() || src.empty()) return send_error(id, "malformed get request");
  Session s;
  s.kind = Session::get;
  s.source = std::make_unique<TreeSource>(src);
  g_sessions[id] = std::move(s);
}

bool get_blocked(const Session& s) { return !s.unlimited && s.unacked >= kWindow; }

void get_send(uint32_t id, Session& s, Type t, std::string_view payload) {
  s.unacked += kHeader + payload.size();
  send(t, id, payload);
}

// Sends up to about one window of the transfer; false when the session ended.
bool get_step(uint32_t id, Session& s) {
  size_t budget = kWindow;
  while (!get_blocked(s) && budget > 0) {
    auto step = s.source->next();
    if (step.kind == TreeSource::Step::done) {
      send(Type::end, id);
      return false;
    }
    if (step.kind == TreeSource::Step::failed) {
      send_error(id, step.path + ": " + (step.err ? std::strerror(step.err) : "file shrank while being read"));
      return false;
    }
    if (step.type == Type::data) budget -= std::min(budget, step.payload.size());
    get_send(id, s, step.type, step.payload);
  }
  return true;
}

// --- poweroff ------------------------------------------------------------------------

void poweroff() {
  char comm[64] = {0};
  if (int fd = ::open("/proc/1/comm", O_RDONLY | O_CLOEXEC); fd >= 0) {
    (void)!::read(fd, comm, sizeof comm - 1);
    ::close(fd);
  }
  if (std::strncmp(comm, "systemd", 7) == 0) {
    ::kill(1, SIGRTMIN + 4);  // systemd: "poweroff"
    return;
  }
  ::kill(-1, SIGTERM);  // everything but PID 1 and us
  ::sleep(1);
  ::kill(-1, SIGKILL);
  ::sync();
  ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY, nullptr);
  ::sync();
  ::reboot(RB_POWER_OFF);
}

void hello() {
  struct utsname u {};
  ::uname(&u);
  send(Type::hello, 0, Encoder().str(u.release).str(u.nodename).take());
}

void handle(const Frame& f) {
  auto it = g_sessions.find(f.session);
  switch (f.type) {
    case Type::ping: return hello();
    case Type::exec: return start_exec(f.session, f.payload);
    case Type::put: return start_put(f.session, f.payload);
    case Type::get: return start_get(f.session, f.payload);
    case Type::poweroff: return poweroff();
    case Type::credit:
      if (it != g_sessions.end()) {
        Decoder d(f.payload);
        uint32_t n = d.u32();
        if (d.failed()) return;
        if (n == 0xffffffffu && it->second.kind == Session::get) {
          g_sessions.erase(it);  // nobody takes the rest of the transfer
          return;
        }
        if (n == 0xffffffffu) it->second.unlimited = true;
        it->second.unacked -= std::min<size_t>(n, it->second.unacked);
      }
      return;
    case Type::stdin_data:
      if (it != g_sessions.end() && it->second.kind == Session::exec) {
        it->second.pending_in += f.payload;
        flush_stdin(f.session, it->second);
      }
      return;
    case Type::stdin_close:
      if (it != g_sessions.end() && it->second.kind == Session::exec) {
        it->second.close_in_after = true;
        flush_stdin(f.session, it->second);
      }
      return;
    case Type::signal:
      if (it != g_sessions.end() && it->second.pid > 0 && !it->second.exited) {
        Decoder d(f.payload);
        int sig = static_cast<int>(d.u32());
        if (!d.failed() && sig > 0 && sig < 65) ::kill(-it->second.pid, sig);
      }
      return;
    case Type::resize:
      if (it != g_sessions.end() && it->second.tty) {
        Decoder d(f.payload);
        struct winsize ws {};
        ws.ws_row = d.u16();
        ws.ws_col = d.u16();
        if (!d.failed()) ::ioctl(it->second.out, TIOCSWINSZ, &ws);
      }
      return;
    case Type::entry:
      if (it != g_sessions.end() && it->second.kind == Session::put) (void)it->second.sink->entry(f.payload);
      return;
    case Type::data:
      if (it != g_sessions.end() && it->second.kind == Session::put) (void)it->second.sink->data(f.payload);
      return;
    case Type::end:
      if (it != g_sessions.end() && it->second.kind == Session::put) put_end(f.session, it->second);
      return;
    default: return;
  }
}

void reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& [id, s] : g_sessions) {
      if (s.pid == pid) {
        s.exited = true;
        s.status = status;
        finish_if_done(id);
        break;
      }
    }
  }
}

}  // namespace

int agent_main(int port) {
  g_port = port;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  FrameBuffer in;
  hello();
  std::vector<char> buf(1u << 16);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<uint32_t, int>> owners;  // (session, which: 0 out, 1 err, 2 in)
    fds.push_back({port, POLLIN, 0});
    fds.push_back({sfd, POLLIN, 0});
    bool get_ready = false;
    for (auto& [id, s] : g_sessions) {
      if (s.kind == Session::get) get_ready = get_ready || !get_blocked(s);
      if (s.kind != Session::exec) continue;
      // A session whose window is full is not read: its command blocks on a
      // full pipe until the host grants credit.
      bool can_send = s.unlimited || s.unacked < kWindow;
      short out_ev = static_cast<short>((can_send ? POLLIN : 0) | (s.tty && !s.pending_in.empty() ? POLLOUT : 0));
      if (s.out >= 0 && out_ev) fds.push_back({s.out, out_ev, 0}), owners.emplace_back(id, 0);
      if (s.err >= 0 && can_send) fds.push_back({s.err, POLLIN, 0}), owners.emplace_back(id, 1);
      if (!s.tty && s.in >= 0 && !s.pending_in.empty()) fds.push_back({s.in, POLLOUT, 0}), owners.emplace_back(id, 2);
    }
    // A get that may send does not wait: it goes on after this round's input.
    if (::poll(fds.data(), fds.size(), get_ready ? 0 : -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[0].revents & POLLIN) {
      ssize_t n = ::read(port, buf.data(), buf.size());
      if (n > 0) {
        in.append(buf.data(), static_cast<size_t>(n));
        while (auto f = in.next()) handle(*f);
        if (in.bad()) in = FrameBuffer();  // resynchronise on the next connection
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        // The host end is not connected: wait a little and poll again.
        ::usleep(20000);
      }
    } else if (fds[0].revents & (POLLHUP | POLLERR)) {
      ::usleep(20000);
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto [id, which] = owners[i - 2];
      auto it = g_sessions.find(id);
      if (it == g_sessions.end()) continue;
      Session& s = it->second;
      if (which == 2 || (which == 0 && s.tty && (fds[i].revents & POLLOUT))) flush_stdin(id, s);
      if (which == 2) continue;
      int& fd = which == 0 ? s.out : s.err;
      if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (!s.unlimited && s.unacked >= kWindow) continue;
      ssize_t n = ::read(fd, buf.data(), std::min(buf.size(), kChunk));
      if (n > 0) {
        if (!s.unlimited) s.unacked += kHeader + static_cast<size_t>(n);
        send(which == 0 ? Type::stdout_data : Type::stderr_data, id, std::string_view(buf.data(), static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (s.tty) s.in = -1;  // same fd as out
        close_fd(fd);
      }
    }
    reap();
    // Sessions whose streams closed after their process was reaped; gets
    // that may send.
    std::vector<uint32_t> ids;
    for (auto& [id, s] : g_sessions) ids.push_back(id);
    for (uint32_t id : ids) {
      auto it = g_sessions.find(id);
      if (it == g_sessions.end()) continue;
      if (it->second.kind == Session::get) {
        if (!get_blocked(it->second) && !get_step(id, it->second)) g_sessions.erase(id);
      } else {
        finish_if_done(id);
      }
    }
  }
}
