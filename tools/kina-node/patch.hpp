// patch.hpp: kind-compatible patching of kubeadm config documents: merge
// patches (kubeadmConfigPatches) and RFC 6902 JSON patches
// (kubeadmConfigPatchesJSON6902) on YAML trees. docs/node-config.md has the rules.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/yaml.hpp"

#include "plan.hpp"

namespace kina::node {

using yaml::Node;

// Bounds on what a patch may be and on what patching may grow a document to.
inline constexpr size_t kPatchMaxBytes = 256u << 10;  // one patch text
inline constexpr size_t kPatchMaxNodes = 20'000;      // one patch, after alias expansion
inline constexpr size_t kPatchMaxDepth = 64;
inline constexpr size_t kPatchMaxOps = 1'000;         // operations in one JSON 6902 patch
inline constexpr size_t kPatchMaxCount = 1'000;       // patches of one list
inline constexpr size_t kDocMaxNodes = 200'000;       // a patched document

inline yaml::Limits patch_limits() {
  yaml::Limits lim;
  lim.max_bytes = kPatchMaxBytes;
  lim.max_nodes = kPatchMaxNodes;
  lim.max_depth = kPatchMaxDepth;
  lim.max_alias_bytes = kPatchMaxBytes;
  return lim;
}

// ---------------------------------------------------------------------------
// Values: a YAML scalar read as JSON would read it (sigs.k8s.io/yaml, YAML 1.1).

enum class ScalarKind { null, boolean, integer, floating, string };

struct Scalar {
  ScalarKind kind = ScalarKind::string;
  bool b = false;
  double num = 0;
  std::string_view text;
};

namespace detail {

inline bool is_decimal_int(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

inline bool is_float(std::string_view s) {
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "-.inf" || s == "+.inf" || s == "-.Inf" || s == "-.INF" ||
      s == ".nan" || s == ".NaN" || s == ".NAN")
    return true;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  size_t i = 0, digits = 0;
  while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t e = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++e;
    if (e == 0) return false;
  }
  return i == s.size();
}

inline double to_double(std::string_view s) {
  std::string t;
  for (char c : s)
    if (c != '_') t += c;
  if (t == ".inf" || t == "+.inf" || t == ".Inf" || t == ".INF") return HUGE_VAL;
  if (t == "-.inf" || t == "-.Inf" || t == "-.INF") return -HUGE_VAL;
  if (t.find("nan") != std::string::npos || t.find("NaN") != std::string::npos || t.find("NAN") != std::string::npos)
    return NAN;
  if (t.size() > 2 && (t[0] == '0') && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
    int base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
    return static_cast<double>(std::strtoull(t.c_str() + 2, nullptr, base));
  }
  return std::strtod(t.c_str(), nullptr);
}

inline bool is_prefixed_int(std::string_view s) {
  if (s.size() < 3 || s[0] != '0') return false;
  std::string_view digits = s.substr(2);
  auto all = [&](auto pred) {
    for (char c : digits)
      if (!pred(c) && c != '_') return false;
    return true;
  };
  switch (s[1]) {
    case 'x': return all([](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); });
    case 'o': return all([](char c) { return c >= '0' && c <= '7'; });
    case 'b': return all([](char c) { return c == '0' || c == '1'; });
    default: return false;
  }
}

}  // namespace detail

// What a scalar node is as JSON. Only plain scalars can be anything but a
// string; an explicit !!str tag makes even those strings.
inline Scalar scalar_of(const Node& n) {
  Scalar s;
  s.text = n.value;
  if (n.type == yaml::Type::null) {
    s.kind = ScalarKind::null;
    return s;
  }
  bool str_tag = !n.tag.empty() && (n.tag == "tag:yaml.org,2002:str" || n.tag == "!!str");
  if (n.style != yaml::Style::plain || str_tag) return s;
  std::string_view v = n.value;
  if (n.is_null()) {
    s.kind = ScalarKind::null;
    return s;
  }
  static constexpr std::string_view yes[] = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static constexpr std::string_view no[] = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  for (auto t : yes)
    if (v == t) {
      s.kind = ScalarKind::boolean;
      s.b = true;
      return s;
    }
  for (auto t : no)
    if (v == t) {
      s.kind = ScalarKind::boolean;
      return s;
    }
  if (detail::is_decimal_int(v) || detail::is_prefixed_int(v)) {
    s.kind = ScalarKind::integer;
    s.num = detail::to_double(v);
    return s;
  }
  if (detail::is_float(v)) {
    s.kind = ScalarKind::floating;
    s.num = detail::to_double(v);
    return s;
  }
  return s;
}

inline bool is_json_null(const Node& n) {
  return n.type == yaml::Type::null || (n.is_scalar() && scalar_of(n).kind == ScalarKind::null);
}

// JSON equality of two trees: mappings as unordered sets of keys, numbers by
// value, strings by text, whatever YAML spelling they had.
inline bool json_equal(const Node& a, const Node& b) {
  bool an = scalar_of(a).kind == ScalarKind::null && !a.is_map() && !a.is_seq();
  bool bn = scalar_of(b).kind == ScalarKind::null && !b.is_map() && !b.is_seq();
  if (an || bn) return an && bn;
  if (a.type != b.type) return false;
  switch (a.type) {
    case yaml::Type::null: return true;
    case yaml::Type::scalar: {
      Scalar x = scalar_of(a), y = scalar_of(b);
      bool xn = x.kind == ScalarKind::integer || x.kind == ScalarKind::floating;
      bool yn = y.kind == ScalarKind::integer || y.kind == ScalarKind::floating;
      if (xn && yn) return x.num == y.num;
      if (x.kind != y.kind) return false;
      if (x.kind == ScalarKind::boolean) return x.b == y.b;
      return x.kind == ScalarKind::null || x.text == y.text;
    }
    case yaml::Type::sequence:
      if (a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i)
        if (!json_equal(a.items[i], b.items[i])) return false;
      return true;
    case yaml::Type::mapping:
      if (a.map.size() != b.map.size()) return false;
      for (const auto& [k, v] : a.map) {
        const Node* o = b.get(k);
        if (!o || !json_equal(v, *o)) return false;
      }
      return true;
  }
  return false;
}


inline size_t node_count(const Node& n) {
  size_t c = 1;
  for (const auto& i : n.items) c += node_count(i);
  for (const auto& kv : n.map) c += node_count(kv.second);
  return c;
}

// ---------------------------------------------------------------------------
// Matching (kind's pkg/internal/patch): a patch applies to a document when
// their `kind`s are equal and the patch's apiVersion is empty or equal.

struct TypeMeta {
  std::string api_version, kind;
};

// A document's or patch's apiVersion and kind; non-string values are errors.
inline Result<TypeMeta> type_meta(const Node& doc, const std::string& label) {
  TypeMeta t;
  if (!doc.is_map()) return t;
  for (auto [key, out] : {std::pair<const char*, std::string*>{"apiVersion", &t.api_version}, {"kind", &t.kind}}) {
    const Node* v = doc.get(key);
    if (!v || is_json_null(*v)) continue;
    if (!v->is_scalar() || scalar_of(*v).kind != ScalarKind::string)
      return make_error(Exit::data, label, fmt::format("{} is not a string", key));
    *out = v->value;
  }
  return t;
}

inline bool matches(const TypeMeta& doc, const TypeMeta& patch) {
  return doc.kind == patch.kind && (patch.api_version.empty() || doc.api_version == patch.api_version);
}

inline std::string api_version_of(const Json6902& p) { return p.group.empty() ? p.version : p.group + "/" + p.version; }

// ---------------------------------------------------------------------------
// Merge patches. kind applies kubeadmConfigPatches as JSON merge patches
// (RFC 7386), after a kubeadm-aware step for three fields; see merge_kubeadm_fields.

// Strategic-merge directives that a JSON merge patch would write into the
// config as ordinary keys: refused by name rather than misapplied.
inline Status refuse_directives(const Node& patch, const std::string& label, std::string path = {}) {
  if (patch.is_map()) {
    for (const auto& [k, v] : patch.map) {
      std::string here = path + "/" + k;
      if (k == "$patch" || k == "$retainKeys" || k.rfind("$setElementOrder/", 0) == 0 ||
          k.rfind("$deleteFromPrimitiveList/", 0) == 0)
        return make_error(Exit::data, label,
                          fmt::format("{}: the strategic-merge directive \"{}\" is not supported (patches are JSON "
                                      "merge patches, as kind applies them: use null to delete a key, or a JSON 6902 "
                                      "patch)",
                                      here, k));
      if (auto st = refuse_directives(v, label, here); !st) return st;
    }
  } else if (patch.is_seq()) {
    for (size_t i = 0; i < patch.items.size(); ++i)
      if (auto st = refuse_directives(patch.items[i], label, fmt::format("{}/{}", path, i)); !st) return st;
  }
  return ok_status();
}

// RFC 7386: a mapping merges key by key (null deletes), anything else replaces.
inline void merge_patch(Node& target, const Node& patch) {
  if (!patch.is_map()) {
    target = patch;
    return;
  }
  if (!target.is_map()) target = Node::mapping();
  for (const auto& [k, v] : patch.map) {
    if (is_json_null(v)) {
      target.erase(k);
      continue;
    }
    if (Node* t = target.get(k)) {
      merge_patch(*t, v);
    } else {
      Node fresh;
      merge_patch(fresh, v);
      target.map.emplace_back(k, std::move(fresh));
    }
  }
}

namespace detail {

// kubeadm v1beta4's [{name, value}] form of an extraArgs field (either form in).
inline std::vector<Node> args_list(const Node* v) {
  std::vector<Node> out;
  if (!v) return out;
  if (v->is_seq()) return v->items;
  if (v->is_map())
    for (const auto& [k, val] : v->map) {
      Node item = Node::mapping();
      item.set("name", Node::scalar(k));
      item.set("value", val);
      out.push_back(std::move(item));
    }
  return out;
}

inline std::optional<std::string> arg_name(const Node& item) {
  if (!item.is_map()) return std::nullopt;
  const Node* n = item.get("name");
  if (!n || !n->is_scalar() || is_json_null(*n)) return std::nullopt;
  return n->value;
}

}  // namespace detail

// kind's kubeadm-aware step before the merge patch, removing what it handled
// from the patch:
//  - `extraArgs` / `kubeletExtraArgs` (any depth) when the document is v1beta4:
//    merged by name (an entry whose value is null or missing deletes that name;
//    others replace the value in place or append). A patch without apiVersion
//    may still give them in the old map form (name: value).
//  - `certSANs` (any depth, any version): the union, the document's entries
//    first, the patch's new ones appended in order.
inline void merge_kubeadm_fields(Node& target, Node& patch, std::string_view doc_api, std::string_view patch_api) {
  bool v1beta4 = doc_api.size() >= 7 && doc_api.substr(doc_api.size() - 7) == "v1beta4";
  std::vector<std::string> handled;
  for (auto& [k, pv] : patch.map) {
    if (k == "extraArgs" || k == "kubeletExtraArgs") {
      if (!v1beta4) continue;
      std::vector<Node> adds;
      if (pv.is_seq())
        adds = pv.items;
      else if (patch_api.empty() && pv.is_map())
        adds = detail::args_list(&pv);
      std::vector<Node> have = detail::args_list(target.get(k));
      for (const Node& a : adds) {
        auto name = detail::arg_name(a);
        if (!name) continue;
        const Node* val = a.get("value");
        bool del = !val || is_json_null(*val);
        size_t at = have.size();
        for (size_t i = 0; i < have.size(); ++i)
          if (detail::arg_name(have[i]) == name) {
            at = i;
            break;
          }
        if (at < have.size()) {
          if (del)
            have.erase(have.begin() + static_cast<std::ptrdiff_t>(at));
          else
            have[at].set("value", *val);
        } else if (!del) {
          Node item = Node::mapping();
          item.set("name", Node::scalar(*name));
          item.set("value", *val);
          have.push_back(std::move(item));
        }
      }
      Node list = Node::sequence();
      list.items = std::move(have);
      target.set(k, std::move(list));
      handled.push_back(k);
      continue;
    }
    if (k == "certSANs") {
      Node list = Node::sequence();
      if (const Node* t = target.get(k); t && t->is_seq()) list.items = t->items;
      if (pv.is_seq())
        for (const Node& s : pv.items) {
          bool seen = false;
          for (const Node& e : list.items) seen = seen || json_equal(e, s);
          if (!seen) list.items.push_back(s);
        }
      target.set(k, std::move(list));
      handled.push_back(k);
      continue;
    }
    if (pv.is_map()) {
      Node* t = target.get(k);
      if (!t) t = &target.set(k, Node::mapping());
      if (t->is_map()) merge_kubeadm_fields(*t, pv, doc_api, patch_api);
    }
  }
  for (const auto& k : handled) patch.erase(k);
}

// ---------------------------------------------------------------------------
// JSON 6902 (RFC 6902 operations on RFC 6901 pointers).

namespace detail {

// The reference tokens of a pointer ("" is the whole document).
inline Result<std::vector<std::string>> parse_pointer(std::string_view p, const std::string& where) {
  std::vector<std::string> tokens;
  if (p.empty()) return tokens;
  if (p[0] != '/') return make_error(Exit::data, where, fmt::format("path \"{}\" does not start with /", p));
  size_t i = 1;
  std::string cur;
  for (; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      tokens.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    if (p[i] == '~') {
      if (i + 1 < p.size() && p[i + 1] == '0')
        cur += '~';
      else if (i + 1 < p.size() && p[i + 1] == '1')
        cur += '/';
      else
        return make_error(Exit::data, where, fmt::format("path \"{}\": ~ must be followed by 0 or 1", p));
      ++i;
      continue;
    }
    cur += p[i];
  }
  return tokens;
}

// An array index token: "0" or digits without a leading zero.
inline std::optional<size_t> array_index(std::string_view t) {
  if (t.empty() || t.size() > 9) return std::nullopt;
  if (t.size() > 1 && t[0] == '0') return std::nullopt;
  size_t v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  return v;
}

inline Node* walk(Node& root, const std::vector<std::string>& tokens, size_t count) {
  Node* cur = &root;
  for (size_t i = 0; i < count; ++i) {
    if (cur->is_map()) {
      cur = cur->get(tokens[i]);
    } else if (cur->is_seq()) {
      auto idx = array_index(tokens[i]);
      if (!idx || *idx >= cur->items.size()) return nullptr;
      cur = &cur->items[*idx];
    } else {
      return nullptr;
    }
    if (!cur) return nullptr;
  }
  return cur;
}

}  // namespace detail

// Reads a JSON 6902 patch: its text is a YAML or JSON list of operations.
inline Result<Node> parse_json6902(std::string_view text, const std::string& label) {
  if (text.size() > kPatchMaxBytes)
    return make_error(Exit::data, label, fmt::format("larger than {} bytes", kPatchMaxBytes));
  auto parsed = yaml::parse(text, label, patch_limits());
  if (!parsed) return make_error(Exit::data, label, parsed.error().why);
  if (!parsed->is_seq()) return make_error(Exit::data, label, "not a list of operations");
  if (parsed->items.size() > kPatchMaxOps)
    return make_error(Exit::data, label, fmt::format("more than {} operations", kPatchMaxOps));
  return parsed;
}

// Applies a parsed JSON 6902 patch to `doc`, all of it or (on an error) a
// prefix of its operations. `label` names the patch in errors; operations are
// counted from 0.
inline Status apply_json6902(Node& doc, const Node& ops, const std::string& label) {
  size_t size = node_count(doc);
  for (size_t n = 0; n < ops.items.size(); ++n) {
    const Node& op = ops.items[n];
    auto bad = [&](std::string why) { return make_error(Exit::data, label, fmt::format("op {}: {}", n, why)); };
    if (!op.is_map()) return bad("not a mapping");
    auto str = [&](const char* key) -> std::optional<std::string> {
      const Node* v = op.get(key);
      if (!v || !v->is_scalar() || scalar_of(*v).kind != ScalarKind::string) return std::nullopt;
      return v->value;
    };
    auto name = str("op");
    if (!name) return bad("no \"op\" string");
    auto path = str("path");
    if (!path) return bad("no \"path\" string");
    std::string where = fmt::format("{}: op {}", label, n);
    auto tokens = detail::parse_pointer(*path, where);
    if (!tokens) return tokens.error();
    auto missing = [&](const std::string& p) { return bad(fmt::format("path \"{}\" does not exist", p)); };

    // add `v` at `toks` (`p` for errors): a mapping key is set, an array index
    // inserts before it (its length or "-" appends), "" replaces the document.
    auto add = [&](const std::vector<std::string>& toks, const std::string& p, Node v) -> Status {
      if (toks.empty()) {
        doc = std::move(v);
        return ok_status();
      }
      Node* parent = detail::walk(doc, toks, toks.size() - 1);
      if (!parent) return missing(p);
      const std::string& last = toks.back();
      if (parent->is_map()) {
        parent->set(last, std::move(v));
        return ok_status();
      }
      if (parent->is_seq()) {
        if (last == "-") {
          parent->items.push_back(std::move(v));
          return ok_status();
        }
        auto idx = detail::array_index(last);
        if (!idx || *idx > parent->items.size())
          return bad(fmt::format("path \"{}\": index {} is out of range", p, last));
        parent->items.insert(parent->items.begin() + static_cast<std::ptrdiff_t>(*idx), std::move(v));
        return ok_status();
      }
      return missing(p);
    };
    auto remove = [&](const std::vector<std::string>& toks, const std::string& p) -> Result<Node> {
      if (toks.empty()) return bad("cannot remove the whole document");
      Node* parent = detail::walk(doc, toks, toks.size() - 1);
      if (!parent) return missing(p);
      const std::string& last = toks.back();
      if (parent->is_map()) {
        for (auto it = parent->map.begin(); it != parent->map.end(); ++it)
          if (it->first == last) {
            Node out = std::move(it->second);
            parent->map.erase(it);
            return out;
          }
        return missing(p);
      }
      if (parent->is_seq()) {
        auto idx = detail::array_index(last);
        if (!idx || *idx >= parent->items.size()) return missing(p);
        Node out = std::move(parent->items[*idx]);
        parent->items.erase(parent->items.begin() + static_cast<std::ptrdiff_t>(*idx));
        return out;
      }
      return missing(p);
    };
    auto grow = [&](const Node& v) -> Status {
      size += node_count(v);
      if (size > kDocMaxNodes) return bad(fmt::format("the document would grow past {} nodes", kDocMaxNodes));
      return ok_status();
    };
    const Node* value = op.get("value");

    if (*name == "add" || *name == "replace" || *name == "test") {
      if (!value) return bad(fmt::format("{} needs a \"value\"", *name));
    }
    if (*name == "add") {
      if (auto st = grow(*value); !st) return st;
      if (auto st = add(*tokens, *path, *value); !st) return st;
    } else if (*name == "remove") {
      auto r = remove(*tokens, *path);
      if (!r) return r.error();
    } else if (*name == "replace") {
      Node* at = detail::walk(doc, *tokens, tokens->size());
      if (!at) return missing(*path);
      if (auto st = grow(*value); !st) return st;
      *at = *value;
    } else if (*name == "test") {
      Node* at = detail::walk(doc, *tokens, tokens->size());
      if (!at) return missing(*path);
      if (!json_equal(*at, *value)) return bad(fmt::format("test failed: the value at \"{}\" differs", *path));
    } else if (*name == "move" || *name == "copy") {
      auto from = str("from");
      if (!from) return bad(fmt::format("{} needs a \"from\" string", *name));
      auto ftoks = detail::parse_pointer(*from, where);
      if (!ftoks) return ftoks.error();
      Node* src = detail::walk(doc, *ftoks, ftoks->size());
      if (!src) return missing(*from);
      if (*name == "move") {
        if (*from == *path) continue;
        if (path->size() > from->size() && path->compare(0, from->size(), *from) == 0 && (*path)[from->size()] == '/')
          return bad(fmt::format("cannot move \"{}\" into itself (\"{}\")", *from, *path));
        auto v = remove(*ftoks, *from);
        if (!v) return v.error();
        if (auto st = add(*tokens, *path, std::move(*v)); !st) return st;
      } else {
        Node v = *src;
        if (auto st = grow(v); !st) return st;
        if (auto st = add(*tokens, *path, std::move(v)); !st) return st;
      }
    } else {
      return bad(fmt::format("unknown op \"{}\" (add, remove, replace, move, copy or test)", *name));
    }
  }
  return ok_status();
}

// ---------------------------------------------------------------------------
// A document stream and the patch lists, as kind applies them.

// One kubeadmConfigPatches entry may hold several YAML documents: each is a patch.
struct MergePatch {
  Node body;
  TypeMeta meta;
  std::string label;
};

inline Result<std::vector<MergePatch>> parse_merge_patches(const std::vector<std::string>& texts,
                                                           const std::string& list_label) {
  if (texts.size() > kPatchMaxCount)
    return make_error(Exit::data, list_label, fmt::format("more than {} patches", kPatchMaxCount));
  std::vector<MergePatch> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string label = fmt::format("{}[{}]", list_label, i);
    auto docs = yaml::parse_all(texts[i], label, patch_limits());
    if (!docs) return make_error(Exit::data, label, docs.error().why);
    for (size_t d = 0; d < docs->size(); ++d) {
      std::string dl = docs->size() > 1 ? fmt::format("{} (document {})", label, d) : label;
      Node& body = (*docs)[d];
      if (is_json_null(body)) continue;  // an empty document patches nothing
      if (!body.is_map()) return make_error(Exit::data, dl, "a patch must be a mapping");
      if (auto st = refuse_directives(body, dl); !st) return st.error();
      auto meta = type_meta(body, dl);
      if (!meta) return meta.error();
      out.push_back({std::move(body), std::move(*meta), std::move(dl)});
    }
  }
  return out;
}

// Applies merge patches then JSON 6902 patches to every document they match
// (a patch matching no document is skipped, as kind does). `prefix` goes
// before the list names in errors: "" for the cluster's, "nodes[1]." for a node's.
inline Status apply_patches(std::vector<Node>& docs, const std::vector<std::string>& merge_texts,
                            const std::vector<Json6902>& json_patches, const std::string& prefix) {
  auto merges = parse_merge_patches(merge_texts, prefix + "kubeadmConfigPatches");
  if (!merges) return merges.error();
  if (json_patches.size() > kPatchMaxCount)
    return make_error(Exit::data, prefix + "kubeadmConfigPatchesJSON6902",
                      fmt::format("more than {} patches", kPatchMaxCount));
  // Every patch is read before any applies: a malformed one is an error even
  // when it matches no document (kind too parses them all first).
  std::vector<Node> json_ops;
  std::vector<std::string> json_labels;
  for (size_t i = 0; i < json_patches.size(); ++i) {
    const Json6902& p = json_patches[i];
    json_labels.push_back(fmt::format("{}kubeadmConfigPatchesJSON6902[{}].patch", prefix, i));
    auto ops = parse_json6902(p.patch, json_labels.back());
    if (!ops) return ops.error();
    json_ops.push_back(std::move(*ops));
  }
  for (Node& doc : docs) {
    auto meta = type_meta(doc, "kubeadm config document");
    if (!meta) return meta.error();
    for (const MergePatch& p : *merges) {
      if (!matches(*meta, p.meta)) continue;
      Node body = p.body;
      merge_kubeadm_fields(doc, body, meta->api_version, p.meta.api_version);
      merge_patch(doc, body);
      if (node_count(doc) > kDocMaxNodes)
        return make_error(Exit::data, p.label, fmt::format("the document would grow past {} nodes", kDocMaxNodes));
      if (auto m = type_meta(doc, p.label); !m) return m.error();  // a patch may not break apiVersion/kind
    }
    for (size_t i = 0; i < json_patches.size(); ++i) {
      const Json6902& p = json_patches[i];
      if (!matches(*meta, TypeMeta{api_version_of(p), p.kind})) continue;
      if (auto st = apply_json6902(doc, json_ops[i], json_labels[i]); !st) return st;
    }
  }
  return ok_status();
}

}  // namespace kina::node
