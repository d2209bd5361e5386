// image.hpp: an image as kina knows it (manifest, config, layers with their
// DiffIDs), loaded from the store, and its `Image` record.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kina/record.hpp"
#include "manifest.hpp"
#include "reference.hpp"
#include "store.hpp"

namespace kina::image {

struct LayerInfo {
  Descriptor desc;
  Digest diff_id;
};

struct ImageInfo {
  std::string reference;  // canonical, or empty for an image known by digest only
  Digest digest;          // what the reference resolved to (index or manifest)
  Digest manifest;        // the platform manifest
  std::string media_type; // of the manifest
  Descriptor config;
  ImageConfig cfg;
  std::vector<LayerInfo> layers;
  std::string store;
};

// Loads `top` (manifest or index) from the store, picking `want` from an index.
inline Result<ImageInfo> load_image(const Store& store, const Digest& top, const Platform& want) {
  ImageInfo info;
  info.digest = top;
  info.store = store.root().string();
  Digest cur = top;
  for (int depth = 0;; ++depth) {
    auto bytes = store.read_blob(cur, kMaxManifestBytes);
    if (!bytes) return bytes.error();
    std::string where = fmt::format("manifest {}", cur.str());
    auto doc = parse_document(*bytes, where);
    if (!doc) return doc.error();
    if (doc->index) {
      if (depth >= 2) return make_error(Exit::data, where, "indexes nested too deeply");
      auto d = select_platform(*doc, want, where);
      if (!d) return d.error();
      cur = d->digest;
      continue;
    }
    info.manifest = cur;
    info.media_type = doc->media_type;
    info.config = doc->config;
    auto cfg_bytes = store.read_blob(doc->config.digest, kMaxConfigBytes);
    if (!cfg_bytes) return cfg_bytes.error();
    if (static_cast<int64_t>(cfg_bytes->size()) != doc->config.size)
      return make_error(Exit::data, fmt::format("config {}", doc->config.digest.str()), "size differs from the manifest's");
    auto cfg = parse_config(*cfg_bytes, fmt::format("config {}", doc->config.digest.str()));
    if (!cfg) return cfg.error();
    info.cfg = std::move(*cfg);
    if (info.cfg.diff_ids.size() != doc->layers.size())
      return make_error(Exit::data, where,
                        fmt::format("{} layers but the config lists {} diff_ids", doc->layers.size(), info.cfg.diff_ids.size()));
    for (size_t i = 0; i < doc->layers.size(); ++i) info.layers.push_back({doc->layers[i], info.cfg.diff_ids[i]});
    return info;
  }
}

// REF or DIGEST -> the image in the store.
inline Result<ImageInfo> find_image(const Store& store, const std::string& arg, const Platform& want) {
  if (arg.rfind("sha256:", 0) == 0) {
    auto d = Digest::parse(arg);
    if (!d) return d.error();
    if (!store.has_blob(*d)) return make_error(Exit::no_input, fmt::format("image {}", arg), "not in the store");
    return load_image(store, *d, want);
  }
  auto ref = parse_reference(arg);
  if (!ref) return ref.error();
  auto idx = store.load_index();
  if (!idx) return idx.error();
  auto it = idx->find(ref->str());
  if (it == idx->end())
    return make_error(Exit::no_input, fmt::format("image {}", ref->str()), "not in the store", "pull or import it first");
  auto top = Digest::parse(it->second.digest);
  if (!top) return top.error();
  auto info = load_image(store, *top, want);
  if (!info) return info;
  info->reference = ref->str();
  return info;
}

inline std::string image_record(const ImageInfo& i) {
  auto w = begin_record("Image");
  if (!i.reference.empty()) w.field("reference", i.reference);
  w.field("digest", i.digest.str()).field("manifestDigest", i.manifest.str()).field("mediaType", i.media_type);
  w.field("platform", i.cfg.platform.str()).field("configDigest", i.config.digest.str());
  w.string_array("entrypoint", i.cfg.entrypoint).string_array("cmd", i.cfg.cmd).string_array("env", i.cfg.env);
  w.field("workingDir", i.cfg.working_dir).field("user", i.cfg.user);
  if (!i.cfg.labels.empty()) {
    w.key("labels").begin_object();
    for (const auto& [k, v] : i.cfg.labels) w.field(k, v);
    w.end_object();
  }
  int64_t total = 0;
  w.key("layers").begin_array();
  for (const auto& l : i.layers) {
    total += l.desc.size;
    w.begin_object().field("digest", l.desc.digest.str()).field("size", static_cast<long long>(l.desc.size));
    w.field("mediaType", l.desc.media_type).field("diffID", l.diff_id.str()).end_object();
  }
  w.end_array();
  w.field("size", static_cast<long long>(total)).field("store", i.store);
  w.end_object();
  return w.take();
}

}  // namespace kina::image
