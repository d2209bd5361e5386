// audit.hpp: the tamper-evident audit log every kina tool appends to. Each entry is
// one JSON line that carries the hash of the previous entry and its own hash; the
// entries are the leaves of an RFC 6962 Merkle tree (docs/protocol.md, "Audit log").
#pragma once

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
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
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/json.hpp"
#include "kina/lock.hpp"
#include "kina/merkle.hpp"
#include "kina/note.hpp"
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

inline fsys::path lock_path(const fsys::path& log) { return fsys::path(log.string() + ".lock"); }
inline fsys::path checkpoint_dir(const fsys::path& log) { return log.parent_path() / "checkpoints"; }

// --- appending -------------------------------------------------------------------

namespace detail {

// Offset of the byte after the last '\n' at or before `end` (0 when none).
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

struct Tail {
  uint64_t next_seq = 0;
  std::string prev_hex = kZeroHash;
};

inline Result<Tail> read_tail(int fd, uint64_t size, const fsys::path& path) {
  Tail t;
  if (size == 0) return t;
  auto start = line_start_before(fd, size - 1, path);
  if (!start) return start.error();
  uint64_t len = size - 1 - *start;
  if (len > kMaxEntryBytes)
    return make_error(Exit::data, fmt::format("appending to {}", path.string()), "the last entry is implausibly long");
  std::string line(len, '\0');
  if (::pread(fd, line.data(), len, static_cast<off_t>(*start)) != static_cast<ssize_t>(len))
    return os_error(fmt::format("reading {}", path.string()), errno, Exit::io);
  auto corrupt = make_error(Exit::data, fmt::format("appending to {}", path.string()),
                            "the last entry is corrupt, so a new entry cannot be chained to it",
                            "run kina-audit verify to find the damage");
  auto split = split_line(line);
  if (!split || to_hex(body_leaf_hash(split->head)) != split->stated_hex) return corrupt;
  simdjson::dom::parser parser;
  uint64_t seq = 0;
  if (parser.parse(line)["seq"].get(seq) != simdjson::SUCCESS) return corrupt;
  t.next_seq = seq + 1;
  t.prev_hex = std::string(split->stated_hex);
  return t;
}

}  // namespace detail

class Log {
 public:
  explicit Log(fsys::path path) : path_(std::move(path)) {}
  const fsys::path& path() const { return path_; }

  // Appends events as one batch: one lock, one write, one fsync. A torn tail
  // left by a crash is cut off first and the cut is itself logged.
  Result<std::vector<Appended>> append(std::vector<Event> events,
                                       std::chrono::milliseconds lock_timeout = std::chrono::seconds(30)) {
    for (const auto& e : events)
      if (auto st = validate_event(e); !st) return st.error();
    if (auto st = ensure_dir(path_.parent_path(), 0700); !st) return st.error();
    auto lock = FileLock::acquire(lock_path(path_), lock_timeout, "kina audit append");
    if (!lock) return lock.error();
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd.valid()) return os_error(fmt::format("opening {}", path_.string()), errno, Exit::cant_create);
    struct stat sb {};
    if (::fstat(fd.get(), &sb) != 0) return os_error(fmt::format("reading {}", path_.string()));
    auto size = static_cast<uint64_t>(sb.st_size);

    std::vector<Event> batch;
    if (size > 0) {
      char last = 0;
      if (::pread(fd.get(), &last, 1, static_cast<off_t>(size - 1)) != 1)
        return os_error(fmt::format("reading {}", path_.string()), errno, Exit::io);
      if (last != '\n') {
        auto keep = detail::line_start_before(fd.get(), size, path_);
        if (!keep) return keep.error();
        uint64_t torn = size - *keep;
        std::string tail(torn, '\0');
        if (::pread(fd.get(), tail.data(), torn, static_cast<off_t>(*keep)) != static_cast<ssize_t>(torn))
          return os_error(fmt::format("reading {}", path_.string()), errno, Exit::io);
        if (::ftruncate(fd.get(), static_cast<off_t>(*keep)) != 0 || ::fsync(fd.get()) != 0)
          return os_error(fmt::format("cutting the torn tail of {}", path_.string()), errno, Exit::io);
        Event repair;
        repair.tool = "kina-audit";
        repair.action = "repair";
        repair.target = path_.string();
        repair.details = {{"reason", "torn tail (an append was interrupted)"},
                          {"truncatedBytes", std::to_string(torn)},
                          {"truncatedSha256", to_hex(sha256(tail))}};
        batch.push_back(std::move(repair));
        size = *keep;
      }
    }
    auto tail = detail::read_tail(fd.get(), size, path_);
    if (!tail) return tail.error();
    for (auto& e : events) batch.push_back(std::move(e));

    std::string out;
    std::vector<Appended> done;
    uint64_t seq = tail->next_seq;
    std::string prev = tail->prev_hex;
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
    if (auto st = write_all(fd.get(), out, fmt::format("appending to {}", path_.string())); !st) return st.error();
    if (::fdatasync(fd.get()) != 0) return os_error(fmt::format("syncing {}", path_.string()), errno, Exit::io);
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

// --- reading and verifying ------------------------------------------------------------

// Calls fn(line, offset) for every '\n'-terminated line; `torn` gets a final
// unterminated fragment, if any. Reads in large blocks.
template <class Fn>
Status for_each_line(const fsys::path& path, Fn&& fn, std::string* torn = nullptr) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int e = errno;
    return os_error(fmt::format("reading {}", path.string()), e, e == ENOENT ? Exit::no_input : Exit::os);
  }
  std::string buf;
  buf.reserve(1 << 20);
  std::vector<char> chunk(1 << 20);
  size_t start = 0;
  uint64_t base = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error(fmt::format("reading {}", path.string()), errno, Exit::io);
    }
    if (n == 0) break;
    buf.append(chunk.data(), static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n', start)) != std::string::npos) {
      if (!fn(std::string_view(buf).substr(start, nl - start), base + start)) return {};
      start = nl + 1;
    }
    base += start;
    buf.erase(0, start);
    start = 0;
  }
  if (torn) *torn = buf;
  return {};
}

struct Problem {
  std::string kind;  // malformed, hash-mismatch, sequence, chain, torn-tail, checkpoint-*, truncated
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

struct Report {
  fsys::path log;
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
      }
      expected_prev = split->stated_hex;
    }
    tree.append(leaf);
    ++index;
    if (auto it = roots_wanted.find(index); it != roots_wanted.end()) it->second = tree.root();
    return true;
  }, &torn);
  if (!st) return st.error();
  if (!torn.empty())
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
