// yaml_fields.hpp: strict typed reading of YAML mappings for kina-node's config
// files: every problem is collected with its path (nodes[1].extraMounts[0].hostPath),
// unknown fields are errors with a did-you-mean, and types are checked as kind's
// decoder (YAML 1.1 booleans, decimal integers) would.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/cli.hpp"
#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "kina/yaml.hpp"

namespace kina::node {

// The problems found in one input, in document order; each is one line.
class Problems {
 public:
  explicit Problems(std::string source, Exit exit = Exit::data) : source_(std::move(source)), exit_(exit) {}

  // One problem at `path`; `at` (when known) gives the line: "config F:12: path: why".
  void add(std::string_view path, std::string why, const yaml::Node* at = nullptr) {
    std::string msg = path.empty() ? std::move(why) : fmt::format("{}: {}", path, why);
    size_t line = at ? at->line : 0;
    std::string what = line > 0 ? fmt::format("{}:{}", source_, line) : source_;
    list_.push_back({line, make_error(exit_, std::move(what), std::move(msg))});
  }
  bool empty() const { return list_.empty(); }
  size_t size() const { return list_.size(); }
  // In document order (problems without a line last, in the order found).
  std::vector<Error> list() const {
    auto sorted = list_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return (a.first == 0 ? SIZE_MAX : a.first) < (b.first == 0 ? SIZE_MAX : b.first);
    });
    std::vector<Error> out;
    for (auto& e : sorted) out.push_back(std::move(e.second));
    return out;
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  Exit exit_;
  std::vector<std::pair<size_t, Error>> list_;
};

// "a.b" / "a[1]" paths.
inline std::string join_path(std::string_view base, std::string_view key) {
  return base.empty() ? std::string(key) : fmt::format("{}.{}", base, key);
}
inline std::string index_path(std::string_view base, size_t i) { return fmt::format("{}[{}]", base, i); }

// The nearest of `known` within two edits (or equal ignoring case), for "did you mean".
inline std::string nearest_name(std::string_view word, const std::vector<std::string_view>& known) {
  auto lower = [](std::string_view s) {
    std::string o(s);
    for (auto& c : o)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return o;
  };
  std::string best;
  size_t best_d = 3;
  for (auto k : known) {
    size_t d = lower(word) == lower(k) ? 0 : edit_distance(word, k);
    if (d < best_d) {
      best_d = d;
      best = std::string(k);
    }
  }
  return best;
}

// Reads the fields of mappings into typed values, recording every problem.
class FieldReader {
 public:
  explicit FieldReader(Problems& p) : p_(p) {}
  Problems& problems() { return p_; }

  // True when n is a mapping (a null counts as an empty one when `null_ok`).
  bool mapping(const yaml::Node& n, std::string_view path, bool null_ok = true) {
    if (n.is_map() || (null_ok && n.is_null())) return true;
    p_.add(path, fmt::format("expected a mapping, found {}", describe(n)), &n);
    return false;
  }
  bool sequence(const yaml::Node& n, std::string_view path) {
    if (n.is_seq() || n.is_null()) return true;
    p_.add(path, fmt::format("expected a list, found {}", describe(n)), &n);
    return false;
  }

  // Every key of the mapping must be in `known`; `extra` says which other
  // names exist elsewhere (e.g. "a kina/v1alpha1 field") for the message.
  void known_fields(const yaml::Node& n, std::string_view path, const std::vector<std::string_view>& known,
                    const std::map<std::string_view, std::string_view>& elsewhere = {}) {
    if (!n.is_map()) return;
    for (const auto& [k, v] : n.map) {
      bool ok = false;
      for (auto name : known) ok = ok || k == name;
      if (ok) continue;
      std::string why = fmt::format("unknown field {}", shown(k));
      if (auto it = elsewhere.find(k); it != elsewhere.end()) {
        why += fmt::format(" ({})", it->second);
      } else if (auto near = nearest_name(k, known); !near.empty()) {
        why += fmt::format("; did you mean \"{}\"?", near);
      }
      p_.add(join_path(path, k), std::move(why), &v);
    }
  }

  std::optional<std::string> string(const yaml::Node& n, std::string_view path) {
    if (n.is_null()) return std::string();  // kind: an empty value is the field's zero value
    if (!n.is_scalar()) {
      p_.add(path, fmt::format("expected a string, found {}", describe(n)), &n);
      return std::nullopt;
    }
    return n.value;
  }

  // YAML 1.1 booleans as kind's decoder reads them; a quoted "true" is a string.
  std::optional<bool> boolean(const yaml::Node& n, std::string_view path) {
    if (n.is_null()) return false;
    if (n.is_scalar() && n.style == yaml::Style::plain) {
      static constexpr std::string_view yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
      static constexpr std::string_view no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"};
      for (auto s : yes)
        if (n.value == s) return true;
      for (auto s : no)
        if (n.value == s) return false;
    }
    p_.add(path, fmt::format("expected true or false, found {}", describe(n)), &n);
    return std::nullopt;
  }

  // A decimal integer (optional sign) within [min, max].
  std::optional<int64_t> integer(const yaml::Node& n, std::string_view path, int64_t min, int64_t max) {
    if (n.is_null()) return int64_t{0} >= min && int64_t{0} <= max ? std::optional<int64_t>(0) : std::nullopt;
    if (n.is_scalar() && n.style == yaml::Style::plain) {
      auto v = parse_int_flag("value", n.value, min, max);
      if (v) return *v;
      bool digits = !n.value.empty() && n.value.find_first_not_of("+-0123456789") == std::string::npos;
      if (digits) {
        p_.add(path, fmt::format("{} is out of range ({} to {})", n.value, min, max), &n);
        return std::nullopt;
      }
    }
    p_.add(path, fmt::format("expected an integer, found {}", describe(n)), &n);
    return std::nullopt;
  }

  std::optional<std::vector<std::string>> strings(const yaml::Node& n, std::string_view path) {
    if (!sequence(n, path)) return std::nullopt;
    std::vector<std::string> out;
    bool ok = true;
    for (size_t i = 0; i < n.items.size(); ++i) {
      auto s = string(n.items[i], index_path(path, i));
      if (s) out.push_back(std::move(*s));
      else ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::optional<std::map<std::string, std::string>> string_map(const yaml::Node& n, std::string_view path) {
    if (!mapping(n, path)) return std::nullopt;
    std::map<std::string, std::string> out;
    bool ok = true;
    for (const auto& [k, v] : n.map) {
      auto s = string(v, join_path(path, k));
      if (s) out[k] = std::move(*s);
      else ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::optional<std::map<std::string, bool>> bool_map(const yaml::Node& n, std::string_view path) {
    if (!mapping(n, path)) return std::nullopt;
    std::map<std::string, bool> out;
    bool ok = true;
    for (const auto& [k, v] : n.map) {
      auto b = boolean(v, join_path(path, k));
      if (b) out[k] = *b;
      else ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // A size such as 2Gi or 2048Mi, in whole MiB within [min_mib, max_mib].
  std::optional<int64_t> mebibytes(const yaml::Node& n, std::string_view path, int64_t min_mib, int64_t max_mib) {
    if (!n.is_scalar() || n.is_null()) {
      p_.add(path, fmt::format("expected a size such as 2Gi or 2048Mi, found {}", describe(n)), &n);
      return std::nullopt;
    }
    auto bytes = parse_size(n.value);
    if (!bytes) {
      p_.add(path, fmt::format("{}: {}", shown(n.value), bytes.error().why), &n);
      return std::nullopt;
    }
    if (*bytes % (1u << 20) != 0) {
      p_.add(path, fmt::format("{} is not a whole number of MiB", shown(n.value)), &n);
      return std::nullopt;
    }
    uint64_t mib = *bytes >> 20;
    if (mib < static_cast<uint64_t>(min_mib) || mib > static_cast<uint64_t>(max_mib)) {
      p_.add(path, fmt::format("{} is out of range ({}Mi to {}Mi)", shown(n.value), min_mib, max_mib), &n);
      return std::nullopt;
    }
    return static_cast<int64_t>(mib);
  }

  static std::string describe(const yaml::Node& n) {
    switch (n.type) {
      case yaml::Type::null: return "nothing";
      case yaml::Type::sequence: return "a list";
      case yaml::Type::mapping: return "a mapping";
      case yaml::Type::scalar: break;
    }
    if (n.is_null()) return "null";
    return shown(n.value);
  }

 private:
  Problems& p_;
};

}  // namespace kina::node
