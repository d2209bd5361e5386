// Fuzz target: kina-image's manifest/index/config parsers, platform selection,
// the reference grammar and digest validation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/kina-image/manifest.hpp"
#include "tools/kina-image/reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kina::image;
  std::string s(reinterpret_cast<const char*>(data), size);
  static const std::string_view kTypes[] = {"", media::kOciManifest, media::kOciIndex, media::kDockerManifest,
                                           media::kDockerList, "application/json"};
  std::string_view ct = kTypes[size % 6];
  auto doc = parse_document(s, "fuzz", ct);
  if (doc) {
    // A parsed document is internally consistent.
    if (doc->index && (!doc->layers.empty())) __builtin_trap();
    for (const auto& d : doc->manifests)
      if (d.digest.hex().size() != 64) __builtin_trap();
    (void)select_platform(*doc, Platform{"linux", "amd64", ""}, "fuzz");
    (void)select_platform(*doc, Platform{"linux", "arm64", "v8"}, "fuzz");
  }
  (void)parse_config(s, "fuzz");
  auto ref = parse_reference(s);
  if (ref) {
    // The canonical form parses back to itself.
    auto again = parse_reference(ref->str());
    if (!again || again->str() != ref->str()) __builtin_trap();
  }
  (void)Digest::parse(s);
  (void)parse_platform(s);
  return 0;
}
