// checkpoint.hpp: signed checkpoints (C2SP tlog-checkpoint) of the log: making one, and the ones kept beside it.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/encoding.hpp"
#include "kina/fs.hpp"
#include "kina/note.hpp"
#include "kina/output.hpp"
#include "kina/record.hpp"

#include "keys.hpp"

#include "options.hpp"

namespace kina::audit_tool {

inline Result<std::vector<audit::CheckpointInput>> stored_checkpoints(const fsys::path& log) {
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

inline Status cmd_checkpoint(Options& o, Invocation&) {
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
  std::error_code ec;
  bool new_dir = !fsys::exists(dir, ec);
  if (auto st = ensure_dir(dir, 0700); !st) return st;
  fsys::path stored = dir / fmt::format("{:020}.note", cp.size);
  bool new_note = !fsys::exists(stored, ec);
  // A failure (a full disk) leaves what was there: no new checkpoint kept
  // without its --out copy, no empty checkpoints/.
  auto undo = [&](Error e, bool wrote) {
    if (wrote && new_note) ::unlink(stored.c_str());
    if (new_dir) ::rmdir(dir.c_str());
    return e;
  };
  if (auto st = write_output_file(stored, signed_note, "writing the checkpoint to", 0644); !st)
    return undo(st.error(), false);
  if (out_plan)
    if (auto st = write_output(*out_plan, signed_note); !st) return undo(st.error(), true);
  RecordWriter out;
  auto w = begin_record("AuditCheckpoint");
  w.field("log", path->string()).field("origin", cp.origin).field("size", static_cast<unsigned long long>(cp.size));
  w.field("rootHash", to_base64(cp.root)).field("path", stored.string());
  if (!o.out.empty()) w.field("out", fsys::absolute(o.out).string());
  w.field("note", signed_note);
  return print(out, w);
}

inline void checkpoint_options(CLI::App& c, Options& o) {
  c.add_option("--out", o.out, "Also write the signed checkpoint here (a regular file, kept mode, or a new path; "
                               "a symlink, device, FIFO or read-only file is refused: 73)")->type_name("FILE")->allow_extra_args(false);
}

}  // namespace kina::audit_tool
