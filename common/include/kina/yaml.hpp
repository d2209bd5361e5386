// yaml.hpp: a YAML document tree on libyaml (reader with positions in every error,
// strict about duplicate keys and bounded against alias bombs) and an emitter.
#pragma once

#include <yaml.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"

namespace kina::yaml {

enum class Type { null, scalar, sequence, mapping };
enum class Style { any, plain, single_quoted, double_quoted, literal, folded };

struct MapEntry;

struct Node {
  Type type = Type::null;
  std::string value;  // scalars
  std::string tag;    // explicit tag, if any
  Style style = Style::any;
  std::vector<Node> items;       // sequences
  std::vector<MapEntry> map;     // mappings, in document order (first: key, second: value)
  size_t line = 0, column = 0;   // 1-based position in the source

  static inline Node scalar(std::string v, Style s = Style::any);
  static inline Node mapping();
  static inline Node sequence();

  bool is_scalar() const { return type == Type::scalar; }
  bool is_map() const { return type == Type::mapping; }
  bool is_seq() const { return type == Type::sequence; }
  // A plain scalar spelled null/~ or an empty plain value counts as null.
  bool is_null() const {
    return type == Type::null ||
           (type == Type::scalar && style == Style::plain &&
            (value.empty() || value == "null" || value == "~" || value == "Null" || value == "NULL"));
  }

  inline const Node* get(std::string_view key) const;
  inline Node* get(std::string_view key);
  // Sets (replacing in place, or appending) a mapping entry.
  inline Node& set(std::string key, Node v);
  inline bool erase(std::string_view key);
  inline std::optional<std::string> get_string(std::string_view key) const;
};

// A mapping entry. (A struct rather than std::pair: a pair of an incomplete
// type inside Node is not portable C++.)
struct MapEntry {
  std::string first;
  Node second;
  MapEntry(std::string k, Node v) : first(std::move(k)), second(std::move(v)) {}
};

inline Node Node::scalar(std::string v, Style s) {
  Node n;
  n.type = Type::scalar;
  n.value = std::move(v);
  n.style = s;
  return n;
}
inline Node Node::mapping() {
  Node n;
  n.type = Type::mapping;
  return n;
}
inline Node Node::sequence() {
  Node n;
  n.type = Type::sequence;
  return n;
}

inline const Node* Node::get(std::string_view key) const {
  for (const auto& [k, v] : map)
    if (k == key) return &v;
  return nullptr;
}
inline Node* Node::get(std::string_view key) {
  for (auto& [k, v] : map)
    if (k == key) return &v;
  return nullptr;
}
inline Node& Node::set(std::string key, Node v) {
  if (Node* n = get(key)) return *n = std::move(v);
  map.emplace_back(std::move(key), std::move(v));
  return map.back().second;
}
inline bool Node::erase(std::string_view key) {
  for (auto it = map.begin(); it != map.end(); ++it)
    if (it->first == key) {
      map.erase(it);
      return true;
    }
  return false;
}
inline std::optional<std::string> Node::get_string(std::string_view key) const {
  const Node* n = get(key);
  if (!n || !n->is_scalar() || n->is_null()) return std::nullopt;
  return n->value;
}

struct Limits {
  size_t max_depth = 128;
  size_t max_nodes = 1'000'000;  // after alias expansion
  size_t max_bytes = 64u << 20;
  // Bytes of scalars (and keys) that aliases may copy in all: a few nodes
  // aliasing a large scalar would otherwise pass max_nodes and exhaust memory.
  size_t max_alias_bytes = SIZE_MAX;
};

// True when a plain scalar with this text would be read back as something
// other than a string (bool, null, number), so it must be quoted.
inline bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  static constexpr std::string_view specials[] = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n",
                                                  "True", "False", "Yes", "No", "On", "Off", "Null", "NULL", "TRUE",
                                                  "FALSE", "YES", "NO", "ON", "OFF", "Y", "N"};
  for (auto sp : specials)
    if (s == sp) return true;
  bool numeric = true;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' || c == '_' || c == 'x' ||
          c == 'o'))
      numeric = false;
  return numeric;
}

namespace detail {

class Parser {
 public:
  Parser(std::string_view text, std::string source, Limits lim) : source_(std::move(source)), lim_(lim) {
    yaml_parser_initialize(&p_);
    yaml_parser_set_input_string(&p_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~Parser() {
    if (pending_) yaml_event_delete(&*pending_);
    yaml_parser_delete(&p_);
  }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  Result<std::vector<Node>> documents() {
    std::vector<Node> docs;
    for (;;) {
      auto ev = next();
      if (!ev) return ev.error();
      yaml_event_type_t t = ev->type;
      yaml_event_delete(&*ev);
      if (t == YAML_STREAM_END_EVENT) break;
      if (t == YAML_DOCUMENT_START_EVENT) {
        anchors_.clear();
        auto n = node(0);
        if (!n) return n.error();
        auto end = next();
        if (!end) return end.error();
        yaml_event_delete(&*end);
        docs.push_back(std::move(*n));
      }
    }
    return docs;
  }

 private:
  // The next event (a peeked one first). The caller deletes it.
  Result<yaml_event_t> next() {
    if (pending_) {
      yaml_event_t ev = *pending_;
      pending_.reset();
      return ev;
    }
    yaml_event_t ev;
    if (!yaml_parser_parse(&p_, &ev)) {
      return make_error(Exit::data, fmt::format("reading YAML {}", source_),
                        fmt::format("line {} column {}: {}", p_.problem_mark.line + 1, p_.problem_mark.column + 1,
                                    p_.problem ? p_.problem : "syntax error"));
    }
    return ev;
  }

  // True (and consumed) when the next event is of type `end`.
  Result<bool> at_end(yaml_event_type_t end) {
    auto ev = next();
    if (!ev) return ev.error();
    if (ev->type == end) {
      yaml_event_delete(&*ev);
      return true;
    }
    pending_ = *ev;
    return false;
  }

  Error at(const yaml_mark_t& m, std::string why) const {
    return make_error(Exit::data, fmt::format("reading YAML {}", source_),
                      fmt::format("line {} column {}: {}", m.line + 1, m.column + 1, std::move(why)));
  }

  static size_t count(const Node& n) {
    size_t c = 1;
    for (const auto& i : n.items) c += count(i);
    for (const auto& kv : n.map) c += count(kv.second);
    return c;
  }

  static size_t bytes(const Node& n) {
    size_t b = n.value.size();
    for (const auto& i : n.items) b += bytes(i);
    for (const auto& kv : n.map) b += kv.first.size() + bytes(kv.second);
    return b;
  }

  Result<Node> node(size_t depth) {
    auto evr = next();
    if (!evr) return evr.error();
    yaml_event_t ev = *evr;
    struct Guard {
      yaml_event_t* e;
      ~Guard() { yaml_event_delete(e); }
    } guard{&ev};
    if (depth > lim_.max_depth) return at(ev.start_mark, fmt::format("nested deeper than {} levels", lim_.max_depth));
    if (++nodes_ > lim_.max_nodes) return at(ev.start_mark, fmt::format("more than {} nodes", lim_.max_nodes));
    Node n;
    n.line = ev.start_mark.line + 1;
    n.column = ev.start_mark.column + 1;
    std::string anchor;
    auto take = [](const yaml_char_t* s) { return s ? std::string(reinterpret_cast<const char*>(s)) : std::string(); };
    switch (ev.type) {
      case YAML_ALIAS_EVENT: {
        std::string name = take(ev.data.alias.anchor);
        auto it = anchors_.find(name);
        if (it == anchors_.end()) return at(ev.start_mark, fmt::format("unknown alias *{}", name));
        nodes_ += count(it->second);
        if (nodes_ > lim_.max_nodes)
          return at(ev.start_mark, fmt::format("aliases expand to more than {} nodes", lim_.max_nodes));
        alias_bytes_ += bytes(it->second);
        if (alias_bytes_ > lim_.max_alias_bytes)
          return at(ev.start_mark, fmt::format("aliases expand to more than {} bytes", lim_.max_alias_bytes));
        return it->second;
      }
      case YAML_SCALAR_EVENT: {
        n.type = Type::scalar;
        n.value.assign(reinterpret_cast<const char*>(ev.data.scalar.value), ev.data.scalar.length);
        n.tag = take(ev.data.scalar.tag);
        switch (ev.data.scalar.style) {
          case YAML_PLAIN_SCALAR_STYLE: n.style = Style::plain; break;
          case YAML_SINGLE_QUOTED_SCALAR_STYLE: n.style = Style::single_quoted; break;
          case YAML_DOUBLE_QUOTED_SCALAR_STYLE: n.style = Style::double_quoted; break;
          case YAML_LITERAL_SCALAR_STYLE: n.style = Style::literal; break;
          case YAML_FOLDED_SCALAR_STYLE: n.style = Style::folded; break;
          default: n.style = Style::any;
        }
        anchor = take(ev.data.scalar.anchor);
        break;
      }
      case YAML_SEQUENCE_START_EVENT: {
        n.type = Type::sequence;
        n.tag = take(ev.data.sequence_start.tag);
        anchor = take(ev.data.sequence_start.anchor);
        for (;;) {
          auto end = at_end(YAML_SEQUENCE_END_EVENT);
          if (!end) return end.error();
          if (*end) break;
          auto child = node(depth + 1);
          if (!child) return child.error();
          n.items.push_back(std::move(*child));
        }
        break;
      }
      case YAML_MAPPING_START_EVENT: {
        n.type = Type::mapping;
        n.tag = take(ev.data.mapping_start.tag);
        anchor = take(ev.data.mapping_start.anchor);
        std::unordered_set<std::string> seen;
        for (;;) {
          auto end = at_end(YAML_MAPPING_END_EVENT);
          if (!end) return end.error();
          if (*end) break;
          auto key = node(depth + 1);
          if (!key) return key.error();
          if (!key->is_scalar())
            return make_error(Exit::data, fmt::format("reading YAML {}", source_),
                              fmt::format("line {} column {}: mapping keys must be scalars", key->line, key->column));
          // A set of the keys so far keeps the duplicate check linear on huge mappings.
          if (!seen.insert(key->value).second)
            return make_error(Exit::data, fmt::format("reading YAML {}", source_),
                              fmt::format("line {} column {}: duplicate key \"{}\"", key->line, key->column, key->value));
          auto val = node(depth + 1);
          if (!val) return val.error();
          n.map.emplace_back(std::move(key->value), std::move(*val));
        }
        break;
      }
      default:
        return at(ev.start_mark, "unexpected YAML event");
    }
    if (!anchor.empty()) anchors_[anchor] = n;
    return n;
  }

  yaml_parser_t p_;
  std::string source_;
  Limits lim_;
  size_t nodes_ = 0;
  size_t alias_bytes_ = 0;
  std::map<std::string, Node> anchors_;
  std::optional<yaml_event_t> pending_;
};

class Emitter {
 public:
  Emitter() {
    yaml_emitter_initialize(&e_);
    yaml_emitter_set_output(&e_, &Emitter::write, this);
    yaml_emitter_set_unicode(&e_, 1);
    yaml_emitter_set_width(&e_, -1);  // never fold long lines (base64 data)
    yaml_emitter_set_indent(&e_, 2);
  }
  ~Emitter() { yaml_emitter_delete(&e_); }
  Emitter(const Emitter&) = delete;
  Emitter& operator=(const Emitter&) = delete;

  Result<std::string> run(const Node& root) {
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    if (!emit(ev)) return failure();
    yaml_document_start_event_initialize(&ev, nullptr, nullptr, nullptr, 1);
    if (!emit(ev)) return failure();
    if (!node(root)) return failure();
    yaml_document_end_event_initialize(&ev, 1);
    if (!emit(ev)) return failure();
    yaml_stream_end_event_initialize(&ev);
    if (!emit(ev)) return failure();
    return std::move(out_);
  }

 private:
  static int write(void* self, unsigned char* buf, size_t n) {
    static_cast<Emitter*>(self)->out_.append(reinterpret_cast<const char*>(buf), n);
    return 1;
  }
  bool emit(yaml_event_t& ev) { return yaml_emitter_emit(&e_, &ev) != 0; }
  Error failure() const {
    return make_error(Exit::internal, "writing YAML", e_.problem ? e_.problem : "emitter error");
  }
  static yaml_char_t* tag_of(const Node& n) {
    return n.tag.empty() ? nullptr : reinterpret_cast<yaml_char_t*>(const_cast<char*>(n.tag.c_str()));
  }

  bool node(const Node& n) {
    yaml_event_t ev;
    switch (n.type) {
      case Type::null: {
        static char null_text[] = "null";
        yaml_scalar_event_initialize(&ev, nullptr, nullptr, reinterpret_cast<yaml_char_t*>(null_text), 4, 1, 1,
                                     YAML_PLAIN_SCALAR_STYLE);
        return emit(ev);
      }
      case Type::scalar: {
        yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
        switch (n.style) {
          case Style::plain: style = YAML_PLAIN_SCALAR_STYLE; break;
          case Style::single_quoted: style = YAML_SINGLE_QUOTED_SCALAR_STYLE; break;
          case Style::double_quoted: style = YAML_DOUBLE_QUOTED_SCALAR_STYLE; break;
          case Style::literal: style = YAML_LITERAL_SCALAR_STYLE; break;
          case Style::folded: style = YAML_FOLDED_SCALAR_STYLE; break;
          case Style::any:
            // A new string that would read back as a bool, null or number is quoted.
            style = needs_quotes(n.value) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
            break;
        }
        yaml_scalar_event_initialize(&ev, nullptr, tag_of(n),
                                     reinterpret_cast<yaml_char_t*>(const_cast<char*>(n.value.data())),
                                     static_cast<int>(n.value.size()), n.tag.empty(), n.tag.empty(), style);
        return emit(ev);
      }
      case Type::sequence: {
        yaml_sequence_start_event_initialize(&ev, nullptr, tag_of(n), n.tag.empty(),
                                             n.items.empty() ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        if (!emit(ev)) return false;
        for (const auto& i : n.items)
          if (!node(i)) return false;
        yaml_sequence_end_event_initialize(&ev);
        return emit(ev);
      }
      case Type::mapping: {
        yaml_mapping_start_event_initialize(&ev, nullptr, tag_of(n), n.tag.empty(),
                                            n.map.empty() ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
        if (!emit(ev)) return false;
        for (const auto& [k, v] : n.map) {
          if (!node(Node::scalar(k))) return false;
          if (!node(v)) return false;
        }
        yaml_mapping_end_event_initialize(&ev);
        return emit(ev);
      }
    }
    return false;
  }

  yaml_emitter_t e_;
  std::string out_;
};

}  // namespace detail

// All documents of a YAML stream. `source` names the input in errors.
inline Result<std::vector<Node>> parse_all(std::string_view text, std::string source, Limits lim = {}) {
  if (text.size() > lim.max_bytes)
    return make_error(Exit::data, fmt::format("reading YAML {}", source), fmt::format("larger than {} bytes", lim.max_bytes));
  detail::Parser p(text, std::move(source), lim);
  return p.documents();
}

// Exactly one document (an empty stream gives a null node).
inline Result<Node> parse(std::string_view text, std::string source, Limits lim = {}) {
  auto docs = parse_all(text, source, lim);
  if (!docs) return docs.error();
  if (docs->empty()) return Node{};
  if (docs->size() > 1)
    return make_error(Exit::data, fmt::format("reading YAML {}", source), "expected one document, found several");
  return std::move(docs->front());
}

// Serialises a tree as one block-style YAML document.
inline Result<std::string> emit(const Node& root) {
  detail::Emitter e;
  return e.run(root);
}

}  // namespace kina::yaml
