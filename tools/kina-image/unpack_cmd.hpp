// unpack_cmd.hpp: kina-image unpack: an image into a root directory and/or an ext4 disk, Rootfs records.
#pragma once

#include <string>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/fs.hpp"
#include "kina/interrupt.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"

#include "options.hpp"
#include "temp.hpp"
#include "unpack.hpp"

namespace kina::image {

inline Result<Limits> limits_of(const Options& o) {
  Limits l;
  if (!o.max_bytes.empty()) {
    auto b = parse_size(o.max_bytes);
    if (!b) return b.error();
    l.max_bytes = *b;
  }
  if (o.max_entries) l.max_entries = o.max_entries;
  return l;
}

inline Status write_rootfs_record(const ImageInfo& img, const std::string& path, const std::string& disk, const TreeStats& stats,
                           RecordWriter& out) {
  auto w = begin_record("Rootfs");
  if (!img.reference.empty()) w.field("reference", img.reference);
  w.field("image", img.digest.str()).field("manifestDigest", img.manifest.str()).field("platform", img.cfg.platform.str());
  if (!path.empty()) w.field("path", path);
  if (!disk.empty()) w.field("disk", disk);
  w.field("size", static_cast<unsigned long long>(stats.bytes)).field("files", static_cast<unsigned long long>(stats.files));
  w.end_object();
  return out.write_line(w.str());
}

inline Status unpack_one(const Options& o, const Interrupts* intr, const Store& store, const ImageInfo& img, RecordWriter& out) {
  auto limits = limits_of(o);
  if (!limits) return limits.error();
  uint64_t disk_size = 0;
  if (!o.disk_size.empty()) {
    auto s = parse_size(o.disk_size);
    if (!s) return s.error();
    disk_size = *s;
  }
#if KINA_HAVE_EXT2FS
  // Only a disk: written straight from the layer streams (disk.hpp).
  if (o.rootfs.empty() && !o.disk.empty()) {
    auto guard = store.gc_guard(false);  // blobs stay while they are read
    if (!guard) return guard.error();
    DiskFallback fallback;
    fsys::path d = fsys::absolute(o.disk);
    auto r = write_disk(store, img, d, disk_size, *limits, intr, fallback);
    if (r) return write_rootfs_record(img, {}, d.string(), r->stats, out);
    if (!fallback.wanted) return r.error();
    info(kTool, fmt::format("{}: unpacking a directory first", fallback.why));
  }
#endif
  fsys::path rootfs;
  Temp private_dir;
  if (!o.rootfs.empty()) {
    rootfs = fsys::absolute(o.rootfs);
  } else if (!o.disk.empty()) {
    // Only a disk: the tree lives in a private (0700) directory next to it
    // while mke2fs copies it, then goes.
    fsys::path d = fsys::absolute(o.disk);
    if (fsys::exists(d))
      return make_error(Exit::cant_create, fmt::format("creating disk {}", d.string()), "it already exists");
    if (auto st = ensure_dir(d.parent_path(), 0700); !st) return st;
    std::string prefix = "." + d.filename().string() + ".kina-rootfs.";
    sweep_stale(d.parent_path(), prefix);
    auto t = Temp::make(d.parent_path(), prefix, true, intr);
    if (!t) return t.error();
    private_dir = std::move(*t);
    rootfs = private_dir.path() / "rootfs";
  } else {
    rootfs = store.root() / "rootfs" / img.manifest.hex();
    sweep_stale(rootfs.parent_path(), ".");  // kina's own directory: every stale temporary in it
  }
  bool temp_rootfs = static_cast<bool>(private_dir);
  // Blobs stay while they are read: a concurrent rm's collection waits.
  auto guard = store.gc_guard(false);
  if (!guard) return guard.error();
  auto r = unpack_rootfs(store, img, rootfs, *limits);
  if (!r) return r.error();
  std::string disk;
  if (!o.disk.empty()) {
    disk = fsys::absolute(o.disk).string();
    auto st = make_disk(rootfs, disk, disk_size, r->stats, intr);
    private_dir.remove();
    if (!st) return st;
  }
  return write_rootfs_record(img, temp_rootfs ? std::string() : rootfs.string(), disk, r->stats, out);
}

inline Status cmd_unpack(Options& o, Invocation& inv) {
  inv.set_target(o.target);
  auto limits = limits_of(o);
  if (!limits) return limits.error();
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  RecordWriter out;
  if (!o.target.empty()) {
    auto img = find_image(*store, o.target, *want);
    if (!img) return img.error();
    return unpack_one(o, inv.interrupts(), *store, *img, out);
  }
  if (!stdin_has_records()) return usage_error("unpack", "give REF or DIGEST, or pipe Image records to stdin");
  RecordReader in(0);
  size_t images = 0;
  return filter_records(in, out, [&](const Record& r) -> Result<bool> {
    if (r.kind != "Image") return false;
    if (++images > 1 && (!o.rootfs.empty() || !o.disk.empty()))
      return usage_error("unpack", "--rootfs and --disk name one output but stdin carries more than one Image");
    auto md = r.required_string("manifestDigest");
    if (!md) return md.error();
    auto d = Digest::parse(*md, "manifestDigest");
    if (!d) return make_error(Exit::data, fmt::format("record {} (Image)", r.where()), d.error().message());
    auto ref = r.string_field("reference");
    if (!ref) return ref.error();
    // The Image goes on before its Rootfs, so later stages see both.
    if (auto st = out.forward(r); !st) return st.error();
    auto img = load_image(*store, *d, *want);
    if (!img) return img.error();
    if (auto top = r.string_field("digest"); top && *top)
      if (auto td = Digest::parse(**top); td) img->digest = *td;
    if (*ref) img->reference = **ref;
    if (auto st = unpack_one(o, inv.interrupts(), *store, *img, out); !st) return st.error();
    return true;
  });
}

inline void unpack_options(CLI::App& c, Options& o) {
  c.add_option("IMAGE", o.target, "REF or DIGEST (default: every Image record on stdin)");
  c.add_option("--rootfs", o.rootfs, "Directory to create (must not exist; default $store/rootfs/<manifest hex>)");
  c.add_option("--disk", o.disk, "ext4 image file to create (written straight from the layer streams with libext2fs; with --rootfs too, or without libext2fs, built with mke2fs -d from the tree)");
  c.add_option("--disk-size", o.disk_size, "Size of the disk (default: the layers' uncompressed size plus 30% and 64 MiB)");
  c.add_option("--max-bytes", o.max_bytes, "Cap on uncompressed layer bytes over all layers (default 1 TiB)");
  c.add_option("--max-entries", o.max_entries, "Cap on tar entries over all layers, 1 or more (default 4194304)")->check(int_range(1, INT64_MAX));
  platform_option(c, o);
}

}  // namespace kina::image
