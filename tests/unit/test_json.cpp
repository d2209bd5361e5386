#define BOOST_TEST_MODULE json
#include <boost/test/unit_test.hpp>

#include "kina/json.hpp"

using kina::json::quote;

BOOST_AUTO_TEST_CASE(escapes_quotes_backslashes_and_controls) {
  BOOST_TEST(quote("a\"b\\c") == R"("a\"b\\c")");
  BOOST_TEST(quote("\n\r\t\b\f") == R"("\n\r\t\b\f")");
  BOOST_TEST(quote(std::string("\x01\x1f\x7f", 3)) == R"("\u0001\u001f\u007f")");
  BOOST_TEST(quote(std::string("a\0b", 3)) == R"("a\u0000b")");
}

BOOST_AUTO_TEST_CASE(keeps_valid_utf8) {
  BOOST_TEST(quote("h\xc3\xa9llo \xe2\x80\x94 \xf0\x9f\x98\x80") == "\"h\xc3\xa9llo \xe2\x80\x94 \xf0\x9f\x98\x80\"");
}

BOOST_AUTO_TEST_CASE(never_emits_invalid_utf8_raw) {
  BOOST_TEST(quote("\xff") == R"("\ufffd")");
  BOOST_TEST(quote("a\xc3") == R"("a\ufffd")");             // truncated sequence
  BOOST_TEST(quote("\xc0\xaf") == R"("\ufffd\ufffd")");     // overlong '/'
  BOOST_TEST(quote("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");  // UTF-16 surrogate
  BOOST_TEST(quote("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
  BOOST_TEST(!kina::json::valid_utf8("\xe2\x80"));
  BOOST_TEST(kina::json::valid_utf8("\xe2\x80\x94"));
}

BOOST_AUTO_TEST_CASE(writer_places_commas) {
  kina::json::Writer w;
  w.begin_object().field("a", 1).field("b", "x").key("c").begin_array().value(true).null().value(-5).end_array();
  w.key("d").begin_object().end_object().end_object();
  BOOST_TEST(w.str() == R"({"a":1,"b":"x","c":[true,null,-5],"d":{}})");
}
