#define BOOST_TEST_MODULE image_reference
#include <boost/test/unit_test.hpp>

#include "digest.hpp"
#include "reference.hpp"

using namespace kina;
using namespace kina::image;

static const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

BOOST_AUTO_TEST_CASE(digest_syntax) {
  BOOST_TEST(Digest::valid("sha256:" + kHex));
  BOOST_TEST(Digest::parse("sha256:" + kHex)->hex() == kHex);
  BOOST_TEST(!Digest::valid("sha256:" + kHex.substr(1)));          // 63 digits
  BOOST_TEST(!Digest::valid("sha256:" + kHex + "0"));              // 65 digits
  BOOST_TEST(!Digest::valid("SHA256:" + kHex));
  BOOST_TEST(!Digest::valid("sha512:" + kHex + kHex));
  BOOST_TEST(!Digest::valid("sha256:" + std::string(62, 'a') + "/."));
  BOOST_TEST(!Digest::valid("sha256:../../../../etc/passwd" + std::string(37, 'a')));
  BOOST_TEST(!Digest::valid("sha256:" + std::string(63, 'a') + "A"));
  BOOST_TEST(!Digest::valid(kHex));
  BOOST_TEST(!Digest::valid(""));
  auto e = Digest::parse("md5:abc");
  BOOST_TEST((e.error().exit == Exit::data));
  BOOST_TEST(e.error().why == "unsupported algorithm \"md5\" (only sha256)");
  BOOST_TEST(Digest::of_data("").str() == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

struct Case {
  std::string in, domain, path, tag, digest, host;
};

BOOST_AUTO_TEST_CASE(reference_grammar) {
  std::string d = "sha256:" + kHex;
  std::vector<Case> cases = {
      {"alpine", "docker.io", "library/alpine", "latest", "", "registry-1.docker.io"},
      {"alpine:3.20", "docker.io", "library/alpine", "3.20", "", "registry-1.docker.io"},
      {"docker.io/library/alpine:3.20", "docker.io", "library/alpine", "3.20", "", "registry-1.docker.io"},
      {"index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", "", "registry-1.docker.io"},
      {"kindest/node:v1.31.0", "docker.io", "kindest/node", "v1.31.0", "", "registry-1.docker.io"},
      {"localhost/foo", "localhost", "foo", "latest", "", "localhost"},
      {"localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", "", "localhost:5000"},
      {"127.0.0.1:5000/a/b@" + d, "127.0.0.1:5000", "a/b", "", d, "127.0.0.1:5000"},
      {"host:5000/a/b:t@" + d, "host:5000", "a/b", "t", d, "host:5000"},
      {"ghcr.io/o/r/s", "ghcr.io", "o/r/s", "latest", "", "ghcr.io"},
      {"Registry/foo", "Registry", "foo", "latest", "", "Registry"},
      {"[::1]:5000/foo", "[::1]:5000", "foo", "latest", "", "[::1]:5000"},
      {"a__b/c-d--e.f_g", "docker.io", "a__b/c-d--e.f_g", "latest", "", "registry-1.docker.io"},
  };
  for (const auto& c : cases) {
    auto r = parse_reference(c.in);
    BOOST_TEST_REQUIRE(r.ok(), c.in << ": " << (r ? "" : r.error().message()));
    BOOST_TEST(r->domain == c.domain, c.in);
    BOOST_TEST(r->path == c.path, c.in);
    BOOST_TEST(r->tag == c.tag, c.in);
    BOOST_TEST(r->digest == c.digest, c.in);
    BOOST_TEST(r->registry_host() == c.host, c.in);
  }
  BOOST_TEST(parse_reference("alpine")->str() == "docker.io/library/alpine:latest");
  BOOST_TEST(parse_reference("h:1/x@" + d)->manifest_ref() == d);
  BOOST_TEST(parse_reference("h:1/x:y")->manifest_ref() == "y");
}

BOOST_AUTO_TEST_CASE(reference_rejects) {
  std::vector<std::string> bad = {
      "", "Alpine", "alpine:", ":tag", "alpine@sha256:abc", "a//b", "a/../b", "/alpine", "alpine/", "-a", "a-",
      "a:tag:tag", "host:port/x", "a b", "a/b:" + std::string(129, 't'), "a@md5:" + kHex, "a:-tag", "h:5000/A",
      "a..b", "a___b", "x/y%2f", "a\nb", std::string(300, 'a')};
  for (const auto& s : bad) {
    auto r = parse_reference(s);
    BOOST_TEST(!r.ok(), shown(s) << " should be rejected");
    if (!r.ok()) BOOST_TEST((r.error().exit == Exit::usage));
  }
  BOOST_TEST(parse_reference("Alpine").error().message() ==
             "invalid image reference \"Alpine\": invalid repository name component \"Alpine\" (lowercase letters, digits and separators . _ __ -)");
}
