// lb.hpp: `kina-node lb`: the TCP load balancer in front of a cluster's
// control planes (kind runs one in a container; kina runs this on the host).
// It listens on the API server's host address and forwards each connection to
// the first control plane, in turn, whose published port accepts it: a
// stopped node's port refuses at once (QEMU is gone), so the next one serves.
// The nodes reach it as 10.0.2.2:PORT, QEMU's user-mode address of the host.
//
// A node's published port accepts even while nothing listens in the guest
// (QEMU's user-mode forwarding accepts, then closes), so "accepts" does not
// mean "serves": the front end names only control planes that have joined, in
// a backends file that the balancer reads again whenever it changes
// (--backends-file), and adds each control plane once its join succeeded.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/validate.hpp"

#include "tool.hpp"

namespace kina::node {

inline constexpr int kMaxLbConnections = 4096;
inline constexpr int kLbConnectTimeoutMs = 2000;
inline constexpr size_t kMaxLbBackendsFile = 64 * 1024;

struct LbArgs {
  std::string listen;                 // ADDR:PORT
  std::vector<std::string> backends;  // ADDR:PORT, in order of preference
  std::string backends_file;          // or: one ADDR:PORT per line, read again when it changes
  bool detach = false;                // setsid(2) first
};

struct Endpoint {
  sockaddr_in addr{};
  std::string text;
};

inline Result<Endpoint> parse_endpoint(std::string_view flag, const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos)
    return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(s)), "expected IPV4:PORT");
  auto port = parse_int_flag(flag, s.substr(colon + 1), 1, 65535);
  if (!port) return port.error();
  Endpoint e;
  e.addr.sin_family = AF_INET;
  e.addr.sin_port = htons(static_cast<uint16_t>(*port));
  if (::inet_pton(AF_INET, s.substr(0, colon).c_str(), &e.addr.sin_addr) != 1)
    return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(s)), "expected an IPv4 address before the port");
  e.text = s;
  return e;
}

using Backends = std::shared_ptr<const std::vector<Endpoint>>;

// A backends file's text: one IPV4:PORT per line; blank lines and lines
// starting with '#' are skipped. `path` names the file in errors (65).
inline Result<std::vector<Endpoint>> parse_backends(std::string_view text, const std::string& path) {
  std::vector<Endpoint> out;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    auto e = parse_endpoint(fmt::format("backend on line {} of {}", line_no, path), line);
    if (!e) return make_error(Exit::data, e.error().what, e.error().why);
    out.push_back(*e);
  }
  return out;
}

// The backends file: a regular file of at most 64 KiB (see parse_backends).
inline Result<std::vector<Endpoint>> read_backends_file(const std::string& path) {
  auto text = read_file(path, kMaxLbBackendsFile);
  if (!text) return text.error();
  return parse_backends(*text, path);
}

// Where the backends come from: the --backend flags, fixed, or a file that is
// read again when its inode, size or modification time changed. A file that
// became unreadable or invalid keeps the previous set (one line on stderr).
class BackendSource {
 public:
  static Result<BackendSource> open(const LbArgs& a) {
    BackendSource src;
    if (a.backends.empty() == a.backends_file.empty())
      return make_error(Exit::usage, "lb", "name the backends with --backend or with --backends-file (one of them)");
    if (!a.backends_file.empty()) {
      src.file_ = a.backends_file;
      auto list = read_backends_file(src.file_);
      if (!list) return list.error();
      if (list->empty()) return make_error(Exit::data, fmt::format("reading {}", src.file_), "it names no backend");
      src.stamp_ = stamp_of(src.file_);
      src.current_ = std::make_shared<const std::vector<Endpoint>>(std::move(*list));
      return src;
    }
    std::vector<Endpoint> list;
    for (const auto& b : a.backends) {
      auto e = parse_endpoint("--backend", b);
      if (!e) return e.error();
      list.push_back(*e);
    }
    src.current_ = std::make_shared<const std::vector<Endpoint>>(std::move(list));
    return src;
  }

  // The set to use for the next connection.
  Backends current() {
    if (file_.empty()) return current_;
    std::string now = stamp_of(file_);
    if (now == stamp_) return current_;
    stamp_ = now;
    auto list = read_backends_file(file_);
    if (!list) {
      fmt::print(stderr, "kina-node: lb: {} (keeping the previous backends)\n", list.error().message());
      return current_;
    }
    current_ = std::make_shared<const std::vector<Endpoint>>(std::move(*list));
    fmt::print(stderr, "kina-node: lb: backends now {}\n", current_->empty() ? "none" : names());
    return current_;
  }

  std::string describe() const { return names() + (file_.empty() ? "" : fmt::format(" (from {})", file_)); }

 private:
  std::string names() const {
    std::string out;
    for (const auto& e : *current_) out += (out.empty() ? "" : " ") + e.text;
    return out;
  }

  static std::string stamp_of(const std::string& path) {
    struct stat sb {};
    if (::stat(path.c_str(), &sb) != 0) return "missing";
    return fmt::format("{}:{}:{}.{}", sb.st_ino, sb.st_size, sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
  }

  std::string file_;
  std::string stamp_;
  Backends current_;
};

// A connected socket to `e`, or -1 (refused, unreachable, or no answer in time).
inline int connect_with_timeout(const Endpoint& e) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&e.addr), sizeof e.addr) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof err;
  if (::poll(&p, 1, kLbConnectTimeoutMs) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    ::close(fd);
    return -1;
  }
  int flags = 0;  // back to blocking for the pump
  ::ioctl(fd, FIONBIO, &flags);
  return fd;
}

// Copies both ways until both directions are closed; a half-close is passed on.
inline void pump(int a, int b) {
  char buf[65536];
  bool a_open = true, b_open = true;
  while (a_open || b_open) {
    pollfd p[2] = {{a, static_cast<short>(a_open ? POLLIN : 0), 0}, {b, static_cast<short>(b_open ? POLLIN : 0), 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int from = i == 0 ? a : b, to = i == 0 ? b : a;
      ssize_t n = ::read(from, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        (i == 0 ? a_open : b_open) = false;
        ::shutdown(to, SHUT_WR);
        if (n < 0) return;
        continue;
      }
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
        if (w < 0) {
          if (errno == EINTR) continue;
          return;
        }
        off += w;
      }
    }
  }
}

// Runs until SIGTERM or SIGINT. One thread per connection; each connection
// uses the backend set current when it was accepted.
inline Status run_lb(const LbArgs& a) {
  auto listen = parse_endpoint("--listen", a.listen);
  if (!listen) return listen.error();
  auto source = BackendSource::open(a);
  if (!source) return source.error();
  // A process group leader cannot start a session (EPERM); one run in the
  // background by a shell never is, and then nothing is lost.
  if (a.detach && ::setsid() < 0 && errno != EPERM) return os_error("lb: setsid", errno);
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd ls(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (ls.get() < 0) return os_error("lb: socket", errno);
  int one = 1;
  ::setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(ls.get(), reinterpret_cast<const sockaddr*>(&listen->addr), sizeof listen->addr) != 0)
    return os_error(fmt::format("lb: listening on {}", a.listen), errno, Exit::unavailable);
  if (::listen(ls.get(), 128) != 0) return os_error("lb: listen", errno);
  fmt::print(stderr, "kina-node: lb: listening on {}, backends {}\n", a.listen, source->describe());
  std::atomic<int> active{0};
  std::atomic<size_t> next{0};
  for (;;) {
    int c = ::accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      return os_error("lb: accept", errno);
    }
    if (active.load() >= kMaxLbConnections) {
      ::close(c);
      continue;
    }
    Backends backends = source->current();
    if (backends->empty()) {
      ::close(c);
      continue;
    }
    ++active;
    std::thread([c, backends, &active, &next] {
      size_t start = next++ % backends->size();
      int s = -1;
      for (size_t i = 0; i < backends->size() && s < 0; ++i)
        s = connect_with_timeout((*backends)[(start + i) % backends->size()]);
      if (s >= 0) {
        int on = 1;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        pump(c, s);
        ::close(s);
      }
      ::close(c);
      --active;
    }).detach();
  }
}

}  // namespace kina::node
