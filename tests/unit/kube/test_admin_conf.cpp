#define BOOST_TEST_MODULE kube_admin_conf
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "admin_conf.hpp"
#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kubeconfig.hpp"
#include "x509.hpp"

using namespace kina;
using namespace kina::kube;

namespace {

// A client certificate as kubeadm makes admin.conf's, base64 as in a kubeconfig.
std::string client_cert_data(const std::string& cn, const std::vector<std::string>& orgs) {
  auto key = x509::generate_key(x509::Algorithm::ecdsa_p256);
  BOOST_REQUIRE(key.ok());
  x509::Request req;
  req.cn = cn;
  req.orgs = orgs;
  req.usages = x509::usage_client;
  req.not_before_ms = now_ms() - 60000;
  req.not_after_ms = 1893456000000;  // 2030-01-01
  auto cert = x509::issue(req, key->get(), nullptr, key->get());
  BOOST_REQUIRE(cert.ok());
  auto pem = x509::cert_pem(cert->get());
  BOOST_REQUIRE(pem.ok());
  return to_base64(*pem);
}

// kubeadm's admin.conf, with what a hostile node could add.
std::string admin_conf(const std::string& cert_data, const std::string& user_extra = "", const std::string& cluster_extra = "") {
  return "apiVersion: v1\n"
         "kind: Config\n"
         "clusters:\n"
         "- name: other\n"
         "  cluster:\n"
         "    certificate-authority-data: T1RIRVI=\n"
         "    server: https://other:6443\n"
         "- name: kubernetes\n"
         "  cluster:\n"
         "    certificate-authority-data: Q0E=\n"
         "    server: https://10.0.0.5:6443\n" +
         cluster_extra +
         "contexts:\n"
         "- name: other\n"
         "  context: {cluster: other, user: other}\n"
         "- name: kubernetes-admin@kubernetes\n"
         "  context:\n"
         "    cluster: kubernetes\n"
         "    user: kubernetes-admin\n"
         "current-context: kubernetes-admin@kubernetes\n"
         "users:\n"
         "- name: other\n"
         "  user: {token: t}\n"
         "- name: kubernetes-admin\n"
         "  user:\n"
         "    client-certificate-data: " + cert_data + "\n"
         "    client-key-data: S0VZ\n" +
         user_extra;
}

CleanAdmin clean_ok(const std::string& text, std::vector<std::string>& ignored) {
  auto cfg = kubeconfig::parse(text, "cp1:/etc/kubernetes/admin.conf");
  BOOST_REQUIRE_MESSAGE(cfg.ok(), (cfg ? std::string() : cfg.error().message()));
  auto r = clean_admin_conf(*cfg, "cp1:/etc/kubernetes/admin.conf", "c1", "https://127.0.0.1:40001", ignored);
  BOOST_REQUIRE_MESSAGE(r.ok(), (r ? std::string() : r.error().message()));
  return std::move(*r);
}

}  // namespace

BOOST_AUTO_TEST_CASE(keeps_only_the_current_context_renamed_for_the_cluster) {
  std::vector<std::string> ignored;
  auto a = clean_ok(admin_conf(client_cert_data("kubernetes-admin", {"system:masters"})), ignored);
  const yaml::Node& k = a.kubeconfig;
  BOOST_TEST(kubeconfig::current_context(k) == "kina-c1");
  BOOST_TEST(k.get("clusters")->items.size() == 1u);
  BOOST_TEST(k.get("users")->items.size() == 1u);
  BOOST_TEST(k.get("contexts")->items.size() == 1u);
  const yaml::Node* cl = kubeconfig::find(k, "clusters", "kina-c1");
  BOOST_REQUIRE(cl);
  BOOST_TEST(*cl->get_string("server") == "https://127.0.0.1:40001");  // the host's endpoint, not the node's
  BOOST_TEST(*cl->get_string("certificate-authority-data") == "Q0E=");
  const yaml::Node* us = kubeconfig::find(k, "users", "kubernetes-admin@kina-c1");
  BOOST_REQUIRE(us);
  BOOST_TEST(*us->get_string("client-key-data") == "S0VZ");
  const yaml::Node* ctx = kubeconfig::find(k, "contexts", "kina-c1");
  BOOST_REQUIRE(ctx);
  BOOST_TEST(*ctx->get_string("user") == "kubernetes-admin@kina-c1");
  BOOST_TEST(a.user == "kubernetes-admin");
  BOOST_TEST(a.groups == std::vector<std::string>{"system:masters"});
  BOOST_TEST(a.not_after == "2030-01-01T00:00:00.000Z");
  BOOST_TEST(ignored.empty());
  // What it built reads back as a kubeconfig.
  auto text = yaml::emit(k);
  BOOST_REQUIRE(text.ok());
  BOOST_TEST(kubeconfig::parse(*text, "emitted").ok());
}

BOOST_AUTO_TEST_CASE(drops_what_would_let_a_node_reach_into_the_host) {
  std::vector<std::string> ignored;
  auto a = clean_ok(admin_conf(client_cert_data("kubernetes-admin", {}),
                               "    exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}\n"
                               "    client-certificate: /etc/shadow\n",
                               "    insecure-skip-tls-verify: true\n"
                               "    proxy-url: http://evil:3128\n"
                               "    tls-server-name: evil\n"),
                    ignored);
  auto text = yaml::emit(a.kubeconfig);
  BOOST_REQUIRE(text.ok());
  for (const char* bad : {"exec", "/bin/sh", "shadow", "insecure", "proxy-url", "evil", "other"})
    BOOST_TEST(text->find(bad) == std::string::npos, bad);
  BOOST_REQUIRE(ignored.size() == 2u);
  BOOST_TEST(ignored[0] == "the cluster's \"insecure-skip-tls-verify\", \"proxy-url\", \"tls-server-name\"");
  BOOST_TEST(ignored[1] == "the user's \"exec\", \"client-certificate\"");
}

BOOST_AUTO_TEST_CASE(the_user_comes_from_the_certificate_else_the_name_else_admin) {
  std::vector<std::string> ignored;
  auto a = clean_ok(admin_conf(client_cert_data("alice", {"g1", "g2"})), ignored);
  BOOST_TEST(a.user == "alice");
  BOOST_TEST(a.groups == (std::vector<std::string>{"g1", "g2"}));
  BOOST_TEST(kubeconfig::find(a.kubeconfig, "users", "alice@kina-c1"));
  // An unreadable certificate: the context's user name before '@'.
  auto b = clean_ok(admin_conf("bm90IGEgY2VydA=="), ignored);
  BOOST_TEST(b.user == "kubernetes-admin");
  BOOST_TEST(b.not_after.empty());
  BOOST_TEST(b.groups.empty());
}

BOOST_AUTO_TEST_CASE(no_current_context_takes_the_first) {
  std::string text = admin_conf(client_cert_data("kubernetes-admin", {}));
  text.replace(text.find("current-context: kubernetes-admin@kubernetes\n"), 45, "");
  auto cfg = kubeconfig::parse(text, "src");
  BOOST_REQUIRE(cfg.ok());
  std::vector<std::string> ignored;
  // The first context is "other", whose user has a token and no client certificate.
  auto r = clean_admin_conf(*cfg, "src", "c1", "https://127.0.0.1:1", ignored);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.error().message() == "reading src: the user has no client-certificate-data");
  BOOST_TEST(ignored.empty());  // a part refused is not also reported as trimmed
}

BOOST_AUTO_TEST_CASE(missing_pieces_are_bad_data) {
  std::vector<std::string> ignored;
  auto run = [&](const std::string& text) {
    auto cfg = kubeconfig::parse(text, "src");
    BOOST_REQUIRE(cfg.ok());
    return clean_admin_conf(*cfg, "src", "c1", "https://127.0.0.1:1", ignored);
  };
  auto no_ctx = run("apiVersion: v1\nkind: Config\n");
  BOOST_REQUIRE(!no_ctx.ok());
  BOOST_TEST((no_ctx.error().exit == Exit::data));
  BOOST_TEST(no_ctx.error().message() == "reading src: no context");
  std::string good = admin_conf(client_cert_data("kubernetes-admin", {}));
  std::string no_user = good;
  no_user.replace(no_user.find("    user: kubernetes-admin\n"), 27, "    user: nobody\n");
  auto e1 = run(no_user);
  BOOST_REQUIRE(!e1.ok());
  BOOST_TEST(e1.error().message().find("names a missing cluster or user") != std::string::npos);
  std::string no_key = good;
  no_key.replace(no_key.find("    client-key-data: S0VZ\n"), 26, "");
  auto e2 = run(no_key);
  BOOST_REQUIRE(!e2.ok());
  BOOST_TEST(e2.error().message() == "reading src: the user has no client-key-data");
  std::string no_ca = good;
  no_ca.replace(no_ca.find("    certificate-authority-data: Q0E=\n"), 37, "");
  auto e3 = run(no_ca);
  BOOST_REQUIRE(!e3.ok());
  BOOST_TEST(e3.error().message() == "reading src: the cluster has no certificate-authority-data");
}
