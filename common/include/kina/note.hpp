// note.hpp: C2SP signed notes with Ed25519 (c2sp.org/signed-note), verifier keys
// (vkey) and transparency-log checkpoints (c2sp.org/tlog-checkpoint).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/secret.hpp"
#include "kina/sha256.hpp"

namespace kina::note {

inline constexpr uint8_t kAlgEd25519 = 0x01;
inline constexpr std::string_view kSigPrefix = "\xe2\x80\x94 ";  // U+2014 EM DASH, space

// A key name: non-empty, no whitespace, no '+'.
inline bool valid_key_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c == '+' || c == 0x7f) return false;
  return true;
}

// key ID = first 4 bytes of SHA-256(name || "\n" || 0x01 || public key), big-endian.
inline uint32_t key_id(std::string_view name, const uint8_t pub[crypto_sign_PUBLICKEYBYTES]) {
  Sha256 h;
  h.update(name).update(uint8_t{'\n'}).update(kAlgEd25519).update(pub, crypto_sign_PUBLICKEYBYTES);
  Hash256 d = h.finish();
  return static_cast<uint32_t>(d[0]) << 24 | static_cast<uint32_t>(d[1]) << 16 | static_cast<uint32_t>(d[2]) << 8 | d[3];
}

struct Verifier {
  std::string name;
  uint32_t id = 0;
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pub{};

  // <name>+<hex key id>+<base64(0x01 || public key)>
  std::string vkey() const {
    std::string blob(1, static_cast<char>(kAlgEd25519));
    blob.append(reinterpret_cast<const char*>(pub.data()), pub.size());
    return fmt::format("{}+{:08x}+{}", name, id, to_base64(blob));
  }
};

inline Result<Verifier> parse_vkey(std::string_view s) {
  auto bad = [&](std::string why) { return make_error(Exit::data, "reading verifier key", std::move(why)); };
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
  size_t p1 = s.find('+');
  size_t p2 = p1 == std::string_view::npos ? p1 : s.find('+', p1 + 1);
  if (p2 == std::string_view::npos) return bad("expected NAME+KEYID+BASE64 (C2SP vkey)");
  Verifier v;
  v.name = std::string(s.substr(0, p1));
  if (!valid_key_name(v.name)) return bad("invalid key name");
  std::string_view hexid = s.substr(p1 + 1, p2 - p1 - 1);
  auto idb = from_hex(hexid);
  if (!idb || idb->size() != 4) return bad("key ID must be 8 lower-case hex digits");
  auto blob = from_base64(s.substr(p2 + 1));
  if (!blob || blob->size() != 1 + crypto_sign_PUBLICKEYBYTES || (*blob)[0] != kAlgEd25519)
    return bad("key must be base64 of 0x01 followed by a 32-byte Ed25519 public key");
  std::copy(blob->begin() + 1, blob->end(), v.pub.begin());
  v.id = static_cast<uint32_t>((*idb)[0]) << 24 | static_cast<uint32_t>((*idb)[1]) << 16 |
         static_cast<uint32_t>((*idb)[2]) << 8 | (*idb)[3];
  if (key_id(v.name, v.pub.data()) != v.id) return bad("key ID does not match the key");
  return v;
}

// A signer: Ed25519 secret key (64 bytes: seed || public) in guarded memory.
struct Signer {
  std::string name;
  Secret sk;  // crypto_sign_SECRETKEYBYTES
  Verifier verifier() const {
    Verifier v;
    v.name = name;
    std::copy(sk.data() + 32, sk.data() + 64, v.pub.begin());
    v.id = key_id(name, v.pub.data());
    return v;
  }
};

inline Signer generate(std::string name) {
  sodium_ready();
  Signer s{std::move(name), Secret(crypto_sign_SECRETKEYBYTES)};
  uint8_t pub[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_keypair(pub, s.sk.data());
  return s;
}

// Private key text, as golang.org/x/mod/sumdb/note writes it:
// PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>. Only ever stored sealed.
inline Secret encode_signer(const Signer& s) {
  std::string blob(1, static_cast<char>(kAlgEd25519));
  blob.append(reinterpret_cast<const char*>(s.sk.data()), 32);
  std::string text = fmt::format("PRIVATE+KEY+{}+{:08x}+{}", s.name, s.verifier().id, to_base64(blob));
  sodium_memzero(blob.data(), blob.size());
  Secret out = Secret::from(text);
  sodium_memzero(text.data(), text.size());
  return out;
}

inline Result<Signer> decode_signer(const Secret& text) {
  auto bad = make_error(Exit::data, "reading the signing key", "not a PRIVATE+KEY+NAME+ID+BASE64 key");
  std::string_view s = text.view();
  if (s.substr(0, 12) != "PRIVATE+KEY+") return bad;
  s.remove_prefix(12);
  size_t p1 = s.find('+');
  size_t p2 = p1 == std::string_view::npos ? p1 : s.find('+', p1 + 1);
  if (p2 == std::string_view::npos) return bad;
  auto blob = from_base64(s.substr(p2 + 1));
  if (!blob || blob->size() != 33 || (*blob)[0] != kAlgEd25519) return bad;
  Signer out{std::string(s.substr(0, p1)), Secret(crypto_sign_SECRETKEYBYTES)};
  uint8_t pub[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(pub, out.sk.data(), blob->data() + 1);
  sodium_memzero(blob->data(), blob->size());
  if (fmt::format("{:08x}", out.verifier().id) != s.substr(p1 + 1, p2 - p1 - 1)) return bad;
  return out;
}

// Signs `text` (which must end in '\n') and returns the whole note.
inline std::string sign(std::string_view text, const Signer& s) {
  uint8_t sig[4 + crypto_sign_BYTES];
  uint32_t id = s.verifier().id;
  sig[0] = static_cast<uint8_t>(id >> 24), sig[1] = static_cast<uint8_t>(id >> 16);
  sig[2] = static_cast<uint8_t>(id >> 8), sig[3] = static_cast<uint8_t>(id);
  crypto_sign_detached(sig + 4, nullptr, reinterpret_cast<const uint8_t*>(text.data()), text.size(), s.sk.data());
  return fmt::format("{}\n{}{} {}\n", text, kSigPrefix, s.name, to_base64(sig, sizeof sig));
}

struct Signature {
  std::string name;
  uint32_t id = 0;
  std::vector<uint8_t> sig;
};

struct Note {
  std::string text;  // everything up to and including the last '\n' before the blank line
  std::vector<Signature> signatures;
};

inline Result<Note> parse(std::string_view data) {
  auto bad = [&](std::string why) { return make_error(Exit::data, "reading signed note", std::move(why)); };
  if (data.size() > 1 << 20) return bad("larger than 1 MiB");
  size_t split = data.rfind("\n\n");
  if (split == std::string_view::npos) return bad("no blank line between text and signatures");
  Note n;
  n.text = std::string(data.substr(0, split + 1));
  std::string_view sigs = data.substr(split + 2);
  if (sigs.empty() || sigs.back() != '\n') return bad("signature lines must end in a newline");
  while (!sigs.empty()) {
    size_t nl = sigs.find('\n');
    std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (line.substr(0, kSigPrefix.size()) != kSigPrefix) return bad("signature line does not start with an em dash");
    line.remove_prefix(kSigPrefix.size());
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad("signature line has no key name");
    auto blob = from_base64(line.substr(sp + 1));
    if (!blob || blob->size() < 5) return bad("signature is not base64 of key ID and signature");
    Signature s;
    s.name = std::string(line.substr(0, sp));
    s.id = static_cast<uint32_t>((*blob)[0]) << 24 | static_cast<uint32_t>((*blob)[1]) << 16 |
           static_cast<uint32_t>((*blob)[2]) << 8 | (*blob)[3];
    s.sig.assign(blob->begin() + 4, blob->end());
    n.signatures.push_back(std::move(s));
  }
  if (n.signatures.empty()) return bad("no signatures");
  return n;
}

// True when a signature by `v` (same name and key ID) verifies over the text.
inline bool verify(const Note& n, const Verifier& v) {
  for (const auto& s : n.signatures) {
    if (s.name != v.name || s.id != v.id) continue;
    if (s.sig.size() != crypto_sign_BYTES) return false;
    return crypto_sign_verify_detached(s.sig.data(), reinterpret_cast<const uint8_t*>(n.text.data()), n.text.size(),
                                       v.pub.data()) == 0;
  }
  return false;
}

// A tlog checkpoint body: origin, tree size, base64 root hash, extension lines.
struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash256 root{};
  std::vector<std::string> extensions;

  std::string text() const {
    std::string t = fmt::format("{}\n{}\n{}\n", origin, size, to_base64(root));
    for (const auto& e : extensions) t += e + "\n";
    return t;
  }
};

inline Result<Checkpoint> parse_checkpoint(std::string_view text) {
  auto bad = [&](std::string why) { return make_error(Exit::data, "reading checkpoint", std::move(why)); };
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("text does not end in a newline");
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  if (lines.size() < 3) return bad("expected origin, tree size and root hash lines");
  Checkpoint c;
  c.origin = std::string(lines[0]);
  if (c.origin.empty()) return bad("empty origin line");
  std::string_view sz = lines[1];
  if (sz.empty() || sz.size() > 20 || sz.find_first_not_of("0123456789") != std::string_view::npos ||
      (sz.size() > 1 && sz[0] == '0'))
    return bad("tree size is not a decimal number");
  for (char ch : sz) c.size = c.size * 10 + static_cast<uint64_t>(ch - '0');
  auto root = from_base64(lines[2]);
  if (!root || root->size() != 32) return bad("root hash is not base64 of 32 bytes");
  std::copy(root->begin(), root->end(), c.root.begin());
  for (size_t i = 3; i < lines.size(); ++i) c.extensions.emplace_back(lines[i]);
  return c;
}

}  // namespace kina::note
