// Unit tests of machine state helpers (tools/kina-vm/machine.hpp): --publish.
#define BOOST_TEST_MODULE vm_machine
#include <boost/test/unit_test.hpp>

#include "machine.hpp"

using namespace kina;
using namespace kina::vm;

BOOST_AUTO_TEST_CASE(publish_forms) {
  auto a = parse_publish("8080:80");
  BOOST_REQUIRE(a.ok());
  BOOST_TEST(a->str() == "127.0.0.1:8080:80/tcp");
  auto b = parse_publish("0.0.0.0:53:5353/udp");
  BOOST_REQUIRE(b.ok());
  BOOST_TEST(b->addr == "0.0.0.0");
  BOOST_TEST(b->host_port == 53);
  BOOST_TEST(b->guest_port == 5353);
  BOOST_TEST(b->proto == "udp");
}

BOOST_AUTO_TEST_CASE(publish_errors_name_the_problem) {
  struct Case {
    const char* in;
    const char* why;
  } cases[] = {
      {"80", "wrong number"},           {"0:80", "host port \"0\""},  {"80:65536", "guest port \"65536\""},
      {"1.2.3:80:80", "IPv4 address"},  {"::1:80:80", "wrong number"}, {"80:80/sctp", "tcp or udp"},
      {"x:80", "host port \"x\""},      {"", "wrong number"},          {"80:-1", "guest port"},
  };
  for (const auto& c : cases) {
    auto r = parse_publish(c.in);
    BOOST_TEST_CONTEXT(c.in) {
      BOOST_REQUIRE(!r.ok());
      BOOST_TEST((r.error().exit == Exit::usage));
      BOOST_TEST(r.error().why.find(c.why) != std::string::npos, r.error().why);
    }
  }
}

BOOST_AUTO_TEST_CASE(mount_forms_and_errors) {
  auto a = parse_mount("/srv/data:/data");
  BOOST_REQUIRE(a.ok());
  BOOST_TEST(a->host == "/srv/data");
  BOOST_TEST(a->guest == "/data");
  BOOST_TEST(!a->read_only);
  auto b = parse_mount("/a:b:/c:ro");  // the last ':' before the guest path splits
  BOOST_REQUIRE(b.ok());
  BOOST_TEST(b->host == "/a:b");
  BOOST_TEST(b->read_only);
  BOOST_TEST(b->str() == "/a:b:/c:ro");
  for (const char* bad : {"/only", ":/x", "/h:rel", "/h:/", "/h:/a,b", "/h\n:/x"}) {
    BOOST_TEST_CONTEXT(bad) { BOOST_TEST(!parse_mount(bad).ok()); }
  }
}

BOOST_AUTO_TEST_CASE(qemu_tag_names_cluster_and_machine) {
  BOOST_TEST(qemu_tag("/h/clusters/c1/machines/n1") == "kina:c1/n1");
}

#include "apple.hpp"

BOOST_AUTO_TEST_CASE(apple_list_shapes_and_errors) {
  auto v05 = apple::parse_list(R"([{"status":"running","configuration":{"id":"a","labels":{"k":"v"}},"networks":[{"address":"10.1.2.3/24"}]}])");
  BOOST_REQUIRE(v05.ok());
  BOOST_TEST(v05->at(0).ip == "10.1.2.3");
  BOOST_TEST(v05->at(0).label("k") == "v");
  auto v1 = apple::parse_list(R"([{"configuration":{"id":"b"},"status":{"state":"stopped","networks":[]}}])");
  BOOST_REQUIRE(v1.ok());
  BOOST_TEST(v1->at(0).state == "stopped");
  BOOST_TEST(v1->at(0).ip.empty());
  BOOST_TEST(apple::kina_state("stopped") == "exited");
  for (const char* bad : {"{}", "[{}]", R"([{"configuration":{}}])", R"([{"configuration":{"id":"x"}}])", "[1", ""}) {
    auto r = apple::parse_list(bad);
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!r.ok());
      if (!r.ok()) BOOST_TEST((r.error().exit == Exit::data));
    }
  }
}
