// console.hpp: a guest's console bytes made safe for a terminal: control
// characters other than newline and tab (escape sequences, C1 controls) and
// bytes that are not UTF-8 are shown as \xNN instead of being obeyed.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace kina::vm {

// Stateful across chunks: a UTF-8 sequence or a "\r\n" split between two
// reads is handled as if it came in one.
class TerminalEscaper {
 public:
  std::string feed(std::string_view in) {
    std::string data = pending_ + std::string(in);
    pending_.clear();
    std::string out;
    size_t i = 0;
    while (i < data.size()) {
      auto c = static_cast<unsigned char>(data[i]);
      if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
        out += static_cast<char>(c);
        ++i;
        continue;
      }
      if (c == '\r') {  // serial consoles end lines with \r\n: keep the \n only
        if (i + 1 == data.size()) {
          pending_ = "\r";
          break;
        }
        if (data[i + 1] != '\n') out += "\\x0d";
        ++i;
        continue;
      }
      size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
      if (len > 0 && c < 0xf8) {
        if (i + len > data.size() && continuation(data, i + 1, data.size())) {
          pending_ = data.substr(i);  // wait for the rest of the sequence
          break;
        }
        if (i + len <= data.size() && continuation(data, i + 1, i + len) && valid(data.substr(i, len))) {
          out.append(data, i, len);
          i += len;
          continue;
        }
      }
      out += fmt::format("\\x{:02x}", c);
      ++i;
    }
    return out;
  }
  // What is left at the end of the stream, escaped.
  std::string finish() {
    std::string rest;
    rest.swap(pending_);
    std::string out;
    for (char ch : rest) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(ch));
    return out;
  }

 private:
  static bool continuation(const std::string& d, size_t from, size_t to) {
    for (size_t j = from; j < to; ++j)
      if ((static_cast<unsigned char>(d[j]) & 0xc0) != 0x80) return false;
    return true;
  }
  // A well-formed sequence that is not a C1 control (U+0080-U+009F), an
  // overlong form, a surrogate or beyond U+10FFFF.
  static bool valid(std::string_view s) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    uint32_t cp = 0;
    if (s.size() == 2) cp = ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
    else if (s.size() == 3) cp = ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
    else cp = ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
    if (s.size() == 2) return cp >= 0xa0;
    if (s.size() == 3) return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
    return cp >= 0x10000 && cp <= 0x10ffff;
  }
  std::string pending_;
};

}  // namespace kina::vm
