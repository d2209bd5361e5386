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

// What a failed child said went wrong, as one line: its first complaint
// ("tar: x: Cannot write: No space left on device"), not the summary a tool
// such as tar ends with ("Exiting with failure status due to previous
// errors"); with no such line, the last line.
inline std::string first_complaint(std::string_view err) {
  std::string_view last;
  for (size_t at = 0; at < err.size();) {
    size_t nl = err.find('\n', at);
    std::string_view line = err.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    at = nl == std::string_view::npos ? err.size() : nl + 1;
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    last = line;
    if (line.find("Exiting with failure status") != std::string_view::npos ||
        line.find("Error is not recoverable") != std::string_view::npos)
      continue;
    return one_line(line);
  }
  return one_line(last);
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
