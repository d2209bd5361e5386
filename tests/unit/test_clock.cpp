#define BOOST_TEST_MODULE clock
#include <boost/test/unit_test.hpp>

#include "kina/clock.hpp"

using namespace kina;

BOOST_AUTO_TEST_CASE(format_and_parse) {
  BOOST_TEST(format_utc_ms(0) == "1970-01-01T00:00:00.000Z");
  BOOST_TEST(format_utc_ms(1795376024123) == "2026-11-22T19:33:44.123Z");
  BOOST_TEST(*parse_rfc3339_ms("2026-11-22T19:33:44.123Z") == 1795376024123);
  BOOST_TEST(*parse_rfc3339_ms("2026-11-22T20:33:44.123+01:00") == 1795376024123);
  BOOST_TEST(*parse_rfc3339_ms("1970-01-02") == 86400000);
  for (const char* bad : {"", "2026", "2026-13-01", "2026-11-22T25:00:00Z", "2026-11-22T19:33:44", "yesterday"})
    BOOST_TEST(!parse_rfc3339_ms(bad).has_value(), bad);
}
