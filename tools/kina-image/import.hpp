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
#include "archive_reader.hpp"
#include "image.hpp"
#include "kina/fs.hpp"
#include "store.hpp"
#include "temp.hpp"

namespace kina::image {

// Opens a file of an OCI layout for reading: regular files only (never a FIFO
// or device, which would block or never end), no symlink on the way.
inline Result<UniqueFd> open_layout_file(const fsys::path& dir, const std::vector<std::string>& parts) {
  fsys::path shown_path = dir;
  for (const auto& p : parts) shown_path /= p;
  std::string what = fmt::format("reading {}", shown_path.string());
  UniqueFd cur(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return os_error(what, errno, errno == ENOENT ? Exit::no_input : Exit::os);
  for (size_t i = 0; i < parts.size(); ++i) {
    bool last = i + 1 == parts.size();
    UniqueFd next(::openat(cur.get(), parts[i].c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (last ? 0 : O_DIRECTORY)));
    if (!next.valid()) {
      int e = errno;
      if (e == ELOOP || e == ENOTDIR) return make_error(Exit::data, what, "a symlink or not a directory on the way (layouts hold regular files only)");
      return os_error(what, e, e == ENOENT ? Exit::no_input : Exit::os);
    }
    cur = std::move(next);
  }
  struct stat sb {};
  if (::fstat(cur.get(), &sb) != 0) return os_error(what);
  if (!S_ISREG(sb.st_mode)) return make_error(Exit::data, what, "not a regular file (layouts hold regular files only)");
  int fl = ::fcntl(cur.get(), F_GETFL);
  if (fl >= 0) ::fcntl(cur.get(), F_SETFL, fl & ~O_NONBLOCK);
  return cur;
}

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
    // Never more than the descriptor says: a file that grows stops here.
    if (size >= 0 && w->size() + static_cast<uint64_t>(n) > static_cast<uint64_t>(size))
      return make_error(Exit::data, fmt::format("blob {}", d.str()), fmt::format("larger than the {} bytes its descriptor says", size));
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
// The grammar of org.opencontainers.image.ref.name (OCI image-spec,
// annotations): components of [A-Za-z0-9] joined by one of -._:@+/ or "--".
inline bool valid_oci_ref_name(std::string_view n) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (n.empty() || !alnum(n.front()) || !alnum(n.back())) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    if (alnum(n[i])) continue;
    if (std::string_view("-._:@+/").find(n[i]) == std::string_view::npos) return false;
    bool dashes = n[i] == '-' && n[i + 1] == '-';
    size_t next = i + (dashes ? 2 : 1);
    if (!alnum(n[next])) return false;
    i = next - 1;
  }
  return true;
}

// `use_names`: the names entries carry become references (false with --tag).
inline Result<std::vector<ImportedRef>> parse_layout_index(std::string_view bytes, const std::string& where, bool use_names = true) {
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
    if (use_names) {
      // A name the archive carries but that is not a reference would leave the
      // image untagged without a word: refuse it, naming it.
      std::string_view name;
      bool full = false;
      if (e["annotations"]["io.containerd.image.name"].get(name) == simdjson::SUCCESS) {
        full = true;
      } else if (e["annotations"]["org.opencontainers.image.ref.name"].get(name) == simdjson::SUCCESS) {
        full = name.find('/') != std::string_view::npos || name.find(':') != std::string_view::npos;
        if (!full && !valid_oci_ref_name(name))
          return make_error(Exit::data, where, fmt::format("manifest {}: invalid org.opencontainers.image.ref.name {}", dg, shown(name)),
                            "fix the name, or import with --tag REF");
      }
      if (full) {
        auto ref = parse_reference(name);
        if (!ref)
          return make_error(Exit::data, where, fmt::format("manifest {}: invalid image name {}: {}", dg, shown(name), ref.error().why),
                            "fix the name, or import with --tag REF");
        r.reference = ref->str();
      }
    }
    out.push_back(std::move(r));
    ++i;
  }
  if (out.empty()) return make_error(Exit::data, where, "no image manifests in index.json");
  return out;
}

inline Result<std::vector<ImportedRef>> import_layout_dir(const Store& store, const fsys::path& dir, bool use_names = true) {
  std::string where = fmt::format("importing {}", dir.string());
  auto small = [&](const std::string& name, size_t max) -> Result<std::string> {
    auto fd = open_layout_file(dir, {name});
    if (!fd) return fd.error();
    return read_fd(fd->get(), fmt::format("reading {}", (dir / name).string()), max);
  };
  auto layout = small("oci-layout", 4096);
  if (!layout) {
    if (layout.error().exit == Exit::no_input) return make_error(Exit::data, where, "not an OCI layout (no oci-layout file)");
    return layout.error();
  }
  auto idx = small("index.json", kMaxManifestBytes);
  if (!idx) return idx.error();
  auto refs = parse_layout_index(*idx, (dir / "index.json").string(), use_names);
  if (!refs) return refs;
  BlobSource src = [&](const Digest& d) -> Result<UniqueFd> {
    auto fd = open_layout_file(dir, {"blobs", "sha256", d.hex()});
    if (!fd && fd.error().exit == Exit::no_input) return make_error(Exit::data, fd.error().what, "missing");
    return fd;
  };
  for (const auto& r : *refs)
    if (auto st = copy_tree(store, src, r.desc); !st) return st.error();
  return refs;
}

// Reads a tar (OCI layout or docker save) once: every member goes to the
// ingest directory, hashed; then the referenced ones are committed.
inline Result<std::vector<ImportedRef>> import_tar(const Store& store, const fsys::path& file, bool use_names = true) {
  std::string where = fmt::format("importing {}", file.string());
  // A regular file only: a FIFO would block, a device would never end.
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!in.valid()) return os_error(where, errno, errno == ENOENT ? Exit::no_input : Exit::os);
  struct stat sb {};
  if (::fstat(in.get(), &sb) != 0) return os_error(where);
  if (!S_ISREG(sb.st_mode)) return make_error(Exit::data, where, "not a regular file or directory");
  ::fcntl(in.get(), F_SETFL, ::fcntl(in.get(), F_GETFL) & ~O_NONBLOCK);
  // Members are written into one locked temporary directory, each closed once
  // written: one open descriptor however many members the archive has.
  auto tmp = Temp::make(store.root() / "ingest", "import.", true, store.interrupts());
  if (!tmp) return tmp.error();
  size_t serial = 0;
  ArchiveReader a = archive_reader(ArchiveKind::tar);
  if (archive_read_open_fd(a.get(), in.get(), 1 << 17) != ARCHIVE_OK)
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
    auto w = BlobWriter::create_in(*tmp, std::to_string(serial++));
    if (!w) return w.error();
    auto bw = std::make_unique<BlobWriter>(std::move(*w));
    for (;;) {
      la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0) return make_error(Exit::data, where, archive_error(a.get()));
      if (n == 0) break;
      if (auto st = bw->write(buf.data(), static_cast<size_t>(n)); !st) return st.error();
    }
    if (auto st = bw->finish(); !st) return st.error();
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
    auto refs = parse_layout_index(small["index.json"], where + ": index.json", use_names);
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
    if (use_names && item["RepoTags"].get(tags) == simdjson::SUCCESS) {
      for (auto t : tags) {
        std::string_view ts;
        if (t.get(ts) != simdjson::SUCCESS)
          return make_error(Exit::data, where, "manifest.json: a RepoTags entry is not a string");
        if (ts == "<none>:<none>") continue;  // docker's untagged image
        auto ref = parse_reference(ts);
        if (!ref)
          return make_error(Exit::data, where, fmt::format("manifest.json: invalid RepoTags entry {}: {}", shown(ts), ref.error().why),
                            "fix the name, or import with --tag REF");
        if (r.reference.empty()) r.reference = ref->str();
      }
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) return make_error(Exit::data, where, "manifest.json lists no images");
  return out;
}

}  // namespace kina::image
