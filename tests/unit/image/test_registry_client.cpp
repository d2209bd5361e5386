#define BOOST_TEST_MODULE image_registry
#include <boost/test/unit_test.hpp>

#include <stdlib.h>

#include <fstream>

#include "registry.hpp"

using namespace kina;
using namespace kina::image;

BOOST_AUTO_TEST_CASE(challenge) {
  std::string scheme;
  auto p = parse_challenge(R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull")", scheme);
  BOOST_TEST(scheme == "bearer");
  BOOST_TEST(p["realm"] == "https://auth.docker.io/token");
  BOOST_TEST(p["service"] == "registry.docker.io");
  BOOST_TEST(p["scope"] == "repository:library/alpine:pull");
  p = parse_challenge(R"(Basic realm="Registry Realm")", scheme);
  BOOST_TEST(scheme == "basic");
  BOOST_TEST(p["realm"] == "Registry Realm");
  p = parse_challenge(R"(Bearer realm="a\"b", error=invalid_token)", scheme);
  BOOST_TEST(p["realm"] == "a\"b");
  BOOST_TEST(p["error"] == "invalid_token");
  BOOST_TEST(parse_challenge("", scheme).empty());
}

BOOST_AUTO_TEST_CASE(hosts) {
  BOOST_TEST(url_host("https://Registry-1.docker.io/v2/x") == "registry-1.docker.io");
  BOOST_TEST(url_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000");
  BOOST_TEST(url_host("https://user@evil.example/x") == "evil.example");
  BOOST_TEST(url_host("https://s3.example?x=1") == "s3.example");
  BOOST_TEST(url_host("nonsense").empty());
}

struct TempConfig {
  std::string dir;
  TempConfig(const std::string& json) {
    char tmpl[] = "/tmp/kina-docker-config.XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/config.json") << json;
    ::setenv("DOCKER_CONFIG", dir.c_str(), 1);
  }
  ~TempConfig() {
    ::unsetenv("DOCKER_CONFIG");
    fsys::remove_all(dir);
  }
};

BOOST_AUTO_TEST_CASE(credentials) {
  {
    TempConfig c(R"({"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},"r.example:5000":{"username":"u","password":"p"}}})");
    auto hub = find_credentials("docker.io");
    BOOST_TEST_REQUIRE(hub.ok());
    BOOST_TEST(hub->username == "user");
    BOOST_TEST(hub->password == "pa:ss");  // only the first ':' separates
    BOOST_TEST(hub->source == c.dir + "/config.json auths[\"https://index.docker.io/v1/\"]");
    auto r = find_credentials("r.example:5000");
    BOOST_TEST(r->username == "u");
    BOOST_TEST(find_credentials("other.example")->empty());
    BOOST_TEST(find_credentials("other.example")->source == "none (anonymous)");
  }
  {
    TempConfig c(R"({"auths":{"h":{"auth":"!!!"}}})");
    auto r = find_credentials("h");
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error().exit == Exit::config));
  }
  {
    TempConfig c(R"({"credHelpers":{"h":"../../bin/sh"}})");
    auto r = find_credentials("h");
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().why == "invalid helper name");
  }
  {
    TempConfig c(R"({"credsStore":"kina-no-such-helper"})");
    auto r = find_credentials("h");
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(r.error().what == "credential helper docker-credential-kina-no-such-helper");
  }
  {
    TempConfig c("not json");
    BOOST_TEST(!find_credentials("h").ok());
  }
}
