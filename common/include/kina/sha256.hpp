// sha256.hpp: SHA-256 through OpenSSL's EVP interface (uses SHA-NI/AVX2 where present).
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace kina {

using Hash256 = std::array<uint8_t, 32>;

// A reusable hashing context (one per thread); cheap to restart per message.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()), md_(EVP_sha256()) {
    if (!ctx_) throw std::bad_alloc();
    reset();
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& reset() {
    EVP_DigestInit_ex2(ctx_, md_, nullptr);
    return *this;
  }
  Sha256& update(const void* data, size_t n) {
    EVP_DigestUpdate(ctx_, data, n);
    return *this;
  }
  Sha256& update(std::string_view s) { return update(s.data(), s.size()); }
  Sha256& update(uint8_t byte) { return update(&byte, 1); }
  Hash256 finish() {
    Hash256 out{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, out.data(), &len);
    reset();
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
  const EVP_MD* md_;
};

inline Hash256 sha256(std::string_view data) {
  thread_local Sha256 h;
  return h.update(data).finish();
}

}  // namespace kina
