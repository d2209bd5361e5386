// audit.hpp: the tamper-evident audit log every kina tool appends to. Each entry is
// one JSON line that carries the hash of the previous entry and its own hash; the
// entries are the leaves of an RFC 6962 Merkle tree (docs/protocol.md, "Audit log").
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/interrupt.hpp"
#include "kina/json.hpp"
#include "kina/lock.hpp"
#include "kina/merkle.hpp"
#include "kina/note.hpp"
#include "kina/output.hpp"
#include "kina/validate.hpp"

namespace kina::audit {

// Every line ends in `,"hash":"<64 hex>"}`; the entry's leaf data (its "body")
// is the line without that suffix, closed with '}'.
inline constexpr std::string_view kHashKey = ",\"hash\":\"";
inline constexpr size_t kHashSuffixLen = kHashKey.size() + 64 + 2;
inline constexpr size_t kMaxEntryBytes = 1u << 20;
inline const std::string kZeroHash(64, '0');
inline constexpr std::string_view kRedacted = "[redacted]";

// An event's numbers: an exit status 0-255, a duration of 0 to 10 years.
inline constexpr int64_t kMaxEventDurationMs = 10LL * 365 * 86400 * 1000;

struct Event {
  std::string tool, action, cluster, target;
  std::string outcome = "ok";
  int exit_code = 0;
  std::optional<int64_t> duration_ms;
  std::vector<std::string> args;                              // redacted when written
  std::vector<std::pair<std::string, std::string>> details;  // values of secret-looking keys redacted
  // Who and when: taken from this process when not set.
  std::optional<int64_t> time_ms;
  std::optional<std::string> user, host;
  std::optional<int64_t> uid, pid;
};

struct Appended {
  uint64_t seq = 0;
  Hash256 hash{};
  int64_t time_ms = 0;
  std::string tool, action;
};

// --- redaction -------------------------------------------------------------

// A flag or key whose value must never be logged: it names a token, password,
// passphrase, secret, credential or key.
inline bool is_secret_name(std::string_view name) {
  std::string n;
  for (char c : name) n += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (std::string_view word : {"token", "password", "passwd", "passphrase", "secret", "key", "credential", "auth"})
    if (n.find(word) != std::string::npos) return true;
  return false;
}

// A URL with its userinfo (user:password@) replaced, wherever it appears in
// an argument: "--server=https://u:p@h" -> "--server=https://[redacted]@h".
inline std::string redact_userinfo(std::string_view a) {
  size_t scheme = a.find("://");
  if (scheme == std::string_view::npos) return std::string(a);
  size_t start = scheme + 3;
  size_t end = a.find_first_of("/?#", start);
  std::string_view authority = a.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(a);
  return std::string(a.substr(0, start)) + std::string(kRedacted) + std::string(a.substr(start + at));
}

// Replaces the values of secret-looking flags: `--token X`, `--token=X`,
// `-p` is left alone (short flags are ambiguous), `KEY=V` pairs whose key looks secret,
// and the userinfo of any URL (https://user:password@host).
inline std::vector<std::string> redact_args(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  out.reserve(args.size());
  bool redact_next = false;
  for (const auto& a : args) {
    if (redact_next) {
      redact_next = false;
      if (a.rfind("-", 0) != 0) {
        out.emplace_back(kRedacted);
        continue;
      }
    }
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      size_t eq = a.find('=');
      std::string_view name = std::string_view(a).substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (is_secret_name(name)) {
        if (eq == std::string::npos) {
          redact_next = true;
          out.push_back(a);
        } else {
          out.push_back(a.substr(0, eq + 1) + std::string(kRedacted));
        }
        continue;
      }
    } else if (size_t eq = a.find('='); eq != std::string::npos && eq > 0 && a[0] != '-' &&
                                        is_secret_name(std::string_view(a).substr(0, eq))) {
      out.push_back(a.substr(0, eq + 1) + std::string(kRedacted));
      continue;
    }
    out.push_back(redact_userinfo(a));
  }
  return out;
}

// --- validation --------------------------------------------------------------

inline Status validate_word(std::string_view what, std::string_view s) {
  if (s.empty() || s.size() > 64)
    return make_error(Exit::usage, fmt::format("invalid audit {} {}", what, shown(s)), "must be 1-64 characters");
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '/'))
      return make_error(Exit::usage, fmt::format("invalid audit {} {}", what, shown(s)),
                        "use lower-case letters, digits and - _ . /");
  return {};
}

inline Status validate_event(const Event& e) {
  if (auto st = validate_word("tool", e.tool); !st) return st;
  if (auto st = validate_word("action", e.action); !st) return st;
  if (!e.cluster.empty())
    if (auto st = validate_name("cluster name", e.cluster); !st) return st;
  if (e.outcome != "ok" && e.outcome != "error")
    return make_error(Exit::usage, fmt::format("invalid audit outcome {}", shown(e.outcome)), "must be ok or error");
  if (e.target.size() > 4096) return make_error(Exit::usage, "invalid audit target", "longer than 4096 bytes");
  if (e.exit_code < 0 || e.exit_code > 255)
    return make_error(Exit::usage, fmt::format("invalid audit exit code {}", e.exit_code), "must be 0-255");
  if (e.duration_ms && (*e.duration_ms < 0 || *e.duration_ms > kMaxEventDurationMs))
    return make_error(Exit::usage, fmt::format("invalid audit duration {} ms", *e.duration_ms), "must be 0 to 10 years");
  for (const auto& [k, v] : e.details) {
    if (k.empty() || k.size() > 128 || !json::valid_utf8(k))
      return make_error(Exit::usage, fmt::format("invalid audit detail key {}", shown(k)), "must be 1-128 bytes of UTF-8");
  }
  return {};
}

// --- identity ----------------------------------------------------------------

inline const std::string& this_user() {
  static const std::string user = [] {
    if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name) return std::string(pw->pw_name);
    if (const char* u = std::getenv("USER")) return std::string(u);
    return fmt::format("uid{}", ::getuid());
  }();
  return user;
}

inline const std::string& this_host() {
  static const std::string host = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return std::string("unknown");
    return std::string(buf);
  }();
  return host;
}

// --- serialisation -------------------------------------------------------------

inline std::string entry_body(const Event& e, uint64_t seq, std::string_view prev_hex, int64_t time_ms) {
  json::Writer w;
  w.begin_object();
  w.field("seq", static_cast<unsigned long long>(seq));
  w.field("time", format_utc_ms(time_ms));
  w.field("user", e.user ? *e.user : this_user());
  w.field("uid", static_cast<long long>(e.uid ? *e.uid : static_cast<int64_t>(::getuid())));
  w.field("host", e.host ? *e.host : this_host());
  w.field("pid", static_cast<long long>(e.pid ? *e.pid : static_cast<int64_t>(::getpid())));
  w.field("tool", e.tool).field("action", e.action);
  if (!e.cluster.empty()) w.field("cluster", e.cluster);
  if (!e.target.empty()) w.field("target", e.target);
  if (!e.args.empty()) w.string_array("args", redact_args(e.args));
  if (!e.details.empty()) {
    w.key("details").begin_object();
    for (const auto& [k, v] : e.details) w.field(k, is_secret_name(k) ? std::string(kRedacted) : v);
    w.end_object();
  }
  w.field("outcome", e.outcome);
  w.field("exitCode", e.exit_code);
  if (e.duration_ms) w.field("durationMs", static_cast<long long>(*e.duration_ms));
  w.field("prev", prev_hex);
  w.end_object();
  return w.take();
}

inline Hash256 body_leaf_hash(std::string_view line_without_suffix) {
  thread_local Sha256 h;
  return h.update(uint8_t{0}).update(line_without_suffix).update(uint8_t{'}'}).finish();
}

// Splits a stored line into the part the hash covers and the hash it states.
// nullopt when the line does not end in a well-formed hash field.
struct SplitLine {
  std::string_view head;  // the body without its closing '}'
  std::string_view stated_hex;
};
inline std::optional<SplitLine> split_line(std::string_view line) {
  if (line.size() < kHashSuffixLen + 2 || line.back() != '}' || line[line.size() - 2] != '"') return std::nullopt;
  size_t at = line.size() - kHashSuffixLen;
  if (line.substr(at, kHashKey.size()) != kHashKey) return std::nullopt;
  std::string_view hex = line.substr(at + kHashKey.size(), 64);
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  return SplitLine{line.substr(0, at), hex};
}

// The Merkle leaf data of a stored line: its body, or (for a line that is not
// a well-formed entry) the line itself, so every line is a leaf.
inline Hash256 line_leaf_hash(std::string_view line) {
  if (auto s = split_line(line)) return body_leaf_hash(s->head);
  return merkle::leaf_hash(line);
}

inline std::string entry_line(std::string_view body, const Hash256& leaf) {
  std::string line(body.substr(0, body.size() - 1));
  line += kHashKey;
  line += to_hex(leaf);
  line += "\"}";
  return line;
}

// --- locations -------------------------------------------------------------------

// KINA_AUDIT_LOG, else $KINA_HOME/audit/log.jsonl.
inline Result<fsys::path> default_log_path() {
  if (const char* p = std::getenv("KINA_AUDIT_LOG"); p && *p) return fsys::path(p);
  auto dir = kina_subdir("audit");
  if (!dir) return dir.error();
  return *dir / "log.jsonl";
}

inline fsys::path checkpoint_dir(const fsys::path& log) { return log.parent_path() / "checkpoints"; }

// --- appending -------------------------------------------------------------------

namespace detail {

// Offset of the byte after the last '\n' before `end` (0 when none).
inline Result<uint64_t> line_start_before(int fd, uint64_t end, const fsys::path& path) {
  char buf[8192];
  uint64_t pos = end;
  while (pos > 0) {
    uint64_t chunk = std::min<uint64_t>(sizeof buf, pos);
    ssize_t n = ::pread(fd, buf, chunk, static_cast<off_t>(pos - chunk));
    if (n != static_cast<ssize_t>(chunk)) return os_error(fmt::format("reading {}", path.string()), errno, Exit::io);
    for (uint64_t i = chunk; i-- > 0;)
      if (buf[i] == '\n') return pos - chunk + i + 1;
    pos -= chunk;
  }
  return uint64_t{0};
}

// A stored line that is a well-formed entry whose hash matches: its seq, prev and hash.
struct Parsed {
  uint64_t seq = 0;
  std::string prev_hex, hash_hex;
};
inline std::optional<Parsed> parse_entry(std::string_view line) {
  auto split = split_line(line);
  if (!split || to_hex(body_leaf_hash(split->head)) != split->stated_hex) return std::nullopt;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  Parsed p;
  std::string_view prev;
  if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS || doc["seq"].get(p.seq) != simdjson::SUCCESS ||
      doc["prev"].get(prev) != simdjson::SUCCESS)
    return std::nullopt;
  p.prev_hex = std::string(prev);
  p.hash_hex = std::string(split->stated_hex);
  return p;
}

// The line in [start, end) (without its '\n'), at most kMaxEntryBytes.
inline Result<std::string> read_span(int fd, uint64_t start, uint64_t end, const fsys::path& path, std::string_view what) {
  if (end - start > kMaxEntryBytes)
    return make_error(Exit::data, fmt::format("appending to {}", path.string()),
                      fmt::format("{} is longer than the {} byte entry cap", what, kMaxEntryBytes),
                      "run kina-audit verify to find the damage");
  std::string line(end - start, '\0');
  if (::pread(fd, line.data(), line.size(), static_cast<off_t>(start)) != static_cast<ssize_t>(line.size()))
    return os_error(fmt::format("reading {}", path.string()), errno, Exit::io);
  return line;
}

struct Tail {
  uint64_t next_seq = 0;
  std::string prev_hex = kZeroHash;
};

// Checks that the first `size` bytes (which end in '\n') are kina's audit log
// as far as it can tell without reading it all: the first entry is a valid
// entry with seq 0 chained to zero, the last one is valid and chains to the one
// before it. Returns where the next entry chains on. Nothing is changed.
inline Result<Tail> read_tail(int fd, uint64_t size, const fsys::path& path) {
  Tail t;
  if (size == 0) return t;
  auto not_log = [&](std::string why) {
    return make_error(Exit::data, fmt::format("appending to {}", path.string()), std::move(why),
                      "run kina-audit verify to find the damage; kina-audit appends only to its own log");
  };
  // The first line.
  uint64_t first_end = 0;
  {
    char buf[8192];
    bool found = false;
    while (!found && first_end < size && first_end <= kMaxEntryBytes) {
      uint64_t want = std::min<uint64_t>(sizeof buf, size - first_end);
      ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(first_end));
      if (n <= 0) return os_error(fmt::format("reading {}", path.string()), errno, Exit::io);
      for (ssize_t i = 0; i < n; ++i)
        if (buf[i] == '\n') {
          first_end += static_cast<uint64_t>(i);
          found = true;
          break;
        }
      if (!found) first_end += static_cast<uint64_t>(n);
    }
    if (!found) return not_log("its first line is longer than an audit entry can be: it is not a kina audit log");
  }
  auto first_line = read_span(fd, 0, first_end, path, "the first line");
  if (!first_line) return first_line.error();
  auto first = parse_entry(*first_line);
  if (!first || first->seq != 0 || first->prev_hex != kZeroHash)
    return not_log("its first line is not the first entry of a kina audit log (not an audit log, or corrupt)");
  // The last line, and the link from the one before it.
  auto start = line_start_before(fd, size - 1, path);
  if (!start) return start.error();
  if (*start == 0) {
    t.next_seq = 1;
    t.prev_hex = first->hash_hex;
    return t;
  }
  auto last_line = read_span(fd, *start, size - 1, path, "the last entry");
  if (!last_line) return last_line.error();
  auto last = parse_entry(*last_line);
  if (!last)
    return make_error(Exit::data, fmt::format("appending to {}", path.string()),
                      "the last entry is corrupt, so a new entry cannot be chained to it",
                      "run kina-audit verify to find the damage");
  auto before_start = line_start_before(fd, *start - 1, path);
  if (!before_start) return before_start.error();
  auto before_line = read_span(fd, *before_start, *start - 1, path, "the entry before the last");
  if (!before_line) return before_line.error();
  auto before = parse_entry(*before_line);
  if (!before || before->seq + 1 != last->seq || before->hash_hex != last->prev_hex)
    return make_error(Exit::data, fmt::format("appending to {}", path.string()),
                      "the last entry does not chain to the one before it, so a new entry cannot be chained to it",
                      "run kina-audit verify to find the damage");
  t.next_seq = last->seq + 1;
  t.prev_hex = last->hash_hex;
  return t;
}

// Whether `tail` (bytes after the last '\n') can be the start of the entry
// with seq `next_seq` that an interrupted append was writing.
inline bool is_partial_entry(std::string_view tail, uint64_t next_seq) {
  if (tail.empty() || tail.size() > kMaxEntryBytes) return false;
  std::string expect = fmt::format("{{\"seq\":{},\"time\":\"", next_seq);
  return tail.size() <= expect.size() ? expect.starts_with(tail) : tail.starts_with(expect);
}

}  // namespace detail

class Log {
 public:
  explicit Log(fsys::path path) : path_(std::move(path)) {}
  const fsys::path& path() const { return path_; }

  // Appends events as one batch: one lock, one write, one fsync. The file must
  // be kina's audit log (first entry, last link; see detail::read_tail) before
  // anything is changed. A tail that an interrupted append left (a partial
  // entry with the next seq) is replaced, and the repair entry records its
  // length and SHA-256; any other unterminated tail is refused untouched. A
  // failed write (full disk, file size limit) truncates back to the old state.
  Result<std::vector<Appended>> append(std::vector<Event> events,
                                       std::chrono::milliseconds lock_timeout = std::chrono::seconds(30)) {
    for (const auto& e : events)
      if (auto st = validate_event(e); !st) return st.error();
    // Over a file size limit write(2) must fail with EFBIG, not kill us mid-entry.
    ::signal(SIGXFSZ, SIG_IGN);
    // The output rule: a regular file or absent; never a link, device or FIFO.
    if (auto plan = plan_output(path_, "appending to the audit log", 0600); !plan) return plan.error();
    if (auto st = ensure_dir(path_.parent_path(), 0700); !st) return st.error();
    auto lock = FileLock::acquire_for(path_, lock_timeout, "kina audit append");
    if (!lock) return lock.error();
    std::string what = fmt::format("appending to {}", path_.string());
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (!fd.valid()) return os_error(what, errno, Exit::cant_create);
    struct stat sb {};
    if (::fstat(fd.get(), &sb) != 0) return os_error(what);
    if (!S_ISREG(sb.st_mode)) return make_error(Exit::cant_create, what, "it is not a regular file");
    const auto size = static_cast<uint64_t>(sb.st_size);

    std::vector<Event> batch;
    uint64_t write_at = size;  // where the new bytes go
    std::string cut;           // a torn tail replaced by them (restored if the write fails)
    std::string out;
    detail::Tail tail;
    if (size > 0) {
      char last = 0;
      if (::pread(fd.get(), &last, 1, static_cast<off_t>(size - 1)) != 1) return os_error(what, errno, Exit::io);
      uint64_t complete = size;
      if (last != '\n') {
        auto keep = detail::line_start_before(fd.get(), size, path_);
        if (!keep) return keep.error();
        complete = *keep;
      }
      auto t = detail::read_tail(fd.get(), complete, path_);
      if (!t) return t.error();
      tail = std::move(*t);
      if (complete != size) {
        uint64_t torn = size - complete;
        if (torn > kMaxEntryBytes)
          return make_error(Exit::data, what, fmt::format("the log ends in {} bytes without a newline, more than an entry", torn),
                            "run kina-audit verify; kina-audit cuts only what an interrupted append left");
        auto bytes = detail::read_span(fd.get(), complete, size, path_, "the unterminated tail");
        if (!bytes) return bytes.error();
        Event repair;
        repair.tool = "kina-audit";
        repair.action = "repair";
        repair.target = path_.string();
        if (auto whole = detail::parse_entry(*bytes); whole && whole->seq == tail.next_seq && whole->prev_hex == tail.prev_hex) {
          // A complete entry that only lacks its newline: keep it, end its line.
          out += '\n';
          tail.next_seq = whole->seq + 1;
          tail.prev_hex = whole->hash_hex;
          repair.details = {{"reason", "the last entry lacked its final newline (added; nothing cut)"},
                            {"truncatedBytes", "0"}};
        } else if (detail::is_partial_entry(*bytes, tail.next_seq)) {
          write_at = complete;
          cut = std::move(*bytes);
          repair.details = {{"reason", "torn tail (an append was interrupted)"},
                            {"truncatedBytes", std::to_string(torn)},
                            {"truncatedSha256", to_hex(sha256(cut))}};
        } else {
          return make_error(Exit::data, what,
                            fmt::format("the log ends in {} bytes that are not the start of its next entry (not a kina audit log, or edited)", torn),
                            "run kina-audit verify; kina-audit cuts only what an interrupted append left");
        }
        batch.push_back(std::move(repair));
      }
    }
    for (auto& e : events) batch.push_back(std::move(e));

    std::vector<Appended> done;
    uint64_t seq = tail.next_seq;
    std::string prev = tail.prev_hex;
    for (const auto& e : batch) {
      int64_t t = e.time_ms ? *e.time_ms : now_ms();
      std::string body = entry_body(e, seq, prev, t);
      if (body.size() > kMaxEntryBytes)
        return make_error(Exit::usage, "appending an audit event", "the event is larger than 1 MiB");
      Hash256 leaf = merkle::leaf_hash(body);
      out += entry_line(body, leaf);
      out += '\n';
      done.push_back({seq, leaf, t, e.tool, e.action});
      prev = to_hex(leaf);
      ++seq;
    }
    // Put back exactly what was there, whatever failed.
    auto restore = [&](Error err) -> Error {
      if (::ftruncate(fd.get(), static_cast<off_t>(write_at)) == 0 && !cut.empty())
        (void)!::pwrite(fd.get(), cut.data(), cut.size(), static_cast<off_t>(write_at));
      (void)::fdatasync(fd.get());
      return err;
    };
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::pwrite(fd.get(), out.data() + off, out.size() - off, static_cast<off_t>(write_at + off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return restore(os_error(what, errno, errno == ENOSPC || errno == EFBIG || errno == EDQUOT ? Exit::cant_create : Exit::io));
      }
      off += static_cast<size_t>(n);
    }
    if (write_at + out.size() < size && ::ftruncate(fd.get(), static_cast<off_t>(write_at + out.size())) != 0)
      return restore(os_error(what, errno, Exit::io));
    if (::fdatasync(fd.get()) != 0) return restore(os_error(fmt::format("syncing {}", path_.string()), errno, Exit::io));
    return done;
  }

 private:
  fsys::path path_;
};

// The one call a tool makes after a mutating command. Failure to log is
// reported to the caller, who should warn (the command itself already ran).
inline Status record(Event e) {
  auto path = default_log_path();
  if (!path) return path.error();
  auto r = Log(*path).append({std::move(e)});
  if (!r) return r.error();
  return {};
}

// Runs a tool's mutating command and appends its one audit event, whatever
// the outcome: `fn` settles `cluster` and `target` (read after it ran); the
// exit code is the one the tool will end with. With `intr`, a signal that ends
// the command appends the event instead (exit 128+N, detail "signal"), after
// the command's cleanups: `fn` then changes `cluster` and `target` only inside
// intr->critical() (Invocation::set_target does). Exactly one event either
// way. A failure to log is a warning on stderr; the command's status stands.
inline Status audited(std::string_view tool, const std::vector<std::string>& argv, std::string action,
                      const std::string& cluster, const std::string& target, const std::function<Status()>& fn,
                      const Interrupts* intr = nullptr) {
  int64_t start = now_ms();
  auto event = [&](int exit_code) {
    Event ev;
    ev.tool = std::string(tool);
    ev.action = action;
    if (validate_name("cluster name", cluster)) ev.cluster = cluster;
    ev.target = target;
    ev.args = argv;
    ev.outcome = exit_code == 0 ? "ok" : "error";
    ev.exit_code = exit_code;
    ev.duration_ms = now_ms() - start;
    return ev;
  };
  auto write = [&](Event ev) {
    if (auto a = record(std::move(ev)); !a) warn(tool, "audit log: " + a.error().message());
  };
  Interrupts::Guard signal_event;
  if (intr)
    signal_event = intr->on_signal([&](int signo) {
      Event ev = event(signal_exit(signo));
      const char* sig = ::sigabbrev_np(signo);
      ev.details = {{"signal", sig ? sig : "?"}};
      write(std::move(ev));
    });
  Status st = fn();
  Interrupts::critical(intr, [&] {
    write(event(st ? 0 : code(st.error().exit)));
    signal_event.release();
  });
  return st;
}

// --- reading and verifying ------------------------------------------------------------

// A line longer than kMaxEntryBytes: no entry is that long, so the file is
// corrupt (or not an audit log) from that line on.
inline constexpr std::string_view kOverlongLine = "longer than the per-entry cap";

// The size of a consistent snapshot of the log: taken under the shared lock, so
// no append is half-written in it (appends only ever add after it, or put back
// exactly what was there). Without permission to create the lock file (a
// read-only copy), the current size.
inline Result<uint64_t> snapshot_size(int fd, const fsys::path& path) {
  std::optional<FileLock> lock;
  if (auto lk = FileLock::acquire_for(path, std::chrono::seconds(30), "kina audit read", LockMode::shared); lk)
    lock.emplace(std::move(*lk));
  else if (lk.error().exit == Exit::temp_fail)
    return lk.error();
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) return os_error(fmt::format("reading {}", path.string()));
  return static_cast<uint64_t>(sb.st_size);
}

// Calls fn(line, offset) for every '\n'-terminated line of a consistent
// snapshot (see snapshot_size); `torn` gets a final unterminated fragment, if
// any. Only a regular file is read (a FIFO or device is refused, Exit::data),
// in blocks; a line longer than kMaxEntryBytes stops the read with Exit::data
// (`overlong`, when given, gets its 1-based line number), so memory stays bounded.
template <class Fn>
Status for_each_line(const fsys::path& path, Fn&& fn, std::string* torn = nullptr, uint64_t* overlong = nullptr) {
  std::string what = fmt::format("reading {}", path.string());
  auto opened = open_regular(path, what);
  if (!opened) return opened.error();
  UniqueFd fd = std::move(*opened);
  auto limit = snapshot_size(fd.get(), path);
  if (!limit) return limit.error();
  std::string buf;
  buf.reserve(1 << 20);
  std::vector<char> chunk(1 << 20);
  size_t start = 0;
  uint64_t base = 0, read_total = 0, lines = 0;
  for (;;) {
    uint64_t want = std::min<uint64_t>(chunk.size(), *limit - read_total);
    if (want == 0) break;
    ssize_t n = ::read(fd.get(), chunk.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error(what, errno, Exit::io);
    }
    if (n == 0) break;
    read_total += static_cast<uint64_t>(n);
    buf.append(chunk.data(), static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n', start)) != std::string::npos) {
      ++lines;
      if (nl - start > kMaxEntryBytes) break;
      if (!fn(std::string_view(buf).substr(start, nl - start), base + start)) return {};
      start = nl + 1;
    }
    if (buf.size() - start > kMaxEntryBytes) {
      if (overlong) *overlong = nl == std::string::npos ? lines + 1 : lines;
      return make_error(Exit::data, what,
                        fmt::format("line {} is {} of {} bytes (corrupt, or not an audit log)",
                                    nl == std::string::npos ? lines + 1 : lines, kOverlongLine, kMaxEntryBytes),
                        "run kina-audit verify");
    }
    base += start;
    buf.erase(0, start);
    start = 0;
  }
  if (torn) *torn = buf;
  return {};
}

struct Problem {
  std::string kind;  // malformed, oversized, hash-mismatch, sequence, chain, torn-tail, checkpoint-*, truncated
  std::optional<uint64_t> seq;
  uint64_t line = 0;  // 1-based; 0 when not about a line
  std::string detail;
};

struct CheckpointResult {
  std::string source;
  uint64_t size = 0;
  std::string status;  // ok, bad-signature, unverified, origin-mismatch, truncated, mismatch, malformed
  std::string detail;
};

// A repair entry: bytes an append cut from the end of the log (a torn tail),
// so that a reader can tell that something was removed and judge it.
struct Repair {
  uint64_t seq = 0;
  std::string reason, cut_bytes, cut_sha256;
};

struct Report {
  fsys::path log;
  std::vector<Repair> repairs;
  uint64_t entries = 0;
  std::optional<uint64_t> first_seq, last_seq;
  Hash256 root{};
  std::vector<Problem> problems;
  std::vector<CheckpointResult> checkpoints;
  bool intact() const { return problems.empty(); }
};

struct CheckpointInput {
  std::string source;  // file name, for messages
  std::string data;    // the signed note
};

// Verifies the chain and the tree, and checks every checkpoint against the
// log. Only the first problem in the chain is reported (later ones follow from it).
inline Result<Report> verify(const fsys::path& path, const std::vector<CheckpointInput>& checkpoints,
                             const std::optional<note::Verifier>& verifier) {
  Report rep;
  rep.log = path;
  // Parse and authenticate checkpoints first; remember the sizes whose roots we need.
  struct Pending {
    size_t index;
    note::Checkpoint cp;
  };
  std::vector<Pending> pending;
  for (const auto& in : checkpoints) {
    CheckpointResult cr;
    cr.source = in.source;
    auto n = note::parse(in.data);
    Result<note::Checkpoint> cp = n ? note::parse_checkpoint(n->text) : Result<note::Checkpoint>(n.error());
    if (!cp) {
      cr.status = "malformed";
      cr.detail = cp.error().why;
      rep.problems.push_back({"checkpoint-malformed", std::nullopt, 0, fmt::format("{}: {}", in.source, cr.detail)});
    } else if (cr.size = cp->size; !verifier) {
      cr.status = "unverified";
      cr.detail = "no verifier key (give --vkey, or run kina-audit keygen)";
      rep.problems.push_back({"checkpoint-signature", std::nullopt, 0, fmt::format("{}: {}", in.source, cr.detail)});
    } else if (!note::verify(*n, *verifier)) {
      cr.status = "bad-signature";
      cr.detail = fmt::format("no valid signature by {}", verifier->name);
      rep.problems.push_back({"checkpoint-signature", std::nullopt, 0,
                              fmt::format("{}: signature does not verify with key {} (forged or altered)", in.source,
                                          verifier->name)});
    } else if (cp->origin != verifier->name) {
      cr.status = "origin-mismatch";
      cr.detail = fmt::format("origin \"{}\" is not the key's name \"{}\"", cp->origin, verifier->name);
      rep.problems.push_back({"checkpoint-origin", std::nullopt, 0, fmt::format("{}: {}", in.source, cr.detail)});
    } else {
      cr.status = "pending";
      pending.push_back({rep.checkpoints.size(), *cp});
    }
    rep.checkpoints.push_back(std::move(cr));
  }
  std::map<uint64_t, Hash256> roots_wanted;
  for (const auto& p : pending) roots_wanted[p.cp.size] = {};
  if (roots_wanted.count(0)) roots_wanted[0] = merkle::empty_root();

  merkle::CompactRange tree;
  simdjson::dom::parser parser;
  std::string expected_prev = kZeroHash;
  bool chain_ok = true;
  uint64_t index = 0;
  auto note_problem = [&](std::string kind, uint64_t seq, std::string detail) {
    if (chain_ok) rep.problems.push_back({std::move(kind), seq, index + 1, std::move(detail)});
    chain_ok = false;
  };
  std::string torn;
  uint64_t overlong = 0;
  auto st = for_each_line(path, [&](std::string_view line, uint64_t) {
    auto split = split_line(line);
    Hash256 leaf = split ? body_leaf_hash(split->head) : merkle::leaf_hash(line);
    if (!split) {
      note_problem("malformed", index, fmt::format("line {} is not a complete audit entry", index + 1));
    } else {
      std::string leaf_hex = to_hex(leaf);
      uint64_t seq = 0;
      std::string_view prev;
      simdjson::dom::element doc;
      if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS || doc["seq"].get(seq) != simdjson::SUCCESS ||
          doc["prev"].get(prev) != simdjson::SUCCESS) {
        note_problem("malformed", index, fmt::format("line {} is not valid entry JSON", index + 1));
      } else if (leaf_hex != split->stated_hex) {
        note_problem("hash-mismatch", index,
                     fmt::format("entry at line {} does not match its hash (modified)", index + 1));
      } else if (seq != index) {
        note_problem("sequence", index,
                     fmt::format("line {} holds seq {}, expected {} (an entry was deleted, inserted, duplicated or "
                                 "reordered)",
                                 index + 1, seq, index));
      } else if (prev != expected_prev) {
        note_problem("chain", seq,
                     fmt::format("entry {} does not chain to the entry before it (prev hash differs: an entry was "
                                 "replaced or inserted)",
                                 seq));
      } else {
        std::string_view tool, action;
        if (doc["tool"].get(tool) == simdjson::SUCCESS && doc["action"].get(action) == simdjson::SUCCESS &&
            tool == "kina-audit" && action == "repair") {
          auto detail_of = [&](const char* k) {
            std::string_view v;
            return doc["details"][k].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
          };
          rep.repairs.push_back({seq, detail_of("reason"), detail_of("truncatedBytes"), detail_of("truncatedSha256")});
        }
      }
      expected_prev = split->stated_hex;
    }
    tree.append(leaf);
    ++index;
    if (auto it = roots_wanted.find(index); it != roots_wanted.end()) it->second = tree.root();
    return true;
  }, &torn, &overlong);
  if (!st && overlong == 0) return st.error();
  if (overlong)
    rep.problems.push_back({"oversized", index, overlong,
                 fmt::format("line {} is {} of {} bytes: no entry is that long (corrupt, or not an audit log); "
                             "verification stops there",
                             overlong, kOverlongLine, kMaxEntryBytes)});
  else if (!torn.empty())
    rep.problems.push_back({"torn-tail", index, index + 1,
                            fmt::format("the log ends in {} bytes of an unfinished entry (an append was interrupted; "
                                        "the next append repairs it)",
                                        torn.size())});
  rep.entries = index;
  if (index) rep.first_seq = 0, rep.last_seq = index - 1;
  rep.root = tree.root();
  auto finish = [&] {
    // Problems about entries first, in log order; then those about checkpoints.
    std::stable_partition(rep.problems.begin(), rep.problems.end(), [](const Problem& p) { return p.seq.has_value(); });
  };
  for (auto& p : pending) {
    auto& cr = rep.checkpoints[p.index];
    if (p.cp.size > rep.entries) {
      cr.status = "truncated";
      cr.detail = fmt::format("checkpoint covers {} entries, the log has {}", p.cp.size, rep.entries);
      rep.problems.push_back({"truncated", rep.entries, 0,
                              fmt::format("{}: the log has {} entries but checkpoint signed {} (entries were removed: "
                                          "truncation or rollback)",
                                          cr.source, rep.entries, p.cp.size)});
    } else if (roots_wanted[p.cp.size] != p.cp.root) {
      cr.status = "mismatch";
      cr.detail = fmt::format("the first {} entries do not hash to the signed root", p.cp.size);
      rep.problems.push_back({"checkpoint-mismatch", std::nullopt, 0,
                              fmt::format("{}: the first {} entries do not hash to the signed root (history was "
                                          "rewritten or rolled back)",
                                          cr.source, p.cp.size)});
    } else {
      cr.status = "ok";
    }
  }
  finish();
  return rep;
}

// Leaf hashes of the first `count` lines (all when nullopt).
inline Result<std::vector<Hash256>> leaf_hashes(const fsys::path& path, std::optional<uint64_t> count = std::nullopt) {
  std::vector<Hash256> out;
  auto st = for_each_line(path, [&](std::string_view line, uint64_t) {
    if (count && out.size() >= *count) return false;
    out.push_back(line_leaf_hash(line));
    return true;
  });
  if (!st) return st.error();
  return out;
}

}  // namespace kina::audit
