// diag.hpp: the one-line stderr format (`tool: error: what: why`, optional `hint:` line).
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "kina/error.hpp"

namespace kina {

namespace detail {
// Diagnostics must stay on one line each: control characters (a newline in a
// file name, an escape sequence from a registry) are shown as \xNN.
inline std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

inline void write_stderr(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(2, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report to
    }
    off += static_cast<size_t>(n);
  }
}
}  // namespace detail

inline std::string format_error(std::string_view tool, const Error& e) {
  std::string s = fmt::format("{}: error: {}\n", tool, detail::one_line(e.message()));
  if (!e.hint.empty()) s += fmt::format("hint: {}\n", detail::one_line(e.hint));
  return s;
}

inline void report(std::string_view tool, const Error& e) { detail::write_stderr(format_error(tool, e)); }

inline void warn(std::string_view tool, std::string_view msg) {
  detail::write_stderr(fmt::format("{}: warning: {}\n", tool, detail::one_line(msg)));
}

inline void info(std::string_view tool, std::string_view msg) {
  detail::write_stderr(fmt::format("{}: {}\n", tool, detail::one_line(msg)));
}

}  // namespace kina
