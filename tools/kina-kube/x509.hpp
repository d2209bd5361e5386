// x509.hpp: keys and X.509 certificates through OpenSSL 3 (EVP, no deprecated API):
// key generation (ECDSA P-256, RSA 2048), PEM in and out, CA and leaf certificates
// with kubeadm's profiles, and the facts kina reports about a certificate.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/secret.hpp"
#include "kina/sha256.hpp"
#include "kina/validate.hpp"

namespace kina::x509 {

// --- owning handles -----------------------------------------------------------

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
using Key = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Bio = std::unique_ptr<BIO, BioFree>;

// The oldest queued OpenSSL error as text (and the queue cleared).
inline std::string ssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// --- algorithms -------------------------------------------------------------------

enum class Algorithm { ecdsa_p256, rsa_2048 };

inline std::string_view algorithm_name(Algorithm a) { return a == Algorithm::ecdsa_p256 ? "ecdsa-p256" : "rsa-2048"; }

inline Result<Algorithm> parse_algorithm(std::string_view s) {
  if (s == "ecdsa-p256") return Algorithm::ecdsa_p256;
  if (s == "rsa-2048") return Algorithm::rsa_2048;
  return make_error(Exit::usage, fmt::format("unknown algorithm {}", shown(s)), "use ecdsa-p256 or rsa-2048");
}

inline Result<Key> generate_key(Algorithm a) {
  EVP_PKEY* k = a == Algorithm::ecdsa_p256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                           : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (!k) return make_error(Exit::internal, fmt::format("generating a {} key", algorithm_name(a)), ssl_error());
  return Key(k);
}

// The algorithm of an existing key, when it is one kina makes.
inline std::optional<Algorithm> key_algorithm(EVP_PKEY* k) {
  if (EVP_PKEY_is_a(k, "EC")) return Algorithm::ecdsa_p256;
  if (EVP_PKEY_is_a(k, "RSA")) return Algorithm::rsa_2048;
  return std::nullopt;
}

// --- PEM --------------------------------------------------------------------------

inline std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// A private key as unencrypted PEM in the form kubeadm writes and every
// kubeadm code path reads: `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY`
// (PKCS#1). kubeadm v1.20's control-plane certificate download rejects a
// PKCS#8 `PRIVATE KEY` holding an ECDSA key. Built in OpenSSL's secure heap
// and handed over in a Secret (so the clear key only ever sits in guarded
// memory).
inline Result<Secret> private_key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_secmem()));
  if (!b || !PEM_write_bio_PrivateKey_traditional(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr))
    return make_error(Exit::internal, "encoding a private key", ssl_error());
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  if (n <= 0) return make_error(Exit::internal, "encoding a private key", "empty output");
  return Secret::from(std::string_view(data, static_cast<size_t>(n)));
}

inline Result<std::string> public_key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || !PEM_write_bio_PUBKEY(b.get(), k)) return make_error(Exit::internal, "encoding a public key", ssl_error());
  return bio_string(b.get());
}

inline Result<Key> parse_private_key(std::string_view pem, const std::string& what) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!k) return make_error(Exit::data, fmt::format("reading the private key {}", what), ssl_error());
  return Key(k);
}

inline Result<std::string> cert_pem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b || !PEM_write_bio_X509(b.get(), c)) return make_error(Exit::internal, "encoding a certificate", ssl_error());
  return bio_string(b.get());
}

inline Result<Cert> parse_cert(std::string_view pem, const std::string& what) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509* c = b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!c) return make_error(Exit::data, fmt::format("reading the certificate {}", what), ssl_error());
  return Cert(c);
}

// --- facts about a certificate ------------------------------------------------------

inline std::optional<int64_t> asn1_time_ms(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return static_cast<int64_t>(::timegm(&tm)) * 1000;
}
inline int64_t not_after_ms(const X509* c) { return asn1_time_ms(X509_get0_notAfter(c)).value_or(0); }
inline int64_t not_before_ms(const X509* c) { return asn1_time_ms(X509_get0_notBefore(c)).value_or(0); }

// RFC 2253 form: CN=alice,O=dev
inline std::string subject(const X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!b) return {};
  X509_NAME_print_ex(b.get(), X509_get_subject_name(c), 0, XN_FLAG_RFC2253);
  return bio_string(b.get());
}

// Values of one attribute (NID_commonName, NID_organizationName) of the subject.
inline std::vector<std::string> subject_values(const X509* c, int nid) {
  std::vector<std::string> out;
  const X509_NAME* name = X509_get_subject_name(c);
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0; i = X509_NAME_get_index_by_NID(name, nid, i)) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n >= 0) out.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  return out;
}

inline std::string fingerprint_sha256(const X509* c) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!X509_digest(c, EVP_sha256(), md, &n)) return {};
  return to_hex(md, n);
}

// kubeadm's discovery hash: "sha256:" + hex SHA-256 of the certificate's DER
// SubjectPublicKeyInfo, exactly as encoded in the certificate.
inline std::string spki_hash(const X509* c) {
  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
  if (n <= 0) return {};
  Hash256 h = sha256(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(n)));
  OPENSSL_free(der);
  return "sha256:" + to_hex(h);
}

inline std::string serial_hex(const X509* c) {
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr), BN_free);
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  return out;
}

// True when `key` is the private half of the public key in `c`.
inline bool key_matches_cert(const X509* c, const EVP_PKEY* key) {
  const EVP_PKEY* pub = X509_get0_pubkey(c);
  bool same = pub && key && EVP_PKEY_eq(pub, key) == 1;
  ERR_clear_error();
  return same;
}

// True when `c` was signed by `ca_key`'s pair and names `ca` as issuer.
inline bool issued_by(X509* c, X509* ca) {
  return X509_check_issued(ca, c) == X509_V_OK && X509_verify(c, X509_get0_pubkey(ca)) == 1;
}

// --- subject and SAN validation ---------------------------------------------------------

// A user or group name that goes into a certificate subject: 1-64 characters
// (X.520's upper bound for CN) of letters, digits and . _ @ : - (what Kubernetes
// user and group names use: system:masters, alice@example.com). Everything else
// (control characters, / , + = \ " ' < > ; #, spaces) is refused: such names
// read differently in different DN renderings and invite confusion.
inline Status validate_subject_name(std::string_view what, std::string_view s) {
  auto bad = [&](std::string why) {
    return make_error(Exit::usage, fmt::format("invalid {} {}", what, shown(s)), std::move(why));
  };
  if (s.empty()) return bad("must not be empty");
  if (s.size() > 64) return bad("must be at most 64 characters (the X.509 limit for a common name)");
  for (char c : s) {
    bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '@' || c == ':' || c == '-';
    if (!okc) {
      auto u = static_cast<unsigned char>(c);
      std::string shown_c = (u < 0x20 || u >= 0x7f) ? fmt::format("byte 0x{:02x}", u) : fmt::format("'{}'", c);
      return bad(fmt::format("{} cannot go into a certificate subject safely (use letters, digits and . _ @ : -)",
                             shown_c));
    }
  }
  return {};
}

struct San {
  enum class Type { dns, ip } type = Type::dns;
  std::string value;
  IpAddress ip;
};

// An IP address or a DNS name (validate_host_name: RFC 1123 labels, a "*."
// wildcard only as the whole left label, nothing that looks like a bad IPv4).
inline Result<San> parse_san(std::string_view s) {
  if (auto ip = parse_ip(s)) return San{San::Type::ip, ip->str(), *ip};
  if (s.find(':') != std::string_view::npos)
    return make_error(Exit::usage, fmt::format("invalid --san {}", shown(s)), "not a valid IPv6 address");
  if (auto st = validate_host_name("--san", s, true); !st) return st.error();
  San out;
  out.type = San::Type::dns;
  out.value = std::string(s);
  for (char& c : out.value) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// --- issuing --------------------------------------------------------------------------------

// What a certificate may be used for (kubeadm's profiles): server (serverAuth),
// client (clientAuth), peer (both, as etcd peers use). Combined as a bit set.
enum Usage : unsigned { usage_server = 1, usage_client = 2 };

inline Result<unsigned> parse_usage(std::string_view s) {
  if (s == "server") return unsigned{usage_server};
  if (s == "client") return unsigned{usage_client};
  if (s == "peer") return unsigned{usage_server | usage_client};
  return make_error(Exit::usage, fmt::format("unknown usage {}", shown(s)), "use server, client or peer");
}

// The last instant an X.509 time can express (GeneralizedTime has four year digits).
inline constexpr int64_t kMaxTimeMs = 253402300799000;  // 9999-12-31T23:59:59Z

struct Request {
  std::string cn;
  std::vector<std::string> orgs;
  std::vector<San> sans;
  bool is_ca = false;
  unsigned usages = 0;       // leaves only
  int64_t not_before_ms = 0;
  int64_t not_after_ms = 0;
};

namespace detail {

inline Status add_ext(X509* c, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (!ext) return make_error(Exit::internal, fmt::format("adding extension {}", OBJ_nid2sn(nid)), ssl_error());
  int okv = X509_add_ext(c, ext, -1);
  X509_EXTENSION_free(ext);
  if (!okv) return make_error(Exit::internal, fmt::format("adding extension {}", OBJ_nid2sn(nid)), ssl_error());
  return {};
}

inline Status add_sans(X509* c, const std::vector<San>& sans) {
  if (sans.empty()) return {};
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  if (!names) return make_error(Exit::os, "out of memory");
  bool okv = true;
  for (const auto& s : sans) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (!gn) { okv = false; break; }
    if (s.type == San::Type::ip) {
      ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
      okv = os && ASN1_OCTET_STRING_set(os, s.ip.bytes.data(), static_cast<int>(s.ip.size()));
      GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    } else {
      ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
      okv = ia5 && ASN1_STRING_set(ia5, s.value.data(), static_cast<int>(s.value.size()));
      GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    }
    if (!okv || !sk_GENERAL_NAME_push(names, gn)) {
      GENERAL_NAME_free(gn);
      okv = false;
      break;
    }
  }
  if (okv) okv = X509_add1_ext_i2d(c, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
  sk_GENERAL_NAME_pop_free(names, GENERAL_NAME_free);
  if (!okv) return make_error(Exit::internal, "adding subjectAltName", ssl_error());
  return {};
}

}  // namespace detail

// Builds and signs a certificate for `pub`. Self-signed when issuer is null
// (then issuer_key signs and must be pub's private half).
inline Result<Cert> issue(const Request& r, EVP_PKEY* pub, X509* issuer, EVP_PKEY* issuer_key) {
  Cert c(X509_new());
  if (!c) return make_error(Exit::os, "out of memory");
  auto fail = [](std::string what) { return make_error(Exit::internal, std::move(what), ssl_error()); };
  if (!X509_set_version(c.get(), 2)) return fail("setting the certificate version");
  // 127 random bits: positive, unique enough to never repeat (RFC 5280 allows up to 20 octets).
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return fail("drawing a serial number");
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial, sizeof serial, nullptr), BN_free);
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c.get()))) return fail("setting the serial number");
  X509_NAME* name = X509_get_subject_name(c.get());
  auto add_name = [&](const char* field, const std::string& v) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(v.data()),
                                      static_cast<int>(v.size()), -1, 0) == 1;
  };
  for (const auto& o : r.orgs)
    if (!add_name("O", o)) return fail(fmt::format("setting the organization {}", shown(o)));
  if (!add_name("CN", r.cn)) return fail(fmt::format("setting the common name {}", shown(r.cn)));
  if (!X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name)) return fail("setting the issuer");
  if (r.not_after_ms > kMaxTimeMs || r.not_before_ms < 0 || r.not_before_ms >= r.not_after_ms)
    return make_error(Exit::usage, "invalid certificate validity",
                      "must start after 1970 and end after it starts, by 9999-12-31 at the latest");
  if (!ASN1_TIME_set(X509_getm_notBefore(c.get()), static_cast<time_t>(r.not_before_ms / 1000)) ||
      !ASN1_TIME_set(X509_getm_notAfter(c.get()), static_cast<time_t>(r.not_after_ms / 1000)))
    return fail("setting the validity");
  if (!X509_set_pubkey(c.get(), pub)) return fail("setting the public key");

  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, issuer ? issuer : c.get(), c.get(), nullptr, nullptr, 0);
  Status st;
  if (r.is_ca) {
    if (!(st = detail::add_ext(c.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE"))) return st.error();
    if (!(st = detail::add_ext(c.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign")))
      return st.error();
  } else {
    if (!(st = detail::add_ext(c.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"))) return st.error();
    if (!(st = detail::add_ext(c.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment")))
      return st.error();
    std::string eku;
    if (r.usages & usage_server) eku = "serverAuth";
    if (r.usages & usage_client) eku += eku.empty() ? "clientAuth" : ",clientAuth";
    if (!eku.empty())
      if (!(st = detail::add_ext(c.get(), &ctx, NID_ext_key_usage, eku.c_str()))) return st.error();
  }
  if (!(st = detail::add_ext(c.get(), &ctx, NID_subject_key_identifier, "hash"))) return st.error();
  if (issuer)
    if (!(st = detail::add_ext(c.get(), &ctx, NID_authority_key_identifier, "keyid:always"))) return st.error();
  if (!(st = detail::add_sans(c.get(), r.sans))) return st.error();
  if (X509_sign(c.get(), issuer_key, EVP_sha256()) <= 0) return fail("signing the certificate");
  return c;
}

}  // namespace kina::x509
