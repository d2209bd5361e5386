// kina-image: pull, import, build, push, verify and unpack OCI images (docs/cli.md, "kina-image").
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "build.hpp"
#include "export.hpp"
#include "image.hpp"
#include "import.hpp"
#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/interrupt.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "push.hpp"
#include "registry.hpp"
#include "store.hpp"
#include "unpack.hpp"

namespace {

using namespace kina;
using namespace kina::image;
constexpr std::string_view kTool = "kina-image";

// The one audit event of a mutating command's invocation: written by the
// command when it ends (usage and validation errors included), or by the
// signal thread when SIGINT/SIGTERM ends it, whichever comes first.
class AuditEvent {
 public:
  explicit AuditEvent(std::vector<std::string> argv) : argv_(std::move(argv)) {}
  void begin(std::string_view action, std::string target) {
    std::lock_guard<std::mutex> g(mu_);
    action_ = std::string(action);
    target_ = std::move(target);
  }
  void set_target(std::string target) {
    std::lock_guard<std::mutex> g(mu_);
    target_ = std::move(target);
  }
  void write(int exit_code, std::vector<std::pair<std::string, std::string>> details = {}) {
    std::lock_guard<std::mutex> g(mu_);
    if (action_.empty() || written_) return;
    written_ = true;
    audit::Event ev;
    ev.tool = std::string(kTool);
    ev.action = action_;
    ev.target = target_;
    ev.args = argv_;
    ev.outcome = exit_code == 0 ? "ok" : "error";
    ev.exit_code = exit_code;
    ev.details = std::move(details);
    ev.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
    if (auto a = audit::record(ev); !a) warn(kTool, "could not append to the audit log: " + a.error().message());
  }

 private:
  std::mutex mu_;
  std::vector<std::string> argv_;
  std::string action_, target_;
  bool written_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

struct Options {
  const Interrupts* intr = nullptr;
  AuditEvent* audit = nullptr;
  std::string store;
  std::string platform;
  std::string target;  // REF, DIGEST or PATH
  std::string tag;
  std::string rootfs, disk, disk_size;
  std::string max_bytes;
  uint64_t max_entries = 0;
  std::vector<std::string> insecure;
  std::string out, format = "oci";
  int jobs = 4;
  bool verify_diff_ids = false;
  std::string max_download, stall_timeout;
  // build
  std::vector<std::string> labels, annotations, entrypoint, cmd, env;
  std::string workdir, user;
  const CLI::App* build_app = nullptr;  // which of --entrypoint/--cmd were given (an empty list is a value too)
  // push
  std::string to;
};

Result<Platform> want_platform(const Options& o) {
  if (o.platform.empty()) return host_platform();
  return parse_platform(o.platform);
}

// Runs a mutating command and appends its one audit event with the real
// outcome and exit code, whatever happens (a bad argument included).
Status audited(const Options& o, std::string_view action, const std::string& target, const std::function<Status()>& fn) {
  o.audit->begin(action, target);
  Status st;
  try {
    st = fn();
  } catch (const std::bad_alloc&) {
    st = make_error(Exit::os, "out of memory");
  } catch (const std::exception& e) {
    st = make_error(Exit::internal, "internal error (a bug)", e.what());
  }
  o.audit->write(st ? 0 : code(st.error().exit));
  return st;
}

Result<Store> open_store(const Options& o) { return Store::open(o.store, o.intr); }

Status emit(RecordWriter& out, const std::string& rec) { return out.write_line(rec); }

// --max-download and --stall-timeout, else KINA_IMAGE_MAX_DOWNLOAD and
// KINA_IMAGE_STALL_TIMEOUT, else the defaults.
Status pull_limits(const Options& o, PullOptions& po) {
  auto pick = [](const std::string& flag, const char* env) -> std::pair<std::string, std::string> {
    if (!flag.empty()) return {flag, ""};
    if (const char* v = std::getenv(env); v && *v) return {v, env};
    return {};
  };
  if (auto [v, env] = pick(o.max_download, "KINA_IMAGE_MAX_DOWNLOAD"); !v.empty()) {
    auto n = parse_size(v);
    if (!n) return env.empty() ? n.error() : make_error(Exit::usage, fmt::format("{}: {}", env, n.error().what), n.error().why);
    if (*n == 0) return usage_error(fmt::format("invalid download cap {}", shown(v)), "must be more than 0");
    po.max_download = *n;
  }
  if (auto [v, env] = pick(o.stall_timeout, "KINA_IMAGE_STALL_TIMEOUT"); !v.empty()) {
    auto ms = parse_duration_flag(env.empty() ? "--stall-timeout" : env, v, 1000, 24LL * 3600 * 1000);
    if (!ms) return ms.error();
    po.stall_timeout = std::chrono::milliseconds(*ms);
  }
  return {};
}

// Stores ref -> image under the lock and prints its Image record.
Status tag_and_print(const Store& store, RecordWriter& out, const std::string& reference, const Digest& top, const Platform& want) {
  auto info = load_image(store, top, want);
  if (!info) return info.error();
  if (!reference.empty()) {
    if (auto st = store.tag(reference, IndexEntry{top.str(), info->manifest.str(), info->cfg.platform.str()}); !st) return st;
    info->reference = reference;
  }
  return emit(out, image_record(*info));
}

// --- import ----------------------------------------------------------------------

Status cmd_import(const Options& o) {
  auto store = open_store(o);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  std::string tag;
  if (!o.tag.empty()) {
    auto r = parse_reference(o.tag);
    if (!r) return r.error();
    tag = r->str();
  }
  auto guard = store->gc_guard(false);
  if (!guard) return guard.error();
  store->sweep_ingest();
  struct stat sb {};
  if (::stat(o.target.c_str(), &sb) != 0)
    return os_error(fmt::format("importing {}", o.target), errno, errno == ENOENT ? Exit::no_input : Exit::os);
  bool use_names = tag.empty();
  auto refs = S_ISDIR(sb.st_mode) ? import_layout_dir(*store, o.target, use_names) : import_tar(*store, o.target, use_names);
  if (!refs) return refs.error();
  if (!tag.empty() && refs->size() != 1)
    return usage_error(fmt::format("importing {}", o.target), fmt::format("--tag names one image but the archive has {}", refs->size()));
  RecordWriter out;
  for (const auto& r : *refs)
    if (auto st = tag_and_print(*store, out, tag.empty() ? r.reference : tag, r.desc.digest, *want); !st) return st;
  return {};
}

// --- pull ------------------------------------------------------------------------

Status cmd_pull(const Options& o) {
  auto ref = parse_reference(o.target);
  if (!ref) return ref.error();
  o.audit->set_target(ref->str());
  PullOptions po;
  if (auto st = pull_limits(o, po); !st) return st;
  auto store = open_store(o);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  po.platform = *want;
  po.insecure = o.insecure;
  po.jobs = o.jobs;
  po.verify_diff_ids = o.verify_diff_ids;
  auto guard = store->gc_guard(false);
  if (!guard) return guard.error();
  store->sweep_ingest();
  auto top = pull_image(*store, *ref, po);
  if (!top) return top.error();
  RecordWriter out;
  return tag_and_print(*store, out, ref->str(), *top, *want);
}

// --- build -----------------------------------------------------------------------

Status cmd_build(const Options& o) {
  const CLI::App& sub = *o.build_app;
  auto ref = parse_reference(o.tag);
  if (!ref) return ref.error();
  if (!ref->digest.empty()) return usage_error(fmt::format("invalid --tag {}", shown(o.tag)), "a built image is tagged by name, not by digest");
  o.audit->set_target(ref->str());
  BuildSpec spec;
  spec.rootfs = fsys::absolute(o.rootfs);
  auto want = want_platform(o);
  if (!want) return want.error();
  spec.platform = *want;
  for (const auto& kv : o.labels)
    if (auto st = parse_key_value("--label", kv, &spec.labels); !st) return st;
  for (const auto& kv : o.annotations)
    if (auto st = parse_key_value("--annotation", kv, &spec.annotations); !st) return st;
  for (const auto& kv : o.env)
    if (auto st = parse_key_value("--env", kv, nullptr); !st) return st;
  spec.env = o.env;
  if (sub.count("--entrypoint")) spec.entrypoint = o.entrypoint;
  if (sub.count("--cmd")) spec.cmd = o.cmd;
  spec.working_dir = o.workdir;
  spec.user = o.user;
  auto sde = source_date_epoch_from_env();
  if (!sde) return sde.error();
  spec.source_date_epoch = *sde;
  auto store = open_store(o);
  if (!store) return store.error();
  auto guard = store->gc_guard(false);  // the new blobs stay until tagged
  if (!guard) return guard.error();
  store->sweep_ingest();
  auto r = build_image(*store, spec);
  if (!r) return r.error();
  info(kTool, fmt::format("built {}: {} entries, {} bytes of file data, layer {} ({} bytes)", ref->str(), r->entries, r->bytes,
                          r->layer.short_str(), r->layer_size));
  RecordWriter out;
  return tag_and_print(*store, out, ref->str(), r->manifest, spec.platform);
}

// --- push ------------------------------------------------------------------------

Status cmd_push(const Options& o) {
  auto store = open_store(o);
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
  o.audit->set_target(dest.str());
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

// --- list / inspect / rm -------------------------------------------------------------

Status cmd_list(const Options& o) {
  auto store = open_store(o);
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

Status cmd_inspect(const Options& o) {
  auto store = open_store(o);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  auto info = find_image(*store, o.target, *want);
  if (!info) return info.error();
  RecordWriter out;
  return emit(out, image_record(*info));
}

// Marks every blob reachable from `top`.
void reachable(const Store& store, const Digest& top, std::set<std::string>& keep, int depth = 0) {
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

Status cmd_rm(const Options& o) {
  auto store = open_store(o);
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
    std::set<std::string> keep;
    for (const auto& [r, e] : *idx)
      if (auto d = Digest::parse(e.digest); d) reachable(*store, *d, keep);
    size_t deleted = 0;
    std::error_code ec;
    for (const auto& ent : fsys::directory_iterator(store->root() / "blobs" / "sha256", ec)) {
      std::string name = ent.path().filename().string();
      if (!keep.count(name) && ::unlink(ent.path().c_str()) == 0) ++deleted;
    }
    info(kTool, fmt::format("removed {} reference(s), {} blob(s)", removed.size(), deleted));
    return {};
  }();
}

// --- unpack ----------------------------------------------------------------------------

Result<Limits> limits_of(const Options& o) {
  Limits l;
  if (!o.max_bytes.empty()) {
    auto b = parse_size(o.max_bytes);
    if (!b) return b.error();
    l.max_bytes = *b;
  }
  if (o.max_entries) l.max_entries = o.max_entries;
  return l;
}

Status write_rootfs_record(const ImageInfo& img, const std::string& path, const std::string& disk, const TreeStats& stats,
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

Status unpack_one(const Options& o, const Store& store, const ImageInfo& img, RecordWriter& out) {
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
    auto r = write_disk(store, img, d, disk_size, *limits, o.intr, fallback);
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
    auto t = Temp::make(d.parent_path(), prefix, true, o.intr);
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
    auto st = make_disk(rootfs, disk, disk_size, r->stats, o.intr);
    private_dir.remove();
    if (!st) return st;
  }
  return write_rootfs_record(img, temp_rootfs ? std::string() : rootfs.string(), disk, r->stats, out);
}

Status cmd_unpack(const Options& o) {
  auto limits = limits_of(o);
  if (!limits) return limits.error();
  auto store = open_store(o);
  if (!store) return store.error();
  auto want = want_platform(o);
  if (!want) return want.error();
  RecordWriter out;
  if (!o.target.empty()) {
    auto img = find_image(*store, o.target, *want);
    if (!img) return img.error();
    return unpack_one(o, *store, *img, out);
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
    if (auto st = unpack_one(o, *store, *img, out); !st) return st.error();
    return true;
  });
}

// --- export -----------------------------------------------------------------------------

Status cmd_export(const Options& o) {
  if (o.format != "oci" && o.format != "docker")
    return usage_error(fmt::format("invalid --format {}", shown(o.format)), "expected oci or docker");
  auto store = open_store(o);
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

}  // namespace

int main(int argc, char** argv) {
  AuditEvent audit(std::vector<std::string>(argv + 1, argv + argc));
  // Made when a mutating command starts, before any thread: SIGINT/SIGTERM/
  // SIGHUP then remove the command's temporaries and append its audit event,
  // and end it with 128+signal. (Read-only commands and --version pay nothing.)
  std::optional<Interrupts> intr;
  Options o;
  o.audit = &audit;
  std::function<Status()> action = [] { return usage_error("no command", "see kina-image --help"); };
  // Mutating subcommands: their action runs under audited(), and a command
  // line CLI11 refuses is audited too.
  std::vector<std::pair<CLI::App*, std::string>> mutating;
  auto on_parse_error = [&](const CLI::App&, const Error& e) {
    for (const auto& [sub, name] : mutating)
      if (sub->parsed()) {
        audit.begin(name, o.target);
        audit.write(code(e.exit));
      }
  };
  auto run = [&](CLI::App* sub, std::string name, Status (*cmd)(const Options&)) {
    mutating.emplace_back(sub, name);
    sub->callback([&o, &action, &intr, &audit, name, cmd] {
      action = [&o, &intr, &audit, name, cmd] {
        intr.emplace([&audit](int signo) {
          const char* sig = ::sigabbrev_np(signo);
          audit.write(signal_exit(signo), {{"signal", sig ? sig : "?"}});
        });
        o.intr = &*intr;
        return audited(o, name, o.target, [&] { return cmd(o); });
      };
    });
  };
  return run_tool(kTool, argc, argv, [&](CLI::App& app) -> std::function<Status()> {
    app.description("Pull, import, build, push, verify and unpack OCI images (root filesystems as a directory or an ext4 disk).");
    app.add_option("--store", o.store, "Image store directory (default $KINA_HOME/images)");
    auto add_platform = [&](CLI::App* s) {
      s->add_option("--platform", o.platform, "OS/ARCH[/VARIANT] to select from a multi-platform image (default: this host)");
    };

    auto* pull = app.add_subcommand("pull", "Pull REF from its registry into the store; prints an Image record");
    pull->add_option("REF", o.target, "Image reference (docker grammar: alpine, host:5000/a/b:tag, ...@sha256:...)")->required();
    add_platform(pull);
    pull->add_option("--insecure-registry", o.insecure, "Allow plain HTTP for this HOST[:PORT] (repeatable)")->allow_extra_args(false);
    pull->add_option("--jobs", o.jobs, "Layers downloaded concurrently")->check(CLI::Range(1, 16));
    pull->add_option("--max-download", o.max_download,
                     "Cap on the bytes of config and layers to download, from their descriptors, checked before any is fetched "
                     "(default $KINA_IMAGE_MAX_DOWNLOAD, else 64Gi)");
    pull->add_option("--stall-timeout", o.stall_timeout,
                     "Give up a transfer slower than 1 KiB/s for this long, exit 75 (default $KINA_IMAGE_STALL_TIMEOUT, else 60s)");
    pull->add_flag("--verify-diffids", o.verify_diff_ids,
                   "Also decompress every layer now to check its DiffID (unpack always checks it while applying)");
    run(pull, "pull", cmd_pull);

    auto* imp = app.add_subcommand("import", "Import a docker save archive, an OCI layout directory or an OCI layout tar");
    imp->add_option("PATH", o.target, "Archive or directory")->required();
    imp->add_option("--tag", o.tag,
                    "Reference to store the image under (default: the names the archive carries; one that is not a valid "
                    "reference is an error)");
    add_platform(imp);
    run(imp, "import", cmd_import);

    auto* unp = app.add_subcommand("unpack", "Unpack an image into a root directory and/or an ext4 disk; prints Rootfs records");
    unp->add_option("IMAGE", o.target, "REF or DIGEST (default: every Image record on stdin)");
    unp->add_option("--rootfs", o.rootfs, "Directory to create (must not exist; default $store/rootfs/<manifest hex>)");
    unp->add_option("--disk", o.disk, "ext4 image file to create (written straight from the layer streams with libext2fs; with --rootfs too, or without libext2fs, built with mke2fs -d from the tree)");
    unp->add_option("--disk-size", o.disk_size, "Size of the disk (default: the layers' uncompressed size plus 30% and 64 MiB)");
    unp->add_option("--max-bytes", o.max_bytes, "Cap on uncompressed layer bytes over all layers (default 1 TiB)");
    unp->add_option("--max-entries", o.max_entries, "Cap on tar entries over all layers, 1 or more (default 4194304)")->check(int_range(1, INT64_MAX));
    add_platform(unp);
    run(unp, "unpack", cmd_unpack);

    auto* bld = app.add_subcommand("build", "Build an OCI image from a directory tree into the store, deterministically; prints an Image record");
    o.build_app = bld;
    bld->add_option("--rootfs", o.rootfs, "Directory whose whole tree becomes the image's one layer (read without following symlinks)")->required();
    bld->add_option("--tag", o.tag, "Reference to store the image under, e.g. kina.local/node:v1.37.2")->required();
    bld->add_option("--label", o.labels, "KEY=VALUE label in the image config (repeatable)")->allow_extra_args(false);
    bld->add_option("--annotation", o.annotations, "KEY=VALUE annotation in the manifest (repeatable)")->allow_extra_args(false);
    bld->add_option("--entrypoint", o.entrypoint, "One word of the entrypoint (repeat for each; --entrypoint=-x for words starting with -)")->allow_extra_args(false);
    bld->add_option("--cmd", o.cmd, "One word of the default command (repeatable, like --entrypoint)")->allow_extra_args(false);
    bld->add_option("--env", o.env, "KEY=VALUE environment variable (repeatable, kept in order)")->allow_extra_args(false);
    bld->add_option("--workdir", o.workdir, "Working directory in the config");
    bld->add_option("--user", o.user, "User in the config (USER, UID or UID:GID)");
    bld->add_option("--platform", o.platform, "OS/ARCH[/VARIANT] the image is for (default: this host)");
    bld->footer(
        "Deterministic: the same tree gives the same digests. Entries depth first, each directory's names in bytewise order; "
        "numeric owners only; mtimes in whole seconds, clamped to $SOURCE_DATE_EPOCH when set; no atime/ctime; the config's "
        "created is $SOURCE_DATE_EPOCH (else 1970-01-01T00:00:00Z); gzip level 6 without name or time. Kept: modes with "
        "setuid/setgid/sticky, owners, symlinks, hardlinks, devices, FIFOs, xattrs (user.*, security.*, trusted.*) and POSIX "
        "ACLs. Sockets are skipped with a warning. A file that changes while it is read fails the build (65).");
    run(bld, "build", cmd_build);

    auto* psh = app.add_subcommand("push", "Push REF (or DIGEST) from the store to its registry, or to --to DEST; prints an Image record");
    psh->add_option("IMAGE", o.target, "REF or DIGEST in the store")->required();
    psh->add_option("--to", o.to, "Full reference to push to (default: REF itself)");
    psh->add_option("--insecure-registry", o.insecure, "Allow plain HTTP for this HOST[:PORT] (repeatable)")->allow_extra_args(false);
    psh->add_option("--stall-timeout", o.stall_timeout,
                    "Give up a transfer slower than 1 KiB/s for this long, exit 75 (default $KINA_IMAGE_STALL_TIMEOUT, else 60s)");
    add_platform(psh);
    psh->footer("Blobs the registry already has (HEAD) are not sent; others go with POST then one PUT. A multi-platform index is "
                "pushed with every manifest it lists, which must all be in the store (else 65). Credentials and bearer tokens as "
                "for pull (~/.docker/config.json); a refused login is 78, an unreachable registry 69.");
    run(psh, "push", cmd_push);

    auto* list = app.add_subcommand("list", "Print an Image record for every reference in the store");
    list->callback([&] { action = [&] { return cmd_list(o); }; });

    auto* insp = app.add_subcommand("inspect", "Print the Image record of REF or DIGEST");
    insp->add_option("IMAGE", o.target, "REF or DIGEST")->required();
    add_platform(insp);
    insp->callback([&] { action = [&] { return cmd_inspect(o); }; });

    auto* rm = app.add_subcommand("rm", "Remove REF (or every reference to DIGEST) and the blobs nothing else uses");
    rm->add_option("IMAGE", o.target, "REF or DIGEST")->required();
    run(rm, "rm", cmd_rm);

    auto* exp = app.add_subcommand("export", "Write REF as an OCI layout tar or a docker save tar (ctr images import reads both)");
    exp->add_option("IMAGE", o.target, "REF or DIGEST")->required();
    exp->add_option("--out", o.out, "Archive to create")->required();
    exp->add_option("--format", o.format, "oci (default) or docker");
    add_platform(exp);
    run(exp, "export", cmd_export);

    return [&action] { return action(); };
  }, on_parse_error);
}
