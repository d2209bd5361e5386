// merge.hpp: `merge` (kubeconfigs from Kubeconfig records or files into the
// user's kubeconfig, under PATH.lock) and `unmerge` (kina's entries for a
// cluster out again, current-context given back).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/cli.hpp"
#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/invocation.hpp"
#include "kina/fs.hpp"
#include "kina/json.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

#include "cluster.hpp"
#include "kubeconfig.hpp"
#include "kubeconfig_file.hpp"
#include "kubeconfig_lock.hpp"
#include "sweep.hpp"

namespace kina::kube {

inline Result<std::chrono::milliseconds> lock_wait(const std::string& lock_timeout) {
  auto ms = parse_duration_flag("--lock-timeout", lock_timeout, 0, kMaxLockTimeoutMs);
  if (!ms) return ms.error();
  return std::chrono::milliseconds(*ms);
}

// --- the merge state (clusters/C/kubeconfig-merge.json) ------------------------------------

// What merge remembers for unmerge: which kubeconfig, and its current-context
// before the cluster's was merged in.
inline std::string merge_state_text(const fsys::path& kubeconfig, const std::string& previous) {
  json::Writer w;
  w.begin_object().field("kubeconfig", kubeconfig.string()).field("previousContext", previous).end_object();
  return w.str() + "\n";
}

// The previous context a merge state records for `target`; empty when the
// state is unreadable or about another kubeconfig.
inline std::string previous_from_state(std::string_view state, const fsys::path& target) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  std::string_view prev, file;
  if (p.parse(state.data(), state.size()).get(doc) == simdjson::SUCCESS &&
      doc["previousContext"].get(prev) == simdjson::SUCCESS && doc["kubeconfig"].get(file) == simdjson::SUCCESS &&
      fsys::path(file) == target)
    return std::string(prev);
  return {};
}

inline std::string previous_context(const fsys::path& cdir, const fsys::path& target) {
  auto state = read_file(merge_state_path(cdir), 1u << 16);
  if (!state) return {};
  return previous_from_state(*state, target);
}

// The context unmerge of `cluster` makes current: `previous`, the one current
// before kina-CLUSTER was merged; when that is another kina cluster's context
// that is no longer in `cfg`, what was current before that one (`saved(name)`
// reads the other cluster's merge state; nullopt stops), at most 16 hops.
inline std::string follow_previous(const yaml::Node& cfg, std::string_view cluster, std::string previous,
                                   const std::function<std::optional<std::string>(const std::string&)>& saved) {
  for (int hop = 0; hop < 16 && previous.rfind("kina-", 0) == 0 && previous != kubeconfig::cluster_entry(cluster) &&
                    !kubeconfig::find(cfg, "contexts", previous);
       ++hop) {
    auto next = saved(previous.substr(5));
    if (!next) break;
    previous = std::move(*next);
  }
  return previous;
}

// --- merge ---------------------------------------------------------------------------------

struct MergeArgs {
  std::optional<std::string> kubeconfig;  // --kubeconfig; "" is an error, not "use the default"
  std::vector<std::string> from;
  std::string lock_timeout = "10s";
};

struct Incoming {
  std::string cluster;  // may be empty for a --from file
  fsys::path path;
  std::string raw;  // the record, to re-emit with the new path
  yaml::Node cfg;
};

// merge: prints a Kubeconfig record per kubeconfig merged.
inline Status merge(const MergeArgs& a, Invocation& inv) {
  auto wait = lock_wait(a.lock_timeout);
  if (!wait) return wait.error();
  RecordWriter out;
  std::vector<Incoming> incoming;
  // The kubeconfigs hold client keys and tokens: zeroed whatever the outcome.
  struct WipeAll {
    std::vector<Incoming>& v;
    ~WipeAll() {
      for (auto& in : v) kubeconfig::wipe(in.cfg);
    }
  } wipe_incoming{incoming};
  auto load = [&](Incoming in) -> Status {
    auto text = read_file(in.path, 16u << 20);
    if (!text) return text.error();
    auto cfg = kubeconfig::parse_incoming(*text, in.path.string());
    sodium_memzero(text->data(), text->size());
    if (!cfg) return cfg.error();
    in.cfg = std::move(*cfg);
    incoming.push_back(std::move(in));
    return {};
  };
  for (const auto& f : a.from) {
    auto p = path_arg("--from", f);
    if (!p) return p.error();
    if (auto st = load(Incoming{"", *p, "", {}}); !st) return st;
  }
  if (a.from.empty()) {
    if (!stdin_has_records()) return usage_error("merge", "pipe Kubeconfig records to stdin, or give --from FILE");
    RecordReader in(0);
    auto read = filter_records(in, out, [&](const Record& rec) -> Result<bool> {
      if (rec.kind != "Kubeconfig") return false;
      auto path = rec.required_string("path");
      if (!path) return path.error();
      auto cluster = rec.string_field("cluster");
      if (!cluster) return cluster.error();
      if (auto st = load(Incoming{cluster->value_or(""), *path, rec.raw, {}}); !st) return st.error();
      return true;
    });
    if (!read) return read;
    if (incoming.empty()) return make_error(Exit::no_input, "merge", "no Kubeconfig record on stdin");
  }
  auto tpath = target_kubeconfig(a.kubeconfig);
  if (!tpath) return tpath.error();
  inv.set_target(tpath->string());
  if (auto plan = plan_target(*tpath); !plan) return plan.error();  // before any lock file or read
  if (auto st = ensure_dir(tpath->parent_path(), 0700); !st) return st;
  auto lock = KubeconfigLock::acquire(*tpath, *wait, inv.interrupts());
  if (!lock) return lock.error();
  sweep_write_temps(*tpath);
  auto cfg = read_target(*tpath);
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);  // so does the target
  std::string before = kubeconfig::current_context(*cfg);
  // The merge states this merge wrote, with what they held before (nullopt:
  // none), put back if the kubeconfig cannot be written (a full disk).
  std::vector<std::pair<fsys::path, std::optional<std::string>>> states;
  auto undo_states = [&](Error e) {
    for (auto it = states.rbegin(); it != states.rend(); ++it) {  // (newest first: one cluster may come twice)
      if (it->second) (void)write_file_atomic(it->first, *it->second, 0600);
      else ::unlink(it->first.c_str());
    }
    return e;
  };
  for (const auto& in : incoming) {
    // Remember what current-context was, so unmerge can give it back.
    if (!in.cluster.empty() && before != kubeconfig::cluster_entry(in.cluster)) {
      if (auto cdir = cluster_dir(in.cluster, false); cdir && fsys::is_directory(*cdir)) {
        fsys::path p = merge_state_path(*cdir);
        auto old = read_file(p, 1 << 16);
        if (!old && old.error().exit != Exit::no_input) return undo_states(old.error());
        if (auto st = write_file_atomic(p, merge_state_text(*tpath, before), 0600); !st) return undo_states(st.error());
        states.emplace_back(p, old ? std::optional<std::string>(*old) : std::nullopt);
      }
    }
    kubeconfig::merge(*cfg, in.cfg);
  }
  if (auto st = write_target(*tpath, *cfg); !st) return undo_states(st.error());
  for (const auto& in : incoming) {
    auto w = begin_record("Kubeconfig");
    if (!in.cluster.empty()) w.field("cluster", in.cluster);
    w.field("path", tpath->string()).field("mergedFrom", in.path.string());
    w.field("currentContext", kubeconfig::current_context(*cfg));
    if (auto st = print_record(w); !st) return st;
  }
  return {};
}

// --- unmerge -------------------------------------------------------------------------------

struct UnmergeArgs {
  std::string cluster;
  std::optional<std::string> kubeconfig;
  std::string lock_timeout = "10s";
};

inline Status unmerge(const UnmergeArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  if (auto st = validate_name("cluster name", a.cluster); !st) return st;
  auto wait = lock_wait(a.lock_timeout);
  if (!wait) return wait.error();
  auto tpath = target_kubeconfig(a.kubeconfig);
  if (!tpath) return tpath.error();
  inv.set_target(tpath->string());
  if (auto plan = plan_target(*tpath); !plan) return plan.error();  // before any lock file or read
  std::error_code ec;
  if (!fsys::exists(*tpath, ec)) {
    info(kTool, fmt::format("{} does not exist: nothing to remove", tpath->string()));
    return {};
  }
  auto cdir = cluster_dir(a.cluster, false);
  if (!cdir) return cdir.error();
  auto lock = KubeconfigLock::acquire(*tpath, *wait, inv.interrupts());
  if (!lock) return lock.error();
  sweep_write_temps(*tpath);
  auto cfg = read_target(*tpath);
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);
  // The context that was current before kina-C was merged; when that was
  // another kina cluster's context since removed, follow its saved state too.
  std::string previous = follow_previous(*cfg, a.cluster, previous_context(*cdir, *tpath),
                                         [&](const std::string& other) -> std::optional<std::string> {
                                           auto odir = cluster_dir(other, false);
                                           if (!odir) return std::nullopt;
                                           return previous_context(*odir, *tpath);
                                         });
  size_t removed = kubeconfig::unmerge(*cfg, a.cluster, previous);
  if (removed > 0)
    if (auto st = write_target(*tpath, *cfg); !st) return st;
  info(kTool, fmt::format("removed {} entr{} for cluster {} from {}", removed, removed == 1 ? "y" : "ies", a.cluster,
                          tpath->string()));
  return {};
}

}  // namespace kina::kube
