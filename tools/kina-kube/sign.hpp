// sign.hpp: `sign`: a kubeconfig for a user and groups, with a client
// certificate signed by the cluster CA, for an API server URL checked as kubectl takes it.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/audit.hpp"
#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/invocation.hpp"
#include "kina/fs.hpp"
#include "kina/output.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "kina/yaml.hpp"

#include "ca.hpp"
#include "cluster.hpp"
#include "kubeconfig.hpp"
#include "sweep.hpp"
#include "x509.hpp"

namespace kina::kube {

// An API server URL as kubectl takes it: https://HOST[:PORT][/PATH], HOST an
// IPv4 address, [IPv6] or an RFC 1123 name, PORT 1-65535. Refused: userinfo
// (a password would reach the kubeconfig, the record and the audit log; it is
// never echoed back), a query, a fragment, spaces, quotes, control and
// non-ASCII bytes. `what` names the input; bad input is `exit` (64 for a flag,
// 65 for a stored file).
inline Status validate_server(const std::string& s, std::string_view what = "--server", Exit exit = Exit::usage) {
  auto bad = [&](std::string why) {
    return make_error(exit, fmt::format("invalid {} {}", what, shown(audit::redact_userinfo(s))), std::move(why));
  };
  if (s.rfind("https://", 0) != 0) return bad("expected https://HOST[:PORT][/PATH]");
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '\'' || c == '\\' || c == '<' || c == '>' || c == '`')
      return bad("spaces, quotes, backslashes, control and non-ASCII characters are not allowed");
  }
  std::string_view rest = std::string_view(s).substr(8);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos)
    return bad("must not hold a user name or password (USER:PASSWORD@); credentials go in the kubeconfig's user");
  if (tail.find('?') != std::string_view::npos) return bad("must not have a query (?...)");
  if (tail.find('#') != std::string_view::npos) return bad("must not have a fragment (#...)");
  std::string_view host, port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 address needs its closing ']'");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("expected :PORT after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
    if (auto ip = parse_ip(host); !ip || ip->family != AF_INET6) return bad(fmt::format("{} is not an IPv6 address", shown(host)));
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
      if (port.find(':') != std::string_view::npos) return bad("an IPv6 address must be in brackets: https://[fd00::1]:6443");
    }
    if (host.empty()) return bad("has no host");
    if (!parse_ip(host))
      if (auto st = validate_host_name("host", host, false); !st) return bad(st.error().message());
  }
  if (has_port && !parse_int_flag("port", port, 1, 65535))
    return bad(fmt::format("port {} is not a number from 1 to 65535", shown(port)));
  return {};
}

// The API server of the admin kubeconfig that fetch kept for the cluster.
inline Result<std::string> known_server(const fsys::path& cdir, const std::string& cluster) {
  auto text = read_file(admin_kubeconfig_path(cdir), 16u << 20);
  if (!text) {
    if (text.error().exit == Exit::no_input)
      return make_error(Exit::usage, "no API server known for cluster " + shown(cluster),
                        "give --server https://HOST:PORT (or fetch the admin kubeconfig first: kina-kube fetch)");
    return text.error();
  }
  auto cfg = kubeconfig::parse(*text, admin_kubeconfig_path(cdir).string());
  sodium_memzero(text->data(), text->size());
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);  // the admin's client key
  const yaml::Node* c = kubeconfig::find(*cfg, "clusters", kubeconfig::cluster_entry(cluster));
  if (!c || !c->get_string("server"))
    return make_error(Exit::data, "reading " + admin_kubeconfig_path(cdir).string(), "no server for " + kubeconfig::cluster_entry(cluster));
  std::string server = *c->get_string("server");
  if (auto st = validate_server(server, fmt::format("server in {}", admin_kubeconfig_path(cdir).string()), Exit::data); !st)
    return st.error();
  return server;
}

struct SignArgs {
  std::string cluster, user;
  std::vector<std::string> groups;
  std::string ttl;        // empty: 24h
  std::string server;     // empty: known_server
  std::string algorithm;  // empty: the CA's
  std::string out;        // empty: clusters/C/kubeconfigs/USER.kubeconfig
};

// sign: prints a Kubeconfig record.
inline Status sign(const SignArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  std::vector<Error> problems;
  if (auto st = x509::validate_subject_name("user", a.user); !st) problems.push_back(st.error());
  for (const auto& g : a.groups)
    if (auto st = x509::validate_subject_name("group", g); !st) problems.push_back(st.error());
  if (!a.server.empty())
    if (auto st = validate_server(a.server); !st) problems.push_back(st.error());
  if (!problems.empty()) {
    for (size_t i = 0; i + 1 < problems.size(); ++i) report(kTool, problems[i]);
    return problems.back();
  }
  inv.set_target(a.user);
  auto cdir = cluster_dir(a.cluster, false);
  if (!cdir) return cdir.error();
  auto ca = load_ca(*cdir, a.cluster, "cluster");
  if (!ca) return ca.error();
  auto end = leaf_not_after(a.ttl.empty() ? "24h" : a.ttl, *ca, "cluster");
  if (!end) return end.error();
  std::string server = a.server;
  if (server.empty()) {
    auto s = known_server(*cdir, a.cluster);
    if (!s) return s.error();
    server = *s;
  }
  auto key = leaf_key(a.algorithm, *ca);
  if (!key) return key.error();
  x509::Request req;
  req.cn = a.user;
  req.orgs = a.groups;
  req.usages = x509::usage_client;
  req.not_before_ms = std::max(now_ms() - kBackdateMs, x509::not_before_ms(ca->cert.get()));
  req.not_after_ms = *end;
  auto cert = x509::issue(req, key->get(), ca->cert.get(), ca->key.get());
  if (!cert) return cert.error();
  auto cert_pem = x509::cert_pem(cert->get());
  auto ca_pem = x509::cert_pem(ca->cert.get());
  auto key_pem = x509::private_key_pem(key->get());
  if (!cert_pem) return cert_pem.error();
  if (!ca_pem) return ca_pem.error();
  if (!key_pem) return key_pem.error();
  kubeconfig::Single s;
  s.cluster_name = s.context_name = kubeconfig::cluster_entry(a.cluster);
  s.user_name = kubeconfig::user_entry(a.user, a.cluster);
  s.server = server;
  s.ca_data = to_base64(*ca_pem);
  s.client_cert_data = to_base64(*cert_pem);
  s.client_key_data = to_base64(key_pem->data(), key_pem->size());
  yaml::Node built = kubeconfig::build(s);
  auto text = yaml::emit(built);
  kubeconfig::wipe(built);
  sodium_memzero(s.client_key_data.data(), s.client_key_data.size());
  if (!text) return text.error();
  fsys::path path;
  if (!a.out.empty()) {
    auto p = path_arg("--out", a.out);
    if (!p) return p.error();
    path = *p;
  } else {
    auto lock = lock_cluster(*cdir, "sign");
    if (!lock) return lock.error();
    if (auto st = ensure_dir(*cdir / "kubeconfigs", 0700); !st) return st;
    path = *cdir / "kubeconfigs" / (a.user + ".kubeconfig");
    sweep_write_temps(path);
  }
  inv.set_target(path.string());
  Status st = write_output_file(path, *text, "writing the kubeconfig", 0600, FollowLinks::no, true);
  sodium_memzero(text->data(), text->size());
  if (!st) return st;
  auto w = begin_record("Kubeconfig");
  w.field("cluster", a.cluster).field("user", a.user).string_array("groups", a.groups);
  w.field("context", s.context_name).field("server", server).field("path", path.string());
  w.field("notAfter", format_utc_ms(x509::not_after_ms(cert->get())));
  return print_record(w);
}

}  // namespace kina::kube
