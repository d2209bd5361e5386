// json.hpp: a compact JSON writer with correct string escaping (control characters
// escaped, invalid UTF-8 never emitted raw).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace kina::json {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there
// are not valid UTF-8 (overlongs, surrogates and code points above U+10FFFF are invalid).
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t left = s.size() - i;
  auto cont = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(i + 1) > 0x8F) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Appends s as a JSON string literal. Invalid UTF-8 bytes become \ufffd, so the
// output is always valid JSON and valid UTF-8.
inline void append_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\b': out += "\\b"; ++i; continue;
      case '\f': out += "\\f"; ++i; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
      ++i;
      continue;
    }
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    out.append(s.data() + i, n);
    i += n;
  }
  out += '"';
}

inline std::string quote(std::string_view s) {
  std::string out;
  append_string(out, s);
  return out;
}

// Streaming writer for one JSON value. Keys and values alternate inside
// objects; commas are placed automatically.
class Writer {
 public:
  Writer& begin_object() { pre_value(); out_ += '{'; first_.push_back(true); return *this; }
  Writer& end_object() { out_ += '}'; first_.pop_back(); return *this; }
  Writer& begin_array() { pre_value(); out_ += '['; first_.push_back(true); return *this; }
  Writer& end_array() { out_ += ']'; first_.pop_back(); return *this; }

  Writer& key(std::string_view k) {
    comma();
    append_string(out_, k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  Writer& value(std::string_view v) { pre_value(); append_string(out_, v); return *this; }
  Writer& value(const char* v) { return value(std::string_view(v)); }
  Writer& value(const std::string& v) { return value(std::string_view(v)); }
  Writer& value(bool v) { pre_value(); out_ += v ? "true" : "false"; return *this; }
  Writer& value(int v) { return value(static_cast<long long>(v)); }
  Writer& value(long v) { return value(static_cast<long long>(v)); }
  Writer& value(long long v) { pre_value(); fmt::format_to(std::back_inserter(out_), "{}", v); return *this; }
  Writer& value(unsigned v) { return value(static_cast<unsigned long long>(v)); }
  Writer& value(unsigned long v) { return value(static_cast<unsigned long long>(v)); }
  Writer& value(unsigned long long v) { pre_value(); fmt::format_to(std::back_inserter(out_), "{}", v); return *this; }
  Writer& value(double v) { pre_value(); fmt::format_to(std::back_inserter(out_), "{}", v); return *this; }
  Writer& null() { pre_value(); out_ += "null"; return *this; }
  // Inserts already-serialised JSON (a nested record, say) as one value.
  Writer& raw(std::string_view json) { pre_value(); out_ += json; return *this; }

  template <class V>
  Writer& field(std::string_view k, const V& v) { key(k); return value(v); }
  Writer& string_array(std::string_view k, const std::vector<std::string>& items) {
    key(k);
    begin_array();
    for (const auto& s : items) value(s);
    return end_array();
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void comma() {
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void pre_value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    comma();
  }
  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace kina::json
