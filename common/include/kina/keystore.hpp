// keystore.hpp: secrets at rest, sealed with XChaCha20-Poly1305 under a key from the
// macOS Keychain, the Secret Service, a passphrase (Argon2id) or a machine key file.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/lock.hpp"
#include "kina/process.hpp"
#include "kina/secret.hpp"
#include "kina/validate.hpp"

namespace kina::keystore {

// Sealed file layout (all integers little-endian), version 2:
//   magic "KINAKS" | version u8 | source u8 | opslimit u32 | memlimit KiB u32 |
//   salt[16] | nonce[24] | check[8] | role length u8 | role | header hash[16] |
//   ciphertext+tag
// The whole header is authenticated as associated data. `check` is a keyed hash
// of a constant, so a wrong key is told apart from a corrupted file; the header
// hash (unkeyed BLAKE2b of everything before it) tells a corrupted header (a
// flipped salt byte would otherwise derive another key and read as a wrong
// passphrase) from a wrong key. `role` names what the file holds ("cluster c1
// pki/ca.key"): a sealed file copied over another one is refused by name.
// Version 1 (no role, no header hash) is still read, without the role check.
inline constexpr std::string_view kMagic = "KINAKS";
inline constexpr uint8_t kVersion = 2;
inline constexpr size_t kSaltLen = 16;
inline constexpr size_t kNonceLen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
inline constexpr size_t kCheckLen = 8;
inline constexpr size_t kHeaderHashLen = 16;
inline constexpr size_t kMaxRoleLen = 255;
inline constexpr size_t kHeaderLen = 6 + 1 + 1 + 4 + 4 + kSaltLen + kNonceLen + kCheckLen;  // version 1, and v2's fixed part
inline constexpr size_t kKeyLen = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;

enum class Source : uint8_t { keychain = 1, secret_service = 2, passphrase = 3, machine_file = 4 };

inline std::string_view source_name(Source s) {
  switch (s) {
    case Source::keychain: return "keychain";
    case Source::secret_service: return "secret-service";
    case Source::passphrase: return "passphrase";
    case Source::machine_file: return "machine-key";
  }
  return "unknown";
}

namespace detail {

inline void put32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline uint32_t get32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[at + static_cast<size_t>(i)])) << (8 * i);
  return v;
}

inline bool passphrase_configured() {
  const char* p = std::getenv("KINA_PASSPHRASE");
  const char* f = std::getenv("KINA_PASSPHRASE_FILE");
  return (p && *p) || (f && *f);
}

inline bool keychain_available() {
#ifdef __APPLE__
  return !which("security").empty();
#else
  return false;
#endif
}

inline bool secret_service_available() {
  const char* bus = std::getenv("DBUS_SESSION_BUS_ADDRESS");
  return bus && *bus && !which("secret-tool").empty();
}

// The passphrase from KINA_PASSPHRASE or from the file (or fd number) that
// KINA_PASSPHRASE_FILE names; one trailing newline is dropped.
inline Result<Secret> read_passphrase() {
  if (const char* p = std::getenv("KINA_PASSPHRASE"); p && *p) return Secret::from(p);
  const char* f = std::getenv("KINA_PASSPHRASE_FILE");
  if (!f || !*f)
    return make_error(Exit::config, "reading the passphrase", "neither KINA_PASSPHRASE nor KINA_PASSPHRASE_FILE is set");
  std::string_view name(f);
  bool is_fd = name.find_first_not_of("0123456789") == std::string_view::npos;
  UniqueFd owned;
  int fd = -1;
  if (is_fd) {
    fd = std::atoi(f);
  } else {
    owned.reset(::open(f, O_RDONLY | O_CLOEXEC));
    if (!owned.valid())
      return os_error(fmt::format("reading the passphrase from KINA_PASSPHRASE_FILE={}", f), errno, Exit::config);
    fd = owned.get();
  }
  Secret buf(4096);
  size_t len = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(fmt::format("reading the passphrase from KINA_PASSPHRASE_FILE={}", f), errno, Exit::config);
    if (n == 0) break;
    len += static_cast<size_t>(n);
    if (len == buf.size())
      return make_error(Exit::config, "reading the passphrase", "KINA_PASSPHRASE_FILE holds more than 4095 bytes");
  }
  if (len > 0 && buf.data()[len - 1] == '\n') --len;
  if (len > 0 && buf.data()[len - 1] == '\r') --len;
  if (len == 0) return make_error(Exit::config, "reading the passphrase", fmt::format("KINA_PASSPHRASE_FILE={} is empty", f));
  buf.shrink(len);
  return buf;
}

// A 32-byte master key, base64 in the OS secret store. Created on first use,
// under $KINA_HOME/keys/master.lock so that two first uses at once do not
// store two keys (the last one would win); what the store holds after the
// write is read back and used. Secrets go to the helper on stdin, never in argv.
inline Result<Secret> os_store_master_key_locked(Source src, const fsys::path& home);

inline Result<Secret> os_store_master_key(Source src, const fsys::path& home) {
  if (auto st = ensure_dir(home / "keys", 0700); !st) return st.error();
  auto lock = FileLock::acquire(home / "keys" / "master.lock", std::chrono::seconds(60), "kina keystore first use");
  if (!lock) return lock.error();
  return os_store_master_key_locked(src, home);
}

inline Result<Secret> os_store_master_key_locked(Source src, const fsys::path& home) {
  std::string account = "keystore:" + home.string();
  ProcessSpec look;
  if (src == Source::keychain) {
    look.argv = {"security", "find-generic-password", "-s", "kina", "-a", account, "-w"};
  } else {
    look.argv = {"secret-tool", "lookup", "service", "kina", "account", account};
    look.env = build_env(default_env_allowlist(), {});
    if (const char* bus = std::getenv("DBUS_SESSION_BUS_ADDRESS")) look.env.push_back(std::string("DBUS_SESSION_BUS_ADDRESS=") + bus);
  }
  look.timeout = std::chrono::seconds(20);
  auto r = run_process(look);
  if (!r) return r.error();
  std::string& out = r->out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (r->success() && !out.empty()) {
    auto bin = from_base64(out);
    sodium_memzero(out.data(), out.size());
    if (!bin || bin->size() != kKeyLen)
      return make_error(Exit::data, fmt::format("reading kina's key from the {}", source_name(src)), "the stored key is malformed");
    Secret key = Secret::from({reinterpret_cast<const char*>(bin->data()), bin->size()});
    sodium_memzero(bin->data(), bin->size());
    return key;
  }
  Secret key = Secret::random(kKeyLen);
  std::string b64 = to_base64(key.data(), key.size());
  ProcessSpec store = look;
  if (src == Source::keychain) {
    // `security -i` reads commands from stdin, which keeps the key out of argv.
    store.argv = {"security", "-i"};
    store.input = fmt::format("add-generic-password -U -s kina -a \"{}\" -w {}\n", account, b64);
  } else {
    store.argv = {"secret-tool", "store", "--label=kina keystore", "service", "kina", "account", account};
    store.input = b64;
  }
  sodium_memzero(b64.data(), b64.size());
  auto s = run_process(store);
  if (store.input) sodium_memzero(store.input->data(), store.input->size());
  if (!s) return s.error();
  if (!s->success())
    return make_error(Exit::unavailable, fmt::format("storing kina's key in the {}", source_name(src)),
                      fmt::format("{} {}", store.argv[0], s->describe()));
  // Read back what the store now holds: that is the key every process uses.
  auto back = run_process(look);
  if (!back) return back.error();
  std::string& bout = back->out;
  while (!bout.empty() && (bout.back() == '\n' || bout.back() == '\r')) bout.pop_back();
  auto bin = from_base64(bout);
  sodium_memzero(bout.data(), bout.size());
  if (!back->success() || !bin || bin->size() != kKeyLen)
    return make_error(Exit::unavailable, fmt::format("storing kina's key in the {}", source_name(src)),
                      "the key could not be read back after it was stored");
  Secret stored = Secret::from({reinterpret_cast<const char*>(bin->data()), bin->size()});
  sodium_memzero(bin->data(), bin->size());
  return stored;
}

// The machine key file, $KINA_HOME/keys/machine.key (0600). It only protects
// against other users of this machine, which is said once, when it is created.
// Created by link(2) of a fully written temporary file, which fails if another
// process created it first; either way the file that is there is read back, so
// two first uses at once agree on one key. The temporary carries its pid
// (`.machine.key.tmp.PID.XXXXXX`): those of killed processes are swept.
inline Result<Secret> machine_master_key(const fsys::path& home) {
  fsys::path dir = home / "keys";
  if (auto st = ensure_dir(dir, 0700); !st) return st.error();
  fsys::path file = dir / "machine.key";
  auto read_key = [&]() -> Result<Secret> {
    auto data = read_file(file, 4096);
    if (!data) return data.error();
    if (data->size() != kKeyLen) {
      sodium_memzero(data->data(), data->size());
      return make_error(Exit::data, fmt::format("reading {}", file.string()), "not a 32-byte key");
    }
    Secret key = Secret::from(*data);
    sodium_memzero(data->data(), data->size());
    return key;
  };
  auto existing = read_key();
  if (existing || existing.error().exit != Exit::no_input) return existing;
  Secret key = Secret::random(kKeyLen);
  sweep_dead_temps(dir, ".machine.key.tmp.");
  std::string tmpl = (dir / fmt::format(".machine.key.tmp.{}.XXXXXX", ::getpid())).string();
  int raw = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (raw < 0) return os_error(fmt::format("creating {}", file.string()), errno, Exit::cant_create);
  UniqueFd fd(raw);
  auto fail = [&](Error e) {
    ::unlink(tmpl.c_str());
    return e;
  };
  if (::fchmod(fd.get(), 0600) != 0) return fail(os_error(fmt::format("setting mode of {}", file.string())));
  if (auto st = write_all(fd.get(), key.view(), fmt::format("writing {}", file.string())); !st) return fail(st.error());
  if (::fsync(fd.get()) != 0) return fail(os_error(fmt::format("syncing {}", file.string()), errno, Exit::io));
  fd.reset();
  bool created = ::link(tmpl.c_str(), file.c_str()) == 0;
  int err = errno;
  ::unlink(tmpl.c_str());
  if (!created && err != EEXIST) return os_error(fmt::format("creating {}", file.string()), err, Exit::cant_create);
  if (auto st = fsync_dir(dir); !st) return st.error();
  if (created)
    warn("kina", fmt::format("no OS keychain and no KINA_PASSPHRASE: secrets are sealed with {}, which only "
                             "protects them from other users of this machine",
                             file.string()));
  return read_key();
}

}  // namespace detail

// The source used to seal new secrets: KINA_KEYSTORE (keychain, secret-service,
// passphrase, machine-key) when set; else the Keychain or Secret Service when
// present; else a passphrase when one is configured; else the machine key file.
// KINA_KEYSTORE when set: a known source, or a configuration error naming it
// (on sealing and on opening alike: a typo is never silently ignored).
inline Result<std::optional<Source>> forced_source() {
  const char* forced = std::getenv("KINA_KEYSTORE");
  if (!forced || !*forced) return std::optional<Source>{};
  std::string_view f(forced);
  for (Source s : {Source::keychain, Source::secret_service, Source::passphrase, Source::machine_file})
    if (f == source_name(s)) return std::optional<Source>{s};
  return make_error(Exit::config, fmt::format("KINA_KEYSTORE={}", shown(f)),
                    "unknown keystore (use keychain, secret-service, passphrase or machine-key)");
}

inline Result<Source> choose_source() {
  auto forced = forced_source();
  if (!forced) return forced.error();
  if (*forced) return **forced;
  if (detail::keychain_available()) return Source::keychain;
  if (detail::secret_service_available()) return Source::secret_service;
  if (detail::passphrase_configured()) return Source::passphrase;
  return Source::machine_file;
}

namespace detail {

// Derives the file key for one sealed file from its source and salt.
inline Result<Secret> file_key(Source src, const uint8_t* salt, uint32_t ops, uint32_t mem_kib) {
  Secret key(kKeyLen);
  if (src == Source::passphrase) {
    auto pass = read_passphrase();
    if (!pass) return pass.error();
    if (crypto_pwhash(key.data(), key.size(), reinterpret_cast<const char*>(pass->data()), pass->size(), salt, ops,
                      static_cast<size_t>(mem_kib) * 1024, crypto_pwhash_ALG_ARGON2ID13) != 0)
      return make_error(Exit::os, "deriving the key from the passphrase", "out of memory");
    return key;
  }
  auto home = kina_home();
  if (!home) return home.error();
  Result<Secret> master = src == Source::machine_file ? machine_master_key(*home) : os_store_master_key(src, *home);
  if (!master) return master.error();
  crypto_generichash(key.data(), key.size(), salt, kSaltLen, master->data(), master->size());
  return key;
}

inline void check_value(const Secret& key, uint8_t out[kCheckLen]) {
  static constexpr char label[] = "kina keystore check v1";
  crypto_generichash(out, kCheckLen, reinterpret_cast<const uint8_t*>(label), sizeof label - 1, key.data(), key.size());
}

}  // namespace detail

namespace detail {
inline void header_hash(std::string_view header, uint8_t out[kHeaderHashLen]) {
  crypto_generichash(out, kHeaderHashLen, reinterpret_cast<const uint8_t*>(header.data()), header.size(), nullptr, 0);
}
}  // namespace detail

// Seals `plain` for storage. `role` names what it is (at most 255 bytes, e.g.
// "cluster c1 pki/ca.key"); open() refuses the file under any other role.
inline Result<std::string> seal(const Secret& plain, Source src, std::string_view role = {}) {
  sodium_ready();
  if (role.size() > kMaxRoleLen) return make_error(Exit::internal, "sealing a secret", "role name longer than 255 bytes");
  uint32_t ops = 0, mem_kib = 0;
  if (src == Source::passphrase) {
    ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    mem_kib = static_cast<uint32_t>(crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024);
  }
  std::string out;
  out.reserve(kHeaderLen + 1 + role.size() + kHeaderHashLen + plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  out += kMagic;
  out += static_cast<char>(kVersion);
  out += static_cast<char>(src);
  detail::put32(out, ops);
  detail::put32(out, mem_kib);
  uint8_t salt[kSaltLen], nonce[kNonceLen], check[kCheckLen], hash[kHeaderHashLen];
  randombytes_buf(salt, sizeof salt);
  randombytes_buf(nonce, sizeof nonce);
  auto key = detail::file_key(src, salt, ops, mem_kib);
  if (!key) return key.error();
  detail::check_value(*key, check);
  out.append(reinterpret_cast<char*>(salt), sizeof salt);
  out.append(reinterpret_cast<char*>(nonce), sizeof nonce);
  out.append(reinterpret_cast<char*>(check), sizeof check);
  out += static_cast<char>(role.size());
  out += role;
  detail::header_hash(out, hash);
  out.append(reinterpret_cast<char*>(hash), sizeof hash);
  size_t header = out.size();
  out.resize(header + plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<uint8_t*>(out.data()) + header, &clen, plain.data(),
                                             plain.size(), reinterpret_cast<const uint8_t*>(out.data()), header,
                                             nullptr, nonce, key->data());
  out.resize(header + clen);
  return out;
}

// Opens a sealed blob. `what` names it in errors (usually the file path);
// `role` is the role it was sealed under (see seal()).
inline Result<Secret> open(std::string_view sealed, const std::string& what, std::string_view role = {}) {
  sodium_ready();
  auto corrupt = [&](std::string why) { return make_error(Exit::data, fmt::format("opening {}", what), std::move(why)); };
  if (auto forced = forced_source(); !forced) return forced.error();
  constexpr size_t tag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (sealed.size() < kHeaderLen + tag || sealed.substr(0, 6) != kMagic)
    return corrupt("not a kina keystore file (bad header)");
  auto version = static_cast<uint8_t>(sealed[6]);
  if (version != 1 && version != kVersion) return corrupt(fmt::format("unsupported keystore version {}", version));
  size_t header = kHeaderLen;
  if (version >= 2) {
    size_t role_len = static_cast<uint8_t>(sealed[kHeaderLen]);
    header = kHeaderLen + 1 + role_len + kHeaderHashLen;
    if (sealed.size() < header + tag) return corrupt("the file is corrupted (truncated)");
    uint8_t want[kHeaderHashLen];
    detail::header_hash(sealed.substr(0, header - kHeaderHashLen), want);
    if (sodium_memcmp(want, sealed.data() + header - kHeaderHashLen, kHeaderHashLen) != 0)
      return corrupt("the file is corrupted (its header does not match its checksum)");
    std::string_view stored_role = sealed.substr(kHeaderLen + 1, role_len);
    if (stored_role != role)
      return corrupt(fmt::format("it holds the sealed {}, not the {} (was a sealed file copied over another?)",
                                 stored_role.empty() ? std::string("secret of no role") : shown(stored_role),
                                 role.empty() ? std::string("secret of no role") : shown(role)));
  }
  auto raw_src = static_cast<uint8_t>(sealed[7]);
  if (raw_src < 1 || raw_src > 4) return corrupt(fmt::format("unknown key source {}", raw_src));
  auto src = static_cast<Source>(raw_src);
  uint32_t ops = detail::get32(sealed, 8), mem_kib = detail::get32(sealed, 12);
  if (src == Source::passphrase &&
      (ops < crypto_pwhash_OPSLIMIT_MIN || ops > 64 || mem_kib < 8 || mem_kib > (4u << 20)))
    return corrupt("implausible key-derivation parameters");
  const auto* salt = reinterpret_cast<const uint8_t*>(sealed.data() + 16);
  const auto* nonce = salt + kSaltLen;
  const auto* check = nonce + kNonceLen;
  if (src == Source::passphrase && !detail::passphrase_configured())
    return make_error(Exit::config, fmt::format("opening {}", what), "it is sealed with a passphrase",
                      "set KINA_PASSPHRASE or KINA_PASSPHRASE_FILE");
  auto key = detail::file_key(src, salt, ops, mem_kib);
  if (!key) return key.error();
  uint8_t want[kCheckLen];
  detail::check_value(*key, want);
  if (sodium_memcmp(want, check, kCheckLen) != 0) {
    return make_error(Exit::policy, fmt::format("opening {}", what),
                      src == Source::passphrase ? "wrong passphrase"
                                                : fmt::format("wrong key (sealed with the {} key of another setup)",
                                                              source_name(src)));
  }
  size_t clen = sealed.size() - header;
  Secret plain(clen - tag);
  unsigned long long plen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &plen, nullptr,
                                                 reinterpret_cast<const uint8_t*>(sealed.data()) + header, clen,
                                                 reinterpret_cast<const uint8_t*>(sealed.data()), header, nonce,
                                                 key->data()) != 0)
    return corrupt("the file is corrupted (authentication failed)");
  return plain;
}

// Seals and writes a secret to `path` atomically, mode 0600, under `role`.
inline Status store(const fsys::path& path, const Secret& plain, std::string_view role = {}) {
  auto src = choose_source();
  if (!src) return src.error();
  auto sealed = seal(plain, *src, role);
  if (!sealed) return sealed.error();
  return write_file_atomic(path, *sealed, 0600);
}

inline Result<Secret> load(const fsys::path& path, std::string_view role = {}) {
  auto data = read_file(path, 16u << 20);
  if (!data) return data.error();
  return open(*data, path.string(), role);
}

}  // namespace kina::keystore
