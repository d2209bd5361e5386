#define BOOST_TEST_MODULE x509
#include <boost/test/unit_test.hpp>

#include "kina/clock.hpp"
#include "x509.hpp"

using namespace kina;

namespace {

struct Ca {
  x509::Key key;
  x509::Cert cert;
};

Ca make_ca(x509::Algorithm a, const std::string& cn) {
  auto key = x509::generate_key(a);
  BOOST_REQUIRE(key.ok());
  x509::Request r;
  r.cn = cn;
  r.is_ca = true;
  r.not_before_ms = now_ms();
  r.not_after_ms = now_ms() + 86400LL * 1000 * 365;
  auto cert = x509::issue(r, key->get(), nullptr, key->get());
  BOOST_REQUIRE_MESSAGE(cert.ok(), (cert ? std::string() : cert.error().message()));
  return Ca{std::move(*key), std::move(*cert)};
}

bool has_ext_text(X509* c, int nid, const std::string& want) {
  int idx = X509_get_ext_by_NID(c, nid, -1);
  if (idx < 0) return false;
  x509::Bio b(BIO_new(BIO_s_mem()));
  X509V3_EXT_print(b.get(), X509_get_ext(c, idx), 0, 0);
  return x509::bio_string(b.get()).find(want) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(algorithms_parse) {
  BOOST_TEST(x509::parse_algorithm("ecdsa-p256").ok());
  BOOST_TEST(x509::parse_algorithm("rsa-2048").ok());
  auto bad = x509::parse_algorithm("dsa-1024");
  BOOST_TEST(!bad.ok());
  BOOST_TEST(bad.error().message() == "unknown algorithm \"dsa-1024\": use ecdsa-p256 or rsa-2048");
}

BOOST_AUTO_TEST_CASE(ca_and_leaf_for_both_algorithms) {
  for (auto a : {x509::Algorithm::ecdsa_p256, x509::Algorithm::rsa_2048}) {
    Ca ca = make_ca(a, "kubernetes");
    BOOST_TEST(x509::subject(ca.cert.get()) == "CN=kubernetes");
    BOOST_TEST(X509_check_ca(ca.cert.get()) >= 1);
    BOOST_TEST((*x509::key_algorithm(ca.key.get()) == a));
    auto leaf_key = x509::generate_key(a);
    BOOST_REQUIRE(leaf_key.ok());
    x509::Request r;
    r.cn = "alice";
    r.orgs = {"dev", "ops"};
    r.usages = x509::usage_client;
    r.sans = {*x509::parse_san("example.test"), *x509::parse_san("10.0.0.1"), *x509::parse_san("fd00::1")};
    r.not_before_ms = now_ms();
    r.not_after_ms = now_ms() + 3600 * 1000;
    auto leaf = x509::issue(r, leaf_key->get(), ca.cert.get(), ca.key.get());
    BOOST_REQUIRE(leaf.ok());
    BOOST_TEST(x509::issued_by(leaf->get(), ca.cert.get()));
    BOOST_TEST(X509_check_ca(leaf->get()) == 0);
    BOOST_TEST(x509::subject_values(leaf->get(), NID_commonName) == std::vector<std::string>{"alice"});
    BOOST_TEST((x509::subject_values(leaf->get(), NID_organizationName) == std::vector<std::string>{"dev", "ops"}));
    BOOST_TEST(has_ext_text(leaf->get(), NID_ext_key_usage, "TLS Web Client Authentication"));
    BOOST_TEST(!has_ext_text(leaf->get(), NID_ext_key_usage, "Server"));
    BOOST_TEST(has_ext_text(leaf->get(), NID_subject_alt_name, "DNS:example.test"));
    BOOST_TEST(has_ext_text(leaf->get(), NID_subject_alt_name, "IP Address:10.0.0.1"));
    BOOST_TEST(has_ext_text(leaf->get(), NID_subject_alt_name, "IP Address:FD00:0:0:0:0:0:0:1"));
    BOOST_TEST(has_ext_text(leaf->get(), NID_key_usage, "Digital Signature"));
    // The validity is what was asked, to the second.
    BOOST_TEST(x509::not_after_ms(leaf->get()) / 1000 == r.not_after_ms / 1000);
    // Another CA did not issue it.
    Ca other = make_ca(a, "other");
    BOOST_TEST(!x509::issued_by(leaf->get(), other.cert.get()));
  }
}

BOOST_AUTO_TEST_CASE(pem_round_trip) {
  Ca ca = make_ca(x509::Algorithm::ecdsa_p256, "etcd-ca");
  auto pem = x509::cert_pem(ca.cert.get());
  BOOST_REQUIRE(pem.ok());
  auto back = x509::parse_cert(*pem, "test");
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(x509::fingerprint_sha256(back->get()) == x509::fingerprint_sha256(ca.cert.get()));
  auto kpem = x509::private_key_pem(ca.key.get());
  BOOST_REQUIRE(kpem.ok());
  BOOST_TEST(kpem->view().find("-----BEGIN EC PRIVATE KEY-----") == 0);  // SEC1, as kubeadm writes it
  Ca rsa = make_ca(x509::Algorithm::rsa_2048, "kubernetes");
  auto rpem = x509::private_key_pem(rsa.key.get());
  BOOST_REQUIRE(rpem.ok());
  BOOST_TEST(rpem->view().find("-----BEGIN RSA PRIVATE KEY-----") == 0);  // PKCS#1
  auto rback = x509::parse_private_key(rpem->view(), "test");
  BOOST_REQUIRE(rback.ok());
  BOOST_TEST(EVP_PKEY_eq(rback->get(), rsa.key.get()) == 1);
  auto kback = x509::parse_private_key(kpem->view(), "test");
  BOOST_REQUIRE(kback.ok());
  BOOST_TEST(EVP_PKEY_eq(kback->get(), ca.key.get()) == 1);
  BOOST_TEST(!x509::parse_cert("not a pem", "junk").ok());
  BOOST_TEST((x509::parse_cert("not a pem", "junk").error().exit == Exit::data));
}

BOOST_AUTO_TEST_CASE(spki_hash_is_sha256_of_der_spki) {
  for (auto a : {x509::Algorithm::ecdsa_p256, x509::Algorithm::rsa_2048}) {
    Ca ca = make_ca(a, "kubernetes");
    unsigned char* der = nullptr;
    int n = i2d_PUBKEY(ca.key.get(), &der);
    BOOST_REQUIRE(n > 0);
    std::string want = "sha256:" + to_hex(sha256(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(n))));
    OPENSSL_free(der);
    BOOST_TEST(x509::spki_hash(ca.cert.get()) == want);
  }
}

BOOST_AUTO_TEST_CASE(subject_names) {
  for (const char* good : {"alice", "system:masters", "alice@example.com", "kube-etcd-peer", "a.b_c"})
    BOOST_TEST(x509::validate_subject_name("user", good).ok(), good);
  for (const char* bad : {"", "a/b", "a,b", "a+b", "a=b", "a\\b", "a\"b", "a'b", "a b", "a\nb", "a;b", "a<b", "#a",
                          "\xc3\xa9"})
    BOOST_TEST(!x509::validate_subject_name("user", bad).ok(), bad);
  BOOST_TEST(!x509::validate_subject_name("user", std::string(65, 'a')).ok());
  BOOST_TEST(x509::validate_subject_name("user", std::string(64, 'a')).ok());
  BOOST_TEST(x509::validate_subject_name("group", "x,y").error().message() ==
             "invalid group \"x,y\": ',' cannot go into a certificate subject safely (use letters, digits and . _ @ : -)");
  BOOST_TEST(x509::validate_subject_name("user", "a\x01").error().why.find("byte 0x01") == 0);
}

BOOST_AUTO_TEST_CASE(sans_and_usages) {
  BOOST_TEST(x509::parse_san("*.example.test").ok());
  BOOST_TEST((x509::parse_san("127.0.0.1")->type == x509::San::Type::ip));
  BOOST_TEST(x509::parse_san("Kubernetes.Default")->value == "kubernetes.default");
  for (const char* bad : {"", "a..b", "-a.b", "a_b", "a,b", "DNS:x", "a b", "1.2.3.4/24"})
    BOOST_TEST(!x509::parse_san(bad).ok(), bad);
  BOOST_TEST(*x509::parse_usage("peer") == (x509::usage_server | x509::usage_client));
  BOOST_TEST(!x509::parse_usage("admin").ok());
}

// Regression: a notAfter past 9999-12-31 was encoded as an invalid time.
BOOST_AUTO_TEST_CASE(validity_bounds) {
  auto key = x509::generate_key(x509::Algorithm::ecdsa_p256);
  BOOST_REQUIRE(key.ok());
  x509::Request r;
  r.cn = "ca";
  r.is_ca = true;
  r.not_before_ms = now_ms();
  r.not_after_ms = x509::kMaxTimeMs + 1000;
  BOOST_TEST(!x509::issue(r, key->get(), nullptr, key->get()).ok());
  r.not_after_ms = r.not_before_ms;
  BOOST_TEST(!x509::issue(r, key->get(), nullptr, key->get()).ok());
  r.not_after_ms = x509::kMaxTimeMs;
  auto cert = x509::issue(r, key->get(), nullptr, key->get());
  BOOST_REQUIRE(cert.ok());
  BOOST_TEST(x509::not_after_ms(cert->get()) == x509::kMaxTimeMs);
}
