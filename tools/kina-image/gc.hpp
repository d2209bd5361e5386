// gc.hpp: blob collection: deleting the blobs no reference in index.json
// reaches. `rm` collects after it untags; a pull, import or build that fails
// collects what it added (and the next one what a kill -9 left), but only
// when no other add runs: adds hold the store's gc lock shared while their
// blobs are not tagged yet, a collection holds it exclusive.
#pragma once

#include <unistd.h>

#include <optional>
#include <set>
#include <string>

#include "manifest.hpp"
#include "store.hpp"

namespace kina::image {

// Marks every blob reachable from `top`.
inline void reachable(const Store& store, const Digest& top, std::set<std::string>& keep, int depth = 0) {
  keep.insert(top.hex());
  if (depth > 2) return;
  auto bytes = store.read_blob(top, kMaxManifestBytes);
  if (!bytes) return;
  auto doc = parse_document(*bytes, "gc");
  if (!doc) return;
  if (doc->index) {
    for (const auto& m : doc->manifests)
      if (store.has_blob(m.digest)) reachable(store, m.digest, keep, depth + 1);
    return;
  }
  keep.insert(doc->config.digest.hex());
  for (const auto& l : doc->layers) keep.insert(l.digest.hex());
}

// Deletes every blob that no entry of `idx` reaches; the number deleted.
// The caller holds the gc lock exclusive and the store lock.
inline size_t collect_unreferenced(const Store& store, const std::map<std::string, IndexEntry>& idx) {
  std::set<std::string> keep;
  for (const auto& [r, e] : idx)
    if (auto d = Digest::parse(e.digest); d) reachable(store, *d, keep);
  size_t deleted = 0;
  std::error_code ec;
  for (const auto& ent : fsys::directory_iterator(store.root() / "blobs" / "sha256", ec)) {
    std::string name = ent.path().filename().string();
    if (!keep.count(name) && ::unlink(ent.path().c_str()) == 0) ++deleted;
  }
  return deleted;
}

// Collects the untagged blobs and ingest/ leftovers when no pull, import or
// build holds the gc lock (never waits for one); nothing on any error.
// Whether ingest/ was swept (the lock was free).
inline bool collect_if_alone(const Store& store) {
  auto guard = store.try_gc_guard_exclusive();
  if (!guard) return false;
  store.sweep_ingest();
  auto lock = store.lock();
  if (!lock) return true;
  auto idx = store.load_index();
  if (!idx) return true;
  (void)collect_unreferenced(store, *idx);
  return true;
}

// Runs an add (pull, import, build: blobs written, then tagged, all inside
// `add`) under the gc lock shared. Before it, and after it if it fails, the
// untagged blobs are collected when no other add runs: a failed add (a full
// disk, a bad layer) leaves no blob behind, and the next add collects what
// a kill -9 left.
template <class F>
auto adding_blobs(const Store& store, F&& add) -> decltype(add()) {
  bool swept = collect_if_alone(store);
  auto r = [&]() -> decltype(add()) {
    auto guard = store.gc_guard(false);
    if (!guard) return guard.error();
    if (!swept) store.sweep_ingest();  // (another command held the lock: what a killed add left)
    return add();
  }();
  if (!r) collect_if_alone(store);
  return r;
}

}  // namespace kina::image
