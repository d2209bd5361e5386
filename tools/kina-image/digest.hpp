// digest.hpp: OCI content digests ("sha256:<64 lowercase hex>"), validated
// strictly before a digest is ever used in a file path or a URL.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/sha256.hpp"
#include "kina/validate.hpp"

namespace kina::image {

// A digest known to be well formed: only sha256 is accepted, so the hex part is
// exactly 64 characters of [0-9a-f] and can never contain '/', '.' or '%'.
class Digest {
 public:
  Digest() = default;
  static Result<Digest> parse(std::string_view s, std::string_view what = "digest") {
    auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("invalid {} {}", what, shown(s)), why); };
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) return bad("expected ALGORITHM:HEX");
    std::string_view alg = s.substr(0, colon), hex = s.substr(colon + 1);
    if (alg != "sha256") return bad(fmt::format("unsupported algorithm {} (only sha256)", shown(alg)));
    if (hex.size() != 64) return bad("a sha256 digest has 64 hex digits");
    for (char c : hex)
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad("only lowercase hex digits are allowed");
    Digest d;
    d.hex_ = std::string(hex);
    return d;
  }
  static Digest of(const Hash256& h) {
    Digest d;
    d.hex_ = to_hex(h.data(), h.size());
    return d;
  }
  static Digest of_data(std::string_view data) { return of(sha256(data)); }
  static bool valid(std::string_view s) { return parse(s).ok(); }

  const std::string& hex() const { return hex_; }
  std::string str() const { return "sha256:" + hex_; }
  std::string short_str() const { return hex_.substr(0, 12); }
  bool empty() const { return hex_.empty(); }
  bool operator==(const Digest& o) const { return hex_ == o.hex_; }
  bool operator<(const Digest& o) const { return hex_ < o.hex_; }

 private:
  std::string hex_;
};

}  // namespace kina::image
