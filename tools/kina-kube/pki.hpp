// pki.hpp: the cluster PKI: `pki init` (the three CAs and the service-account
// pair, swapped in as one), `pki export` (kubeadm's layout, all files or none)
// and `pki issue` (a leaf certificate and key).
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/invocation.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/keystore.hpp"
#include "kina/record.hpp"
#include "kina/secret.hpp"
#include "kina/validate.hpp"

#include "ca.hpp"
#include "cluster.hpp"
#include "install.hpp"
#include "x509.hpp"

namespace kina::kube {

// What a killed pki init left in the cluster directory, under the cluster
// lock (so no live pki init owns it): `.pki.tmp.*` is a new PKI never swapped
// in or an old one swapped out, and is removed; `.pki.old.*/pki` is the old
// PKI that versions before RENAME_EXCHANGE moved aside, put back when `pki`
// is missing, else removed.
inline Status recover_pki(const fsys::path& cdir) {
  std::error_code ec;
  fsys::path pki = cdir / "pki";
  std::vector<fsys::path> tmps, olds;
  for (fsys::directory_iterator it(cdir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.rfind(".pki.tmp.", 0) == 0) tmps.push_back(it->path());
    else if (n.rfind(".pki.old.", 0) == 0) olds.push_back(it->path());
  }
  if (ec) return os_error(fmt::format("reading {}", cdir.string()), ec.value());
  for (const auto& old : olds) {
    struct stat st {};
    if (::lstat(pki.c_str(), &st) != 0 && errno == ENOENT && fsys::exists(old / "pki" / "ca.crt", ec)) {
      if (::rename((old / "pki").c_str(), pki.c_str()) != 0)
        return os_error(fmt::format("restoring {} from {}", pki.string(), old.string()), errno, Exit::cant_create);
      warn(kTool, fmt::format("restored {} that an interrupted pki init --force had moved aside", pki.string()));
      if (auto s = fsync_dir(cdir); !s) return s;
    }
    fsys::remove_all(old, ec);
  }
  for (const auto& t : tmps) fsys::remove_all(t, ec);
  return {};
}

struct PkiInitArgs {
  std::string cluster;
  std::string algorithm;  // empty: ecdsa-p256
  std::string ca_ttl = "10y";
  bool force = false;
};

// pki init: prints a PKI record; the audit target names what it wrote.
inline Status pki_init(const PkiInitArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  auto alg = x509::parse_algorithm(a.algorithm.empty() ? "ecdsa-p256" : a.algorithm);
  if (!alg) return alg.error();
  auto ttl = parse_duration_flag("--ca-ttl", a.ca_ttl, kDayMs, kMaxDurationMs);
  if (!ttl) return ttl.error();
  if (*ttl > x509::kMaxTimeMs - now_ms())
    return make_error(Exit::usage, fmt::format("--ca-ttl {}", a.ca_ttl), "ends after 9999-12-31, the last date X.509 can express");
  auto cdir = cluster_dir(a.cluster, true);
  if (!cdir) return cdir.error();
  auto lock = lock_cluster(*cdir, "pki init");
  if (!lock) return lock.error();
  fsys::path pki = *cdir / "pki";
  inv.set_target(pki.string());
  if (auto st = recover_pki(*cdir); !st) return st;
  std::error_code ec;
  if (fsys::exists(pki / "ca.crt", ec) && !a.force)
    return make_error(Exit::cant_create, fmt::format("cluster \"{}\"", a.cluster),
                      fmt::format("already has a PKI in {}", pki.string()), "pass --force to replace it (every certificate it signed stops being trusted)");

  // Everything goes into a temporary directory renamed into place at the end.
  std::string tmpl = (*cdir / ".pki.tmp.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return os_error(fmt::format("creating a directory in {}", cdir->string()), errno, Exit::cant_create);
  fsys::path tmp = tmpl;
  auto cleanup = [&](Error e) {
    fsys::remove_all(tmp, ec);
    return e;
  };
  if (auto st = ensure_dir(tmp / "etcd", 0700); !st) return cleanup(st.error());

  int64_t now = now_ms();
  auto w = begin_record("PKI");
  w.field("cluster", a.cluster).field("algorithm", x509::algorithm_name(*alg)).field("dir", pki.string());
  w.key("cas").begin_array();
  std::string hash;
  for (const auto& spec : kCas) {
    auto key = x509::generate_key(*alg);
    if (!key) return cleanup(key.error());
    x509::Request req;
    req.cn = std::string(spec.cn);
    req.is_ca = true;
    req.not_before_ms = now - kBackdateMs;
    req.not_after_ms = now + *ttl;
    auto cert = x509::issue(req, key->get(), nullptr, key->get());
    if (!cert) return cleanup(cert.error());
    auto pem = x509::cert_pem(cert->get());
    if (!pem) return cleanup(pem.error());
    auto kpem = x509::private_key_pem(key->get());
    if (!kpem) return cleanup(kpem.error());
    if (auto st = write_file_atomic(tmp / (std::string(spec.file) + ".crt"), *pem, 0644); !st) return cleanup(st.error());
    if (auto st = keystore::store(tmp / (std::string(spec.file) + ".key.sealed"), *kpem, key_role(a.cluster, spec.file)); !st)
      return cleanup(st.error());
    if (spec.id == "cluster") hash = x509::spki_hash(cert->get());
    w.begin_object()
        .field("name", spec.id)
        .field("subject", x509::subject(cert->get()))
        .field("cert", (pki / (std::string(spec.file) + ".crt")).string())
        .field("notAfter", format_utc_ms(x509::not_after_ms(cert->get())))
        .field("sha256", x509::fingerprint_sha256(cert->get()))
        .end_object();
  }
  w.end_array();
  // The service-account signing pair (kubeadm's sa.key / sa.pub): RSA-2048
  // whatever --algorithm says, as kubeadm makes it. kubeadm v1.20's check
  // before `join --control-plane` refuses an sa.key that is not RSA.
  auto sa = x509::generate_key(x509::Algorithm::rsa_2048);
  if (!sa) return cleanup(sa.error());
  auto sa_pub = x509::public_key_pem(sa->get());
  if (!sa_pub) return cleanup(sa_pub.error());
  auto sa_key = x509::private_key_pem(sa->get());
  if (!sa_key) return cleanup(sa_key.error());
  if (auto st = write_file_atomic(tmp / "sa.pub", *sa_pub, 0644); !st) return cleanup(st.error());
  if (auto st = keystore::store(tmp / "sa.key.sealed", *sa_key, key_role(a.cluster, "sa")); !st) return cleanup(st.error());
  if (auto st = fsync_dir(tmp); !st) return cleanup(st.error());

  // Swap in one step: with --force the new PKI and the old one trade places
  // (RENAME_EXCHANGE), so a kill at any point leaves one of the two in place;
  // the old one, now in the temporary directory, is removed last (or swept by
  // the next pki init).
  bool replace = fsys::exists(pki, ec);
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, pki.c_str(), replace ? RENAME_EXCHANGE : RENAME_NOREPLACE) != 0)
    return cleanup(os_error(fmt::format("renaming into {}", pki.string()), errno, Exit::cant_create));
  if (auto st = fsync_dir(*cdir); !st) return cleanup(st.error());
  fsys::remove_all(tmp, ec);
  w.field("saPublicKey", (pki / "sa.pub").string()).field("caCertHash", hash);
  return print_record(w);
}

struct PkiExportArgs {
  std::string cluster, dir;
};

// pki export: prints a PKIExport record.
inline Status pki_export(const PkiExportArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  auto cdir = cluster_dir(a.cluster, false);
  if (!cdir) return cdir.error();
  auto dir_arg = path_arg("--dir", a.dir);
  if (!dir_arg) return dir_arg.error();
  fsys::path dir = *dir_arg;
  inv.set_target(dir.string());
  std::error_code ec;
  if (!fsys::exists(*cdir / "pki" / "ca.crt", ec)) return no_pki(a.cluster);
  // Clear keys never land inside $KINA_HOME, where keys are kept sealed.
  if (auto home = kina_home(false)) {
    std::error_code e1, e2;
    fsys::path h = fsys::weakly_canonical(*home, e1), d = fsys::weakly_canonical(dir, e2);
    fsys::path rel = d.lexically_relative(h);
    if (!e1 && !e2 && !rel.empty() && *rel.begin() != "..")
      return make_error(Exit::policy, fmt::format("refusing to export keys in clear into {}", dir.string()),
                        fmt::format("it is inside KINA_HOME ({}), where keys are kept sealed", h.string()),
                        "export to a directory outside it, e.g. one provisioned onto the node");
  }
  auto lock = lock_cluster(*cdir, "pki export");
  if (!lock) return lock.error();
  // Everything is read and opened before anything is written.
  std::vector<std::pair<fsys::path, std::string>> certs;
  std::vector<std::pair<fsys::path, Secret>> keys;
  for (const auto& spec : kCas) {
    auto ca = load_ca(*cdir, a.cluster, spec.id);
    if (!ca) return ca.error();
    auto pem = x509::cert_pem(ca->cert.get());
    if (!pem) return pem.error();
    auto kpem = x509::private_key_pem(ca->key.get());
    if (!kpem) return kpem.error();
    certs.emplace_back(dir / (std::string(spec.file) + ".crt"), *pem);
    keys.emplace_back(dir / (std::string(spec.file) + ".key"), std::move(*kpem));
  }
  auto sa_pub = read_file(*cdir / "pki" / "sa.pub", 1u << 20);
  if (!sa_pub) return sa_pub.error();
  fsys::path sa_file = *cdir / "pki" / "sa.key.sealed";
  auto sa_sealed = keystore::load(sa_file, key_role(a.cluster, "sa"));
  if (!sa_sealed) return sa_sealed.error();
  // Re-encoded, so a PKI made before the key format changed exports alike.
  auto sa = x509::parse_private_key(sa_sealed->view(), "the service-account key");
  if (!sa) return sa.error();
  if (auto pub = x509::public_key_pem(sa->get()); !pub || *pub != *sa_pub)
    return make_error(Exit::data, fmt::format("opening {}", sa_file.string()),
                      fmt::format("the key does not match its public key {}", (*cdir / "pki" / "sa.pub").string()));
  auto sa_key = x509::private_key_pem(sa->get());
  if (!sa_key) return sa_key.error();
  certs.emplace_back(dir / "sa.pub", *sa_pub);
  keys.emplace_back(dir / "sa.key", std::move(*sa_key));
  // All files or none: a failure midway leaves DIR as it was.
  std::vector<Staged> files;
  for (const auto& [p, pem] : certs) files.push_back({p.lexically_relative(dir), pem, 0644});
  for (const auto& [p, k] : keys) files.push_back({p.lexically_relative(dir), k.view(), 0600});
  if (auto st = install_files(dir, files, inv.interrupts()); !st) return st;
  auto w = begin_record("PKIExport");
  w.field("cluster", a.cluster).field("dir", dir.string()).field("layout", "kubeadm");
  w.key("files").begin_array();
  for (const auto& [p, pem] : certs) w.value(p.string());
  for (const auto& [p, k] : keys) w.value(p.string());
  w.end_array();
  return print_record(w);
}

// The file name pki issue gives a certificate by default: its CN, with every
// byte that is not a letter, digit, '.', '_' or '-' made '-'.
inline std::string file_stem_for(std::string_view cn) {
  std::string s;
  for (char c : cn) s += ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-') ? c : '-';
  return s;
}

struct IssueArgs {
  std::string cluster;
  std::string ca = "cluster";
  std::string cn;
  std::vector<std::string> orgs, sans, usages;
  std::string ttl;        // empty: 365d
  std::string algorithm;  // empty: the CA's
  std::string name;       // empty: from the CN
  std::string out;
};

// pki issue: prints a Certificate record.
inline Status pki_issue(const IssueArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  // Check every input first and report all problems at once.
  std::vector<Error> problems;
  if (auto st = x509::validate_subject_name("--cn", a.cn); !st) problems.push_back(st.error());
  for (const auto& org : a.orgs)
    if (auto st = x509::validate_subject_name("--org", org); !st) problems.push_back(st.error());
  std::vector<x509::San> sans;
  for (const auto& s : a.sans) {
    auto san = x509::parse_san(s);
    if (!san) problems.push_back(san.error());
    else sans.push_back(*san);
  }
  unsigned usages = 0;
  for (const auto& u : a.usages.empty() ? std::vector<std::string>{"client"} : a.usages) {
    auto bits = x509::parse_usage(u);
    if (!bits) problems.push_back(bits.error());
    else usages |= *bits;
  }
  std::string name = a.name.empty() ? file_stem_for(a.cn) : a.name;
  auto out_dir = path_arg("--out", a.out);
  if (!out_dir) problems.push_back(out_dir.error());
  if (!a.name.empty() && (name.find('/') != std::string::npos || name == "." || name == ".."))
    problems.push_back(make_error(Exit::usage, fmt::format("invalid --name {}", shown(name)), "must be a file name"));
  if (!problems.empty()) {
    for (size_t i = 0; i + 1 < problems.size(); ++i) report(kTool, problems[i]);
    return problems.back();
  }
  auto cdir = cluster_dir(a.cluster, false);
  if (!cdir) return cdir.error();
  auto ca = load_ca(*cdir, a.cluster, a.ca);
  if (!ca) return ca.error();
  auto end = leaf_not_after(a.ttl.empty() ? "365d" : a.ttl, *ca, a.ca);
  if (!end) return end.error();
  auto key = leaf_key(a.algorithm, *ca);
  if (!key) return key.error();
  x509::Request req;
  req.cn = a.cn;
  req.orgs = a.orgs;
  req.sans = sans;
  req.usages = usages;
  req.not_before_ms = std::max(now_ms() - kBackdateMs, x509::not_before_ms(ca->cert.get()));
  req.not_after_ms = *end;
  auto cert = x509::issue(req, key->get(), ca->cert.get(), ca->key.get());
  if (!cert) return cert.error();
  auto pem = x509::cert_pem(cert->get());
  if (!pem) return pem.error();
  auto kpem = x509::private_key_pem(key->get());
  if (!kpem) return kpem.error();
  fsys::path dir = *out_dir;
  fsys::path crt = dir / (name + ".crt"), kf = dir / (name + ".key");
  inv.set_target(crt.string());
  // The key and its certificate together or neither.
  if (auto st = install_files(dir, {{name + ".key", kpem->view(), 0600}, {name + ".crt", *pem, 0644}}, inv.interrupts()); !st) return st;
  auto w = begin_record("Certificate");
  w.field("cluster", a.cluster).field("ca", a.ca).field("subject", x509::subject(cert->get()));
  w.string_array("organizations", a.orgs);
  w.key("sans").begin_array();
  for (const auto& s : sans) w.value(s.value);
  w.end_array();
  std::vector<std::string> us;
  if (usages & x509::usage_server) us.emplace_back("server");
  if (usages & x509::usage_client) us.emplace_back("client");
  w.string_array("usages", us);
  w.field("algorithm", x509::algorithm_name(x509::key_algorithm(key->get()).value_or(x509::Algorithm::ecdsa_p256))).field("serial", x509::serial_hex(cert->get()));
  w.field("notBefore", format_utc_ms(x509::not_before_ms(cert->get())))
      .field("notAfter", format_utc_ms(x509::not_after_ms(cert->get())));
  w.field("cert", crt.string()).field("key", kf.string()).field("caCert", ca->cert_path.string());
  return print_record(w);
}

}  // namespace kina::kube
