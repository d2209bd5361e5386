// clock.hpp: UTC timestamps in RFC 3339 with milliseconds, and parsing them back.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace kina {

inline int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// 2026-11-22T19:53:44.123Z
inline std::string format_utc_ms(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  int64_t frac = ms % 1000;
  if (frac < 0) frac += 1000, --secs;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

// Parses RFC 3339 UTC or with an offset: YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM), or a bare date.
inline std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  auto num = [&](size_t at, size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2);
  if (!y || !mo || !d || s.size() < 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  if (*mo < 1 || *mo > 12 || *d < 1 || *d > 31) return std::nullopt;
  std::tm tm{};
  tm.tm_year = *y - 1900, tm.tm_mon = *mo - 1, tm.tm_mday = *d;
  int64_t frac_ms = 0, offset_s = 0;
  size_t i = 10;
  if (s.size() > 10) {
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
    auto h = num(11, 2), mi = num(14, 2), se = num(17, 2);
    if (!h || !mi || !se || s.size() < 19 || s[13] != ':' || s[16] != ':') return std::nullopt;
    if (*h > 23 || *mi > 59 || *se > 60) return std::nullopt;
    tm.tm_hour = *h, tm.tm_min = *mi, tm.tm_sec = *se;
    i = 19;
    if (i < s.size() && s[i] == '.') {
      ++i;
      int64_t scale = 100;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        frac_ms += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
      }
    }
    if (i >= s.size()) return std::nullopt;
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      auto oh = num(i + 1, 2), om = num(i + 4, 2);
      if (!oh || !om || i + 6 > s.size() || s[i + 3] != ':') return std::nullopt;
      offset_s = (*oh * 3600 + *om * 60) * (s[i] == '+' ? 1 : -1);
      i += 6;
    } else {
      return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
  }
  time_t t = ::timegm(&tm);
  return (static_cast<int64_t>(t) - offset_s) * 1000 + frac_ms;
}

}  // namespace kina
