// The guest config: what the host's writer (guest_config.hpp) produces is
// what kina-init's reader (guest/config.hpp) takes back, and the reader
// refuses what could only come from a value smuggling in lines of its own.
#define BOOST_TEST_MODULE vm_guest_config
#include <boost/test/unit_test.hpp>

#include "guest/config.hpp"
#include "guest_config.hpp"

using kina::vm::GuestConfig;
using kina::vm::guest::Config;
using kina::vm::guest::parse_config;

BOOST_AUTO_TEST_CASE(writer_and_reader_agree) {
  GuestConfig w;
  BOOST_TEST(w.add("hostname", "n1", "machine name").ok());
  BOOST_TEST(w.add("net", "52:54:00:aa:bb:cc 10.0.2.15/24 10.0.2.2", "user NIC").ok());
  BOOST_TEST(w.add("arg", "/sbin/init", "command argument").ok());
  BOOST_TEST(w.add("arg", "--log level", "command argument").ok());
  BOOST_TEST(w.add("env", "A=1 2", "--env").ok());
  BOOST_TEST(w.add("cwd", "/work dir", "image WorkingDir").ok());
  BOOST_TEST(w.add("node-ip", "10.213.0.2", "node address").ok());
  Config c;
  std::string error;
  BOOST_TEST_REQUIRE(parse_config(w.text(), c, error), error);
  BOOST_TEST(c.hostname == "n1");
  BOOST_TEST(c.nets.size() == 1u);
  BOOST_TEST(c.nets[0] == "52:54:00:aa:bb:cc 10.0.2.15/24 10.0.2.2");
  BOOST_TEST((c.argv == std::vector<std::string>{"/sbin/init", "--log level"}));
  BOOST_TEST((c.env == std::vector<std::string>{"A=1 2"}));
  BOOST_TEST(c.cwd == "/work dir");
  BOOST_TEST(c.node_ip == "10.213.0.2");
  BOOST_TEST(c.root == "/dev/vda");  // the default when not given
}

BOOST_AUTO_TEST_CASE(writer_refuses_values_that_add_lines) {
  for (std::string v : {std::string("a\nhostname x"), std::string("a\rb"), std::string("a\0b", 3)}) {
    GuestConfig w;
    auto st = w.add("env", v, "image Env entry");
    BOOST_TEST(!st.ok());
    BOOST_TEST(w.text() == "end\n");
  }
}

BOOST_AUTO_TEST_CASE(reader_refusals) {
  const std::pair<std::string, std::string> bad[] = {
      {"hostname a\n", "no \"end\" line (cut short?)"},
      {"hostname a\nend\nhostname b\n", "a line after \"end\""},
      {"hostname a\nhostname b\nend\n", "\"hostname\" given twice"},
      {"shell /bin/sh\nend\n", "unknown key \"shell\""},
      {"env A=1\r\nend\n", "a carriage return in: env A=1\r"},
      {"end", "the last line has no newline"},
      {"", "no \"end\" line (cut short?)"},
  };
  for (const auto& [text, why] : bad) {
    Config c;
    std::string error;
    BOOST_TEST(!parse_config(text, c, error), text);
    BOOST_TEST(error == why);
  }
}
