// kubeconfig.hpp: kubectl's config file (kind: Config, v1) as a YAML tree: read
// and check its shape, build one for a cluster, merge entries by name and remove
// them again, keeping every other entry and field as it was.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/error.hpp"
#include "kina/yaml.hpp"

namespace kina::kubeconfig {

using yaml::Node;

// The three named lists and the key of each entry's body.
struct Section {
  std::string_view list, body;
};
inline constexpr Section kSections[] = {{"clusters", "cluster"}, {"users", "user"}, {"contexts", "context"}};

// Reads a kubeconfig. An empty file is an empty config. The shape kubectl
// relies on is checked (a mapping; clusters/users/contexts lists of mappings
// with a string name; current-context a string); anything else is kept as is.
inline Result<Node> parse(std::string_view text, const std::string& source) {
  yaml::Limits lim;
  lim.max_bytes = 16u << 20;
  lim.max_nodes = 200'000;
  lim.max_alias_bytes = 16u << 20;
  auto doc = yaml::parse(text, source, lim);
  if (!doc) return doc.error();
  Node n = std::move(*doc);
  if (n.is_null()) return Node::mapping();
  auto bad = [&](const Node& at, std::string why) {
    return make_error(Exit::data, fmt::format("reading kubeconfig {}", source),
                      fmt::format("line {} column {}: {}", at.line, at.column, std::move(why)));
  };
  if (!n.is_map()) return bad(n, "not a mapping (expected kind: Config)");
  if (const Node* k = n.get("kind"); k && !k->is_null() && (!k->is_scalar() || k->value != "Config"))
    return bad(*k, "kind is not Config");
  if (const Node* c = n.get("current-context"); c && !c->is_null() && !c->is_scalar())
    return bad(*c, "current-context is not a string");
  for (const auto& sec : kSections) {
    const Node* list = n.get(sec.list);
    if (!list || list->is_null()) continue;
    if (!list->is_seq()) return bad(*list, fmt::format("{} is not a list", sec.list));
    for (const Node& item : list->items) {
      if (!item.is_map()) return bad(item, fmt::format("an entry of {} is not a mapping", sec.list));
      const Node* name = item.get("name");
      if (!name || !name->is_scalar() || name->value.empty())
        return bad(item, fmt::format("an entry of {} has no name", sec.list));
      if (const Node* body = item.get(sec.body); body && !body->is_null() && !body->is_map())
        return bad(*body, fmt::format("{} \"{}\" is not a mapping", sec.body, name->value));
    }
  }
  return n;
}

// Overwrites every string of a tree (values, tags, keys) with zeros and empties
// it (the shape stays): kubeconfigs carry private keys (client-key-data) and
// tokens, which must not linger in freed memory.
inline void wipe(Node& n) {
  auto zero = [](std::string& s) {
    if (!s.empty()) sodium_memzero(s.data(), s.size());
    s.clear();
  };
  zero(n.value);
  zero(n.tag);
  for (Node& i : n.items) wipe(i);
  for (auto& kv : n.map) {
    zero(kv.first);
    wipe(kv.second);
  }
}

// Wipes a tree when the scope ends, however it ends.
class WipeOnExit {
 public:
  explicit WipeOnExit(Node& n) : n_(n) {}
  ~WipeOnExit() { wipe(n_); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  Node& n_;
};

// Reads a kubeconfig to merge into another: parse()'s checks, and it must hold
// at least one cluster, user or context. An empty file, or YAML that is no
// kubeconfig at all (a manifest, a values file), is bad data: merging it would
// do nothing and say nothing.
inline Result<Node> parse_incoming(std::string_view text, const std::string& source) {
  auto cfg = parse(text, source);
  if (!cfg) return cfg;
  for (const auto& sec : kSections)
    if (const Node* l = cfg->get(sec.list); l && l->is_seq() && !l->items.empty()) return cfg;
  wipe(*cfg);
  return make_error(Exit::data, fmt::format("reading kubeconfig {}", source),
                    text.find_first_not_of(" \t\r\n") == std::string_view::npos
                        ? "the file is empty"
                        : "holds no clusters, users or contexts (not a kubeconfig)");
}

inline std::string entry_name(const Node& item) {
  const Node* n = item.get("name");
  return n && n->is_scalar() ? n->value : std::string();
}

// The body (the `cluster:`/`user:`/`context:` mapping) of the named entry.
inline const Node* find(const Node& cfg, std::string_view list, std::string_view name) {
  const Node* l = cfg.get(list);
  if (!l || !l->is_seq()) return nullptr;
  for (const Node& item : l->items)
    if (entry_name(item) == name) {
      for (const auto& sec : kSections)
        if (sec.list == list) return item.get(sec.body);
    }
  return nullptr;
}

inline std::string current_context(const Node& cfg) { return cfg.get_string("current-context").value_or(""); }

// Adds kubeconfig boilerplate to a config that lacks it.
inline void ensure_header(Node& cfg) {
  if (!cfg.get("apiVersion")) cfg.set("apiVersion", Node::scalar("v1"));
  if (!cfg.get("kind")) cfg.set("kind", Node::scalar("Config"));
  for (const auto& sec : kSections) {
    Node* l = cfg.get(sec.list);
    if (!l || l->is_null()) cfg.set(std::string(sec.list), Node::sequence());
  }
}

// Puts every entry of `src` into `dst`: an entry of the same name is replaced
// where it stands (later duplicates of it dropped), new ones are appended.
// current-context becomes src's when src has one. Everything else in dst stays.
inline void merge(Node& dst, const Node& src) {
  ensure_header(dst);
  for (const auto& sec : kSections) {
    const Node* from = src.get(sec.list);
    if (!from || !from->is_seq()) continue;
    Node& to = *dst.get(sec.list);
    for (const Node& item : from->items) {
      std::string name = entry_name(item);
      bool placed = false;
      std::vector<Node> kept;
      kept.reserve(to.items.size() + 1);
      for (Node& old : to.items) {
        if (entry_name(old) != name) {
          kept.push_back(std::move(old));
          continue;
        }
        if (!placed) {
          kept.push_back(item);
          placed = true;
        }
        wipe(old);  // the entry replaced (a user's key, say)
      }
      if (!placed) kept.push_back(item);
      to.items = std::move(kept);
    }
  }
  if (auto cur = src.get_string("current-context"); cur && !cur->empty())
    dst.set("current-context", Node::scalar(*cur));
}

// kina's names for cluster C: cluster and context kina-C, users U@kina-C.
inline std::string cluster_entry(std::string_view cluster) { return fmt::format("kina-{}", cluster); }
inline std::string user_entry(std::string_view user, std::string_view cluster) {
  return fmt::format("{}@kina-{}", user, cluster);
}

// Removes kina's entries for cluster C and nothing else: the cluster and
// context named kina-C and the users named *@kina-C. A current-context of
// kina-C becomes `previous` (when that context still exists) or is removed.
// Returns how many entries went.
inline size_t unmerge(Node& cfg, std::string_view cluster, std::string_view previous = {}) {
  std::string mine = cluster_entry(cluster);
  std::string user_suffix = "@" + mine;
  size_t removed = 0;
  for (const auto& sec : kSections) {
    Node* l = cfg.get(sec.list);
    if (!l || !l->is_seq()) continue;
    std::vector<Node> kept;
    for (Node& item : l->items) {
      std::string name = entry_name(item);
      bool ours = sec.list == "users" ? (name.size() > user_suffix.size() &&
                                         name.compare(name.size() - user_suffix.size(), user_suffix.size(), user_suffix) == 0)
                                      : name == mine;
      if (ours) {
        ++removed;
        wipe(item);
      } else {
        kept.push_back(std::move(item));
      }
    }
    l->items = std::move(kept);
  }
  if (current_context(cfg) == mine) {
    if (!previous.empty() && previous != mine && find(cfg, "contexts", previous)) {
      cfg.set("current-context", Node::scalar(std::string(previous)));
    } else {
      cfg.erase("current-context");
    }
  }
  return removed;
}

// A kubeconfig for one cluster and one user, certificates embedded as *-data
// (values already base64). Context and cluster share a name.
struct Single {
  std::string cluster_name, user_name, context_name;
  std::string server;
  std::string ca_data;                    // base64 of the CA PEM
  std::string client_cert_data;           // base64 of the client certificate PEM
  std::string client_key_data;            // base64 of the client key PEM (secret)
};

inline Node build(const Single& s) {
  Node cfg = Node::mapping();
  cfg.set("apiVersion", Node::scalar("v1"));
  cfg.set("kind", Node::scalar("Config"));
  Node cluster = Node::mapping();
  cluster.set("certificate-authority-data", Node::scalar(s.ca_data));
  cluster.set("server", Node::scalar(s.server));
  Node ce = Node::mapping();
  ce.set("name", Node::scalar(s.cluster_name));
  ce.set("cluster", std::move(cluster));
  Node clusters = Node::sequence();
  clusters.items.push_back(std::move(ce));
  cfg.set("clusters", std::move(clusters));
  Node ctx = Node::mapping();
  ctx.set("cluster", Node::scalar(s.cluster_name));
  ctx.set("user", Node::scalar(s.user_name));
  Node xe = Node::mapping();
  xe.set("name", Node::scalar(s.context_name));
  xe.set("context", std::move(ctx));
  Node contexts = Node::sequence();
  contexts.items.push_back(std::move(xe));
  cfg.set("contexts", std::move(contexts));
  cfg.set("current-context", Node::scalar(s.context_name));
  cfg.set("preferences", Node::mapping());
  Node user = Node::mapping();
  user.set("client-certificate-data", Node::scalar(s.client_cert_data));
  user.set("client-key-data", Node::scalar(s.client_key_data));
  Node ue = Node::mapping();
  ue.set("name", Node::scalar(s.user_name));
  ue.set("user", std::move(user));
  Node users = Node::sequence();
  users.items.push_back(std::move(ue));
  cfg.set("users", std::move(users));
  return cfg;
}

}  // namespace kina::kubeconfig
