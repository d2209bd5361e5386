// sha256.hpp: SHA-256 through OpenSSL's block functions (uses SHA-NI/AVX2 where present).
#pragma once

// The EVP interface would cost ~5 million instructions on its first use in a
// process (provider and name-map set-up), more than everything else a single
// `kina-audit append` does. The low-level SHA256_* functions, deprecated in
// OpenSSL 3 but kept, call the same assembly with no set-up.
#include <openssl/sha.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include <array>
#include <cstdint>
#include <string_view>

namespace kina {

using Hash256 = std::array<uint8_t, 32>;

// A reusable hashing context (one per thread); cheap to restart per message.
class Sha256 {
 public:
  Sha256() { reset(); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& reset() {
    SHA256_Init(&ctx_);
    return *this;
  }
  Sha256& update(const void* data, size_t n) {
    SHA256_Update(&ctx_, data, n);
    return *this;
  }
  Sha256& update(std::string_view s) { return update(s.data(), s.size()); }
  Sha256& update(uint8_t byte) { return update(&byte, 1); }
  Hash256 finish() {
    Hash256 out{};
    SHA256_Final(out.data(), &ctx_);
    reset();
    return out;
  }

 private:
  SHA256_CTX ctx_{};
};

inline Hash256 sha256(std::string_view data) {
  thread_local Sha256 h;
  return h.update(data).finish();
}

}  // namespace kina

#pragma GCC diagnostic pop
