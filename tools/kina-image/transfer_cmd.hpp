// transfer_cmd.hpp: images into and out of the store: pull, import, push and export.
#pragma once

#include <sys/stat.h>

#include <string>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"

#include "export.hpp"
#include "gc.hpp"
#include "import.hpp"
#include "options.hpp"
#include "push.hpp"
#include "registry.hpp"

namespace kina::image {

inline Status cmd_import(Options& o, Invocation& inv) {
  inv.set_target(o.target);
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  std::string tag;
  if (!o.tag.empty()) {
    auto r = parse_reference(o.tag);
    if (!r) return r.error();
    tag = r->str();
  }
  return adding_blobs(*store, [&]() -> Status {
    struct stat sb {};
    if (::stat(o.target.c_str(), &sb) != 0)
      return os_error(fmt::format("importing {}", o.target), errno, errno == ENOENT ? Exit::no_input : Exit::os);
    bool use_names = tag.empty();
    auto refs = S_ISDIR(sb.st_mode) ? import_layout_dir(*store, o.target, use_names) : import_tar(*store, o.target, use_names);
    if (!refs) return refs.error();
    if (!tag.empty() && refs->size() != 1)
      return usage_error(fmt::format("importing {}", o.target),
                         fmt::format("--tag names one image but the archive has {}", refs->size()));
    RecordWriter out;
    for (const auto& r : *refs)
      if (auto st = tag_and_print(*store, out, tag.empty() ? r.reference : tag, r.desc.digest, *want); !st) return st;
    return {};
  });
}


inline Status cmd_pull(Options& o, Invocation& inv) {
  inv.set_target(o.target);
  auto ref = parse_reference(o.target);
  if (!ref) return ref.error();
  inv.set_target(ref->str());
  PullOptions po;
  if (auto st = pull_limits(o, po); !st) return st;
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  po.platform = *want;
  po.insecure = o.insecure;
  po.jobs = o.jobs;
  po.verify_diff_ids = o.verify_diff_ids;
  return adding_blobs(*store, [&]() -> Status {
    auto top = pull_image(*store, *ref, po);
    if (!top) return top.error();
    RecordWriter out;
    return tag_and_print(*store, out, ref->str(), *top, *want);
  });
}


inline Status cmd_push(Options& o, Invocation& inv) {
  inv.set_target(o.target);
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  Reference dest;
  if (!o.to.empty()) {
    auto d = parse_reference(o.to);
    if (!d) return d.error();
    dest = *d;
  } else {
    if (o.target.rfind("sha256:", 0) == 0) return usage_error(fmt::format("pushing {}", o.target), "an image named by digest needs --to DEST");
    auto r = parse_reference(o.target);
    if (!r) return r.error();
    dest = *r;
  }
  inv.set_target(dest.str());
  PullOptions po;
  if (auto st = pull_limits(o, po); !st) return st;
  po.insecure = o.insecure;
  auto guard = store->gc_guard(false);  // blobs stay while they are sent
  if (!guard) return guard.error();
  auto img = find_image(*store, o.target, *want);
  if (!img) return img.error();
  auto stats = push_image(*store, img->digest, dest, po);
  if (!stats) return stats.error();
  info(kTool, fmt::format("pushed {}: {} blob(s) uploaded ({} bytes), {} already there", dest.str(), stats->uploaded, stats->bytes,
                          stats->present));
  img->reference = dest.str();
  RecordWriter out;
  return emit(out, image_record(*img));
}


inline Status cmd_export(Options& o, Invocation& inv) {
  inv.set_target(o.target);
  if (o.format != "oci" && o.format != "docker")
    return usage_error(fmt::format("invalid --format {}", shown(o.format)), "expected oci or docker");
  auto store = open_store(o, inv);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  auto guard = store->gc_guard(false);  // blobs stay while they are read
  if (!guard) return guard.error();
  auto img = find_image(*store, o.target, *want);
  if (!img) return img.error();
  if (auto st = export_image(*store, *img, fsys::absolute(o.out), o.format == "docker"); !st) return st;
  RecordWriter out;
  return emit(out, image_record(*img));
}

inline void pull_options(CLI::App& c, Options& o) {
  c.add_option("REF", o.target, "Image reference (docker grammar: alpine, host:5000/a/b:tag, ...@sha256:...)")->required();
  platform_option(c, o);
  c.add_option("--insecure-registry", o.insecure, kInsecureHelp)->allow_extra_args(false);
  c.add_option("--jobs", o.jobs, "Layers downloaded concurrently")->check(CLI::Range(1, 16));
  c.add_option("--max-download", o.max_download,
               "Cap on the bytes of config and layers to download, from their descriptors, checked before any is fetched "
               "(default $KINA_IMAGE_MAX_DOWNLOAD, else 64Gi)");
  c.add_option("--stall-timeout", o.stall_timeout, kStallHelp);
  c.add_flag("--verify-diffids", o.verify_diff_ids,
             "Also decompress every layer now to check its DiffID (unpack always checks it while applying)");
}

inline void import_options(CLI::App& c, Options& o) {
  c.add_option("PATH", o.target, "Archive or directory")->required();
  c.add_option("--tag", o.tag,
               "Reference to store the image under (default: the names the archive carries; one that is not a valid "
               "reference is an error)");
  platform_option(c, o);
}

inline void push_options(CLI::App& c, Options& o) {
  c.add_option("IMAGE", o.target, "REF or DIGEST in the store")->required();
  c.add_option("--to", o.to, "Full reference to push to (default: REF itself)");
  c.add_option("--insecure-registry", o.insecure, kInsecureHelp)->allow_extra_args(false);
  c.add_option("--stall-timeout", o.stall_timeout, kStallHelp);
  platform_option(c, o);
  c.footer("Blobs the registry already has (HEAD) are not sent; others go with POST then one PUT. A multi-platform index is "
           "pushed with every manifest it lists, which must all be in the store (else 65). Credentials and bearer tokens as "
           "for pull (~/.docker/config.json); a refused login is 78, an unreachable registry 69.");
}

inline void export_options(CLI::App& c, Options& o) {
  c.add_option("IMAGE", o.target, "REF or DIGEST")->required();
  c.add_option("--out", o.out, "Archive to create")->required();
  c.add_option("--format", o.format, "oci (default) or docker");
  platform_option(c, o);
}

}  // namespace kina::image
