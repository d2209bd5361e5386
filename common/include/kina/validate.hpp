// validate.hpp: checks used on every input: names (DNS-1123 labels), sizes
// (512Mi, 2G), durations (90s, 24h, 10y), IP addresses and CIDRs.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/json.hpp"

namespace kina {

// Shows a user's input inside an error message, quoted and escaped.
inline std::string shown(std::string_view s) { return json::quote(s.substr(0, 200)); }

// A DNS-1123 label: 1-63 of [a-z0-9-], starting and ending alphanumeric.
// `what` names the input in the error ("cluster name", "node name").
inline Status validate_name(std::string_view what, std::string_view s) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid {} {}", what, shown(s)), std::move(why));
  };
  if (s.empty()) return bad("must not be empty");
  if (s.size() > 63) return bad("must be at most 63 characters");
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return bad("must consist of lower-case letters, digits and '-' (a DNS-1123 label)");
  }
  if (s.front() == '-' || s.back() == '-') return bad("must start and end with a letter or digit");
  return {};
}

// Sizes: a non-negative integer with an optional suffix, binary (Ki Mi Gi Ti
// Pi Ei) or decimal (k/K M G T P E), as Kubernetes quantities; no suffix means bytes.
inline Result<uint64_t> parse_size(std::string_view s) {
  auto bad = [&](std::string why) { return make_error(Exit::usage, fmt::format("invalid size {}", shown(s)), why); };
  size_t i = 0;
  uint64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - d) / 10) return bad("too large");
    n = n * 10 + d;
    ++i;
  }
  if (i == 0) return bad("expected a number with an optional unit such as 512Mi or 2G");
  std::string_view unit = s.substr(i);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b') && unit.size() <= 3) unit.remove_suffix(1);
  uint64_t mult = 1;
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 14> units{{
      {"", 1}, {"k", 1000ULL}, {"K", 1000ULL}, {"M", 1000000ULL}, {"G", 1000000000ULL},
      {"T", 1000000000000ULL}, {"P", 1000000000000000ULL}, {"E", 1000000000000000000ULL},
      {"Ki", 1ULL << 10}, {"Mi", 1ULL << 20}, {"Gi", 1ULL << 30}, {"Ti", 1ULL << 40}, {"Pi", 1ULL << 50},
      {"Ei", 1ULL << 60}}};
  bool found = false;
  for (const auto& [name, m] : units) {
    if (unit == name) {
      mult = m;
      found = true;
    }
  }
  if (!found) return bad(fmt::format("unknown unit \"{}\" (use Ki, Mi, Gi, Ti or k, M, G, T)", std::string(unit)));
  if (n != 0 && mult > std::numeric_limits<uint64_t>::max() / n) return bad("too large");
  return n * mult;
}

// The longest duration kina parses at all: 10000 years. Any timestamp from
// 1970 on plus this still fits an int64 of milliseconds, so `now + d` cannot
// overflow; each flag then has its own, tighter bound (parse_duration_flag).
inline constexpr int64_t kMaxDurationMs = 10000LL * 365 * 86400 * 1000;

// Durations: one or more <number><unit> with units ms, s, m, h, d, w, y
// (y = 365 days), e.g. 90s, 24h, 1h30m, 10y. Returns milliseconds, at most
// kMaxDurationMs; negative durations do not exist.
inline Result<int64_t> parse_duration(std::string_view s) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid duration {}", shown(s)), why);
  };
  if (s.empty()) return bad("must not be empty");
  if (s.front() == '-') return bad("must not be negative");
  constexpr int64_t max = kMaxDurationMs;
  int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    int64_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      int64_t d = s[i] - '0';
      if (n > (max - d) / 10) return bad("too large (at most 10000y)");
      n = n * 10 + d;
      ++i;
    }
    if (i == start) return bad("expected <number><unit>, units ms s m h d w y (e.g. 90s, 24h, 10y)");
    size_t ustart = i;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z'))) ++i;
    std::string_view unit = s.substr(ustart, i - ustart);
    int64_t mult = 0;
    if (unit == "ms") mult = 1;
    else if (unit == "s") mult = 1000;
    else if (unit == "m") mult = 60 * 1000;
    else if (unit == "h") mult = 3600 * 1000;
    else if (unit == "d") mult = 86400LL * 1000;
    else if (unit == "w") mult = 7 * 86400LL * 1000;
    else if (unit == "y") mult = 365 * 86400LL * 1000;
    else if (unit.empty()) return bad("missing unit (ms s m h d w y)");
    else return bad(fmt::format("unknown unit \"{}\" (use ms s m h d w y)", std::string(unit)));
    if (n != 0 && mult > max / n) return bad("too large (at most 10000y)");
    if (total > max - n * mult) return bad("too large (at most 10000y)");
    total += n * mult;
  }
  return total;
}

// A duration in the largest unit that divides it exactly: 3600000 -> "1h".
inline std::string format_duration(int64_t ms) {
  static constexpr std::pair<int64_t, std::string_view> units[] = {
      {365 * 86400LL * 1000, "y"}, {7 * 86400LL * 1000, "w"}, {86400LL * 1000, "d"}, {3600LL * 1000, "h"},
      {60LL * 1000, "m"}, {1000, "s"}, {1, "ms"}};
  if (ms == 0) return "0s";
  for (const auto& [m, u] : units)
    if (ms % m == 0) return fmt::format("{}{}", ms / m, u);
  return fmt::format("{}ms", ms);
}

// A duration given to `flag` (e.g. "--ttl"), within [min_ms, max_ms]. Errors
// name the flag and the bound: invalid --lock-timeout "300y": must be at most 1h.
inline Result<int64_t> parse_duration_flag(std::string_view flag, std::string_view s, int64_t min_ms, int64_t max_ms) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(s)), std::move(why));
  };
  auto d = parse_duration(s);
  if (!d) return bad(d.error().why);
  if (*d < min_ms) return bad(min_ms == 1 ? std::string("must be positive") : fmt::format("must be at least {}", format_duration(min_ms)));
  if (*d > max_ms) return bad(fmt::format("must be at most {}", format_duration(max_ms)));
  return *d;
}

// An integer given to `flag`, within [min, max]: digits only (an optional
// leading '-'), no overflow. Errors name the flag and the range.
inline Result<int64_t> parse_int_flag(std::string_view flag, std::string_view s, int64_t min, int64_t max) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(s)), std::move(why));
  };
  std::string_view digits = s;
  bool neg = !digits.empty() && digits.front() == '-';
  if (neg) digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 19 || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return bad(fmt::format("expected an integer from {} to {}", min, max));
  uint64_t v = 0;
  for (char c : digits) {
    if (v > (std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(c - '0')) / 10) return bad("too large");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return bad(fmt::format("expected an integer from {} to {}", min, max));
  int64_t n = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  if (n < min || n > max) return bad(fmt::format("expected an integer from {} to {}", min, max));
  return n;
}

// An IPv4 or IPv6 address in binary form.
struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  size_t size() const { return family == AF_INET ? 4 : 16; }
  std::string str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, bytes.data(), buf, sizeof buf);
    return buf;
  }
  bool operator==(const IpAddress&) const = default;
};

inline Result<IpAddress> parse_ip(std::string_view s) {
  IpAddress ip;
  std::string str(s);
  if (str.find(':') == std::string::npos) {
    ip.family = AF_INET;
    // inet_pton accepts only dotted-quad decimal, which is what we want (no octal, no short forms).
    if (str.size() <= 15 && ::inet_pton(AF_INET, str.c_str(), ip.bytes.data()) == 1) return ip;
  } else {
    ip.family = AF_INET6;
    if (str.size() <= 45 && ::inet_pton(AF_INET6, str.c_str(), ip.bytes.data()) == 1) return ip;
  }
  return make_error(Exit::usage, fmt::format("invalid IP address {}", shown(s)), "expected IPv4 (10.0.0.1) or IPv6 (fd00::1)");
}

// A host name for a certificate SAN or a URL: RFC 1123 labels (1-63 of
// letters, digits and '-', not starting or ending with '-'), at most 253
// characters, a "*." wildcard only as the whole left label when `wildcard`.
// Anything whose last label is all digits looks like an IPv4 address and is
// refused when it is not one (256.1.1.1, 1.2.3, 010.0.0.1): such names must
// not silently become DNS names. `what` names the input ("--san").
inline Status validate_host_name(std::string_view what, std::string_view s, bool wildcard) {
  auto bad = [&](std::string why) { return make_error(Exit::usage, fmt::format("invalid {} {}", what, shown(s)), std::move(why)); };
  std::string_view rest = s;
  if (wildcard && rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  if (rest.empty()) return bad("expected an IP address or a DNS name");
  if (rest.size() > 253) return bad("a DNS name is at most 253 characters");
  size_t last = rest.rfind('.');
  std::string_view tail = last == std::string_view::npos ? rest : rest.substr(last + 1);
  if (!tail.empty() && tail.find_first_not_of("0123456789") == std::string_view::npos)
    return bad("looks like an IPv4 address but is not a valid one (four decimal numbers 0-255, no leading zeros)");
  size_t start = 0;
  for (;;) {
    size_t dot = rest.find('.', start);
    std::string_view label = rest.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label == "*") return bad("a wildcard is allowed only as the whole leftmost label (*.example.com)");
    if (label.empty() || label.size() > 63) return bad("DNS labels must be 1-63 characters");
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
        return bad(c == '*' ? "a wildcard is allowed only as the whole leftmost label (*.example.com)"
                            : "a DNS name has letters, digits, '-' and '.' only");
    if (label.front() == '-' || label.back() == '-') return bad("DNS labels must not start or end with '-'");
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

// A network prefix such as 10.89.0.0/24. Host bits must be zero.
struct Cidr {
  IpAddress network;
  unsigned prefix = 0;
  std::string str() const { return fmt::format("{}/{}", network.str(), prefix); }
  bool contains(const IpAddress& ip) const {
    if (ip.family != network.family) return false;
    for (unsigned bit = 0; bit < prefix; ++bit) {
      unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
      if ((ip.bytes[byte] & mask) != (network.bytes[byte] & mask)) return false;
    }
    return true;
  }
};

inline Result<Cidr> parse_cidr(std::string_view s) {
  auto bad = [&](std::string why) { return make_error(Exit::usage, fmt::format("invalid CIDR {}", shown(s)), why); };
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return bad("expected ADDRESS/PREFIX, e.g. 10.89.0.0/24");
  auto ip = parse_ip(s.substr(0, slash));
  if (!ip) return bad(ip.error().why);
  std::string_view p = s.substr(slash + 1);
  if (p.empty() || p.size() > 3) return bad("prefix length must be a number");
  unsigned prefix = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return bad("prefix length must be a number");
    prefix = prefix * 10 + static_cast<unsigned>(c - '0');
  }
  if (prefix > ip->size() * 8) return bad(fmt::format("prefix length {} is longer than the address", prefix));
  for (unsigned bit = prefix; bit < ip->size() * 8; ++bit) {
    if (ip->bytes[bit / 8] & (0x80u >> (bit % 8))) return bad(fmt::format("host bits are set (did you mean {}?)",
                                                                           [&] {
                                                                             Cidr c{*ip, prefix};
                                                                             for (unsigned b = prefix; b < ip->size() * 8; ++b)
                                                                               c.network.bytes[b / 8] &= static_cast<uint8_t>(~(0x80u >> (b % 8)));
                                                                             return c.str();
                                                                           }()));
  }
  return Cidr{*ip, prefix};
}

}  // namespace kina
