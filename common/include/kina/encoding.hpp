// encoding.hpp: hex and base64 (standard alphabet, padded) for hashes, keys and signatures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sodium.h>

namespace kina {

inline void sodium_ready() {
  static const int once = [] { return sodium_init(); }();
  (void)once;
}

inline std::string to_hex(const uint8_t* data, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xF];
  }
  return out;
}
template <class C>
std::string to_hex(const C& c) { return to_hex(reinterpret_cast<const uint8_t*>(c.data()), c.size()); }

// Lower-case hex only (as in digests); nullopt on any other character.
inline std::optional<std::vector<uint8_t>> from_hex(std::string_view s) {
  if (s.size() % 2) return std::nullopt;
  std::vector<uint8_t> out(s.size() / 2);
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = val(s[2 * i]), lo = val(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

inline std::string to_base64(const uint8_t* data, size_t n) {
  sodium_ready();
  std::string out(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // drop the terminating NUL
  return out;
}
template <class C>
std::string to_base64(const C& c) { return to_base64(reinterpret_cast<const uint8_t*>(c.data()), c.size()); }

// Strict standard base64 with padding; nullopt on anything else.
inline std::optional<std::vector<uint8_t>> from_base64(std::string_view s) {
  sodium_ready();
  std::vector<uint8_t> out(s.size() / 4 * 3 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != s.data() + s.size())
    return std::nullopt;
  out.resize(len);
  return out;
}

}  // namespace kina
