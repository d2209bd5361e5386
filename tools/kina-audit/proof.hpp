// proof.hpp: RFC 9162 inclusion proofs of one entry against a checkpoint: prove, and verify-proof.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/encoding.hpp"
#include "kina/fs.hpp"
#include "kina/merkle.hpp"
#include "kina/note.hpp"
#include "kina/record.hpp"

#include "checkpoint.hpp"
#include "keys.hpp"

#include "options.hpp"

namespace kina::audit_tool {

inline Status cmd_prove(Options& o, Invocation&) {
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

inline Result<Hash256> hash_field(const Record& r, std::string_view key, bool base64) {
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
inline Result<std::string> check_proof(const Record& r, const std::optional<note::Verifier>& verifier) {
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

inline Status cmd_verify_proof(Options& o, Invocation&) {
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

inline void prove_options(CLI::App& c, Options& o) {
  c.add_option("seq", o.seq, "Sequence number of the entry (0 or more)")->required()->check(int_range(0, INT64_MAX));
  c.add_option("--checkpoint", o.checkpoints, "Prove against this checkpoint instead of the latest")->type_name("FILE")->allow_extra_args(false);
}

inline void verify_proof_options(CLI::App& c, Options& o) {
  c.add_option("--proof", o.proof_file, "Read the proof from FILE")->type_name("FILE")->allow_extra_args(false);
  c.add_option("--vkey", o.vkey, "Verifier key for the embedded checkpoint");
}

}  // namespace kina::audit_tool
