// build_cmd.hpp: kina-image build: a directory tree into the store as a deterministic image.
#pragma once

#include <string>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"

#include "build.hpp"
#include "gc.hpp"
#include "options.hpp"

namespace kina::image {

inline Status cmd_build(Options& o, Invocation& inv) {
  auto ref = parse_reference(o.tag);
  if (!ref) return ref.error();
  if (!ref->digest.empty()) return usage_error(fmt::format("invalid --tag {}", shown(o.tag)), "a built image is tagged by name, not by digest");
  inv.set_target(ref->str());
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
  if (inv.given("--entrypoint")) spec.entrypoint = o.entrypoint;
  if (inv.given("--cmd")) spec.cmd = o.cmd;
  spec.working_dir = o.workdir;
  spec.user = o.user;
  auto sde = source_date_epoch_from_env();
  if (!sde) return sde.error();
  spec.source_date_epoch = *sde;
  auto store = open_store(o, inv);
  if (!store) return store.error();
  return adding_blobs(*store, [&]() -> Status {
    auto r = build_image(*store, spec);
    if (!r) return r.error();
    info(kTool, fmt::format("built {}: {} entries, {} bytes of file data, layer {} ({} bytes)", ref->str(), r->entries,
                            r->bytes, r->layer.short_str(), r->layer_size));
    RecordWriter out;
    return tag_and_print(*store, out, ref->str(), r->manifest, spec.platform);
  });
}

inline void build_options(CLI::App& c, Options& o) {
  c.add_option("--rootfs", o.rootfs, "Directory whose whole tree becomes the image's one layer (read without following symlinks)")->required();
  c.add_option("--tag", o.tag, "Reference to store the image under, e.g. kina.local/node:v1.37.2")->required();
  c.add_option("--label", o.labels, "KEY=VALUE label in the image config (repeatable)")->allow_extra_args(false);
  c.add_option("--annotation", o.annotations, "KEY=VALUE annotation in the manifest (repeatable)")->allow_extra_args(false);
  c.add_option("--entrypoint", o.entrypoint, "One word of the entrypoint (repeat for each; --entrypoint=-x for words starting with -)")->allow_extra_args(false);
  c.add_option("--cmd", o.cmd, "One word of the default command (repeatable, like --entrypoint)")->allow_extra_args(false);
  c.add_option("--env", o.env, "KEY=VALUE environment variable (repeatable, kept in order)")->allow_extra_args(false);
  c.add_option("--workdir", o.workdir, "Working directory in the config");
  c.add_option("--user", o.user, "User in the config (USER, UID or UID:GID)");
  c.add_option("--platform", o.platform, "OS/ARCH[/VARIANT] the image is for (default: this host)");
  c.footer(
      "Deterministic: the same tree gives the same digests. Entries depth first, each directory's names in bytewise order; "
      "numeric owners only; mtimes in whole seconds, clamped to $SOURCE_DATE_EPOCH when set; no atime/ctime; the config's "
      "created is $SOURCE_DATE_EPOCH (else 1970-01-01T00:00:00Z); gzip level 6 without name or time. Kept: modes with "
      "setuid/setgid/sticky, owners, symlinks, hardlinks, devices, FIFOs, xattrs (user.*, security.*, trusted.*) and POSIX "
      "ACLs. Sockets are skipped with a warning. A file that changes while it is read fails the build (65).");
}

}  // namespace kina::image
