// secret.hpp: a byte buffer for key material, kept in guarded memory (sodium_malloc,
// locked where the OS allows) and zeroed when it goes away.
#pragma once

#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include <sodium.h>

#include "kina/encoding.hpp"

namespace kina {

class Secret {
 public:
  Secret() = default;
  explicit Secret(size_t n) : size_(n) {
    sodium_ready();
    if (n) {
      data_ = static_cast<uint8_t*>(sodium_malloc(n));
      if (!data_) throw std::bad_alloc();
    }
  }
  static Secret from(std::string_view s) {
    Secret out(s.size());
    if (!s.empty()) std::memcpy(out.data_, s.data(), s.size());
    return out;
  }
  static Secret random(size_t n) {
    Secret out(n);
    randombytes_buf(out.data_, n);
    return out;
  }
  Secret(Secret&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  Secret& operator=(Secret&& o) noexcept {
    if (this != &o) {
      clear();
      data_ = o.data_, size_ = o.size_;
      o.data_ = nullptr, o.size_ = 0;
    }
    return *this;
  }
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { clear(); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // Drops trailing bytes (e.g. a newline after a passphrase) without reallocating.
  void shrink(size_t n) {
    if (n < size_) {
      sodium_memzero(data_ + n, size_ - n);
      size_ = n;
    }
  }

 private:
  void clear() {
    if (data_) sodium_free(data_);  // sodium_free zeroes before freeing
    data_ = nullptr;
    size_ = 0;
  }
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kina
