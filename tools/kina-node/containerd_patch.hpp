// containerd_patch.hpp: the cluster's containerdConfigPatches (TOML merged over
// the node's /etc/containerd/config.toml) and containerdConfigPatchesJSON6902,
// as kind applies them; the result is the whole new config.toml.
#pragma once

#include <toml++/toml.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/yaml.hpp"

#include "patch.hpp"
#include "plan.hpp"

namespace kina::node {

inline constexpr size_t kContainerdConfigMaxBytes = 1u << 20;

namespace detail {

// TOML -> the JSON-like tree patch.hpp works on (dates and times become
// strings, as kind's conversion through JSON makes them).
inline Node toml_to_node(const toml::node& t) {
  if (const auto* tbl = t.as_table()) {
    Node m = Node::mapping();
    for (const auto& [k, v] : *tbl) m.map.emplace_back(std::string(k.str()), toml_to_node(v));
    return m;
  }
  if (const auto* arr = t.as_array()) {
    Node s = Node::sequence();
    for (const auto& v : *arr) s.items.push_back(toml_to_node(v));
    return s;
  }
  if (const auto* s = t.as_string()) return Node::scalar(s->get(), yaml::Style::double_quoted);
  if (const auto* i = t.as_integer()) return Node::scalar(std::to_string(i->get()), yaml::Style::plain);
  if (const auto* b = t.as_boolean()) return Node::scalar(b->get() ? "true" : "false", yaml::Style::plain);
  if (const auto* f = t.as_floating_point()) {
    double d = f->get();
    std::string text = std::isnan(d) ? ".nan" : std::isinf(d) ? (d < 0 ? "-.inf" : ".inf") : fmt::format("{}", d);
    if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // stays a float
    return Node::scalar(text, yaml::Style::plain);
  }
  std::ostringstream os;  // date, time, date-time
  if (const auto* d = t.as_date()) os << d->get();
  if (const auto* tm = t.as_time()) os << tm->get();
  if (const auto* dt = t.as_date_time()) os << dt->get();
  return Node::scalar(os.str(), yaml::Style::double_quoted);
}

// The tree -> TOML. `path` names the place in errors.
inline Result<std::unique_ptr<toml::node>> node_to_toml(const Node& n, const std::string& path) {
  if (n.is_map()) {
    auto tbl = std::make_unique<toml::table>();
    for (const auto& [k, v] : n.map) {
      auto c = node_to_toml(v, path + "/" + k);
      if (!c) return c.error();
      tbl->insert_or_assign(k, std::move(**c));
    }
    return std::unique_ptr<toml::node>(std::move(tbl));
  }
  if (n.is_seq()) {
    auto arr = std::make_unique<toml::array>();
    for (size_t i = 0; i < n.items.size(); ++i) {
      auto c = node_to_toml(n.items[i], fmt::format("{}/{}", path, i));
      if (!c) return c.error();
      arr->push_back(std::move(**c));
    }
    return std::unique_ptr<toml::node>(std::move(arr));
  }
  Scalar s = scalar_of(n);
  switch (s.kind) {
    case ScalarKind::null:
      return make_error(Exit::data, fmt::format("value at \"{}\"", path.empty() ? "/" : path),
                        "null cannot be written as TOML");
    case ScalarKind::boolean: return std::unique_ptr<toml::node>(new toml::value<bool>(s.b));
    case ScalarKind::integer: {
      std::string t;
      for (char c : n.value)
        if (c != '_') t += c;
      bool neg = !t.empty() && t[0] == '-';
      std::string_view body = t;
      if (!body.empty() && (body[0] == '-' || body[0] == '+')) body.remove_prefix(1);
      int base = 10;
      if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
        base = body[1] == 'x' ? 16 : body[1] == 'o' ? 8 : 2;
        body.remove_prefix(2);
      }
      errno = 0;
      std::string b(body);
      unsigned long long u = std::strtoull(b.c_str(), nullptr, base);
      if (errno == ERANGE || u > static_cast<unsigned long long>(INT64_MAX) + (neg ? 1 : 0))
        return make_error(Exit::data, fmt::format("value at \"{}\"", path), "integer out of TOML's 64-bit range");
      int64_t v = neg ? static_cast<int64_t>(0 - u) : static_cast<int64_t>(u);
      return std::unique_ptr<toml::node>(new toml::value<int64_t>(v));
    }
    case ScalarKind::floating: return std::unique_ptr<toml::node>(new toml::value<double>(s.num));
    case ScalarKind::string: return std::unique_ptr<toml::node>(new toml::value<std::string>(n.value));
  }
  return make_error(Exit::internal, "converting to TOML", "unknown value");
}

inline Result<toml::table> parse_toml(std::string_view text, const std::string& label, size_t max_bytes) {
  if (text.size() > max_bytes) return make_error(Exit::data, label, fmt::format("larger than {} bytes", max_bytes));
  try {
    return toml::parse(text, label);
  } catch (const toml::parse_error& e) {
    return make_error(Exit::data, label,
                      fmt::format("line {} column {}: {}", e.source().begin.line, e.source().begin.column,
                                  e.description()));
  }
}

// The config's `version` (0 when absent); not an integer is an error.
inline Result<int64_t> containerd_version(const toml::table& t, const std::string& label) {
  const toml::node* v = t.get("version");
  if (!v) return int64_t{0};
  if (const auto* i = v->as_integer()) return i->get();
  return make_error(Exit::data, label, "version is not an integer");
}

}  // namespace detail

// Merges TOML merge patches (RFC 7386 on the TOML as JSON: tables merge,
// anything else replaces; a patch whose `version` differs from the config's is
// skipped, as kind does) then JSON 6902 patches over `base`. Returns the whole
// new config.toml. Labels in errors: containerdConfigPatches[i],
// containerdConfigPatchesJSON6902[i].
inline Result<std::string> patch_containerd_config(std::string_view base, const std::string& base_label,
                                                   const std::vector<std::string>& patches,
                                                   const std::vector<std::string>& json_patches) {
  if (patches.size() > kPatchMaxCount || json_patches.size() > kPatchMaxCount)
    return make_error(Exit::data, "containerd config patches", fmt::format("more than {} patches", kPatchMaxCount));
  auto base_tbl = detail::parse_toml(base, base_label, kContainerdConfigMaxBytes);
  if (!base_tbl) return base_tbl.error();
  auto version = detail::containerd_version(*base_tbl, base_label);
  if (!version) return version.error();
  if (*version == 0) return make_error(Exit::data, base_label, "no containerd config version (version = 2 or 3)");
  Node doc = detail::toml_to_node(*base_tbl);

  for (size_t i = 0; i < patches.size(); ++i) {
    std::string label = fmt::format("containerdConfigPatches[{}]", i);
    auto p = detail::parse_toml(patches[i], label, kPatchMaxBytes);
    if (!p) return p.error();
    auto pv = detail::containerd_version(*p, label);
    if (!pv) return pv.error();
    if (*pv != 0 && *pv != *version) continue;
    merge_patch(doc, detail::toml_to_node(*p));
    if (node_count(doc) > kDocMaxNodes)
      return make_error(Exit::data, label, fmt::format("the config would grow past {} nodes", kDocMaxNodes));
  }
  for (size_t i = 0; i < json_patches.size(); ++i) {
    std::string label = fmt::format("containerdConfigPatchesJSON6902[{}]", i);
    auto ops = parse_json6902(json_patches[i], label);
    if (!ops) return ops.error();
    if (auto st = apply_json6902(doc, *ops, label); !st) return st.error();
  }
  if (!doc.is_map()) return make_error(Exit::data, "containerd config patches", "the result is not a TOML table");
  auto out = detail::node_to_toml(doc, "");
  if (!out) return make_error(Exit::data, "containerd config patches", out.error().what + ": " + out.error().why);
  std::ostringstream os;
  os << "# " << base_label << " with the cluster's containerd config patches (written by kina-node)\n";
  os << *(*out)->as_table() << "\n";
  // What the node gets must read back: toml++ writes some keys the patches
  // can make (a quote in a JSON 6902 path's last token, found by
  // fuzz_kubeadm_patch) in a form it cannot read; refused, never installed.
  try {
    (void)toml::parse(os.str());
  } catch (const toml::parse_error& e) {
    return make_error(Exit::data, "containerd config patches",
                      fmt::format("the patched config cannot be written as TOML that reads back ({})", e.description()));
  }
  return os.str();
}

// The node's new /etc/containerd/config.toml: `base` (the node image's config,
// read from the node, as kind reads it) with the cluster's patches, or "" when
// the cluster has none (the image's config stays).
inline Result<std::string> generate_containerd_patch(const ClusterPlan& c, std::string_view base,
                                                     const std::string& base_label = "/etc/containerd/config.toml") {
  if (c.containerd_patches.empty() && c.containerd_patches_json6902.empty()) return std::string();
  return patch_containerd_config(base, base_label, c.containerd_patches, c.containerd_patches_json6902);
}

}  // namespace kina::node
