#define BOOST_TEST_MODULE validate
#include <boost/test/unit_test.hpp>

#include "kina/clock.hpp"
#include "kina/validate.hpp"

using namespace kina;

BOOST_AUTO_TEST_CASE(names_are_dns1123_labels) {
  for (const char* good : {"a", "kind", "dev-1", "0abc", "a23456789012345678901234567890123456789012345678901234567890123"})
    BOOST_TEST(validate_name("cluster name", good).ok(), good);
  for (const char* bad : {"", "-a", "a-", "A", "a_b", "a.b", "a b", "ü", "../x",
                          "a234567890123456789012345678901234567890123456789012345678901234"})
    BOOST_TEST(!validate_name("cluster name", bad).ok(), bad);
  auto st = validate_name("cluster name", "Bad_Name");
  BOOST_TEST(st.error().message() ==
             "invalid cluster name \"Bad_Name\": must consist of lower-case letters, digits and '-' (a DNS-1123 label)");
  BOOST_TEST(code(st.error().exit) == 64);
}

BOOST_AUTO_TEST_CASE(sizes) {
  BOOST_TEST(*parse_size("512Mi") == 512ull << 20);
  BOOST_TEST(*parse_size("2G") == 2000000000ull);
  BOOST_TEST(*parse_size("2Gi") == 2ull << 30);
  BOOST_TEST(*parse_size("1024") == 1024ull);
  BOOST_TEST(*parse_size("10k") == 10000ull);
  BOOST_TEST(*parse_size("1MiB") == 1ull << 20);
  for (const char* bad : {"", "Mi", "-1", "1.5G", "1Q", "99999999999999999999", "16Ei", "1 G"})
    BOOST_TEST(!parse_size(bad).ok(), bad);
}

BOOST_AUTO_TEST_CASE(durations) {
  BOOST_TEST(*parse_duration("90s") == 90000);
  BOOST_TEST(*parse_duration("24h") == 86400000);
  BOOST_TEST(*parse_duration("10y") == 10LL * 365 * 86400000);
  BOOST_TEST(*parse_duration("1h30m") == 5400000);
  BOOST_TEST(*parse_duration("250ms") == 250);
  BOOST_TEST(*parse_duration("2w") == 14LL * 86400000);
  for (const char* bad : {"", "10", "s", "1x", "-5s", "1.5h", "999999999999999999y", "5 s"})
    BOOST_TEST(!parse_duration(bad).ok(), bad);
}

// Regression: parse_duration took up to INT64_MAX ms, so now + d overflowed
// (token --ttl 9223372036854775807ms expired in the past).
BOOST_AUTO_TEST_CASE(duration_bounds) {
  BOOST_TEST(*parse_duration("10000y") == kMaxDurationMs);
  for (const char* big : {"10001y", "9223372036854775807ms", "300000000000000000ms", "10000y1ms"})
    BOOST_TEST(!parse_duration(big).ok(), big);
  BOOST_TEST(parse_duration("-5s").error().why == "must not be negative");
  // now + any accepted duration fits an int64.
  BOOST_TEST(now_ms() <= std::numeric_limits<int64_t>::max() - kMaxDurationMs);

  auto lt = parse_duration_flag("--lock-timeout", "300y", 0, 3600000);
  BOOST_REQUIRE(!lt.ok());
  BOOST_TEST(code(lt.error().exit) == 64);
  BOOST_TEST(lt.error().message() == "invalid --lock-timeout \"300y\": must be at most 1h");
  BOOST_TEST(parse_duration_flag("--ttl", "0s", 1000, 1000).error().message() == "invalid --ttl \"0s\": must be at least 1s");
  BOOST_TEST(parse_duration_flag("--ttl", "9223372036854775807ms", 1000, 10LL * 365 * 86400000).error().message() ==
             "invalid --ttl \"9223372036854775807ms\": too large (at most 10000y)");
  BOOST_TEST(parse_duration_flag("--ttl", "-1s", 0, 1000).error().message() == "invalid --ttl \"-1s\": must not be negative");
  BOOST_TEST(*parse_duration_flag("--ttl", "1h", 0, 3600000) == 3600000);
  BOOST_TEST(*parse_duration_flag("--ttl", "0s", 0, 1) == 0);

  BOOST_TEST(format_duration(3600000) == "1h");
  BOOST_TEST(format_duration(10LL * 365 * 86400000) == "10y");
  BOOST_TEST(format_duration(1500) == "1500ms");
  BOOST_TEST(format_duration(0) == "0s");
}

BOOST_AUTO_TEST_CASE(int_flags) {
  BOOST_TEST(*parse_int_flag("-n", "5", 1, 10) == 5);
  BOOST_TEST(*parse_int_flag("-n", "-5", -10, 10) == -5);
  BOOST_TEST(*parse_int_flag("x", "9223372036854775807", 0, std::numeric_limits<int64_t>::max()) ==
             std::numeric_limits<int64_t>::max());
  for (const char* bad : {"", "-", "-5", "0x10", "1e3", "11", " 5", "5 ", "+5", "9223372036854775808",
                          "99999999999999999999", "18446744073709551615"})
    BOOST_TEST(!parse_int_flag("-n", bad, 0, 10).ok(), bad);
  BOOST_TEST(parse_int_flag("-n", "-5", 1, 10).error().message() == "invalid -n \"-5\": expected an integer from 1 to 10");
}

BOOST_AUTO_TEST_CASE(ips_and_cidrs) {
  BOOST_TEST(parse_ip("10.0.0.1")->str() == "10.0.0.1");
  BOOST_TEST(parse_ip("fd00::1")->str() == "fd00::1");
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "::g", "localhost"})
    BOOST_TEST(!parse_ip(bad).ok(), bad);
  auto c = parse_cidr("10.89.0.0/24");
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->contains(*parse_ip("10.89.0.77")));
  BOOST_TEST(!c->contains(*parse_ip("10.89.1.1")));
  BOOST_TEST(parse_cidr("fd00:89::/64").ok());
  auto host = parse_cidr("10.89.0.1/24");
  BOOST_REQUIRE(!host.ok());
  BOOST_TEST(host.error().why == "host bits are set (did you mean 10.89.0.0/24?)");
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/a", "x/8"})
    BOOST_TEST(!parse_cidr(bad).ok(), bad);
}

// Regression: --san 256.1.1.1 became a DNS name. Host names are RFC 1123;
// anything whose last label is numeric must be a valid IPv4 address.
BOOST_AUTO_TEST_CASE(host_names) {
  for (const char* good : {"a", "node-1", "api.example.com", "1a.example.com", "example.c0m", "A.B"})
    BOOST_TEST(validate_host_name("--san", good, false).ok(), good);
  BOOST_TEST(validate_host_name("--san", "*.example.com", true).ok());
  BOOST_TEST(!validate_host_name("--san", "*.example.com", false).ok());
  for (const char* bad : {"", "256.1.1.1", "1.2.3", "010.0.0.1", "1.2.3.4", "a.1", "*", "*.*.a", "a.*.b", "a*.b",
                          "-a", "a-", "a..b", "a.", ".a", "a_b", "a b", "ü.de"})
    BOOST_TEST(!validate_host_name("--san", bad, true).ok(), bad);
  BOOST_TEST(validate_host_name("--san", "256.1.1.1", true).error().message() ==
             "invalid --san \"256.1.1.1\": looks like an IPv4 address but is not a valid one (four decimal numbers "
             "0-255, no leading zeros)");
  BOOST_TEST(!validate_host_name("--san", std::string(64, 'a'), false).ok());
  BOOST_TEST(validate_host_name("--san", std::string(63, 'a'), false).ok());
}
