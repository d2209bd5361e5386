// admin_conf.hpp: cleaning the admin.conf that kubeadm wrote on a node, which is
// trusted less than the host: only what kubeadm writes is kept, renamed kina-C
// and pointed at the API server as the host reaches it.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "kina/yaml.hpp"

#include "kubeconfig.hpp"
#include "x509.hpp"

namespace kina::kube {

struct CleanAdmin {
  yaml::Node kubeconfig;  // holds the admin's client key: the caller wipes it
  std::string user;       // the client certificate's CN (else the context's user before '@', else "admin")
  std::vector<std::string> groups;  // its O values
  std::string not_after;            // its end, RFC 3339; empty when unreadable
};

// From a parsed admin.conf (`source` names it): the current context (else the
// first; kubeadm writes exactly one), its cluster and user, turned into a
// kubeconfig of one cluster, context and user named for `cluster`
// (kina-CLUSTER, USER@kina-CLUSTER) with `server` as the API server.
// Only `certificate-authority-data` of the cluster and `client-certificate-data`
// and `client-key-data` of the user are kept: a user's `exec` or
// `auth-provider` (commands kubectl runs), `proxy-url`,
// `insecure-skip-tls-verify`, `tls-server-name` or paths of host files would
// let a compromised node reach into the host. Each field dropped is named in
// `ignored` ("the user's \"exec\"").
inline Result<CleanAdmin> clean_admin_conf(const yaml::Node& cfg, const std::string& source, const std::string& cluster,
                                           const std::string& server, std::vector<std::string>& ignored) {
  std::string ctx_name = kubeconfig::current_context(cfg);
  const yaml::Node* ctx = ctx_name.empty() ? nullptr : kubeconfig::find(cfg, "contexts", ctx_name);
  if (!ctx) {
    const yaml::Node* l = cfg.get("contexts");
    if (l && l->is_seq() && !l->items.empty()) ctx = l->items.front().get("context");
  }
  if (!ctx) return make_error(Exit::data, "reading " + source, "no context");
  const yaml::Node* cl = kubeconfig::find(cfg, "clusters", ctx->get_string("cluster").value_or(""));
  std::string old_user = ctx->get_string("user").value_or("");
  const yaml::Node* us = kubeconfig::find(cfg, "users", old_user);
  if (!cl || !us) return make_error(Exit::data, "reading " + source, "the current context names a missing cluster or user");

  CleanAdmin out;
  out.user = old_user.substr(0, old_user.find('@'));
  if (auto data = us->get_string("client-certificate-data")) {
    if (auto pem = from_base64(*data)) {
      if (auto cert = x509::parse_cert(std::string_view(reinterpret_cast<const char*>(pem->data()), pem->size()), source)) {
        auto cns = x509::subject_values(cert->get(), NID_commonName);
        if (!cns.empty() && x509::validate_subject_name("user", cns.front())) out.user = cns.front();
        out.groups = x509::subject_values(cert->get(), NID_organizationName);
        out.not_after = format_utc_ms(x509::not_after_ms(cert->get()));
      }
    }
  }
  if (!x509::validate_subject_name("user", out.user)) out.user = "admin";

  auto pick = [&](const yaml::Node& body, std::initializer_list<std::string_view> keep,
                  std::initializer_list<std::string_view> need, std::string_view what) -> Result<yaml::Node> {
    yaml::Node picked = yaml::Node::mapping();
    std::string dropped;
    for (const auto& [k, v] : body.map) {
      if (std::find(keep.begin(), keep.end(), k) != keep.end()) picked.set(k, v);
      else dropped += (dropped.empty() ? "" : ", ") + shown(k);
    }
    for (auto k : need)
      if (!picked.get_string(k))
        return make_error(Exit::data, "reading " + source, fmt::format("the {} has no {}", what, k));
    if (!dropped.empty()) ignored.push_back(fmt::format("the {}'s {}", what, dropped));
    return picked;
  };
  auto cluster_body = pick(*cl, {"certificate-authority-data", "server"}, {"certificate-authority-data"}, "cluster");
  if (!cluster_body) return cluster_body.error();
  cluster_body->set("server", yaml::Node::scalar(server));
  auto user_body = pick(*us, {"client-certificate-data", "client-key-data"}, {"client-certificate-data", "client-key-data"}, "user");
  if (!user_body) return user_body.error();
  kubeconfig::WipeOnExit wipe_user(*user_body);  // what is left of it once moved
  auto entry = [](const std::string& name, std::string_view key, yaml::Node body) {
    yaml::Node e = yaml::Node::mapping();
    e.set("name", yaml::Node::scalar(name));
    e.set(std::string(key), std::move(body));
    yaml::Node l = yaml::Node::sequence();
    l.items.push_back(std::move(e));
    return l;
  };
  std::string name = kubeconfig::cluster_entry(cluster), uname = kubeconfig::user_entry(out.user, cluster);
  yaml::Node c = yaml::Node::mapping();
  c.set("cluster", yaml::Node::scalar(name));
  c.set("user", yaml::Node::scalar(uname));
  yaml::Node& result = out.kubeconfig = yaml::Node::mapping();
  result.set("apiVersion", yaml::Node::scalar("v1"));
  result.set("kind", yaml::Node::scalar("Config"));
  result.set("clusters", entry(name, "cluster", std::move(*cluster_body)));
  result.set("contexts", entry(name, "context", std::move(c)));
  result.set("current-context", yaml::Node::scalar(name));
  result.set("preferences", yaml::Node::mapping());
  result.set("users", entry(uname, "user", std::move(*user_body)));
  return out;
}

}  // namespace kina::kube
