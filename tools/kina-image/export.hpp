// export.hpp: writes an image of the store as an OCI layout tar or a docker
// save tar, the two archive shapes `ctr images import` loads.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>

#include <fmt/format.h>

#include "archive_error.hpp"
#include "image.hpp"
#include "kina/fs.hpp"
#include "noreplace.hpp"
#include "temp.hpp"

namespace kina::image {

namespace detail {
inline Status tar_add(archive* a, const std::string& name, const std::string& data, const std::string& what) {
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), name.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
  if (archive_write_header(a, e.get()) != ARCHIVE_OK ||
      (!data.empty() && archive_write_data(a, data.data(), data.size()) != static_cast<la_ssize_t>(data.size())))
    return make_error(Exit::io, what, archive_error(a));
  return {};
}

inline Status tar_add_blob(archive* a, const Store& store, const Digest& d, const std::string& what) {
  UniqueFd fd(::open(store.blob_path(d).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return os_error(fmt::format("reading blob {}", d.str()), errno, errno == ENOENT ? Exit::no_input : Exit::os);
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0) return os_error(fmt::format("reading blob {}", d.str()));
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), ("blobs/sha256/" + d.hex()).c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), sb.st_size);
  if (archive_write_header(a, e.get()) != ARCHIVE_OK) return make_error(Exit::io, what, archive_error(a));
  std::vector<char> buf(1 << 17);
  Sha256 h;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(fmt::format("reading blob {}", d.str()), errno, Exit::io);
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    if (archive_write_data(a, buf.data(), static_cast<size_t>(n)) != n) return make_error(Exit::io, what, archive_error(a));
  }
  if (!(Digest::of(h.finish()) == d))
    return make_error(Exit::data, fmt::format("blob {}", d.str()), "content does not match its digest (corrupt store)");
  return {};
}
}  // namespace detail

// Exports the platform manifest of `img` with its config and layers.
inline Status export_image(const Store& store, const ImageInfo& img, const fsys::path& out, bool docker) {
  const Interrupts* intr = store.interrupts();
  std::string what = fmt::format("writing {}", out.string());
  struct stat sb {};
  if (::lstat(out.c_str(), &sb) == 0) return make_error(Exit::cant_create, what, "it already exists");
  // A fresh file of our own (O_EXCL, random name): never another process's
  // temporary, never a symlink planted at a predictable name.
  fsys::path parent = out.parent_path().empty() ? fsys::path(".") : out.parent_path();
  // What a killed export left next to the same output goes first.
  std::string prefix = "." + out.filename().string() + ".kina-tmp.";
  sweep_stale(parent, prefix);
  auto tmp = Temp::make(parent, prefix, false, intr);
  if (!tmp) return tmp.error();
  int fd = tmp->fd();
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  auto fail = [&](Error e) {
    a.reset();
    return e;
  };
  archive_write_set_format_pax_restricted(a.get());
  if (archive_write_open_fd(a.get(), fd) != ARCHIVE_OK) return fail(make_error(Exit::cant_create, what, archive_error(a.get())));
  auto manifest = store.read_blob(img.manifest, kMaxManifestBytes);
  if (!manifest) return fail(manifest.error());
  std::set<std::string> done;
  for (const Digest& d : [&] {
         std::vector<Digest> v{img.manifest, img.config.digest};
         for (const auto& l : img.layers) v.push_back(l.desc.digest);
         return v;
       }()) {
    if (!done.insert(d.hex()).second) continue;
    if (auto st = detail::tar_add_blob(a.get(), store, d, what); !st) return fail(st.error());
  }
  if (auto st = detail::tar_add(a.get(), "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", what); !st) return fail(st.error());
  json::Writer idx;
  idx.begin_object().field("schemaVersion", 2).field("mediaType", media::kOciIndex).key("manifests").begin_array();
  idx.begin_object().field("mediaType", img.media_type).field("digest", img.manifest.str());
  idx.field("size", static_cast<unsigned long long>(manifest->size()));
  if (!img.reference.empty()) {
    idx.key("annotations").begin_object().field("io.containerd.image.name", img.reference);
    idx.field("org.opencontainers.image.ref.name", img.reference).end_object();
  }
  idx.end_object().end_array().end_object();
  if (auto st = detail::tar_add(a.get(), "index.json", idx.take(), what); !st) return fail(st.error());
  if (docker) {
    json::Writer m;
    m.begin_array().begin_object().field("Config", "blobs/sha256/" + img.config.digest.hex());
    m.key("RepoTags").begin_array();
    if (!img.reference.empty() && img.reference.find('@') == std::string::npos) m.value(img.reference);
    m.end_array().key("Layers").begin_array();
    for (const auto& l : img.layers) m.value("blobs/sha256/" + l.desc.digest.hex());
    m.end_array().end_object().end_array();
    if (auto st = detail::tar_add(a.get(), "manifest.json", m.take(), what); !st) return fail(st.error());
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return fail(make_error(Exit::io, what, archive_error(a.get())));
  a.reset();
  if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0) return fail(os_error(what, errno, Exit::io));
  if (tmp->keep_as(out, intr) != 0) {
    int err = errno;
    if (err == EEXIST) return make_error(Exit::cant_create, what, "it was created meanwhile");
    return os_error(what, err, Exit::cant_create);
  }
  return fsync_dir(parent);
}

}  // namespace kina::image
