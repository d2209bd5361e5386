// reference.hpp: the docker image reference grammar (distribution/reference):
// [DOMAIN[:PORT]/]PATH[:TAG][@DIGEST], with docker.io's defaults.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "digest.hpp"
#include "kina/error.hpp"
#include "kina/validate.hpp"

namespace kina::image {

inline constexpr std::string_view kDockerHubDomain = "docker.io";
inline constexpr std::string_view kDockerHubRegistry = "registry-1.docker.io";

struct Reference {
  std::string domain;      // docker.io, localhost:5000, ghcr.io
  std::string path;        // library/alpine
  std::string tag;         // empty when only a digest was given
  std::string digest;      // validated sha256:..., or empty

  // Where the registry API lives: docker.io is served by registry-1.docker.io.
  std::string registry_host() const { return domain == kDockerHubDomain ? std::string(kDockerHubRegistry) : domain; }
  std::string name() const { return domain + "/" + path; }
  // The canonical form: docker.io/library/alpine:latest, host/a@sha256:...
  std::string str() const {
    std::string s = name();
    if (!tag.empty()) s += ":" + tag;
    if (!digest.empty()) s += "@" + digest;
    return s;
  }
  // What the manifest is fetched by: the digest when pinned, else the tag.
  std::string manifest_ref() const { return digest.empty() ? tag : digest; }
};

namespace detail {
inline bool is_alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
inline bool valid_path_component(std::string_view c) {
  if (c.empty() || !is_alnum_lower(c.front()) || !is_alnum_lower(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (is_alnum_lower(c[i])) { ++i; continue; }
    size_t j = i;
    if (c[i] == '.') {
      j = i + 1;
    } else if (c[i] == '_') {
      j = i + 1;
      if (j < c.size() && c[j] == '_') ++j;
    } else if (c[i] == '-') {
      while (j < c.size() && c[j] == '-') ++j;
    } else {
      return false;
    }
    if (j >= c.size() || !is_alnum_lower(c[j])) return false;
    i = j;
  }
  return true;
}

// domain-component ("." domain-component)* [":" port], or an IPv6 literal in brackets.
inline bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 255) return false;
  std::string_view host = d, port;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : d.substr(1, close - 1))
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':')) return false;
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    host = {};
  } else if (size_t colon = d.rfind(':'); colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (port.empty()) return false;
  }
  for (char c : port)
    if (c < '0' || c > '9') return false;
  if (port.size() > 5) return false;
  if (!host.empty()) {
    size_t start = 0;
    while (start <= host.size()) {
      size_t dot = host.find('.', start);
      if (dot == std::string_view::npos) dot = host.size();
      std::string_view label = host.substr(start, dot - start);
      if (label.empty()) return false;
      auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
      if (!alnum(label.front()) || !alnum(label.back())) return false;
      for (char c : label)
        if (!alnum(c) && c != '-') return false;
      start = dot + 1;
    }
  }
  return true;
}

inline bool has_upper(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

// tag: [\w][\w.-]{0,127}
inline bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t)
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}
}  // namespace detail

// Parses REF; a reference with neither tag nor digest gets the tag "latest".
inline Result<Reference> parse_reference(std::string_view s) {
  auto bad = [&](std::string why) { return make_error(Exit::usage, fmt::format("invalid image reference {}", shown(s)), why); };
  if (s.empty()) return bad("empty");
  if (s.size() > 4096) return bad("longer than 4096 characters");
  Reference r;
  std::string_view rest = s;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    auto d = Digest::parse(rest.substr(at + 1));
    if (!d) return bad(d.error().why);
    r.digest = d->str();
    rest = rest.substr(0, at);
  }
  std::string_view remainder = rest;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    // The first component is a registry host when it looks like one.
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos || first == "localhost" ||
        first.front() == '[' || detail::has_upper(first)) {
      if (!detail::valid_domain(first)) return bad(fmt::format("invalid registry host {}", shown(first)));
      r.domain = std::string(first);
      remainder = rest.substr(slash + 1);
    }
  }
  // A tag follows the last ':' of the path (a ':' before a '/' would be a port).
  if (size_t colon = remainder.rfind(':'); colon != std::string_view::npos) {
    std::string_view tag = remainder.substr(colon + 1);
    if (!detail::valid_tag(tag)) return bad(fmt::format("invalid tag {}", shown(tag)));
    r.tag = std::string(tag);
    remainder = remainder.substr(0, colon);
  }
  if (remainder.empty()) return bad("no repository name");
  size_t start = 0;
  while (start <= remainder.size()) {
    size_t slash = remainder.find('/', start);
    if (slash == std::string_view::npos) slash = remainder.size();
    std::string_view comp = remainder.substr(start, slash - start);
    if (!detail::valid_path_component(comp))
      return bad(fmt::format("invalid repository name component {} (lowercase letters, digits and separators . _ __ -)",
                             shown(comp)));
    start = slash + 1;
  }
  r.path = std::string(remainder);
  if (r.domain.empty() || r.domain == "index.docker.io") r.domain = std::string(kDockerHubDomain);
  if (r.domain == kDockerHubDomain && r.path.find('/') == std::string::npos) r.path = "library/" + r.path;
  if (r.name().size() > 255) return bad("repository name longer than 255 characters");
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  return r;
}

}  // namespace kina::image
