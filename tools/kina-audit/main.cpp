// kina-audit: append to, show, checkpoint and verify the tamper-evident audit log.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/keystore.hpp"
#include "kina/merkle.hpp"
#include "kina/note.hpp"
#include "kina/output.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

namespace {

using namespace kina;
constexpr std::string_view kTool = "kina-audit";
// The keystore role of keys/audit.key (a sealed file copied over it is refused).
constexpr std::string_view kSignerRole = "kina-audit signing key";

struct Options {
  std::string log;
  // append
  audit::Event event;
  std::string duration;
  std::vector<std::string> details;
  int exit_code = 0;
  // verify / prove / verify-proof
  std::vector<std::string> checkpoints;
  std::string vkey;
  bool no_stored = false;
  uint64_t seq = 0;
  std::string proof_file;
  // checkpoint / keygen
  std::string out;
  std::string key_name;
  bool force = false;
  // show
  std::string cluster_filter, tool_filter, since, format;
  long long last_n = -1;
};

Result<fsys::path> log_path(const Options& o) {
  if (!o.log.empty()) return fsys::absolute(o.log);
  return audit::default_log_path();
}

Result<fsys::path> keys_dir() { return kina_subdir("keys"); }

Status print(RecordWriter& out, json::Writer& w) {
  w.end_object();
  return out.write_line(w.str());
}

// --- append ------------------------------------------------------------------

Result<audit::Event> event_from_record(const Record& r) {
  audit::Event e;
  auto get = [&](std::string_view k, std::string& dst, bool required) -> Status {
    if (required) {
      auto v = r.required_string(k);
      if (!v) return v.error();
      dst = *v;
      return {};
    }
    auto v = r.string_field(k);
    if (!v) return v.error();
    if (*v) dst = **v;
    return {};
  };
  if (auto st = get("tool", e.tool, true); !st) return st.error();
  if (auto st = get("action", e.action, true); !st) return st.error();
  if (auto st = get("cluster", e.cluster, false); !st) return st.error();
  if (auto st = get("target", e.target, false); !st) return st.error();
  if (auto st = get("outcome", e.outcome, false); !st) return st.error();
  if (e.outcome.empty()) e.outcome = "ok";
  auto code_v = r.int_field("exitCode");
  if (!code_v) return code_v.error();
  auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("record {} (AuditEvent)", r.where()), why); };
  // Checked before narrowing: an exitCode of 2^32 must not be stored as 0.
  if (*code_v && (**code_v < 0 || **code_v > 255))
    return bad(fmt::format("exitCode {} is not an exit status (0-255)", **code_v));
  if (*code_v) e.exit_code = static_cast<int>(**code_v);
  auto dur = r.int_field("durationMs");
  if (!dur) return dur.error();
  if (*dur && (**dur < 0 || **dur > audit::kMaxEventDurationMs))
    return bad(fmt::format("durationMs {} is out of range (0 to {}, 10 years)", **dur, audit::kMaxEventDurationMs));
  e.duration_ms = *dur;
  if (auto args = r.root()["args"]; args.error() != simdjson::NO_SUCH_FIELD) {
    simdjson::dom::array arr;
    if (args.get(arr) != simdjson::SUCCESS) return bad("field \"args\" is not an array of strings");
    for (auto a : arr) {
      std::string_view s;
      if (a.get(s) != simdjson::SUCCESS) return bad("field \"args\" is not an array of strings");
      e.args.emplace_back(s);
    }
  }
  if (auto det = r.root()["details"]; det.error() != simdjson::NO_SUCH_FIELD) {
    simdjson::dom::object obj;
    if (det.get(obj) != simdjson::SUCCESS) return bad("field \"details\" is not an object of strings");
    for (auto [k, v] : obj) {
      std::string_view s;
      if (v.get(s) != simdjson::SUCCESS) return bad("field \"details\" is not an object of strings");
      e.details.emplace_back(std::string(k), std::string(s));
    }
  }
  if (auto st = audit::validate_event(e); !st) {
    Error err = st.error();
    err.exit = Exit::data;
    err.what = fmt::format("record {} (AuditEvent): {}", r.where(), err.what);
    return err;
  }
  return e;
}

Status cmd_append(Options& o, bool from_flags) {
  auto path = log_path(o);
  if (!path) return path.error();
  RecordWriter out;
  std::vector<audit::Event> events;
  if (from_flags) {
    if (o.event.tool.empty() || o.event.action.empty())
      return usage_error("append", "--tool and --action go together (or give AuditEvent records on stdin)");
    for (const auto& d : o.details) {
      size_t eq = d.find('=');
      if (eq == std::string::npos || eq == 0) return usage_error(fmt::format("invalid --detail {}", shown(d)), "expected KEY=VALUE");
      o.event.details.emplace_back(d.substr(0, eq), d.substr(eq + 1));
    }
    if (!o.duration.empty()) {
      auto ms = parse_duration_flag("--duration", o.duration, 0, audit::kMaxEventDurationMs);
      if (!ms) return ms.error();
      o.event.duration_ms = *ms;
    }
    o.event.exit_code = o.exit_code;
    events.push_back(o.event);
  } else {
    if (!stdin_has_records())
      return usage_error("append", "give --tool and --action, or pipe AuditEvent records to stdin");
    RecordReader in(0);
    auto st = filter_records(in, out, [&](const Record& rec) -> Result<bool> {
      if (rec.kind != "AuditEvent") return false;
      auto e = event_from_record(rec);
      if (!e) return e.error();
      events.push_back(std::move(*e));
      return true;
    });
    if (!st) return st;
    if (events.empty()) return {};
  }
  auto done = audit::Log(*path).append(std::move(events));
  if (!done) return done.error();
  for (const auto& a : *done) {
    auto w = begin_record("AuditEntry");
    w.field("log", path->string()).field("seq", static_cast<unsigned long long>(a.seq)).field("hash", to_hex(a.hash));
    w.field("time", format_utc_ms(a.time_ms)).field("tool", a.tool).field("action", a.action);
    if (auto st = print(out, w); !st) return st;
  }
  return {};
}

// --- keys --------------------------------------------------------------------------

Result<std::optional<note::Verifier>> load_verifier(const std::string& given) {
  std::string text = given;
  if (!given.empty()) {
    if (given.find('+') == std::string::npos || fsys::exists(given)) {
      auto data = read_file(given, 4096);
      if (!data) return data.error();
      text = *data;
    }
  } else {
    auto dir = keys_dir();
    if (!dir) return dir.error();
    auto data = read_file(*dir / "audit.vkey", 4096);
    if (!data) {
      if (data.error().exit == Exit::no_input) return std::optional<note::Verifier>{};
      return data.error();
    }
    text = *data;
  }
  auto v = note::parse_vkey(text);
  if (!v) return v.error();
  return std::optional<note::Verifier>{*v};
}

Result<note::Signer> load_signer() {
  auto dir = keys_dir();
  if (!dir) return dir.error();
  fsys::path key = *dir / "audit.key";
  if (!fsys::exists(key))
    return make_error(Exit::no_input, "loading the audit signing key", fmt::format("{} does not exist", key.string()),
                      "create it with: kina-audit keygen");
  auto sealed = keystore::load(key, kSignerRole);
  if (!sealed) return sealed.error();
  return note::decode_signer(*sealed);
}

Status cmd_keygen(Options& o) {
  auto dir = keys_dir();
  if (!dir) return dir.error();
  fsys::path key = *dir / "audit.key", vkey = *dir / "audit.vkey";
  if (fsys::exists(key) && !o.force)
    return make_error(Exit::cant_create, "creating the audit signing key", fmt::format("{} already exists", key.string()),
                      "use --force to replace it (checkpoints signed with the old key then need the old vkey)");
  std::string name = o.key_name.empty() ? fmt::format("kina-audit/{}", audit::this_host()) : o.key_name;
  if (!note::valid_key_name(name))
    return usage_error(fmt::format("invalid key name {}", shown(name)), "no spaces or '+' allowed");
  auto src = keystore::choose_source();
  if (!src) return src.error();
  note::Signer signer = note::generate(name);
  auto sealed = keystore::seal(note::encode_signer(signer), *src, kSignerRole);
  if (!sealed) return sealed.error();
  if (auto st = write_file_atomic(key, *sealed, 0600); !st) return st;
  std::string vk = signer.verifier().vkey();
  if (auto st = write_file_atomic(vkey, vk + "\n", 0644); !st) return st;
  audit::Event ev;
  ev.tool = "kina-audit", ev.action = "keygen", ev.target = vk;
  ev.details = {{"keystore", std::string(keystore::source_name(*src))}};
  auto path = log_path(o);
  if (path) {
    if (auto r = audit::Log(*path).append({ev}); !r) warn(kTool, "could not log keygen: " + r.error().message());
  }
  RecordWriter out;
  auto w = begin_record("AuditKey");
  w.field("name", name).field("vkey", vk).field("keyFile", key.string()).field("vkeyFile", vkey.string());
  w.field("keystore", keystore::source_name(*src));
  return print(out, w);
}

// --- checkpoints ------------------------------------------------------------------

Result<std::vector<audit::CheckpointInput>> stored_checkpoints(const fsys::path& log) {
  std::vector<audit::CheckpointInput> out;
  fsys::path dir = audit::checkpoint_dir(log);
  std::error_code ec;
  if (!fsys::is_directory(dir, ec)) return out;
  std::vector<fsys::path> files;
  for (const auto& e : fsys::directory_iterator(dir, ec))
    if (e.path().extension() == ".note") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto data = read_file(f, 1 << 20);
    if (!data) return data.error();
    out.push_back({f.string(), std::move(*data)});
  }
  return out;
}

Status cmd_checkpoint(Options& o) {
  auto path = log_path(o);
  if (!path) return path.error();
  // Check --out before anything is signed or stored (docs/security.md, "Output paths").
  std::optional<OutputPlan> out_plan;
  if (!o.out.empty()) {
    auto plan = plan_output(fsys::absolute(o.out), "writing the checkpoint to", 0644);
    if (!plan) return plan.error();
    out_plan = std::move(*plan);
  }
  auto signer = load_signer();
  if (!signer) return signer.error();
  auto rep = audit::verify(*path, {}, std::nullopt);
  if (!rep) return rep.error();
  if (!rep->intact())
    return make_error(Exit::data, fmt::format("checkpointing {}", path->string()),
                      fmt::format("the log does not verify ({}), so it will not be signed", rep->problems[0].detail));
  note::Checkpoint cp;
  cp.origin = signer->name;
  cp.size = rep->entries;
  cp.root = rep->root;
  std::string signed_note = note::sign(cp.text(), *signer);
  fsys::path dir = audit::checkpoint_dir(*path);
  if (auto st = ensure_dir(dir, 0700); !st) return st;
  fsys::path stored = dir / fmt::format("{:020}.note", cp.size);
  if (auto st = write_output_file(stored, signed_note, "writing the checkpoint to", 0644); !st) return st;
  if (out_plan)
    if (auto st = write_output(*out_plan, signed_note); !st) return st;
  RecordWriter out;
  auto w = begin_record("AuditCheckpoint");
  w.field("log", path->string()).field("origin", cp.origin).field("size", static_cast<unsigned long long>(cp.size));
  w.field("rootHash", to_base64(cp.root)).field("path", stored.string());
  if (!o.out.empty()) w.field("out", fsys::absolute(o.out).string());
  w.field("note", signed_note);
  return print(out, w);
}

// --- verify -------------------------------------------------------------------------

Status cmd_verify(Options& o) {
  auto path = log_path(o);
  if (!path) return path.error();
  if (!fsys::exists(*path))
    return make_error(Exit::no_input, fmt::format("verifying {}", path->string()), "the log does not exist");
  std::vector<audit::CheckpointInput> cps;
  if (!o.no_stored) {
    auto s = stored_checkpoints(*path);
    if (!s) return s.error();
    cps = std::move(*s);
  }
  for (const auto& f : o.checkpoints) {
    auto data = read_file(f, 1 << 20);
    if (!data) return data.error();
    cps.push_back({f, std::move(*data)});
  }
  auto verifier = load_verifier(o.vkey);
  if (!verifier) return verifier.error();
  auto rep = audit::verify(*path, cps, *verifier);
  if (!rep) return rep.error();
  RecordWriter out;
  auto w = begin_record("AuditReport");
  w.field("log", path->string()).field("entries", static_cast<unsigned long long>(rep->entries));
  if (rep->first_seq) w.field("firstSeq", static_cast<unsigned long long>(*rep->first_seq));
  else w.key("firstSeq").null();
  if (rep->last_seq) w.field("lastSeq", static_cast<unsigned long long>(*rep->last_seq));
  else w.key("lastSeq").null();
  w.field("rootHash", to_base64(rep->root)).field("intact", rep->intact());
  const audit::Problem* first = rep->problems.empty() ? nullptr : &rep->problems.front();
  if (first) {
    if (first->seq) w.field("firstBadSeq", static_cast<unsigned long long>(*first->seq));
    else w.key("firstBadSeq").null();
    w.field("problem", first->kind);
  }
  w.key("problems").begin_array();
  for (const auto& p : rep->problems) {
    w.begin_object().field("kind", p.kind);
    if (p.seq) w.field("seq", static_cast<unsigned long long>(*p.seq));
    if (p.line) w.field("line", static_cast<unsigned long long>(p.line));
    w.field("detail", p.detail).end_object();
  }
  w.end_array();
  // Bytes that appends cut from the end of the log (torn tails): not a break of
  // the chain, but a reader must be able to see that something was removed.
  w.key("repairs").begin_array();
  for (const auto& r : rep->repairs) {
    w.begin_object().field("seq", static_cast<unsigned long long>(r.seq)).field("reason", r.reason);
    if (!r.cut_bytes.empty()) w.field("truncatedBytes", r.cut_bytes);
    if (!r.cut_sha256.empty()) w.field("truncatedSha256", r.cut_sha256);
    w.end_object();
  }
  w.end_array();
  w.key("checkpoints").begin_array();
  for (const auto& c : rep->checkpoints) {
    w.begin_object().field("source", c.source).field("size", static_cast<unsigned long long>(c.size));
    w.field("status", c.status);
    if (!c.detail.empty()) w.field("detail", c.detail);
    w.end_object();
  }
  w.end_array();
  if (auto st = print(out, w); !st) return st;
  for (const auto& r : rep->repairs)
    if (!r.cut_bytes.empty() && r.cut_bytes != "0")
      info(kTool, fmt::format("seq {} records that an append cut {} bytes (sha256 {}) from the end of the log: {}", r.seq,
                              r.cut_bytes, r.cut_sha256, r.reason));
  if (!rep->intact()) {
    const auto& p = *first;
    return make_error(Exit::negative, fmt::format("{}: NOT intact", path->string()),
                      p.seq ? fmt::format("seq {}: {}: {}", *p.seq, p.kind, p.detail) : fmt::format("{}: {}", p.kind, p.detail));
  }
  return {};
}

// --- proofs ---------------------------------------------------------------------------

Status cmd_prove(Options& o) {
  auto path = log_path(o);
  if (!path) return path.error();
  std::string cp_data, cp_source;
  if (!o.checkpoints.empty()) {
    cp_source = o.checkpoints.back();
    auto d = read_file(cp_source, 1 << 20);
    if (!d) return d.error();
    cp_data = *d;
  } else {
    auto s = stored_checkpoints(*path);
    if (!s) return s.error();
    if (s->empty())
      return make_error(Exit::no_input, "proving inclusion", "there is no checkpoint yet", "run: kina-audit checkpoint");
    cp_source = s->back().source;
    cp_data = s->back().data;
  }
  auto n = note::parse(cp_data);
  if (!n) return n.error();
  auto cp = note::parse_checkpoint(n->text);
  if (!cp) return cp.error();
  if (o.seq >= cp->size)
    return make_error(Exit::no_input, fmt::format("proving seq {}", o.seq),
                      fmt::format("the latest checkpoint covers seq 0..{} only", cp->size == 0 ? 0 : cp->size - 1),
                      "run kina-audit checkpoint first");
  std::string entry;
  std::vector<Hash256> leaves;
  uint64_t i = 0;
  auto st = audit::for_each_line(*path, [&](std::string_view line, uint64_t) {
    if (i >= cp->size) return false;
    if (i == o.seq) entry = std::string(line);
    leaves.push_back(audit::line_leaf_hash(line));
    ++i;
    return true;
  });
  if (!st) return st;
  if (leaves.size() < cp->size)
    return make_error(Exit::data, fmt::format("proving seq {}", o.seq),
                      fmt::format("the log has {} entries, fewer than the checkpoint's {} (truncated)", leaves.size(), cp->size));
  if (merkle::subtree_root(leaves) != cp->root)
    return make_error(Exit::data, fmt::format("proving seq {}", o.seq), "the log does not match the checkpoint's root",
                      "run kina-audit verify");
  auto proof = merkle::inclusion_proof(o.seq, leaves);
  RecordWriter out;
  auto w = begin_record("AuditProof");
  w.field("log", path->string()).field("seq", static_cast<unsigned long long>(o.seq));
  w.field("treeSize", static_cast<unsigned long long>(cp->size)).field("leafHash", to_hex(leaves[o.seq]));
  w.field("rootHash", to_base64(cp->root));
  w.key("path").begin_array();
  for (const auto& h : proof) w.value(to_hex(h));
  w.end_array();
  w.field("entry", entry).field("checkpointSource", cp_source).field("checkpoint", cp_data);
  return print(out, w);
}

Result<Hash256> hash_field(const Record& r, std::string_view key, bool base64) {
  auto s = r.required_string(key);
  if (!s) return s.error();
  auto bytes = base64 ? from_base64(*s) : from_hex(*s);
  if (!bytes || bytes->size() != 32)
    return make_error(Exit::data, fmt::format("record {} (AuditProof)", r.where()),
                      fmt::format("field \"{}\" is not a {} SHA-256 hash", key, base64 ? "base64" : "hex"));
  Hash256 h{};
  std::copy(bytes->begin(), bytes->end(), h.begin());
  return h;
}

// Checks one AuditProof record; returns the reason it fails, or empty when valid.
Result<std::string> check_proof(const Record& r, const std::optional<note::Verifier>& verifier) {
  auto seq = r.int_field("seq");
  if (!seq) return seq.error();
  auto size = r.int_field("treeSize");
  if (!size) return size.error();
  if (!*seq || !*size || **seq < 0 || **size < 0)
    return make_error(Exit::data, fmt::format("record {} (AuditProof)", r.where()), "missing seq or treeSize");
  auto leaf = hash_field(r, "leafHash", false);
  if (!leaf) return leaf.error();
  auto root = hash_field(r, "rootHash", true);
  if (!root) return root.error();
  std::vector<Hash256> path;
  simdjson::dom::array arr;
  if (r.root()["path"].get(arr) != simdjson::SUCCESS)
    return make_error(Exit::data, fmt::format("record {} (AuditProof)", r.where()), "field \"path\" is not an array");
  for (auto e : arr) {
    std::string_view s;
    std::optional<std::vector<uint8_t>> b;
    if (e.get(s) != simdjson::SUCCESS || !(b = from_hex(s)) || b->size() != 32)
      return make_error(Exit::data, fmt::format("record {} (AuditProof)", r.where()), "path holds a value that is not a hex hash");
    Hash256 h{};
    std::copy(b->begin(), b->end(), h.begin());
    path.push_back(h);
  }
  auto entry = r.string_field("entry");
  if (!entry) return entry.error();
  if (*entry && !(*entry)->empty()) {
    if (audit::line_leaf_hash(**entry) != *leaf) return std::string("the entry does not hash to leafHash");
    simdjson::dom::parser p;
    uint64_t eseq = 0;
    if (p.parse(**entry)["seq"].get(eseq) != simdjson::SUCCESS || eseq != static_cast<uint64_t>(**seq))
      return std::string("the entry's seq is not the proof's seq");
  }
  if (!merkle::verify_inclusion(static_cast<uint64_t>(**seq), static_cast<uint64_t>(**size), *leaf, path, *root))
    return std::string("the inclusion proof does not lead to rootHash");
  auto cp_text = r.string_field("checkpoint");
  if (!cp_text) return cp_text.error();
  if (*cp_text && !(*cp_text)->empty()) {
    auto n = note::parse(**cp_text);
    if (!n) return std::string("checkpoint: ") + n.error().why;
    auto cp = note::parse_checkpoint(n->text);
    if (!cp) return std::string("checkpoint: ") + cp.error().why;
    if (cp->size != static_cast<uint64_t>(**size) || cp->root != *root)
      return std::string("the checkpoint does not sign this treeSize and rootHash");
    if (!verifier) return std::string("no verifier key to check the checkpoint's signature (give --vkey)");
    if (!note::verify(*n, *verifier)) return std::string("the checkpoint's signature does not verify");
  }
  return std::string();
}

Status cmd_verify_proof(Options& o) {
  auto verifier = load_verifier(o.vkey);
  if (!verifier) return verifier.error();
  RecordWriter out;
  std::optional<RecordReader> in;
  UniqueFd file;
  if (!o.proof_file.empty()) {
    auto opened = open_regular(o.proof_file, fmt::format("reading {}", o.proof_file));
    if (!opened) return opened.error();
    file = std::move(*opened);
    in.emplace(file.get(), o.proof_file);
  } else {
    if (!stdin_has_records()) return usage_error("verify-proof", "pipe an AuditProof record to stdin or give --proof FILE");
    in.emplace(0);
  }
  size_t checked = 0, failed = 0;
  std::string first_reason;
  auto st = filter_records(*in, out, [&](const Record& rec) -> Result<bool> {
    if (rec.kind != "AuditProof") return false;
    auto reason = check_proof(rec, *verifier);
    if (!reason) return reason.error();
    ++checked;
    auto w = begin_record("AuditProofResult");
    auto seq = rec.int_field("seq");
    if (seq && *seq) w.field("seq", static_cast<long long>(**seq));
    w.field("valid", reason->empty());
    if (!reason->empty()) {
      w.field("reason", *reason);
      if (!failed++) first_reason = *reason;
    }
    if (auto printed = print(out, w); !printed) return printed.error();
    return true;
  });
  if (!st) return st;
  if (checked == 0) return make_error(Exit::no_input, "verify-proof", "no AuditProof record in the input");
  if (failed) return make_error(Exit::negative, "proof does NOT verify", first_reason);
  return {};
}

// --- show -------------------------------------------------------------------------------

Status cmd_show(Options& o) {
  auto path = log_path(o);
  if (!path) return path.error();
  std::optional<int64_t> since;
  if (!o.since.empty()) {
    if (auto t = parse_rfc3339_ms(o.since)) {
      since = *t;
    } else {
      auto d = parse_duration(o.since);
      if (!d) return usage_error(fmt::format("invalid --since {}", shown(o.since)),
                                 fmt::format("expected an RFC 3339 time or a duration such as 1h ({})", d.error().why));
      since = now_ms() - *d;
    }
  }
  std::string format = o.format.empty() ? (::isatty(1) ? "table" : "json") : o.format;
  if (format != "json" && format != "table") return usage_error(fmt::format("invalid --format {}", shown(format)), "use json or table");
  // Memory stays bounded: rows are printed as they are read, or (with -n N)
  // only the last N are kept; each row is at most one 1 MiB entry.
  RecordWriter out;
  simdjson::dom::parser row_parser;
  std::string text;
  auto flush_text = [&]() -> Status {
    if (text.empty()) return {};
    auto s2 = write_all(1, text, "writing to stdout");
    text.clear();
    return s2;
  };
  auto emit = [&](std::string_view row) -> Status {
    if (format == "table") {
      simdjson::dom::element doc;
      if (row_parser.parse(row.data(), row.size()).get(doc) != simdjson::SUCCESS) return {};
      auto str = [&](const char* k) {
        std::string_view v;
        return doc[k].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
      };
      uint64_t seq = 0;
      int64_t code_v = 0;
      if (doc["seq"].get(seq) != simdjson::SUCCESS) seq = 0;
      if (doc["exitCode"].get(code_v) != simdjson::SUCCESS) code_v = 0;
      std::string outcome = str("outcome");
      if (code_v) outcome += fmt::format(" ({})", code_v);
      text += detail::one_line(fmt::format("{:<6} {:<24} {:<12} {:<10} {:<8} {:<12} {:<20} {}", seq, str("time"),
                                           str("user"), str("tool"), str("action"), str("cluster"), str("target"), outcome));
      text += '\n';
      return text.size() >= (1u << 16) ? flush_text() : Status{};
    }
    // {"apiVersion":..,"kind":"AuditEntry","log":..., then the stored fields}
    std::string rec = fmt::format("{{\"apiVersion\":\"{}\",\"kind\":\"AuditEntry\",\"log\":{},{}", kApiVersion,
                                  json::quote(path->string()), row.substr(1));
    return out.write_line(rec);
  };
  if (format == "table")
    text = fmt::format("{:<6} {:<24} {:<12} {:<10} {:<8} {:<12} {:<20} {}\n", "SEQ", "TIME", "USER", "TOOL", "ACTION",
                       "CLUSTER", "TARGET", "OUTCOME");
  simdjson::dom::parser parser;
  std::deque<std::string> last;  // with -n N: the last N matching rows
  uint64_t index = 0;
  Status failed;
  auto st = audit::for_each_line(*path, [&](std::string_view line, uint64_t) {
    ++index;
    simdjson::dom::element doc;
    if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS) {
      failed = make_error(Exit::data, fmt::format("reading {} line {}", path->string(), index), "not valid JSON",
                          "run kina-audit verify");
      return false;
    }
    auto str = [&](const char* k) {
      std::string_view v;
      return doc[k].get(v) == simdjson::SUCCESS ? v : std::string_view();
    };
    if (!o.cluster_filter.empty() && str("cluster") != o.cluster_filter) return true;
    if (!o.tool_filter.empty() && str("tool") != o.tool_filter) return true;
    if (since) {
      auto t = parse_rfc3339_ms(str("time"));
      if (!t || *t < *since) return true;
    }
    if (o.last_n < 0) {
      failed = emit(line);
      return failed.ok();
    }
    if (o.last_n == 0) return true;
    last.emplace_back(line);
    if (last.size() > static_cast<size_t>(o.last_n)) last.pop_front();
    return true;
  });
  if (!st) return st;
  if (!failed) return failed;
  for (const auto& row : last)
    if (auto s2 = emit(row); !s2) return s2;
  return flush_text();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  return kina::run_tool(kTool, argc, argv, [&](CLI::App& app) -> std::function<Status()> {
    app.description(
        "Append to, show, checkpoint and verify kina's tamper-evident audit log.\n"
        "Default log: $KINA_HOME/audit/log.jsonl (or $KINA_AUDIT_LOG). Records on stdout, diagnostics on stderr.\n"
        "Exit codes: 0 ok, 1 verification failed, 64 usage, 65 bad data (not kina's log, corrupt, a line over the 1 MiB cap,\n"
        "a FIFO or device as input), 66 not found, 73 cannot create output (a device, FIFO, symlink or read-only file as\n"
        "output, disk full), 74 I/O, 75 lock busy.");
    app.add_option("--log", o.log, "Audit log file (default $KINA_HOME/audit/log.jsonl); a regular file, never a symlink, device or FIFO")->type_name("PATH");
    app.require_subcommand(1);

    auto* append = app.add_subcommand("append",
                                      "Append one event (from flags) or every AuditEvent record on stdin (one batch, one "
                                      "fsync); other records are forwarded first. Prints AuditEntry records.");
    append->add_option("--tool", o.event.tool, "Tool that acted (e.g. kina)");
    append->add_option("--action", o.event.action, "What it did (e.g. create-cluster)");
    append->add_option("--cluster", o.event.cluster, "Cluster name");
    append->add_option("--target", o.event.target, "Object acted on");
    append->add_option("--outcome", o.event.outcome, "ok or error")->check(CLI::IsMember({"ok", "error"}));
    append->add_option("--exit-code", o.exit_code, "Exit code of the command (0-255)")->check(int_range(0, 255));
    append->add_option("--duration", o.duration, "How long it took (e.g. 1500ms, 2s; at most 10y)");
    append->add_option("--detail", o.details, "KEY=VALUE (repeatable; secret-looking keys are redacted)")->allow_extra_args(false);
    append->add_option("args", o.event.args, "The command's arguments, after --; secret flags are redacted");

    auto* verify = app.add_subcommand("verify",
                                      "Verify the chain, the Merkle tree and every checkpoint; prints an AuditReport. "
                                      "Exit 0 intact, 1 tampered, 66 no log.");
    verify->add_option("--checkpoint", o.checkpoints, "A checkpoint saved earlier (repeatable)")->type_name("FILE")->allow_extra_args(false);
    verify->add_option("--vkey", o.vkey, "Verifier key (C2SP vkey text or a file; default $KINA_HOME/keys/audit.vkey)");
    verify->add_flag("--no-stored-checkpoints", o.no_stored, "Ignore the checkpoints kept beside the log");

    auto* checkpoint = app.add_subcommand("checkpoint", "Sign the current tree head (C2SP tlog-checkpoint, Ed25519); "
                                                        "kept in audit/checkpoints/, copy it somewhere else too");
    checkpoint->add_option("--out", o.out, "Also write the signed checkpoint here (a regular file, kept mode, or a new path; "
                                           "a symlink, device, FIFO or read-only file is refused: 73)")->type_name("FILE")->allow_extra_args(false);

    auto* keygen = app.add_subcommand("keygen", "Create the Ed25519 signing key (sealed in the keystore) and print "
                                                "the verifier key (C2SP vkey) in an AuditKey record");
    keygen->add_option("--name", o.key_name, "Key name and checkpoint origin (default kina-audit/HOSTNAME)");
    keygen->add_flag("--force", o.force, "Replace an existing key");

    auto* prove = app.add_subcommand("prove", "Print an RFC 9162 inclusion proof of entry SEQ against the latest checkpoint");
    prove->add_option("seq", o.seq, "Sequence number of the entry (0 or more)")->required()->check(int_range(0, INT64_MAX));
    prove->add_option("--checkpoint", o.checkpoints, "Prove against this checkpoint instead of the latest")->type_name("FILE")->allow_extra_args(false);

    auto* vproof = app.add_subcommand("verify-proof", "Check AuditProof records (stdin or --proof); exit 0 valid, 1 invalid");
    vproof->add_option("--proof", o.proof_file, "Read the proof from FILE")->type_name("FILE")->allow_extra_args(false);
    vproof->add_option("--vkey", o.vkey, "Verifier key for the embedded checkpoint");

    auto* show = app.add_subcommand("show", "Print events (AuditEntry records, or a table on a terminal)");
    show->add_option("--cluster", o.cluster_filter, "Only this cluster");
    show->add_option("--tool", o.tool_filter, "Only this tool");
    show->add_option("--since", o.since, "Only events at or after TIME (RFC 3339) or within DURATION (e.g. 1h; at most 10000y)");
    show->add_option("-n", o.last_n, "Only the last N matching events (1 or more)")->check(int_range(1, INT64_MAX));
    show->add_option("--format", o.format, "json or table (default: table on a terminal, else json)")
        ->check(CLI::IsMember({"json", "table"}));

    return [&, append, verify, checkpoint, keygen, prove, vproof, show]() -> Status {
      if (append->parsed()) return cmd_append(o, append->count("--tool") + append->count("--action") > 0);
      if (verify->parsed()) return cmd_verify(o);
      if (checkpoint->parsed()) return cmd_checkpoint(o);
      if (keygen->parsed()) return cmd_keygen(o);
      if (prove->parsed()) return cmd_prove(o);
      if (vproof->parsed()) return cmd_verify_proof(o);
      if (show->parsed()) return cmd_show(o);
      return usage_error("no command");
    };
  });
}
