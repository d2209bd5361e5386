#define BOOST_TEST_MODULE kube_token
#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

#include "sign.hpp"
#include "token.hpp"

using namespace kina;
using namespace kina::kube;

BOOST_AUTO_TEST_CASE(the_bootstrap_token_shape) {
  BOOST_TEST(is_bootstrap_token("abcdef.0123456789abcdef"));
  BOOST_TEST(is_bootstrap_token("a1b2c3.zzzzzzzzzzzzzzzz"));
  for (const char* bad : {"", "abcdef0123456789abcdef", "abcdef.0123456789abcde", "abcdef.0123456789abcdef0",
                          "Abcdef.0123456789abcdef", "abcdef.0123456789abcdeF", "abcde.f0123456789abcdef",
                          "abcdef-0123456789abcdef", "abcdef.01234567.9abcdef", "abc def.0123456789abcdef"})
    BOOST_TEST(!is_bootstrap_token(bad), bad);
}

// kubeadm refuses anything else: every token made has the shape, the ID and
// secret vary, and both letters and digits turn up.
BOOST_AUTO_TEST_CASE(made_tokens_have_the_shape_and_differ) {
  std::set<std::string> ids, tokens;
  bool digit = false, letter = false;
  for (int i = 0; i < 500; ++i) {
    Secret t = make_bootstrap_token();
    std::string s(t.view());
    BOOST_REQUIRE_MESSAGE(is_bootstrap_token(s), s);
    ids.insert(s.substr(0, 6));
    tokens.insert(s);
    for (char c : s) digit |= c >= '0' && c <= '9', letter |= c >= 'a' && c <= 'z';
  }
  BOOST_TEST(tokens.size() == 500u);
  BOOST_TEST(ids.size() > 490u);
  BOOST_TEST(digit);
  BOOST_TEST(letter);
}

// sign --server: what kubectl takes and nothing that would leak or mislead.
BOOST_AUTO_TEST_CASE(server_urls) {
  for (const char* ok : {"https://127.0.0.1:6443", "https://[fd00::1]:6443", "https://api.example.com",
                         "https://api.example.com:443/k8s/", "https://[::1]"})
    BOOST_TEST(validate_server(ok).ok(), ok);
  for (const char* bad : {"http://127.0.0.1:6443", "https://127.0.0.1:65536", "https://127.0.0.1:0", "https://:6443",
                          "https://u:pw@host:6443", "https://host/?a=b", "https://host/#x", "https://fd00::1:6443",
                          "https://[fd00::1", "https://[1.2.3.4]:1", "https://host:6443 x", "https://ho\"st",
                          "https://-bad-.example"})
    BOOST_TEST(!validate_server(bad).ok(), bad);
  // The password is never echoed back.
  auto e = validate_server("https://u:secretpw@host:6443");
  BOOST_REQUIRE(!e.ok());
  BOOST_TEST(e.error().message().find("secretpw") == std::string::npos);
  BOOST_TEST((e.error().exit == Exit::usage));
  BOOST_TEST((validate_server("ftp://x", "server in f", Exit::data).error().exit == Exit::data));
}
