// import.hpp: images from files: an OCI layout directory, an OCI layout tar,
// or a `docker save` tar. Every blob is hashed on the way into the store.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "archive_error.hpp"
#include "image.hpp"
#include "kina/fs.hpp"
#include "store.hpp"

namespace kina::image {

// A blob being written into the store's ingest directory, hashed as it goes.
class BlobWriter {
 public:
  static Result<BlobWriter> create(const Store& store) {
    BlobWriter w;
    w.path_ = (store.root() / "ingest" / "import.XXXXXX").string();
    int fd = ::mkostemp(w.path_.data(), O_CLOEXEC);
    if (fd < 0) return os_error("creating a file in the store", errno, Exit::cant_create);
    w.fd_.reset(fd);
    return w;
  }
  BlobWriter() = default;
  BlobWriter(BlobWriter&&) = default;
  BlobWriter& operator=(BlobWriter&&) = default;
  ~BlobWriter() {
    if (!path_.empty() && !committed_) ::unlink(path_.c_str());
  }
  Status write(const void* p, size_t n) {
    hash_->update(p, n);
    size_ += n;
    return write_all(fd_.get(), std::string_view(static_cast<const char*>(p), n), "writing into the store");
  }
  Digest digest() {
    if (!done_) {
      digest_ = Digest::of(hash_->finish());
      done_ = true;
    }
    return digest_;
  }
  uint64_t size() const { return size_; }
  // Verifies and moves the blob into blobs/sha256/.
  Status commit(const Store& store, const Digest* expect, const std::string& what) {
    Digest d = digest();
    if (expect && !(d == *expect))
      return make_error(Exit::data, what, fmt::format("content has digest {}, expected {}", d.str(), expect->str()));
    if (::fsync(fd_.get()) != 0) return os_error("syncing a blob", errno, Exit::io);
    fd_.reset();
    if (store.has_blob(d, static_cast<int64_t>(size_))) return {};
    if (auto st = store.commit_file(path_, d); !st) return st;
    committed_ = true;
    return {};
  }

 private:
  std::string path_;
  UniqueFd fd_;
  std::unique_ptr<Sha256> hash_ = std::make_unique<Sha256>();
  uint64_t size_ = 0;
  Digest digest_;
  bool done_ = false, committed_ = false;
};

// Where an import reads a blob from. A source may store the blob itself and
// return an invalid descriptor (the tar import does).
using BlobSource = std::function<Result<UniqueFd>(const Digest&)>;

// Copies `d` from the source into the store, checking its digest and size.
inline Status copy_blob(const Store& store, const BlobSource& src, const Digest& d, int64_t size) {
  if (store.has_blob(d, size)) return {};
  auto in = src(d);
  if (!in) return in.error();
  if (!in->valid()) {
    if (store.has_blob(d, size)) return {};
    return make_error(Exit::data, fmt::format("blob {}", d.str()), "size differs from the descriptor's");
  }
  auto w = BlobWriter::create(store);
  if (!w) return w.error();
  std::vector<char> buf(1 << 17);
  for (;;) {
    ssize_t n = ::read(in->get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(fmt::format("reading blob {}", d.str()), errno, Exit::io);
    if (n == 0) break;
    if (auto st = w->write(buf.data(), static_cast<size_t>(n)); !st) return st;
  }
  if (size >= 0 && static_cast<int64_t>(w->size()) != size)
    return make_error(Exit::data, fmt::format("blob {}", d.str()), fmt::format("{} bytes, the descriptor says {}", w->size(), size));
  return w->commit(store, &d, fmt::format("blob {}", d.str()));
}

// Copies a manifest or index and everything it references.
inline Status copy_tree(const Store& store, const BlobSource& src, const Descriptor& top, int depth = 0) {
  if (depth > 2) return make_error(Exit::data, fmt::format("manifest {}", top.digest.str()), "indexes nested too deeply");
  if (top.size > static_cast<int64_t>(kMaxManifestBytes))
    return make_error(Exit::data, fmt::format("manifest {}", top.digest.str()), "too large");
  if (auto st = copy_blob(store, src, top.digest, top.size); !st) return st;
  auto bytes = store.read_blob(top.digest, kMaxManifestBytes);
  if (!bytes) return bytes.error();
  auto doc = parse_document(*bytes, fmt::format("manifest {}", top.digest.str()));
  if (!doc) return doc.error();
  if (doc->index) {
    for (const auto& m : doc->manifests)
      if (auto st = copy_tree(store, src, m, depth + 1); !st) return st;
    return {};
  }
  if (auto st = copy_blob(store, src, doc->config.digest, doc->config.size); !st) return st;
  for (const auto& l : doc->layers)
    if (auto st = copy_blob(store, src, l.digest, l.size); !st) return st;
  return {};
}

struct ImportedRef {
  Descriptor desc;
  std::string reference;  // canonical, or empty
};

// The entries of an OCI layout's index.json, with the names they carry.
inline Result<std::vector<ImportedRef>> parse_layout_index(std::string_view bytes, const std::string& where) {
  auto doc = parse_document(bytes, where);
  if (!doc) return doc.error();
  if (!doc->index) return make_error(Exit::data, where, "index.json is not an image index");
  simdjson::dom::parser p;
  simdjson::dom::element root = p.parse(bytes.data(), bytes.size()).value_unsafe();
  simdjson::dom::array entries;
  if (root["manifests"].get(entries) != simdjson::SUCCESS) return make_error(Exit::data, where, "\"manifests\" is not an array");
  std::vector<ImportedRef> out;
  size_t i = 0;
  for (auto e : entries) {
    std::string_view mt, dg;
    if (e["mediaType"].get(mt) != simdjson::SUCCESS || (!media::is_manifest(mt) && !media::is_index(mt))) {
      ++i;
      continue;
    }
    const Descriptor* d = nullptr;
    if (e["digest"].get(dg) != simdjson::SUCCESS) continue;
    for (const auto& m : doc->manifests)
      if (m.digest.str() == dg) d = &m;
    if (!d) continue;
    ImportedRef r{*d, {}};
    std::string_view name;
    if (e["annotations"]["io.containerd.image.name"].get(name) == simdjson::SUCCESS ||
        (e["annotations"]["org.opencontainers.image.ref.name"].get(name) == simdjson::SUCCESS &&
         (name.find('/') != std::string_view::npos || name.find(':') != std::string_view::npos))) {
      if (auto ref = parse_reference(name); ref) r.reference = ref->str();
    }
    out.push_back(std::move(r));
    ++i;
  }
  if (out.empty()) return make_error(Exit::data, where, "no image manifests in index.json");
  return out;
}

inline Result<std::vector<ImportedRef>> import_layout_dir(const Store& store, const fsys::path& dir) {
  auto layout = read_file(dir / "oci-layout", 4096);
  if (!layout) return make_error(Exit::data, fmt::format("importing {}", dir.string()), "not an OCI layout (no oci-layout file)");
  auto idx = read_file(dir / "index.json", kMaxManifestBytes);
  if (!idx) return idx.error();
  auto refs = parse_layout_index(*idx, (dir / "index.json").string());
  if (!refs) return refs;
  BlobSource src = [&](const Digest& d) -> Result<UniqueFd> {
    fsys::path p = dir / "blobs" / "sha256" / d.hex();
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return os_error(fmt::format("reading {}", p.string()), errno, errno == ENOENT ? Exit::data : Exit::os);
    return fd;
  };
  for (const auto& r : *refs)
    if (auto st = copy_tree(store, src, r.desc); !st) return st.error();
  return refs;
}

// Reads a tar (OCI layout or docker save) once: every member goes to the
// ingest directory, hashed; then the referenced ones are committed.
inline Result<std::vector<ImportedRef>> import_tar(const Store& store, const fsys::path& file) {
  std::string where = fmt::format("importing {}", file.string());
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_none(a.get());
  if (archive_read_open_filename(a.get(), file.c_str(), 1 << 17) != ARCHIVE_OK)
    return make_error(Exit::data, where, fmt::format("not a tar archive: {}", archive_error(a.get())));
  struct Member {
    std::unique_ptr<BlobWriter> blob;
    std::string symlink;
  };
  std::map<std::string, Member> members;
  std::map<std::string, std::string> small;  // index.json, oci-layout, manifest.json
  std::vector<char> buf(1 << 17);
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return make_error(Exit::data, where, fmt::format("corrupt tar: {}", archive_error(a.get())));
    std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    while (name.rfind("./", 0) == 0) name.erase(0, 2);
    if (members.size() > 100000) return make_error(Exit::data, where, "too many members");
    if (archive_entry_filetype(e) == AE_IFLNK && archive_entry_symlink(e)) {
      members[name].symlink = archive_entry_symlink(e);
      continue;
    }
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    if (name == "index.json" || name == "oci-layout" || name == "manifest.json") {
      std::string data;
      for (;;) {
        la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
        if (n < 0) return make_error(Exit::data, where, archive_error(a.get()));
        if (n == 0) break;
        data.append(buf.data(), static_cast<size_t>(n));
        if (data.size() > kMaxManifestBytes) return make_error(Exit::data, where, fmt::format("{} too large", name));
      }
      small[name] = std::move(data);
      continue;
    }
    auto w = BlobWriter::create(store);
    if (!w) return w.error();
    auto bw = std::make_unique<BlobWriter>(std::move(*w));
    for (;;) {
      la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0) return make_error(Exit::data, where, archive_error(a.get()));
      if (n == 0) break;
      if (auto st = bw->write(buf.data(), static_cast<size_t>(n)); !st) return st.error();
    }
    members[name].blob = std::move(bw);
  }
  // A member by name, following symlinks between members (docker save dedups layers that way).
  std::function<BlobWriter*(std::string, int)> lookup = [&](std::string name, int depth) -> BlobWriter* {
    auto it = members.find(name);
    if (it == members.end() || depth > 8) return nullptr;
    if (it->second.blob) return it->second.blob.get();
    std::string t = it->second.symlink;
    if (t.empty() || t[0] == '/') return nullptr;
    fsys::path base = fsys::path(name).parent_path();
    std::string resolved = (base / t).lexically_normal().string();
    if (resolved.rfind("..", 0) == 0) return nullptr;
    return lookup(resolved, depth + 1);
  };
  std::map<std::string, BlobWriter*> by_digest;
  for (auto& [n, m] : members)
    if (m.blob) by_digest[m.blob->digest().str()] = m.blob.get();
  std::set<std::string> committed;
  auto commit = [&](BlobWriter* b, const std::string& what) -> Status {
    std::string d = b->digest().str();
    if (committed.count(d)) return {};
    committed.insert(d);
    return b->commit(store, nullptr, what);
  };
  if (small.count("oci-layout") && small.count("index.json")) {
    auto refs = parse_layout_index(small["index.json"], where + ": index.json");
    if (!refs) return refs;
    // Every blob member must be stored under its own digest.
    for (auto& [n, m] : members) {
      if (!m.blob || n.rfind("blobs/sha256/", 0) != 0) continue;
      auto d = Digest::parse("sha256:" + n.substr(13));
      if (!d) return make_error(Exit::data, where, fmt::format("member {}: {}", shown(n), d.error().why));
      if (!(m.blob->digest() == *d))
        return make_error(Exit::data, where, fmt::format("member {} has digest {}", shown(n), m.blob->digest().str()));
    }
    BlobSource src = [&](const Digest& d) -> Result<UniqueFd> {
      auto it = by_digest.find(d.str());
      if (it == by_digest.end()) return make_error(Exit::data, where, fmt::format("blob {} is missing", d.str()));
      if (auto st = commit(it->second, fmt::format("blob {}", d.str())); !st) return st.error();
      return UniqueFd();
    };
    for (const auto& r : *refs)
      if (auto st = copy_tree(store, src, r.desc); !st) return st.error();
    return refs;
  }
  if (!small.count("manifest.json"))
    return make_error(Exit::data, where, "neither an OCI layout (oci-layout, index.json) nor a docker save archive (manifest.json)");
  // docker save: [{"Config": "...json", "RepoTags": [...], "Layers": ["x/layer.tar", ...]}]
  simdjson::dom::parser p;
  simdjson::dom::array arr;
  if (p.parse(small["manifest.json"]).get(arr) != simdjson::SUCCESS)
    return make_error(Exit::data, where, "manifest.json is not a JSON array");
  std::vector<ImportedRef> out;
  for (auto item : arr) {
    std::string_view cfg_name;
    simdjson::dom::array layers;
    if (item["Config"].get(cfg_name) != simdjson::SUCCESS || item["Layers"].get(layers) != simdjson::SUCCESS)
      return make_error(Exit::data, where, "manifest.json entry without \"Config\" and \"Layers\"");
    BlobWriter* cfg = lookup(std::string(cfg_name), 0);
    if (!cfg) return make_error(Exit::data, where, fmt::format("config {} is missing", shown(cfg_name)));
    if (auto st = commit(cfg, "config"); !st) return st.error();
    json::Writer m;
    m.begin_object().field("schemaVersion", 2).field("mediaType", media::kOciManifest);
    m.key("config").begin_object().field("mediaType", media::kOciConfig).field("digest", cfg->digest().str());
    m.field("size", static_cast<unsigned long long>(cfg->size())).end_object();
    m.key("layers").begin_array();
    for (auto l : layers) {
      std::string_view ln;
      if (l.get(ln) != simdjson::SUCCESS) return make_error(Exit::data, where, "a layer name is not a string");
      BlobWriter* b = lookup(std::string(ln), 0);
      if (!b) return make_error(Exit::data, where, fmt::format("layer {} is missing", shown(ln)));
      if (auto st = commit(b, "layer"); !st) return st.error();
      m.begin_object().field("mediaType", media::kOciLayer).field("digest", b->digest().str());
      m.field("size", static_cast<unsigned long long>(b->size())).end_object();
    }
    m.end_array().end_object();
    std::string manifest = m.take();
    auto d = store.put_blob(manifest);
    if (!d) return d.error();
    ImportedRef r{Descriptor{std::string(media::kOciManifest), *d, static_cast<int64_t>(manifest.size()), {}}, {}};
    simdjson::dom::array tags;
    if (item["RepoTags"].get(tags) == simdjson::SUCCESS) {
      for (auto t : tags) {
        std::string_view ts;
        if (t.get(ts) == simdjson::SUCCESS)
          if (auto ref = parse_reference(ts); ref) {
            r.reference = ref->str();
            break;
          }
      }
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) return make_error(Exit::data, where, "manifest.json lists no images");
  return out;
}

}  // namespace kina::image
