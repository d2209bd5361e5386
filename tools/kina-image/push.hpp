// push.hpp: `kina-image push`: uploads an image of the store to a registry
// through the distribution API: each blob the registry lacks (HEAD first)
// with POST then a monolithic PUT, then the manifest with its exact bytes.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "image.hpp"
#include "manifest.hpp"
#include "reference.hpp"
#include "registry.hpp"
#include "store.hpp"

namespace kina::image {

struct PushStats {
  size_t uploaded = 0, present = 0;
  uint64_t bytes = 0;
};

namespace detail {

inline constexpr size_t kMaxPushAnswer = 1u << 20;

inline std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

inline Status push_blob(RegistryClient& c, const Store& store, const Digest& d, PushStats& stats, std::set<std::string>& done) {
  if (!done.insert(d.hex()).second) return {};
  std::string what = fmt::format("pushing blob {}", d.str());
  auto head = c.send("HEAD", fmt::format("{}/blobs/{}", c.base(), d.str()), {}, nullptr, kMaxPushAnswer, nullptr);
  if (!head) return head.error();
  if (head->status == 200) {
    ++stats.present;
    return {};
  }
  if (head->status != 404) return c.http_error(*head, what);
  UniqueFd fd(::open(store.blob_path(d).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return os_error(fmt::format("reading blob {}", d.str()), errno, errno == ENOENT ? Exit::no_input : Exit::os);
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode)) return make_error(Exit::data, fmt::format("reading blob {}", d.str()), "not a regular file");
  auto post = c.send("POST", fmt::format("{}/blobs/uploads/", c.base()), {}, nullptr, kMaxPushAnswer, nullptr);
  if (!post) return post.error();
  if (post->status != 202) return c.http_error(*post, what);
  std::string loc = post->header("location");
  if (loc.empty()) return make_error(Exit::unavailable, what, fmt::format("registry {} answered 202 without a Location", c.host()));
  std::string url = c.resolve(fmt::format("{}/blobs/uploads/", c.base()), loc);
  if (url.rfind("https://", 0) != 0 && !(c.scheme() == "http" && url.rfind("http://", 0) == 0))
    return make_error(Exit::policy, what, fmt::format("upload location {} is not HTTPS", shown(url_for_message(url))));
  url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + url_escape(d.str());
  RegistryClient::Upload up;
  up.fd = fd.get();
  up.size = static_cast<uint64_t>(sb.st_size);
  auto put = c.send("PUT", url, {"Content-Type: application/octet-stream", "Expect:"}, nullptr, kMaxPushAnswer, &up);
  if (!put) return put.error();
  if (put->status != 201) return c.http_error(*put, what);
  ++stats.uploaded;
  stats.bytes += up.size;
  return {};
}

inline Status push_manifest(RegistryClient& c, const std::string& ref, const std::string& bytes, const std::string& media_type,
                            const Digest& d) {
  std::string what = fmt::format("pushing manifest {}", d.str());
  RegistryClient::Upload up;
  up.data = bytes;
  up.size = bytes.size();
  auto put = c.send("PUT", fmt::format("{}/manifests/{}", c.base(), ref), {"Content-Type: " + media_type, "Expect:"}, nullptr,
                    kMaxPushAnswer, &up);
  if (!put) return put.error();
  if (put->status != 201) return c.http_error(*put, what);
  if (auto dcd = put->header("docker-content-digest"); !dcd.empty() && dcd != d.str())
    return make_error(Exit::data, what, fmt::format("the registry stored it as {}", shown(dcd)));
  return {};
}

// A platform manifest's config and layers, then the manifest itself (by `ref`).
inline Status push_one_manifest(RegistryClient& c, const Store& store, const Digest& m, const std::string& ref, PushStats& stats,
                                std::set<std::string>& done) {
  auto bytes = store.read_blob(m, kMaxManifestBytes);
  if (!bytes) return bytes.error();
  auto doc = parse_document(*bytes, fmt::format("manifest {}", m.str()));
  if (!doc) return doc.error();
  if (auto st = push_blob(c, store, doc->config.digest, stats, done); !st) return st;
  for (const auto& l : doc->layers)
    if (auto st = push_blob(c, store, l.digest, stats, done); !st) return st;
  return push_manifest(c, ref, *bytes, doc->media_type, m);
}

// Every manifest an index lists must be in the store (pull keeps only the
// chosen platform's): checked before anything is sent.
inline Status check_index_children(const Store& store, const Digest& index, const Document& doc, int depth) {
  for (const auto& m : doc.manifests) {
    if (!store.has_blob(m.digest))
      return make_error(Exit::data, fmt::format("pushing index {}", index.str()),
                        fmt::format("it lists {} ({}) which is not in the store", m.digest.str(), m.platform ? m.platform->str() : m.media_type),
                        "push the platform manifest by its digest with --to, or pull every platform first");
    auto bytes = store.read_blob(m.digest, kMaxManifestBytes);
    if (!bytes) return bytes.error();
    auto sub = parse_document(*bytes, fmt::format("manifest {}", m.digest.str()));
    if (!sub) return sub.error();
    if (sub->index) {
      if (depth >= 1) return make_error(Exit::data, fmt::format("pushing index {}", index.str()), "indexes nested too deeply");
      if (auto st = check_index_children(store, m.digest, *sub, depth + 1); !st) return st;
      continue;
    }
    for (const auto& b : std::vector<Digest>{sub->config.digest})
      if (!store.has_blob(b)) return make_error(Exit::data, fmt::format("pushing manifest {}", m.digest.str()), fmt::format("blob {} is not in the store", b.str()));
    for (const auto& l : sub->layers)
      if (!store.has_blob(l.digest))
        return make_error(Exit::data, fmt::format("pushing manifest {}", m.digest.str()), fmt::format("layer {} is not in the store", l.digest.str()));
  }
  return {};
}

inline Status push_tree(RegistryClient& c, const Store& store, const Digest& top, const std::string& ref, PushStats& stats,
                        std::set<std::string>& done, int depth) {
  auto bytes = store.read_blob(top, kMaxManifestBytes);
  if (!bytes) return bytes.error();
  auto doc = parse_document(*bytes, fmt::format("manifest {}", top.str()));
  if (!doc) return doc.error();
  if (!doc->index) return push_one_manifest(c, store, top, ref, stats, done);
  if (depth == 0)
    if (auto st = check_index_children(store, top, *doc, 0); !st) return st;
  for (const auto& m : doc->manifests)
    if (auto st = push_tree(c, store, m.digest, m.digest.str(), stats, done, depth + 1); !st) return st;
  return push_manifest(c, ref, *bytes, doc->media_type, top);
}

}  // namespace detail

// Pushes `top` (a manifest or an index of the store) to `dest`.
inline Result<PushStats> push_image(const Store& store, const Digest& top, const Reference& dest, const PullOptions& opts) {
  if (auto st = load_curl(); !st) return st.error();
  if (!dest.digest.empty() && dest.digest != top.str())
    return make_error(Exit::usage, fmt::format("pushing to {}", dest.str()), fmt::format("the image is {}, not the digest named", top.str()));
  RegistryClient c(dest, opts);
  c.for_push();
  c.load_credentials();
  PushStats stats;
  std::set<std::string> done;
  if (auto st = detail::push_tree(c, store, top, dest.manifest_ref(), stats, done, 0); !st) return st.error();
  return stats;
}

}  // namespace kina::image
