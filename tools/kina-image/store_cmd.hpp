// store_cmd.hpp: what is in the store: list, inspect, and rm (with the blobs nothing else uses).
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"

#include "gc.hpp"
#include "options.hpp"

namespace kina::image {

inline Status cmd_list(Options& o, Invocation& inv) {
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto idx = store->load_index();
  if (!idx) return idx.error();
  RecordWriter out;
  for (const auto& [ref, e] : *idx) {
    auto top = Digest::parse(e.digest);
    if (!top) return top.error();
    Platform p = host_platform();
    if (!e.platform.empty())
      if (auto pp = parse_platform(e.platform); pp) p = *pp;
    auto info = load_image(*store, *top, p);
    if (!info) {
      warn(kTool, fmt::format("{}: {}", ref, info.error().message()));
      continue;
    }
    info->reference = ref;
    if (auto st = emit(out, image_record(*info)); !st) return st;
  }
  return {};
}

inline Status cmd_inspect(Options& o, Invocation& inv) {
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  auto info = find_image(*store, o.target, *want);
  if (!info) return info.error();
  RecordWriter out;
  return emit(out, image_record(*info));
}

inline Status cmd_rm(Options& o, Invocation& inv) {
  inv.set_target(o.target);
  auto store = open_store(o, inv);
  if (!store) return store.error();
  return [&]() -> Status {
    auto guard = store->gc_guard(true);
    if (!guard) return guard.error();
    store->sweep_ingest();  // no pull or import runs now: all of ingest/ is stale
    auto lock = store->lock();
    if (!lock) return lock.error();
    auto idx = store->load_index();
    if (!idx) return idx.error();
    std::vector<std::string> removed;
    if (o.target.rfind("sha256:", 0) == 0) {
      auto d = Digest::parse(o.target);
      if (!d) return d.error();
      for (auto it = idx->begin(); it != idx->end();) {
        if (it->second.digest == d->str() || it->second.manifest == d->str()) {
          removed.push_back(it->first);
          it = idx->erase(it);
        } else {
          ++it;
        }
      }
      if (removed.empty() && !store->has_blob(*d))
        return make_error(Exit::no_input, fmt::format("removing {}", o.target), "not in the store");
    } else {
      auto ref = parse_reference(o.target);
      if (!ref) return ref.error();
      if (!idx->erase(ref->str())) return make_error(Exit::no_input, fmt::format("removing {}", ref->str()), "not in the store");
      removed.push_back(ref->str());
    }
    if (auto st = store->save_index(*idx); !st) return st;
    // Blobs no remaining reference reaches are deleted.
    size_t deleted = collect_unreferenced(*store, *idx);
    info(kTool, fmt::format("removed {} reference(s), {} blob(s)", removed.size(), deleted));
    return {};
  }();
}

inline void image_argument(CLI::App& c, Options& o) { c.add_option("IMAGE", o.target, "REF or DIGEST")->required(); }

inline void inspect_options(CLI::App& c, Options& o) {
  image_argument(c, o);
  platform_option(c, o);
}

}  // namespace kina::image
