// ca.hpp: the cluster's three CAs as kubeadm names them, loading one (its sealed
// key checked against its certificate), and the key and validity of a leaf.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "kina/clock.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/keystore.hpp"
#include "kina/validate.hpp"

#include "cluster.hpp"
#include "x509.hpp"

namespace kina::kube {

// The CAs kubeadm expects, by the names of its files under /etc/kubernetes/pki.
struct CaSpec {
  std::string_view id, file, cn;
};
inline constexpr CaSpec kCas[] = {
    {"cluster", "ca", "kubernetes"}, {"front-proxy", "front-proxy-ca", "front-proxy-ca"}, {"etcd", "etcd/ca", "etcd-ca"}};

inline const CaSpec* find_ca(std::string_view id) {
  for (const auto& c : kCas)
    if (c.id == id) return &c;
  return nullptr;
}

inline Error no_pki(const std::string& cluster) {
  return make_error(Exit::no_input, fmt::format("cluster \"{}\"", cluster), "has no PKI",
                    fmt::format("create it with: kina-kube pki init --cluster {}", cluster));
}

// What a sealed key file of a cluster's PKI holds, bound into the file
// (keystore roles): a key copied over another one is refused by name.
inline std::string key_role(std::string_view cluster, std::string_view file) {
  return fmt::format("cluster {} pki/{}.key", cluster, file);
}

struct LoadedCa {
  x509::Cert cert;
  x509::Key key;
  fsys::path cert_path;
};

// Loads CA `id` of the cluster in `cdir`: its certificate and, when
// `need_key`, its sealed key, refused when it is not the certificate's.
inline Result<LoadedCa> load_ca(const fsys::path& cdir, const std::string& cluster, std::string_view id, bool need_key = true) {
  const CaSpec* spec = find_ca(id);
  if (!spec) return make_error(Exit::usage, fmt::format("unknown CA {}", shown(id)), "use cluster, front-proxy or etcd");
  fsys::path pki = cdir / "pki";
  fsys::path crt = pki / (std::string(spec->file) + ".crt");
  auto pem = read_file(crt, 1u << 20);
  if (!pem) {
    if (pem.error().exit == Exit::no_input) return no_pki(cluster);
    return pem.error();
  }
  auto cert = x509::parse_cert(*pem, crt.string());
  if (!cert) return cert.error();
  LoadedCa ca{std::move(*cert), nullptr, crt};
  if (need_key) {
    fsys::path kf = pki / (std::string(spec->file) + ".key.sealed");
    auto sealed = keystore::load(kf, key_role(cluster, spec->file));
    if (!sealed) return sealed.error();
    auto key = x509::parse_private_key(sealed->view(), kf.string());
    if (!key) return key.error();
    // Never sign with a key that is not the certificate's: what it signed
    // would fail verification everywhere.
    if (!x509::key_matches_cert(ca.cert.get(), key->get()))
      return make_error(Exit::data, fmt::format("opening {}", kf.string()),
                        fmt::format("the key does not match its certificate {}", crt.string()),
                        "restore the pair from a backup, or make a new PKI with: kina-kube pki init --force");
    ca.key = std::move(*key);
  }
  return ca;
}

// A new leaf key: `algorithm` (--algorithm) when given, else the CA's own.
inline Result<x509::Key> leaf_key(const std::string& algorithm, const LoadedCa& ca) {
  auto alg = algorithm.empty() ? x509::key_algorithm(ca.key.get()).value_or(x509::Algorithm::ecdsa_p256)
                               : x509::parse_algorithm(algorithm);
  if (!alg) return alg.error();
  return x509::generate_key(*alg);
}

// A leaf's --ttl as its end (ms since the epoch), refused when it would outlive the CA.
inline Result<int64_t> leaf_not_after(const std::string& ttl, const LoadedCa& ca, std::string_view ca_name) {
  auto ms = parse_duration_flag("--ttl", ttl, kSecondMs, kMaxLeafTtlMs);
  if (!ms) return ms.error();
  int64_t now = now_ms();
  int64_t ca_end = x509::not_after_ms(ca.cert.get());
  if (*ms > ca_end - now)
    return make_error(Exit::usage, fmt::format("--ttl {}", ttl),
                      fmt::format("goes beyond the validity of the {} CA (until {})", ca_name, format_utc_ms(ca_end)),
                      "use a shorter --ttl, or renew the PKI");
  return now + *ms;
}

}  // namespace kina::kube
