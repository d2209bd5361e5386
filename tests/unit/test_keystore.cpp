#define BOOST_TEST_MODULE keystore
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "kina/fs.hpp"
#include "kina/keystore.hpp"

using namespace kina;

struct Env {
  fsys::path dir;
  Env() {
    std::string t = (fsys::temp_directory_path() / "kina-ks-XXXXXX").string();
    dir = ::mkdtemp(t.data());
    ::setenv("KINA_HOME", (dir / "home").c_str(), 1);
    ::unsetenv("KINA_PASSPHRASE");
    ::unsetenv("KINA_PASSPHRASE_FILE");
    ::unsetenv("KINA_KEYSTORE");
    ::unsetenv("DBUS_SESSION_BUS_ADDRESS");
  }
  ~Env() { fsys::remove_all(dir); }
};

BOOST_AUTO_TEST_CASE(passphrase_round_trip_and_wrong_passphrase) {
  Env env;
  ::setenv("KINA_PASSPHRASE", "correct horse battery staple", 1);
  auto src = keystore::choose_source();
  BOOST_REQUIRE(src.ok());
  BOOST_TEST(keystore::source_name(*src) == "passphrase");
  auto file = env.dir / "secret.bin";
  BOOST_REQUIRE(keystore::store(file, Secret::from("the plaintext")).ok());
  auto raw = read_file(file);
  BOOST_REQUIRE(raw.ok());
  BOOST_TEST(raw->find("the plaintext") == std::string::npos);
  struct stat sb {};
  ::stat(file.c_str(), &sb);
  BOOST_TEST((sb.st_mode & 0777) == 0600u);
  auto back = keystore::load(file);
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(back->view() == "the plaintext");

  ::setenv("KINA_PASSPHRASE", "wrong", 1);
  auto bad = keystore::load(file);
  BOOST_REQUIRE(!bad.ok());
  BOOST_TEST(bad.error().why == "wrong passphrase");
  BOOST_TEST(code(bad.error().exit) == 80);

  ::unsetenv("KINA_PASSPHRASE");
  auto none = keystore::load(file);
  BOOST_REQUIRE(!none.ok());
  BOOST_TEST(none.error().hint.find("KINA_PASSPHRASE") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(passphrase_from_file_and_fd) {
  Env env;
  auto pf = env.dir / "pass";
  BOOST_REQUIRE(write_file_atomic(pf, "from-a-file\n", 0600).ok());
  ::setenv("KINA_PASSPHRASE_FILE", pf.c_str(), 1);
  auto sealed = keystore::seal(Secret::from("x"), keystore::Source::passphrase);
  BOOST_REQUIRE(sealed.ok());
  // The same passphrase through a file descriptor number opens it.
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  BOOST_REQUIRE(::write(p[1], "from-a-file", 11) == 11);
  ::close(p[1]);
  ::setenv("KINA_PASSPHRASE_FILE", std::to_string(p[0]).c_str(), 1);
  auto opened = keystore::open(*sealed, "test");
  ::close(p[0]);
  BOOST_REQUIRE(opened.ok());
  BOOST_TEST(opened->view() == "x");
}

BOOST_AUTO_TEST_CASE(corruption_is_detected) {
  Env env;
  ::setenv("KINA_PASSPHRASE", "pw", 1);
  auto sealed = keystore::seal(Secret::from("secret value"), keystore::Source::passphrase);
  BOOST_REQUIRE(sealed.ok());
  // Flip one byte in the ciphertext, in the header, and truncate.
  std::string c1 = *sealed;
  c1[c1.size() - 3] ^= 1;
  auto r1 = keystore::open(c1, "c1");
  BOOST_REQUIRE(!r1.ok());
  BOOST_TEST(r1.error().why == "the file is corrupted (authentication failed)");
  BOOST_TEST(code(r1.error().exit) == 65);
  std::string c2 = *sealed;
  c2[20] ^= 1;  // the salt: derives another key
  BOOST_TEST(!keystore::open(c2, "c2").ok());
  BOOST_TEST(!keystore::open(sealed->substr(0, 30), "c3").ok());
  std::string c4 = *sealed;
  c4[6] = 9;
  auto r4 = keystore::open(c4, "c4");
  BOOST_REQUIRE(!r4.ok());
  BOOST_TEST(r4.error().why == "unsupported keystore version 9");
}

BOOST_AUTO_TEST_CASE(machine_key_fallback) {
  Env env;
  auto src = keystore::choose_source();
  BOOST_REQUIRE(src.ok());
  BOOST_TEST(keystore::source_name(*src) == "machine-key");
  auto file = env.dir / "m.bin";
  BOOST_REQUIRE(keystore::store(file, Secret::from("abc")).ok());
  auto key = env.dir / "home" / "keys" / "machine.key";
  struct stat sb {};
  BOOST_REQUIRE(::stat(key.c_str(), &sb) == 0);
  BOOST_TEST((sb.st_mode & 0777) == 0600u);
  BOOST_TEST(keystore::load(file)->view() == "abc");
  // Another machine key cannot open it.
  fsys::remove(key);
  auto other = keystore::load(file);
  BOOST_REQUIRE(!other.ok());
  BOOST_TEST(code(other.error().exit) == 80);
}

BOOST_AUTO_TEST_CASE(forced_source_is_validated) {
  Env env;
  ::setenv("KINA_KEYSTORE", "floppy", 1);
  auto r = keystore::choose_source();
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 78);
  ::unsetenv("KINA_KEYSTORE");
}
