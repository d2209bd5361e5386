// manifest.hpp: OCI and Docker schema 2 manifests, indexes (manifest lists) and
// image configs: strict parsing, platform selection.
#pragma once

#include <sys/utsname.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "digest.hpp"
#include "kina/error.hpp"
#include "kina/validate.hpp"

namespace kina::image {

namespace media {
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kOciLayerNdGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
inline constexpr std::string_view kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";

// Sent on every manifest request: without it some registries convert v2s2 to
// schema 1 or answer 404 for OCI manifests.
inline constexpr std::string_view kAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

inline bool is_index(std::string_view m) { return m == kOciIndex || m == kDockerList; }
inline bool is_manifest(std::string_view m) { return m == kOciManifest || m == kDockerManifest; }
inline bool is_layer(std::string_view m) {
  return m == kOciLayer || m == kOciLayerGzip || m == kOciLayerZstd || m == kOciLayerNdGzip || m == kDockerLayer ||
         m == kDockerForeignLayer;
}
}  // namespace media

struct Platform {
  std::string os, architecture, variant;

  std::string str() const { return variant.empty() ? os + "/" + architecture : os + "/" + architecture + "/" + variant; }
  bool empty() const { return os.empty() && architecture.empty(); }
  // `want` matches when os and architecture agree and, if want names a
  // variant, the variant agrees (arm64 without a variant means v8).
  bool matches(const Platform& want) const {
    if (os != want.os || architecture != want.architecture) return false;
    if (want.variant.empty()) return true;
    std::string v = variant;
    if (v.empty() && architecture == "arm64") v = "v8";
    return v == want.variant;
  }
};

inline Result<Platform> parse_platform(std::string_view s) {
  Platform p;
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= s.size()) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) slash = s.size();
    parts.emplace_back(s.substr(start, slash - start));
    start = slash + 1;
  }
  bool ok = parts.size() >= 2 && parts.size() <= 3;
  for (const auto& part : parts) {
    if (part.empty() || part.size() > 64) ok = false;
    for (char c : part)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') ok = false;
  }
  if (!ok) return make_error(Exit::usage, fmt::format("invalid platform {}", shown(s)), "expected OS/ARCH[/VARIANT]");
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

// The platform this program runs on, in OCI's names.
inline Platform host_platform() {
  Platform p{"linux", "amd64", ""};
  utsname u{};
  if (::uname(&u) == 0) {
    std::string_view m = u.machine;
    if (m == "aarch64" || m == "arm64") p.architecture = "arm64";
    else if (m == "x86_64") p.architecture = "amd64";
    else if (m == "riscv64") p.architecture = "riscv64";
    else if (m == "s390x") p.architecture = "s390x";
    else if (m == "ppc64le") p.architecture = "ppc64le";
  }
  return p;
}

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;
};

// A parsed manifest or index.
struct Document {
  bool index = false;
  std::string media_type;          // from the document, or inferred
  std::vector<Descriptor> manifests;  // index: every entry with a known manifest or index type
  size_t skipped = 0;                 // index entries of unknown media types
  Descriptor config;                  // manifest
  std::vector<Descriptor> layers;     // manifest
};

inline constexpr size_t kMaxManifestBytes = 4u << 20;
inline constexpr size_t kMaxConfigBytes = 8u << 20;
inline constexpr size_t kMaxLayers = 1000;

namespace detail {
using simdjson::dom::element;
using simdjson::dom::object;

inline Result<Descriptor> parse_descriptor(element e, const std::string& where) {
  auto bad = [&](std::string why) { return make_error(Exit::data, where, why); };
  object o;
  if (e.get(o) != simdjson::SUCCESS) return bad("a descriptor must be an object");
  Descriptor d;
  std::string_view mt, dg;
  if (o["mediaType"].get(mt) != simdjson::SUCCESS) return bad("descriptor without a string \"mediaType\"");
  d.media_type = std::string(mt);
  if (o["digest"].get(dg) != simdjson::SUCCESS) return bad("descriptor without a string \"digest\"");
  auto digest = Digest::parse(dg);
  if (!digest) return bad(digest.error().message());
  d.digest = *digest;
  int64_t size = 0;
  if (o["size"].get(size) != simdjson::SUCCESS || size < 0) return bad("descriptor without a valid \"size\"");
  d.size = size;
  if (auto p = o["platform"]; p.error() == simdjson::SUCCESS) {
    object po;
    std::string_view os, arch, variant;
    if (p.get(po) != simdjson::SUCCESS || po["os"].get(os) != simdjson::SUCCESS ||
        po["architecture"].get(arch) != simdjson::SUCCESS)
      return bad("platform without string \"os\" and \"architecture\"");
    Platform pl{std::string(os), std::string(arch), ""};
    if (po["variant"].get(variant) == simdjson::SUCCESS) pl.variant = std::string(variant);
    d.platform = pl;
  }
  return d;
}
// A JSON document of at most `limit` bytes whose top level is an object; the
// object lives as long as `parser`.
inline Result<simdjson::dom::object> parse_object(simdjson::dom::parser& parser, std::string_view bytes,
                                                  std::string_view where, size_t limit) {
  auto bad = [&](std::string why) { return make_error(Exit::data, std::string(where), why); };
  if (bytes.size() > limit) return bad(fmt::format("larger than {} bytes", limit));
  simdjson::dom::element root;
  if (auto err = parser.parse(bytes.data(), bytes.size()).get(root); err != simdjson::SUCCESS)
    return bad(fmt::format("invalid JSON: {}", simdjson::error_message(err)));
  simdjson::dom::object o;
  if (root.get(o) != simdjson::SUCCESS) return bad("not a JSON object");
  return o;
}
}  // namespace detail

// Parses a manifest or an index. `content_type` (from a registry; empty for
// local files) must agree with the document's own mediaType.
inline Result<Document> parse_document(std::string_view bytes, std::string_view where, std::string_view content_type = {}) {
  auto bad = [&](std::string why) { return make_error(Exit::data, std::string(where), why); };
  simdjson::dom::parser parser;
  auto parsed = detail::parse_object(parser, bytes, where, kMaxManifestBytes);
  if (!parsed) return parsed.error();
  simdjson::dom::object o = *parsed;
  int64_t schema = 0;
  if (o["schemaVersion"].get(schema) != simdjson::SUCCESS) return bad("missing integer \"schemaVersion\"");
  std::string_view mt;
  bool has_mt = false;
  if (auto m = o["mediaType"]; m.error() != simdjson::NO_SUCH_FIELD) {
    if (m.get(mt) != simdjson::SUCCESS) return bad("\"mediaType\" is not a string");
    has_mt = true;
  }
  if (mt == media::kDockerSchema1 || mt == media::kDockerSchema1Signed || schema == 1)
    return bad("Docker schema 1 manifests are not supported");
  if (schema != 2) return bad(fmt::format("unsupported schemaVersion {}", schema));
  bool has_manifests = o["manifests"].error() != simdjson::NO_SUCH_FIELD;
  bool has_layers = o["layers"].error() != simdjson::NO_SUCH_FIELD;
  bool has_config = o["config"].error() != simdjson::NO_SUCH_FIELD;
  if (has_manifests && (has_layers || has_config))
    return bad("ambiguous document: it has both \"manifests\" and \"layers\"/\"config\"");
  if (!has_manifests && !has_config) return bad("neither a manifest (no \"config\") nor an index (no \"manifests\")");
  Document doc;
  doc.index = has_manifests;
  if (has_mt) {
    if (doc.index && !media::is_index(mt))
      return bad(fmt::format("mediaType {} does not match an index", shown(mt)));
    if (!doc.index && !media::is_manifest(mt))
      return bad(fmt::format("mediaType {} does not match a manifest", shown(mt)));
    doc.media_type = std::string(mt);
  } else {
    doc.media_type = std::string(doc.index ? media::kOciIndex : media::kOciManifest);
  }
  if (!content_type.empty()) {
    std::string_view ct = content_type.substr(0, content_type.find(';'));
    while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
    if (ct != doc.media_type && (has_mt || !(media::is_index(ct) || media::is_manifest(ct))))
      return bad(fmt::format("Content-Type {} disagrees with the document's mediaType {}", shown(ct), shown(doc.media_type)));
    if (!has_mt) {
      if (media::is_index(ct) != doc.index) return bad(fmt::format("Content-Type {} disagrees with the document", shown(ct)));
      doc.media_type = std::string(ct);
    }
  }
  std::string w(where);
  if (doc.index) {
    simdjson::dom::array arr;
    if (o["manifests"].get(arr) != simdjson::SUCCESS) return bad("\"manifests\" is not an array");
    size_t i = 0;
    for (auto e : arr) {
      auto d = detail::parse_descriptor(e, fmt::format("{}: manifests[{}]", where, i++));
      if (!d) return d.error();
      if (!media::is_manifest(d->media_type) && !media::is_index(d->media_type)) {
        ++doc.skipped;  // attestations, signatures and other artifacts
        continue;
      }
      doc.manifests.push_back(std::move(*d));
    }
    return doc;
  }
  auto cfg = detail::parse_descriptor(o["config"].value_unsafe(), w + ": config");
  if (!cfg) return cfg.error();
  doc.config = *cfg;
  simdjson::dom::array arr;
  if (o["layers"].get(arr) != simdjson::SUCCESS) return bad("\"layers\" is not an array");
  size_t i = 0;
  for (auto e : arr) {
    auto d = detail::parse_descriptor(e, fmt::format("{}: layers[{}]", where, i));
    if (!d) return d.error();
    if (!media::is_layer(d->media_type))
      return bad(fmt::format("layers[{}] has unsupported media type {}", i, shown(d->media_type)));
    doc.layers.push_back(std::move(*d));
    if (++i > kMaxLayers) return bad(fmt::format("more than {} layers", kMaxLayers));
  }
  return doc;
}

// The first index entry for `want` (first match wins), or 66 naming what exists.
inline Result<Descriptor> select_platform(const Document& index, const Platform& want, std::string_view where) {
  std::vector<std::string> have;
  for (const auto& d : index.manifests) {
    if (!d.platform || d.platform->os == "unknown") continue;  // attestations (BuildKit marks them unknown/unknown)
    if (d.platform->matches(want)) return d;
    have.push_back(d.platform->str());
  }
  std::string list;
  for (const auto& h : have) list += (list.empty() ? "" : ", ") + h;
  return make_error(Exit::no_input, std::string(where),
                    fmt::format("no manifest for platform {} (available: {})", want.str(), list.empty() ? "none" : list),
                    "choose one with --platform OS/ARCH[/VARIANT]");
}

struct ImageConfig {
  Platform platform;
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user;
  std::vector<std::pair<std::string, std::string>> labels;  // config.Labels, in the document's order
  std::vector<Digest> diff_ids;
};

inline Result<ImageConfig> parse_config(std::string_view bytes, std::string_view where) {
  auto bad = [&](std::string why) { return make_error(Exit::data, std::string(where), why); };
  simdjson::dom::parser parser;
  auto parsed = detail::parse_object(parser, bytes, where, kMaxConfigBytes);
  if (!parsed) return parsed.error();
  simdjson::dom::object o = *parsed;
  ImageConfig c;
  std::string_view s;
  if (o["os"].get(s) == simdjson::SUCCESS) c.platform.os = std::string(s);
  if (o["architecture"].get(s) == simdjson::SUCCESS) c.platform.architecture = std::string(s);
  if (o["variant"].get(s) == simdjson::SUCCESS) c.platform.variant = std::string(s);
  auto strings = [&](simdjson::dom::element e, std::vector<std::string>& out, std::string_view name) -> Status {
    if (e.is_null()) return {};
    simdjson::dom::array a;
    if (e.get(a) != simdjson::SUCCESS) return bad(fmt::format("\"{}\" is not an array of strings", name));
    for (auto v : a) {
      std::string_view x;
      if (v.get(x) != simdjson::SUCCESS) return bad(fmt::format("\"{}\" is not an array of strings", name));
      out.emplace_back(x);
    }
    return {};
  };
  if (auto cfg = o["config"]; cfg.error() == simdjson::SUCCESS && !cfg.is_null()) {
    simdjson::dom::object co;
    if (cfg.get(co) != simdjson::SUCCESS) return bad("\"config\" is not an object");
    for (auto [name, dst] : {std::pair{"Entrypoint", &c.entrypoint}, std::pair{"Cmd", &c.cmd}, std::pair{"Env", &c.env}}) {
      if (auto v = co[name]; v.error() == simdjson::SUCCESS)
        if (auto st = strings(v.value_unsafe(), *dst, name); !st) return st.error();
    }
    if (co["WorkingDir"].get(s) == simdjson::SUCCESS) c.working_dir = std::string(s);
    if (co["User"].get(s) == simdjson::SUCCESS) c.user = std::string(s);
    if (auto lv = co["Labels"]; lv.error() == simdjson::SUCCESS && !lv.is_null()) {
      simdjson::dom::object lo;
      if (lv.get(lo) != simdjson::SUCCESS) return bad("\"Labels\" is not an object");
      for (auto [k, v] : lo) {
        std::string_view x;
        if (v.get(x) != simdjson::SUCCESS) return bad(fmt::format("label {} is not a string", shown(k)));
        c.labels.emplace_back(std::string(k), std::string(x));
      }
    }
  }
  simdjson::dom::object rootfs;
  if (o["rootfs"].get(rootfs) != simdjson::SUCCESS) return bad("missing object \"rootfs\"");
  if (rootfs["type"].get(s) != simdjson::SUCCESS || s != "layers") return bad("rootfs.type is not \"layers\"");
  std::vector<std::string> ids;
  auto diff = rootfs["diff_ids"];
  if (diff.error() != simdjson::SUCCESS) return bad("missing rootfs.diff_ids");
  if (auto st = strings(diff.value_unsafe(), ids, "rootfs.diff_ids"); !st) return st.error();
  for (const auto& id : ids) {
    auto d = Digest::parse(id, "diff_id");
    if (!d) return bad(d.error().message());
    c.diff_ids.push_back(*d);
  }
  return c;
}

}  // namespace kina::image
