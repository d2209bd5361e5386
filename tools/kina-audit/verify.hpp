// verify.hpp: kina-audit verify: the chain, the Merkle tree and every checkpoint, as an AuditReport record.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/encoding.hpp"
#include "kina/fs.hpp"
#include "kina/record.hpp"

#include "checkpoint.hpp"
#include "keys.hpp"

#include "options.hpp"

namespace kina::audit_tool {

inline Status cmd_verify(Options& o, Invocation&) {
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

inline void verify_options(CLI::App& c, Options& o) {
  c.add_option("--checkpoint", o.checkpoints, "A checkpoint saved earlier (repeatable)")->type_name("FILE")->allow_extra_args(false);
  c.add_option("--vkey", o.vkey, "Verifier key (C2SP vkey text or a file; default $KINA_HOME/keys/audit.vkey)");
  c.add_flag("--no-stored-checkpoints", o.no_stored, "Ignore the checkpoints kept beside the log");
}

}  // namespace kina::audit_tool
