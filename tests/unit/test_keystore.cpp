#define BOOST_TEST_MODULE keystore
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdlib>
#include <vector>

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

// Regression: a flipped byte in the header (salt, KDF parameters) derived
// another key and read as "wrong passphrase" (80); it is corruption (65).
BOOST_AUTO_TEST_CASE(header_corruption_is_not_a_wrong_key) {
  Env env;
  ::setenv("KINA_PASSPHRASE", "pw", 1);
  auto sealed = keystore::seal(Secret::from("secret value"), keystore::Source::passphrase, "role-a");
  BOOST_REQUIRE(sealed.ok());
  BOOST_TEST(keystore::open(*sealed, "ok", "role-a")->view() == "secret value");
  for (size_t at : {size_t{8}, size_t{12}, size_t{20}, size_t{40}, size_t{60}, keystore::kHeaderLen + 2}) {
    std::string c = *sealed;
    c[at] ^= 1;
    auto r = keystore::open(c, "c", "role-a");
    BOOST_REQUIRE(!r.ok());
    BOOST_TEST(code(r.error().exit) == 65, "byte " << at << ": " << r.error().message());
  }
  // A wrong passphrase is still told apart.
  ::setenv("KINA_PASSPHRASE", "other", 1);
  auto wrong = keystore::open(*sealed, "w", "role-a");
  BOOST_REQUIRE(!wrong.ok());
  BOOST_TEST(code(wrong.error().exit) == 80);
}

// Regression: a sealed file copied over another (front-proxy-ca.key.sealed ->
// ca.key.sealed) opened without complaint. Each file is bound to its role.
BOOST_AUTO_TEST_CASE(role_binding) {
  Env env;
  auto a = env.dir / "a.sealed";
  BOOST_REQUIRE(keystore::store(a, Secret::from("A"), "cluster c1 pki/front-proxy-ca.key").ok());
  BOOST_TEST(keystore::load(a, "cluster c1 pki/front-proxy-ca.key")->view() == "A");
  auto r = keystore::load(a, "cluster c1 pki/ca.key");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 65);
  BOOST_TEST(r.error().what == "opening " + a.string());
  BOOST_TEST(r.error().why.find("\"cluster c1 pki/front-proxy-ca.key\", not the \"cluster c1 pki/ca.key\"") !=
             std::string::npos, r.error().why);
  BOOST_TEST(!keystore::load(a).ok());
  // Changing the role inside the file does not help: it is authenticated.
  auto raw = read_file(a);
  BOOST_REQUIRE(raw.ok());
  std::string forged = *raw;
  size_t at = forged.find("front-proxy-ca.key");
  forged.replace(at, 18, "ca.key\0\0\0\0\0\0\0\0\0\0\0\0", 18);
  BOOST_TEST(!keystore::open(forged, "forged", "cluster c1 pki/ca.key").ok());
}

// Files sealed by version 1 (no role, no header checksum) still open.
BOOST_AUTO_TEST_CASE(version_1_files_still_open) {
  Env env;
  ::setenv("KINA_PASSPHRASE", "pw", 1);
  std::string out(keystore::kMagic);
  out += static_cast<char>(1);
  out += static_cast<char>(keystore::Source::passphrase);
  uint32_t ops = crypto_pwhash_OPSLIMIT_INTERACTIVE, mem = crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024;
  keystore::detail::put32(out, ops);
  keystore::detail::put32(out, mem);
  uint8_t salt[keystore::kSaltLen], nonce[keystore::kNonceLen], check[keystore::kCheckLen];
  randombytes_buf(salt, sizeof salt);
  randombytes_buf(nonce, sizeof nonce);
  auto key = keystore::detail::file_key(keystore::Source::passphrase, salt, ops, mem);
  BOOST_REQUIRE(key.ok());
  keystore::detail::check_value(*key, check);
  out.append(reinterpret_cast<char*>(salt), sizeof salt);
  out.append(reinterpret_cast<char*>(nonce), sizeof nonce);
  out.append(reinterpret_cast<char*>(check), sizeof check);
  size_t header = out.size();
  std::string plain = "old secret";
  out.resize(header + plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<uint8_t*>(out.data()) + header, &clen,
                                             reinterpret_cast<const uint8_t*>(plain.data()), plain.size(),
                                             reinterpret_cast<const uint8_t*>(out.data()), header, nullptr, nonce,
                                             key->data());
  auto back = keystore::open(out, "v1", "any role");
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(back->view() == "old secret");
}

// Regression: an unknown KINA_KEYSTORE was refused when sealing but ignored
// when opening.
BOOST_AUTO_TEST_CASE(unknown_keystore_refused_on_open) {
  Env env;
  auto f = env.dir / "f.sealed";
  BOOST_REQUIRE(keystore::store(f, Secret::from("x")).ok());
  ::setenv("KINA_KEYSTORE", "floppy", 1);
  auto r = keystore::load(f);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 78);
  BOOST_TEST(r.error().message().find("KINA_KEYSTORE=\"floppy\"") != std::string::npos, r.error().message());
  ::unsetenv("KINA_KEYSTORE");
}

// Regression: two first uses at once each made a machine key; the last rename
// won and the other's secrets never opened again. Eight processes race here.
BOOST_AUTO_TEST_CASE(parallel_first_use_agrees_on_one_key) {
  for (int round = 0; round < 5; ++round) {
    Env env;
    int go[2];
    BOOST_REQUIRE(::pipe(go) == 0);
    std::vector<pid_t> kids;
    for (int i = 0; i < 8; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {
        ::close(go[1]);
        char c;
        (void)::read(go[0], &c, 1);  // released all at once when the pipe closes
        auto st = keystore::store(env.dir / fmt::format("s{}", i), Secret::from(fmt::format("v{}", i)), "r");
        ::_exit(st ? 0 : 1);
      }
      kids.push_back(pid);
    }
    ::close(go[0]);
    ::close(go[1]);
    for (pid_t k : kids) {
      int status = 0;
      ::waitpid(k, &status, 0);
      BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    for (int i = 0; i < 8; ++i) {
      auto v = keystore::load(env.dir / fmt::format("s{}", i), "r");
      BOOST_TEST(v.ok(), "round " << round << " secret " << i << ": " << (v ? "" : v.error().message()));
      if (v) BOOST_TEST(v->view() == fmt::format("v{}", i));
    }
    // No temporary is left behind.
    for (const auto& e : fsys::directory_iterator(env.dir / "home" / "keys"))
      BOOST_TEST(e.path().filename().string().find(".tmp.") == std::string::npos, e.path());
  }
}

// A machine key temporary left by a killed first use (its pid gone) is swept
// by the next first use; one of a live process is left alone.
BOOST_AUTO_TEST_CASE(machine_key_temporaries_of_dead_processes_are_swept) {
  Env env;
  fsys::path keys = env.dir / "home" / "keys";
  fsys::create_directories(keys);
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  fsys::path stale = keys / fmt::format(".machine.key.tmp.{}.AbC123", dead);
  fsys::path live = keys / fmt::format(".machine.key.tmp.{}.XyZ789", ::getppid());
  fsys::path other = keys / ".machine.key.tmp.notapid.AbC123";
  for (const auto& p : {stale, live, other}) BOOST_REQUIRE(write_file_atomic(p, "0123456789abcdef0123456789abcdef").ok());
  BOOST_REQUIRE(keystore::store(env.dir / "s", Secret::from("v")).ok());
  BOOST_TEST(!fsys::exists(stale));
  BOOST_TEST(fsys::exists(live));
  BOOST_TEST(fsys::exists(other));
  BOOST_TEST(keystore::load(env.dir / "s")->view() == "v");
}
