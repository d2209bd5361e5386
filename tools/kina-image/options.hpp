// options.hpp: what kina-image's command line fills in, and what its commands share
// (the store, the platform, the download limits, tagging and printing an image).
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/cli.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

#include "image.hpp"
#include "registry.hpp"
#include "store.hpp"

namespace kina::image {

inline constexpr std::string_view kTool = "kina-image";
inline constexpr std::string_view kDescription =
    "Pull, import, build, push, verify and unpack OCI images (root filesystems as a directory or an ext4 disk).";

struct Options {
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
  // push
  std::string to;
};

// The tool's own option: the store.
inline void store_options(CLI::App& app, Options& o) {
  app.add_option("--store", o.store, "Image store directory (default $KINA_HOME/images)");
}

inline void platform_option(CLI::App& c, Options& o) {
  c.add_option("--platform", o.platform, "OS/ARCH[/VARIANT] to select from a multi-platform image (default: this host)");
}

inline constexpr const char* kInsecureHelp = "Allow plain HTTP for this HOST[:PORT] (repeatable)";
inline constexpr const char* kStallHelp =
    "Give up a transfer slower than 1 KiB/s for this long, exit 75 (default $KINA_IMAGE_STALL_TIMEOUT, else 60s)";

inline Result<Platform> want_platform(const Options& o) {
  if (o.platform.empty()) return host_platform();
  return parse_platform(o.platform);
}

// The store, its temporaries removed on SIGINT/SIGTERM/SIGHUP when the command handles them.
inline Result<Store> open_store(const Options& o, const Invocation& inv) { return Store::open(o.store, inv.interrupts()); }

inline Status emit(RecordWriter& out, const std::string& rec) { return out.write_line(rec); }

// --max-download and --stall-timeout, else KINA_IMAGE_MAX_DOWNLOAD and
// KINA_IMAGE_STALL_TIMEOUT, else the defaults.
inline Status pull_limits(const Options& o, PullOptions& po) {
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
inline Status tag_and_print(const Store& store, RecordWriter& out, const std::string& reference, const Digest& top, const Platform& want) {
  auto info = load_image(store, top, want);
  if (!info) return info.error();
  if (!reference.empty()) {
    if (auto st = store.tag(reference, IndexEntry{top.str(), info->manifest.str(), info->cfg.platform.str()}); !st) return st;
    info->reference = reference;
  }
  return emit(out, image_record(*info));
}

}  // namespace kina::image
