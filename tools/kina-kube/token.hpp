// token.hpp: `token`: a kubeadm bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}),
// printed only on a pipe or into a private file.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/error.hpp"
#include "kina/invocation.hpp"
#include "kina/record.hpp"
#include "kina/secret.hpp"
#include "kina/validate.hpp"

#include "ca.hpp"
#include "cluster.hpp"
#include "x509.hpp"

namespace kina::kube {

inline constexpr size_t kTokenIdSize = 6, kTokenSize = 23;  // ID "." SECRET(16)

// Whether `t` has a bootstrap token's shape: [a-z0-9]{6}\.[a-z0-9]{16}.
inline bool is_bootstrap_token(std::string_view t) {
  if (t.size() != kTokenSize) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    bool ok = i == kTokenIdSize ? c == '.' : (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// A new bootstrap token from libsodium's generator, each character uniform over [a-z0-9].
inline Secret make_bootstrap_token() {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  sodium_ready();
  Secret tok(kTokenSize);
  for (size_t i = 0; i < kTokenSize; ++i)
    tok.data()[i] = i == kTokenIdSize ? '.' : static_cast<uint8_t>(alphabet[randombytes_uniform(36)]);
  return tok;
}

struct TokenArgs {
  std::string cluster;
  std::string ttl;  // empty: 24h
};

// token: prints a JoinToken record, refused on a terminal or into a file others can read.
inline Status token(const TokenArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  auto ttl = parse_duration_flag("--ttl", a.ttl.empty() ? "24h" : a.ttl, kSecondMs, kMaxTokenTtlMs);
  if (!ttl) return ttl.error();
  if (::isatty(1))
    return make_error(Exit::policy, "refusing to print a bootstrap token on a terminal",
                      "the token is a secret that travels on the pipe only",
                      "pipe it to the next tool, e.g. kina-kube token --cluster C | kina-node init");
  // Nor into a file others can read (a shell redirection under umask 022).
  if (struct stat st {}; ::fstat(1, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0)
    return make_error(Exit::policy, "refusing to write a bootstrap token into a file that others can read",
                      fmt::format("stdout is a file with mode {:04o}", st.st_mode & 07777),
                      "pipe it to the next tool, or write it to a file of mode 0600 (umask 077)");
  auto cdir = cluster_dir(a.cluster, false);
  if (!cdir) return cdir.error();
  auto ca = load_ca(*cdir, a.cluster, "cluster", false);
  if (!ca) return ca.error();
  Secret tok = make_bootstrap_token();
  std::string id(tok.view().substr(0, kTokenIdSize));
  inv.set_target(id);
  int64_t expires = now_ms() + *ttl;
  auto w = begin_record("JoinToken");
  w.field("cluster", a.cluster).field("tokenID", id).field("token", tok.view());
  w.field("expires", format_utc_ms(expires)).field("ttl", a.ttl.empty() ? "24h" : a.ttl);
  w.string_array("caCertHashes", {x509::spki_hash(ca->cert.get())});
  w.end_object();
  RecordWriter out;
  std::string line = w.take();
  Status st = out.write_line(line);
  sodium_memzero(line.data(), line.size());
  return st;
}

}  // namespace kina::kube
