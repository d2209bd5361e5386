#define BOOST_TEST_MODULE note
#include <boost/test/unit_test.hpp>

#include "kina/note.hpp"

using namespace kina;

BOOST_AUTO_TEST_CASE(sign_verify_and_vkey_round_trip) {
  auto s = note::generate("example.com/log");
  note::Checkpoint cp;
  cp.origin = "example.com/log";
  cp.size = 42;
  cp.root = sha256("x");
  std::string signed_note = note::sign(cp.text(), s);
  auto v = note::parse_vkey(s.verifier().vkey());
  BOOST_REQUIRE(v.ok());
  auto n = note::parse(signed_note);
  BOOST_REQUIRE(n.ok());
  BOOST_TEST(note::verify(*n, *v));
  auto back = note::parse_checkpoint(n->text);
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(back->size == 42u);
  BOOST_TEST(back->origin == "example.com/log");
  BOOST_TEST((back->root == cp.root));
  // The signature line has the C2SP shape: em dash, name, base64(keyid || sig).
  BOOST_TEST(signed_note.find("\n\n\xe2\x80\x94 example.com/log ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(tampered_text_or_other_key_fails) {
  auto s = note::generate("log");
  std::string signed_note = note::sign("log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", s);
  auto v = *note::parse_vkey(s.verifier().vkey());
  std::string changed = signed_note;
  changed[4] = '4';  // tree size 3 -> 4
  BOOST_TEST(!note::verify(*note::parse(changed), v));
  auto other = note::generate("log");
  BOOST_TEST(!note::verify(*note::parse(signed_note), *note::parse_vkey(other.verifier().vkey())));
}

BOOST_AUTO_TEST_CASE(signer_round_trips_through_private_key_text) {
  auto s = note::generate("kina-audit/h");
  auto text = note::encode_signer(s);
  BOOST_TEST(text.view().substr(0, 12) == "PRIVATE+KEY+");
  auto back = note::decode_signer(text);
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(back->verifier().vkey() == s.verifier().vkey());
}

BOOST_AUTO_TEST_CASE(known_vkey_from_the_c2sp_spec) {
  // The example verifier key of golang.org/x/mod/sumdb/note and c2sp.org/signed-note.
  auto v = note::parse_vkey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  BOOST_REQUIRE(v.ok());
  BOOST_TEST(v->name == "PeterNeumann");
  BOOST_TEST(v->id == 0xc74f20a3u);
  // Its published signed note verifies.
  std::string msg =
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n"
      "\n"
      "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
  auto n = note::parse(msg);
  BOOST_REQUIRE(n.ok());
  BOOST_TEST(note::verify(*n, *v));
}

BOOST_AUTO_TEST_CASE(malformed_inputs_are_errors) {
  for (const char* bad : {"", "no blank line\n", "text\n\nnot a signature\n", "text\n\n\xe2\x80\x94 name !!!\n"})
    BOOST_TEST(!note::parse(bad).ok(), bad);
  for (const char* bad : {"a", "a+1234+x", "a+zzzzzzzz+AQ==", "a b+00000000+AQ=="})
    BOOST_TEST(!note::parse_vkey(bad).ok(), bad);
  for (const char* bad : {"origin\n", "o\n01\nAAAA\n", "o\n1\nnotbase64\n", "o\n1\nAAAA\n"})
    BOOST_TEST(!note::parse_checkpoint(bad).ok(), bad);
}
