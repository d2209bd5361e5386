// kina-kube: cluster PKI (the CAs kubeadm uses), least-privilege kubeconfigs signed
// by the cluster CA, bootstrap tokens, fetching the admin kubeconfig from a node,
// and merging kubeconfigs into the user's kubectl configuration.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/keystore.hpp"
#include "kina/kubeconfig.hpp"
#include "kina/lock.hpp"
#include "kina/output.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"
#include "kina/x509.hpp"
#include "kina/yaml.hpp"

namespace {

using namespace kina;
constexpr std::string_view kTool = "kina-kube";
// Certificates start a little in the past: a node VM's clock may lag the host's.
constexpr int64_t kBackdateMs = 5 * 60 * 1000;
// Bounds of the duration flags (docs/cli.md, "Numeric bounds").
constexpr int64_t kSecondMs = 1000, kDayMs = 86400 * kSecondMs, kYearMs = 365 * kDayMs;
constexpr int64_t kMaxLeafTtlMs = 10 * kYearMs;          // issue, sign --ttl (and never past the CA's end)
constexpr int64_t kMaxTokenTtlMs = kYearMs;              // token --ttl
constexpr int64_t kMaxLockTimeoutMs = 3600 * kSecondMs;  // merge, unmerge --lock-timeout

struct Options {
  std::vector<std::string> argv;
  std::string cluster;
  bool force = false;
  std::string algorithm;
  std::string ttl;
  std::string ca_ttl = "10y";
  std::string dir;
  // issue
  std::string ca = "cluster";
  std::string cn;
  std::vector<std::string> orgs;
  std::vector<std::string> sans;
  std::vector<std::string> usages;
  std::string name;
  // sign
  std::string user;
  std::vector<std::string> groups;
  std::string server;
  std::string out;
  // fetch / merge
  std::string machine;
  std::string kubeconfig;
  bool kubeconfig_given = false;  // --kubeconfig "" is an error, not "use the default"
  std::vector<std::string> from;
  std::string lock_timeout = "10s";
};

// --- where things live ---------------------------------------------------------------

Result<fsys::path> cluster_dir(const std::string& cluster, bool create) {
  if (auto st = validate_name("cluster name", cluster); !st) return st.error();
  auto home = kina_home();
  if (!home) return home.error();
  fsys::path dir = *home / "clusters" / cluster;
  if (create)
    if (auto st = ensure_dir(dir, 0700); !st) return st.error();
  return dir;
}

// A path given on the command line, made absolute; an empty one is a usage error
// (std::filesystem::absolute throws on it).
Result<fsys::path> path_arg(std::string_view flag, const std::string& s) {
  if (s.empty()) return make_error(Exit::usage, fmt::format("invalid {} \"\"", flag), "must not be empty");
  std::error_code ec;
  fsys::path p = fsys::absolute(s, ec);
  if (ec) return make_error(Exit::usage, fmt::format("invalid {} {}", flag, shown(s)), ec.message());
  // "DIR/" and "DIR/." name DIR itself (and rename(2) needs its plain name).
  std::string t = p.string();
  for (;;) {
    if (t.size() > 1 && t.back() == '/') t.pop_back();
    else if (t.size() > 2 && t.ends_with("/.")) t.resize(t.size() - 2);
    else break;
  }
  return fsys::path(t);
}

Result<FileLock> lock_cluster(const fsys::path& dir, std::string_view action) {
  return FileLock::acquire(dir / "lock", std::chrono::seconds(30), fmt::format("kina-kube {}", action));
}

// The CAs kubeadm expects, by the names of its files under /etc/kubernetes/pki.
struct CaSpec {
  std::string_view id, file, cn;
};
constexpr CaSpec kCas[] = {
    {"cluster", "ca", "kubernetes"}, {"front-proxy", "front-proxy-ca", "front-proxy-ca"}, {"etcd", "etcd/ca", "etcd-ca"}};

const CaSpec* find_ca(std::string_view id) {
  for (const auto& c : kCas)
    if (c.id == id) return &c;
  return nullptr;
}

Error no_pki(const std::string& cluster) {
  return make_error(Exit::no_input, fmt::format("cluster \"{}\"", cluster), "has no PKI",
                    fmt::format("create it with: kina-kube pki init --cluster {}", cluster));
}

// What a sealed key file of a cluster's PKI holds, bound into the file
// (keystore roles): a key copied over another one is refused by name.
std::string key_role(std::string_view cluster, std::string_view file) {
  return fmt::format("cluster {} pki/{}.key", cluster, file);
}

struct LoadedCa {
  x509::Cert cert;
  x509::Key key;
  fsys::path cert_path;
};

Result<LoadedCa> load_ca(const fsys::path& cdir, const std::string& cluster, std::string_view id, bool need_key = true) {
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

// A new leaf key: --algorithm when given, else the CA's own algorithm.
Result<x509::Key> leaf_key(const Options& o, const LoadedCa& ca) {
  auto alg = o.algorithm.empty() ? x509::key_algorithm(ca.key.get()).value_or(x509::Algorithm::ecdsa_p256)
                                 : x509::parse_algorithm(o.algorithm);
  if (!alg) return alg.error();
  return x509::generate_key(*alg);
}

// A TTL as milliseconds, refused when it would outlive the CA.
Result<int64_t> leaf_not_after(const std::string& ttl, const LoadedCa& ca, std::string_view ca_name) {
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

// Removes the temporaries of atomic writes of `file` (write_file_atomic's
// `.NAME.tmp.XXXXXX`, holding a client key) that a killed command left next
// to it, in its directory and, when it is a symlink, next to its target.
// Called only while holding the lock every kina writer of `file` holds
// (PATH.lock for a user's kubeconfig, the cluster lock for files in
// clusters/C/), so no live process owns such a temporary. Only regular files
// of this user with exactly that name shape are touched.
void sweep_write_temps(const fsys::path& file) {
  std::error_code ec;
  std::vector<fsys::path> files{file};
  if (fsys::is_symlink(file, ec)) {
    fsys::path real = fsys::weakly_canonical(file, ec);
    if (!ec) files.push_back(real);
  }
  for (const auto& f : files) {
    std::string prefix = "." + f.filename().string() + ".tmp.";
    fsys::path dir = f.parent_path();
    std::error_code iec;
    for (fsys::directory_iterator it(dir, iec), end; !iec && it != end; it.increment(iec)) {
      std::string n = it->path().filename().string();
      if (n.size() != prefix.size() + 6 || n.rfind(prefix, 0) != 0) continue;
      if (n.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", prefix.size()) !=
          std::string::npos)
        continue;
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid()) continue;
      if (::unlink(it->path().c_str()) == 0)
        info(kTool, fmt::format("removed {}, left by an interrupted write", it->path().string()));
    }
  }
}

// Removes the temporary directories `DIR/PREFIX<pid>.XXXXXX` whose process is
// no longer running (left by a kill -9): fetch's `.fetch.` (admin.conf, the
// cluster admin's key), install_files' staging directories (clear keys of
// pki export and pki issue). Only directories of this user are touched.
void sweep_dead_temp_dirs(const fsys::path& dir, std::string_view prefix) {
  std::error_code ec;
  for (fsys::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
    std::string_view rest = std::string_view(n).substr(prefix.size());
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos || rest.size() - dot != 7) continue;
    auto pid = parse_int_flag("pid", rest.substr(0, dot), 1, std::numeric_limits<pid_t>::max());
    if (!pid || ::kill(static_cast<pid_t>(*pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid()) continue;
    std::error_code rec;
    fsys::remove_all(it->path(), rec);
  }
}

// --- audit ---------------------------------------------------------------------------------

// Runs a mutating command and appends its audit event, whatever the outcome.
Status audited(const Options& o, std::string action, const std::string& cluster, const std::function<Status(std::string&)>& fn) {
  int64_t start = now_ms();
  std::string target;
  Status st = fn(target);
  audit::Event ev;
  ev.tool = std::string(kTool);
  ev.action = std::move(action);
  if (validate_name("cluster name", cluster)) ev.cluster = cluster;
  ev.target = target;
  ev.args = o.argv;
  ev.outcome = st ? "ok" : "error";
  ev.exit_code = st ? 0 : code(st.error().exit);
  ev.duration_ms = now_ms() - start;
  if (auto a = audit::record(ev); !a) warn(kTool, "audit log: " + a.error().message());
  return st;
}

Status print(json::Writer& w) {
  w.end_object();
  RecordWriter out;
  return out.write_line(w.str());
}

// While kina holds PATH.lock, SIGINT, SIGTERM and SIGHUP remove it before the
// process dies of them: a lock left behind makes every kubectl write fail.
namespace lock_signals {
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
char g_path[4096];
volatile sig_atomic_t g_armed = 0;
struct sigaction g_old[3];

void on_signal(int sig) {
  if (g_armed) ::unlink(g_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Blocks the three signals for the life of the guard (so taking and releasing
// the lock and (dis)arming the handler happen as one step).
struct Blocked {
  sigset_t old;
  Blocked() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kSignals) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &old);
  }
  ~Blocked() { ::sigprocmask(SIG_SETMASK, &old, nullptr); }
};

void arm(const std::string& path) {
  if (path.size() >= sizeof g_path) return;  // the lock is then only removed on a normal exit
  std::copy(path.begin(), path.end(), g_path);
  g_path[path.size()] = '\0';
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &g_old[i]);
  g_armed = 1;
}

void disarm() {
  if (!g_armed) return;
  g_armed = 0;
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &g_old[i], nullptr);
}
}  // namespace lock_signals

// --- writing a set of files as one unit ----------------------------------------------------

// A file to install under a directory: its path relative to it, contents, mode.
struct Staged {
  fsys::path rel;
  std::string_view data;
  mode_t mode;
};

// Installs `files` under `dir` all together or not at all. Every file is first
// written in full into a temporary directory (mode 0700) on the same file
// system. A missing `dir` is then that temporary directory renamed into place;
// an existing one gets each file moved in (an older file swapped out with
// RENAME_EXCHANGE), and a failure midway moves every file back. Nothing that
// is not a regular file is ever replaced.
Status install_files(const fsys::path& dir, const std::vector<Staged>& files) {
  // SIGINT, SIGTERM and SIGHUP wait until DIR is either as it was or complete
  // and the staging directory (clear keys) is gone; a kill -9 leaves the
  // staging directory, named with the pid, for the next run to sweep.
  lock_signals::Blocked blocked;
  std::error_code ec;
  struct stat st {};
  bool exists = ::stat(dir.c_str(), &st) == 0;  // DIR itself may be a symlink the user chose
  if (exists && !S_ISDIR(st.st_mode))
    return make_error(Exit::cant_create, fmt::format("cannot write into {}", dir.string()), "exists and is not a directory");
  if (exists) {
    for (const auto& f : files) {
      fsys::path p = dir / f.rel;
      if (::lstat(p.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return make_error(Exit::cant_create, fmt::format("cannot write {}", p.string()), "exists and is not a regular file");
      if (f.rel.has_parent_path() && ::lstat((dir / f.rel.parent_path()).c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
        return make_error(Exit::cant_create, fmt::format("cannot write {}", p.string()),
                          fmt::format("{} exists and is not a directory", (dir / f.rel.parent_path()).string()));
    }
  } else if (auto s = ensure_dir(dir.parent_path(), 0700); !s) {
    return s;
  }
  fsys::path base = exists ? dir : dir.parent_path();
  std::string stem = fmt::format(".{}.tmp.", exists ? "kina-kube" : dir.filename().string());
  sweep_dead_temp_dirs(base, stem);
  std::string tmpl = (base / fmt::format("{}{}.XXXXXX", stem, ::getpid())).string();
  if (!::mkdtemp(tmpl.data())) return os_error(fmt::format("creating a directory in {}", base.string()), errno, Exit::cant_create);
  fsys::path tmp = tmpl;
  auto cleanup = [&](Error e) {
    fsys::remove_all(tmp, ec);
    return e;
  };
  for (const auto& f : files) {
    if (f.rel.has_parent_path())
      if (auto s = ensure_dir(tmp / f.rel.parent_path(), 0700); !s) return cleanup(s.error());
    if (auto s = write_file_atomic(tmp / f.rel, f.data, f.mode); !s) return cleanup(s.error());
  }
  if (!exists) {
    if (::rename(tmp.c_str(), dir.c_str()) != 0)
      return cleanup(os_error(fmt::format("renaming into {}", dir.string()), errno, Exit::cant_create));
    return fsync_dir(dir.parent_path());
  }
  // Move the files in one by one, remembering how to undo each step.
  struct Done {
    fsys::path staged, target;
    bool exchanged;
  };
  std::vector<Done> done;
  std::vector<fsys::path> made_dirs;
  auto undo = [&](Error e) {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      if (it->exchanged) (void)::renameat2(AT_FDCWD, it->staged.c_str(), AT_FDCWD, it->target.c_str(), RENAME_EXCHANGE);
      else (void)::unlink(it->target.c_str());
    }
    for (auto it = made_dirs.rbegin(); it != made_dirs.rend(); ++it) (void)::rmdir(it->c_str());
    return cleanup(std::move(e));
  };
  for (const auto& f : files) {
    fsys::path staged = tmp / f.rel, target = dir / f.rel;
    if (f.rel.has_parent_path() && !fsys::is_directory(target.parent_path(), ec)) {
      if (::mkdir(target.parent_path().c_str(), 0700) != 0)
        return undo(os_error(fmt::format("creating directory {}", target.parent_path().string()), errno, Exit::cant_create));
      made_dirs.push_back(target.parent_path());
    }
    bool replace = ::lstat(target.c_str(), &st) == 0;
    if (replace && !S_ISREG(st.st_mode))
      return undo(make_error(Exit::cant_create, fmt::format("cannot write {}", target.string()), "exists and is not a regular file"));
    if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), replace ? RENAME_EXCHANGE : RENAME_NOREPLACE) != 0)
      return undo(os_error(fmt::format("moving {} into place", target.string()), errno, Exit::cant_create));
    done.push_back({staged, target, replace});
  }
  std::vector<fsys::path> dirs{dir};
  for (const auto& f : files)
    if (f.rel.has_parent_path()) dirs.push_back(dir / f.rel.parent_path());
  for (const auto& d : dirs)
    if (auto s = fsync_dir(d); !s) {
      cleanup(s.error());
      return s;
    }
  cleanup(Error{});
  return {};
}

// --- pki init ----------------------------------------------------------------------------

// What a killed pki init left in the cluster directory, under the cluster
// lock (so no live pki init owns it): `.pki.tmp.*` is a new PKI never swapped
// in or an old one swapped out, and is removed; `.pki.old.*/pki` is the old
// PKI that versions before RENAME_EXCHANGE moved aside, put back when `pki`
// is missing, else removed.
Status recover_pki(const fsys::path& cdir) {
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

Status cmd_pki_init(const Options& o, std::string& target) {
  auto alg = x509::parse_algorithm(o.algorithm.empty() ? "ecdsa-p256" : o.algorithm);
  if (!alg) return alg.error();
  auto ttl = parse_duration_flag("--ca-ttl", o.ca_ttl, kDayMs, kMaxDurationMs);
  if (!ttl) return ttl.error();
  if (*ttl > x509::kMaxTimeMs - now_ms())
    return make_error(Exit::usage, fmt::format("--ca-ttl {}", o.ca_ttl), "ends after 9999-12-31, the last date X.509 can express");
  auto cdir = cluster_dir(o.cluster, true);
  if (!cdir) return cdir.error();
  auto lock = lock_cluster(*cdir, "pki init");
  if (!lock) return lock.error();
  fsys::path pki = *cdir / "pki";
  target = pki.string();
  if (auto st = recover_pki(*cdir); !st) return st;
  std::error_code ec;
  if (fsys::exists(pki / "ca.crt", ec) && !o.force)
    return make_error(Exit::cant_create, fmt::format("cluster \"{}\"", o.cluster),
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
  w.field("cluster", o.cluster).field("algorithm", x509::algorithm_name(*alg)).field("dir", pki.string());
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
    if (auto st = keystore::store(tmp / (std::string(spec.file) + ".key.sealed"), *kpem, key_role(o.cluster, spec.file)); !st)
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
  if (auto st = keystore::store(tmp / "sa.key.sealed", *sa_key, key_role(o.cluster, "sa")); !st) return cleanup(st.error());
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
  return print(w);
}

// --- pki export ----------------------------------------------------------------------------------

Status cmd_pki_export(const Options& o, std::string& target) {
  auto cdir = cluster_dir(o.cluster, false);
  if (!cdir) return cdir.error();
  auto dir_arg = path_arg("--dir", o.dir);
  if (!dir_arg) return dir_arg.error();
  fsys::path dir = *dir_arg;
  target = dir.string();
  std::error_code ec;
  if (!fsys::exists(*cdir / "pki" / "ca.crt", ec)) return no_pki(o.cluster);
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
    auto ca = load_ca(*cdir, o.cluster, spec.id);
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
  auto sa_sealed = keystore::load(sa_file, key_role(o.cluster, "sa"));
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
  if (auto st = install_files(dir, files); !st) return st;
  auto w = begin_record("PKIExport");
  w.field("cluster", o.cluster).field("dir", dir.string()).field("layout", "kubeadm");
  w.key("files").begin_array();
  for (const auto& [p, pem] : certs) w.value(p.string());
  for (const auto& [p, k] : keys) w.value(p.string());
  w.end_array();
  return print(w);
}

// --- pki issue -------------------------------------------------------------------------------------

std::string file_stem_for(std::string_view cn) {
  std::string s;
  for (char c : cn) s += ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-') ? c : '-';
  return s;
}

Status cmd_pki_issue(const Options& o, std::string& target) {
  // Check every input first and report all problems at once.
  std::vector<Error> problems;
  if (auto st = x509::validate_subject_name("--cn", o.cn); !st) problems.push_back(st.error());
  for (const auto& org : o.orgs)
    if (auto st = x509::validate_subject_name("--org", org); !st) problems.push_back(st.error());
  std::vector<x509::San> sans;
  for (const auto& s : o.sans) {
    auto san = x509::parse_san(s);
    if (!san) problems.push_back(san.error());
    else sans.push_back(*san);
  }
  unsigned usages = 0;
  for (const auto& u : o.usages.empty() ? std::vector<std::string>{"client"} : o.usages) {
    auto bits = x509::parse_usage(u);
    if (!bits) problems.push_back(bits.error());
    else usages |= *bits;
  }
  std::string name = o.name.empty() ? file_stem_for(o.cn) : o.name;
  auto out_dir = path_arg("--out", o.out);
  if (!out_dir) problems.push_back(out_dir.error());
  if (!o.name.empty() && (name.find('/') != std::string::npos || name == "." || name == ".."))
    problems.push_back(make_error(Exit::usage, fmt::format("invalid --name {}", shown(name)), "must be a file name"));
  if (!problems.empty()) {
    for (size_t i = 0; i + 1 < problems.size(); ++i) report(kTool, problems[i]);
    return problems.back();
  }
  auto cdir = cluster_dir(o.cluster, false);
  if (!cdir) return cdir.error();
  auto ca = load_ca(*cdir, o.cluster, o.ca);
  if (!ca) return ca.error();
  auto end = leaf_not_after(o.ttl.empty() ? "365d" : o.ttl, *ca, o.ca);
  if (!end) return end.error();
  auto key = leaf_key(o, *ca);
  if (!key) return key.error();
  x509::Request req;
  req.cn = o.cn;
  req.orgs = o.orgs;
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
  target = crt.string();
  // The key and its certificate together or neither.
  if (auto st = install_files(dir, {{name + ".key", kpem->view(), 0600}, {name + ".crt", *pem, 0644}}); !st) return st;
  auto w = begin_record("Certificate");
  w.field("cluster", o.cluster).field("ca", o.ca).field("subject", x509::subject(cert->get()));
  w.string_array("organizations", o.orgs);
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
  return print(w);
}

// --- sign -------------------------------------------------------------------------------------------------

fsys::path admin_kubeconfig_path(const fsys::path& cdir) { return cdir / "admin.kubeconfig"; }

// An API server URL as kubectl takes it: https://HOST[:PORT][/PATH], HOST an
// IPv4 address, [IPv6] or an RFC 1123 name, PORT 1-65535. Refused: userinfo
// (a password would reach the kubeconfig, the record and the audit log; it is
// never echoed back), a query, a fragment, spaces, quotes, control and
// non-ASCII bytes. `what` names the input; bad input is `exit` (64 for a flag,
// 65 for a stored file).
Status validate_server(const std::string& s, std::string_view what = "--server", Exit exit = Exit::usage) {
  auto bad = [&](std::string why) {
    return make_error(exit, fmt::format("invalid {} {}", what, shown(audit::redact_userinfo(s))), std::move(why));
  };
  if (s.rfind("https://", 0) != 0) return bad("expected https://HOST[:PORT][/PATH]");
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '"' || c == '\'' || c == '\\' || c == '<' || c == '>' || c == '`')
      return bad("spaces, quotes, backslashes, control and non-ASCII characters are not allowed");
  }
  std::string_view rest = std::string_view(s).substr(8);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos)
    return bad("must not hold a user name or password (USER:PASSWORD@); credentials go in the kubeconfig's user");
  if (tail.find('?') != std::string_view::npos) return bad("must not have a query (?...)");
  if (tail.find('#') != std::string_view::npos) return bad("must not have a fragment (#...)");
  std::string_view host, port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 address needs its closing ']'");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("expected :PORT after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
    if (auto ip = parse_ip(host); !ip || ip->family != AF_INET6) return bad(fmt::format("{} is not an IPv6 address", shown(host)));
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
      if (port.find(':') != std::string_view::npos) return bad("an IPv6 address must be in brackets: https://[fd00::1]:6443");
    }
    if (host.empty()) return bad("has no host");
    if (!parse_ip(host))
      if (auto st = validate_host_name("host", host, false); !st) return bad(st.error().message());
  }
  if (has_port && !parse_int_flag("port", port, 1, 65535))
    return bad(fmt::format("port {} is not a number from 1 to 65535", shown(port)));
  return {};
}

Result<std::string> known_server(const fsys::path& cdir, const std::string& cluster) {
  auto text = read_file(admin_kubeconfig_path(cdir), 16u << 20);
  if (!text) {
    if (text.error().exit == Exit::no_input)
      return make_error(Exit::usage, "no API server known for cluster " + shown(cluster),
                        "give --server https://HOST:PORT (or fetch the admin kubeconfig first: kina-kube fetch)");
    return text.error();
  }
  auto cfg = kubeconfig::parse(*text, admin_kubeconfig_path(cdir).string());
  sodium_memzero(text->data(), text->size());
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);  // the admin's client key
  const yaml::Node* c = kubeconfig::find(*cfg, "clusters", kubeconfig::cluster_entry(cluster));
  if (!c || !c->get_string("server"))
    return make_error(Exit::data, "reading " + admin_kubeconfig_path(cdir).string(), "no server for " + kubeconfig::cluster_entry(cluster));
  std::string server = *c->get_string("server");
  if (auto st = validate_server(server, fmt::format("server in {}", admin_kubeconfig_path(cdir).string()), Exit::data); !st)
    return st.error();
  return server;
}

Status cmd_sign(const Options& o, std::string& target) {
  std::vector<Error> problems;
  if (auto st = x509::validate_subject_name("user", o.user); !st) problems.push_back(st.error());
  for (const auto& g : o.groups)
    if (auto st = x509::validate_subject_name("group", g); !st) problems.push_back(st.error());
  if (!o.server.empty())
    if (auto st = validate_server(o.server); !st) problems.push_back(st.error());
  if (!problems.empty()) {
    for (size_t i = 0; i + 1 < problems.size(); ++i) report(kTool, problems[i]);
    return problems.back();
  }
  target = o.user;
  auto cdir = cluster_dir(o.cluster, false);
  if (!cdir) return cdir.error();
  auto ca = load_ca(*cdir, o.cluster, "cluster");
  if (!ca) return ca.error();
  auto end = leaf_not_after(o.ttl.empty() ? "24h" : o.ttl, *ca, "cluster");
  if (!end) return end.error();
  std::string server = o.server;
  if (server.empty()) {
    auto s = known_server(*cdir, o.cluster);
    if (!s) return s.error();
    server = *s;
  }
  auto key = leaf_key(o, *ca);
  if (!key) return key.error();
  x509::Request req;
  req.cn = o.user;
  req.orgs = o.groups;
  req.usages = x509::usage_client;
  req.not_before_ms = std::max(now_ms() - kBackdateMs, x509::not_before_ms(ca->cert.get()));
  req.not_after_ms = *end;
  auto cert = x509::issue(req, key->get(), ca->cert.get(), ca->key.get());
  if (!cert) return cert.error();
  auto cert_pem = x509::cert_pem(cert->get());
  auto ca_pem = x509::cert_pem(ca->cert.get());
  auto key_pem = x509::private_key_pem(key->get());
  if (!cert_pem) return cert_pem.error();
  if (!ca_pem) return ca_pem.error();
  if (!key_pem) return key_pem.error();
  kubeconfig::Single s;
  s.cluster_name = s.context_name = kubeconfig::cluster_entry(o.cluster);
  s.user_name = kubeconfig::user_entry(o.user, o.cluster);
  s.server = server;
  s.ca_data = to_base64(*ca_pem);
  s.client_cert_data = to_base64(*cert_pem);
  s.client_key_data = to_base64(key_pem->data(), key_pem->size());
  yaml::Node built = kubeconfig::build(s);
  auto text = yaml::emit(built);
  kubeconfig::wipe(built);
  sodium_memzero(s.client_key_data.data(), s.client_key_data.size());
  if (!text) return text.error();
  fsys::path path;
  if (!o.out.empty()) {
    auto p = path_arg("--out", o.out);
    if (!p) return p.error();
    path = *p;
  } else {
    auto lock = lock_cluster(*cdir, "sign");
    if (!lock) return lock.error();
    if (auto st = ensure_dir(*cdir / "kubeconfigs", 0700); !st) return st;
    path = *cdir / "kubeconfigs" / (o.user + ".kubeconfig");
    sweep_write_temps(path);
  }
  target = path.string();
  Status st = write_output_file(path, *text, "writing the kubeconfig", 0600, FollowLinks::no, true);
  sodium_memzero(text->data(), text->size());
  if (!st) return st;
  auto w = begin_record("Kubeconfig");
  w.field("cluster", o.cluster).field("user", o.user).string_array("groups", o.groups);
  w.field("context", s.context_name).field("server", server).field("path", path.string());
  w.field("notAfter", format_utc_ms(x509::not_after_ms(cert->get())));
  return print(w);
}

// --- token -------------------------------------------------------------------------------------------

Status cmd_token(const Options& o, std::string& target) {
  auto ttl = parse_duration_flag("--ttl", o.ttl.empty() ? "24h" : o.ttl, kSecondMs, kMaxTokenTtlMs);
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
  auto cdir = cluster_dir(o.cluster, false);
  if (!cdir) return cdir.error();
  auto ca = load_ca(*cdir, o.cluster, "cluster", false);
  if (!ca) return ca.error();
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  sodium_ready();
  Secret tok(23);
  for (size_t i = 0; i < 23; ++i)
    tok.data()[i] = i == 6 ? '.' : static_cast<uint8_t>(alphabet[randombytes_uniform(36)]);
  std::string id(tok.view().substr(0, 6));
  target = id;
  int64_t expires = now_ms() + *ttl;
  auto w = begin_record("JoinToken");
  w.field("cluster", o.cluster).field("tokenID", id).field("token", tok.view());
  w.field("expires", format_utc_ms(expires)).field("ttl", o.ttl.empty() ? "24h" : o.ttl);
  w.string_array("caCertHashes", {x509::spki_hash(ca->cert.get())});
  w.end_object();
  RecordWriter out;
  std::string line = w.take();
  Status st = out.write_line(line);
  sodium_memzero(line.data(), line.size());
  return st;
}

// --- the kubeconfig lock (client-go's PATH.lock) -----------------------------------------------------------


// kubectl and kind take `PATH.lock` with O_CREAT|O_EXCL before writing a
// kubeconfig; kina does the same so none of them loses the others' writes.
// kina writes its pid into the file so a lock left by a crash can be named.
class KubeconfigLock {
 public:
  KubeconfigLock() = default;
  KubeconfigLock(KubeconfigLock&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  KubeconfigLock& operator=(KubeconfigLock&&) = delete;
  KubeconfigLock(const KubeconfigLock&) = delete;
  ~KubeconfigLock() {
    if (path_.empty()) return;
    lock_signals::Blocked b;
    ::unlink(path_.c_str());
    lock_signals::disarm();
  }

  static Result<KubeconfigLock> acquire(const fsys::path& target, std::chrono::milliseconds timeout) {
    fsys::path path = target.string() + ".lock";
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::milliseconds(5);
    for (;;) {
      std::optional<lock_signals::Blocked> blocked(std::in_place);
      UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (fd.valid()) {
        KubeconfigLock l;
        l.path_ = path;
        lock_signals::arm(path);
        blocked.reset();
        std::string info = fmt::format("pid={} cmd=kina-kube\n", ::getpid());
        if (auto st = write_all(fd.get(), info, "writing " + path.string()); !st) return st.error();
        return l;
      }
      int err = errno;
      blocked.reset();
      errno = err;
      if (errno != EEXIST) return os_error(fmt::format("creating lock {}", path.string()), errno, Exit::cant_create);
      std::string holder;
      if (auto text = read_file(path, 4096)) holder = *text;
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\r')) holder.pop_back();
      long pid = 0;
      if (holder.rfind("pid=", 0) == 0) pid = std::strtol(holder.c_str() + 4, nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        return make_error(Exit::temp_fail, fmt::format("stale lock {}", path.string()),
                          fmt::format("held by {} (pid {} is not running)", detail::one_line(holder), pid),
                          fmt::format("if no kubectl, kind or kina is writing {}, remove {}", target.string(), path.string()));
      if (std::chrono::steady_clock::now() >= deadline)
        return make_error(Exit::temp_fail, fmt::format("lock {}", path.string()),
                          fmt::format("held by {} (waited {} ms)",
                                      holder.empty() ? "another process (kubectl or kind write no pid)" : detail::one_line(holder),
                                      timeout.count()),
                          "retry; if nothing is writing the kubeconfig, remove the lock file");
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::milliseconds(50)) pause *= 2;
    }
  }

 private:
  fsys::path path_;
};

// The kubeconfig to change: --kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config.
Result<fsys::path> target_kubeconfig(const Options& o) {
  if (o.kubeconfig_given) return path_arg("--kubeconfig", o.kubeconfig);
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string_view list(env);
    while (!list.empty()) {
      size_t colon = list.find(':');
      std::string_view first = list.substr(0, colon);
      if (!first.empty()) return path_arg("KUBECONFIG", std::string(first));
      if (colon == std::string_view::npos) break;
      list.remove_prefix(colon + 1);
    }
  }
  auto home = user_home();
  if (!home) return home.error();
  return *home / ".kube" / "config";
}

// Reads the target kubeconfig (a missing file is an empty config).
Result<yaml::Node> read_target(const fsys::path& p) {
  auto text = read_file(p, 16u << 20);
  if (!text) {
    if (text.error().exit == Exit::no_input) return yaml::Node::mapping();
    return text.error();
  }
  auto cfg = kubeconfig::parse(*text, p.string());
  sodium_memzero(text->data(), text->size());
  return cfg;
}

// How the target kubeconfig may be written (common/include/kina/output.hpp):
// through a symlink as kubectl does, never over a device, FIFO or read-only
// file; an existing file keeps its mode (0600 if others could read it).
Result<OutputPlan> plan_target(const fsys::path& p) {
  return plan_output(p, "writing the kubeconfig", 0600, FollowLinks::like_kubectl, true);
}

// Writes the target atomically as planned.
Status write_target(const fsys::path& p, const yaml::Node& cfg) {
  auto plan = plan_target(p);
  if (!plan) return plan.error();
  if (auto st = ensure_dir(plan->path.parent_path(), 0700); !st) return st;
  auto text = yaml::emit(cfg);
  if (!text) return text.error();
  Status st = write_output(*plan, *text);
  sodium_memzero(text->data(), text->size());
  return st;
}

fsys::path merge_state_path(const fsys::path& cdir) { return cdir / "kubeconfig-merge.json"; }

Result<std::chrono::milliseconds> lock_wait(const Options& o) {
  auto ms = parse_duration_flag("--lock-timeout", o.lock_timeout, 0, kMaxLockTimeoutMs);
  if (!ms) return ms.error();
  return std::chrono::milliseconds(*ms);
}

// --- merge -------------------------------------------------------------------------------------------------

struct Incoming {
  std::string cluster;   // may be empty for a --from file
  fsys::path path;
  std::string raw;       // the record, to re-emit with the new path
  yaml::Node cfg;
};

Status cmd_merge(const Options& o, std::string& target) {
  auto wait = lock_wait(o);
  if (!wait) return wait.error();
  RecordWriter out;
  std::vector<Incoming> incoming;
  // The kubeconfigs hold client keys and tokens: zeroed whatever the outcome.
  struct WipeAll {
    std::vector<Incoming>& v;
    ~WipeAll() {
      for (auto& in : v) kubeconfig::wipe(in.cfg);
    }
  } wipe_incoming{incoming};
  auto load = [&](Incoming in) -> Status {
    auto text = read_file(in.path, 16u << 20);
    if (!text) return text.error();
    auto cfg = kubeconfig::parse_incoming(*text, in.path.string());
    sodium_memzero(text->data(), text->size());
    if (!cfg) return cfg.error();
    in.cfg = std::move(*cfg);
    incoming.push_back(std::move(in));
    return {};
  };
  for (const auto& f : o.from) {
    auto p = path_arg("--from", f);
    if (!p) return p.error();
    if (auto st = load(Incoming{"", *p, "", {}}); !st) return st;
  }
  if (o.from.empty()) {
    if (!stdin_has_records()) return usage_error("merge", "pipe Kubeconfig records to stdin, or give --from FILE");
    RecordReader in(0);
    auto read = filter_records(in, out, [&](const Record& rec) -> Result<bool> {
      if (rec.kind != "Kubeconfig") return false;
      auto path = rec.required_string("path");
      if (!path) return path.error();
      auto cluster = rec.string_field("cluster");
      if (!cluster) return cluster.error();
      if (auto st = load(Incoming{cluster->value_or(""), *path, rec.raw, {}}); !st) return st.error();
      return true;
    });
    if (!read) return read;
    if (incoming.empty()) return make_error(Exit::no_input, "merge", "no Kubeconfig record on stdin");
  }
  auto tpath = target_kubeconfig(o);
  if (!tpath) return tpath.error();
  target = tpath->string();
  if (auto plan = plan_target(*tpath); !plan) return plan.error();  // before any lock file or read
  if (auto st = ensure_dir(tpath->parent_path(), 0700); !st) return st;
  auto lock = KubeconfigLock::acquire(*tpath, *wait);
  if (!lock) return lock.error();
  sweep_write_temps(*tpath);
  auto cfg = read_target(*tpath);
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);  // so does the target
  std::string before = kubeconfig::current_context(*cfg);
  for (const auto& in : incoming) {
    // Remember what current-context was, so unmerge can give it back.
    if (!in.cluster.empty() && before != kubeconfig::cluster_entry(in.cluster)) {
      if (auto cdir = cluster_dir(in.cluster, false); cdir && fsys::is_directory(*cdir)) {
        auto w = json::Writer();
        w.begin_object().field("kubeconfig", tpath->string()).field("previousContext", before).end_object();
        if (auto st = write_file_atomic(merge_state_path(*cdir), w.str() + "\n", 0600); !st) return st;
      }
    }
    kubeconfig::merge(*cfg, in.cfg);
  }
  if (auto st = write_target(*tpath, *cfg); !st) return st;
  for (const auto& in : incoming) {
    auto w = begin_record("Kubeconfig");
    if (!in.cluster.empty()) w.field("cluster", in.cluster);
    w.field("path", tpath->string()).field("mergedFrom", in.path.string());
    w.field("currentContext", kubeconfig::current_context(*cfg));
    if (auto st = print(w); !st) return st;
  }
  return {};
}

// --- unmerge ---------------------------------------------------------------------------------------------

std::string previous_context(const fsys::path& cdir, const fsys::path& target) {
  auto state = read_file(merge_state_path(cdir), 1u << 16);
  if (!state) return {};
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  std::string_view prev, file;
  if (p.parse(*state).get(doc) == simdjson::SUCCESS && doc["previousContext"].get(prev) == simdjson::SUCCESS &&
      doc["kubeconfig"].get(file) == simdjson::SUCCESS && fsys::path(file) == target)
    return std::string(prev);
  return {};
}

Status cmd_unmerge(const Options& o, std::string& target) {
  if (auto st = validate_name("cluster name", o.cluster); !st) return st;
  auto wait = lock_wait(o);
  if (!wait) return wait.error();
  auto tpath = target_kubeconfig(o);
  if (!tpath) return tpath.error();
  target = tpath->string();
  if (auto plan = plan_target(*tpath); !plan) return plan.error();  // before any lock file or read
  std::error_code ec;
  if (!fsys::exists(*tpath, ec)) {
    info(kTool, fmt::format("{} does not exist: nothing to remove", tpath->string()));
    return {};
  }
  auto cdir = cluster_dir(o.cluster, false);
  if (!cdir) return cdir.error();
  auto lock = KubeconfigLock::acquire(*tpath, *wait);
  if (!lock) return lock.error();
  sweep_write_temps(*tpath);
  auto cfg = read_target(*tpath);
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);
  // The context that was current before kina-C was merged; when that was
  // another kina cluster's context since removed, follow its saved state too.
  std::string previous = previous_context(*cdir, *tpath);
  for (int hop = 0; hop < 16 && previous.rfind("kina-", 0) == 0 && previous != kubeconfig::cluster_entry(o.cluster) &&
                    !kubeconfig::find(*cfg, "contexts", previous);
       ++hop) {
    auto other = cluster_dir(previous.substr(5), false);
    if (!other) break;
    previous = previous_context(*other, *tpath);
  }
  size_t removed = kubeconfig::unmerge(*cfg, o.cluster, previous);
  if (removed > 0)
    if (auto st = write_target(*tpath, *cfg); !st) return st;
  info(kTool, fmt::format("removed {} entr{} for cluster {} from {}", removed, removed == 1 ? "y" : "ies", o.cluster,
                          tpath->string()));
  return {};
}

// --- fetch ---------------------------------------------------------------------------------------------------

struct Machine {
  std::string name, cluster, backend, ip;
  struct Port {
    std::string host_ip;
    int64_t host_port = 0, guest_port = 0;
    std::string protocol;
  };
  std::vector<Port> ports;
};

Result<Machine> machine_from_record(const Record& r) {
  Machine m;
  auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("record {} (Machine)", r.where()), why); };
  auto name = r.required_string("name");
  if (!name) return name.error();
  m.name = *name;
  for (auto [key, dst] : {std::pair{"cluster", &m.cluster}, {"backend", &m.backend}, {"ip", &m.ip}}) {
    auto v = r.string_field(key);
    if (!v) return v.error();
    *dst = v->value_or("");
  }
  if (auto ports = r.root()["ports"]; ports.error() != simdjson::NO_SUCH_FIELD) {
    simdjson::dom::array arr;
    if (ports.get(arr) != simdjson::SUCCESS) return bad("field \"ports\" is not an array");
    for (auto p : arr) {
      Machine::Port port;
      std::string_view s;
      if (p["hostIP"].get(s) == simdjson::SUCCESS) port.host_ip = std::string(s);
      if (p["protocol"].get(s) == simdjson::SUCCESS) port.protocol = std::string(s);
      if (p["hostPort"].get(port.host_port) != simdjson::SUCCESS || p["guestPort"].get(port.guest_port) != simdjson::SUCCESS)
        return bad("a port lacks an integer hostPort or guestPort");
      m.ports.push_back(port);
    }
  }
  return m;
}

// The API server as the host reaches it: the published guest port 6443, or the
// VM's own address on the apple backend (its VMs are reachable from the host).
Result<std::string> host_endpoint(const Machine& m) {
  auto host = [](const std::string& ip) { return ip.find(':') != std::string::npos ? "[" + ip + "]" : ip; };
  if (m.backend == "apple") {
    if (m.ip.empty()) return make_error(Exit::data, fmt::format("machine {}", m.name), "has no IP address");
    if (auto ip = parse_ip(m.ip); !ip) return make_error(Exit::data, fmt::format("machine {}", m.name), ip.error().message());
    return fmt::format("https://{}:6443", host(m.ip));
  }
  for (const auto& p : m.ports) {
    if (p.guest_port != 6443 || (!p.protocol.empty() && p.protocol != "tcp" && p.protocol != "TCP")) continue;
    if (p.host_port <= 0 || p.host_port > 65535)
      return make_error(Exit::data, fmt::format("machine {}", m.name), fmt::format("invalid host port {}", p.host_port));
    std::string ip = p.host_ip.empty() || p.host_ip == "0.0.0.0" ? "127.0.0.1" : p.host_ip == "::" ? "::1" : p.host_ip;
    if (auto pip = parse_ip(ip); !pip) return make_error(Exit::data, fmt::format("machine {}", m.name), pip.error().message());
    return fmt::format("https://{}:{}", host(ip), p.host_port);
  }
  return make_error(Exit::data, fmt::format("machine {}", m.name), "publishes no port for the API server (guest port 6443)",
                    "create the machine with the API server port published");
}

Result<Machine> inspect_machine(const std::string& name) {
  ProcessSpec spec;
  spec.argv = {"kina-vm", "inspect", name};
  spec.timeout = std::chrono::seconds(60);
  auto r = run_process(spec);
  if (!r) return r.error();
  if (!r->success()) {
    std::string err = r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return make_error(r->exit_code() == code(Exit::no_input) ? Exit::no_input : Exit::unavailable,
                      fmt::format("kina-vm inspect {}", name), err.empty() ? r->describe() : err);
  }
  auto reader = RecordReader::from_string(r->out, "kina-vm inspect");
  for (;;) {
    auto rec = reader.next();
    if (!rec) return rec.error();
    if (!rec->has_value()) break;
    if ((*rec)->kind != "Machine") continue;
    auto m = machine_from_record(**rec);
    if (!m) return m.error();
    if (m->name == name) return m;
  }
  return make_error(Exit::data, fmt::format("kina-vm inspect {}", name), "printed no Machine record for it");
}

Status cmd_fetch(const Options& o, std::string& target) {
  RecordWriter out;
  std::optional<Machine> machine;
  if (stdin_has_records()) {
    RecordReader in(0);
    auto st = filter_records(in, out, [&](const Record& rec) -> Result<bool> {
      if (rec.kind != "Machine" || machine) return false;
      auto m = machine_from_record(rec);
      if (!m) return m.error();
      if (!o.machine.empty() && m->name != o.machine) return false;
      machine = std::move(*m);
      return true;
    });
    if (!st) return st;
  }
  if (!machine) {
    if (o.machine.empty()) return usage_error("fetch", "give --machine NAME or pipe a Machine record to stdin");
    auto m = inspect_machine(o.machine);
    if (!m) return m.error();
    machine = std::move(*m);
  }
  target = machine->name;
  std::string cluster = o.cluster.empty() ? machine->cluster : o.cluster;
  if (cluster.empty()) return usage_error("fetch", fmt::format("machine {} names no cluster: give --cluster", machine->name));
  auto server = host_endpoint(*machine);
  if (!server) return server.error();
  auto cdir = cluster_dir(cluster, true);
  if (!cdir) return cdir.error();

  sweep_dead_temp_dirs(*cdir, ".fetch.");
  std::string tmpl = (*cdir / fmt::format(".fetch.{}.XXXXXX", ::getpid())).string();
  if (!::mkdtemp(tmpl.data())) return os_error("creating a temporary directory", errno, Exit::cant_create);
  fsys::path tmp = tmpl;
  struct Cleanup {
    fsys::path p;
    ~Cleanup() {
      std::error_code ec;
      fsys::remove_all(p, ec);
    }
  } cleanup{tmp};
  ProcessSpec spec;
  // The node is trusted less than the host: kina-vm stops writing at the same
  // 16 MiB that the read below accepts, instead of its 64Gi default.
  spec.argv = {"kina-vm", "cp", "--max-bytes", "16Mi", machine->name + ":/etc/kubernetes/admin.conf",
               (tmp / "admin.conf").string()};
  spec.timeout = std::chrono::seconds(120);
  auto r = run_process(spec);
  if (!r) return r.error();
  if (!r->success()) {
    std::string err = r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return make_error(Exit::unavailable, fmt::format("copying /etc/kubernetes/admin.conf from {}", machine->name),
                      err.empty() ? "kina-vm " + r->describe() : err);
  }
  auto text = read_file(tmp / "admin.conf", 16u << 20);
  if (!text) return text.error();
  std::string source = fmt::format("{}:/etc/kubernetes/admin.conf", machine->name);
  auto cfg = kubeconfig::parse(*text, source);
  sodium_memzero(text->data(), text->size());
  if (!cfg) return cfg.error();
  kubeconfig::WipeOnExit wipe_cfg(*cfg);  // the cluster admin's client key

  // The context in use (kubeadm writes exactly one), its cluster and user.
  std::string ctx_name = kubeconfig::current_context(*cfg);
  const yaml::Node* ctx = ctx_name.empty() ? nullptr : kubeconfig::find(*cfg, "contexts", ctx_name);
  if (!ctx) {
    const yaml::Node* l = cfg->get("contexts");
    if (l && l->is_seq() && !l->items.empty()) ctx = l->items.front().get("context");
  }
  if (!ctx) return make_error(Exit::data, "reading " + source, "no context");
  const yaml::Node* cl = kubeconfig::find(*cfg, "clusters", ctx->get_string("cluster").value_or(""));
  std::string old_user = ctx->get_string("user").value_or("");
  const yaml::Node* us = kubeconfig::find(*cfg, "users", old_user);
  if (!cl || !us) return make_error(Exit::data, "reading " + source, "the current context names a missing cluster or user");

  std::string user = old_user.substr(0, old_user.find('@'));
  std::vector<std::string> groups;
  std::string not_after;
  if (auto data = us->get_string("client-certificate-data")) {
    if (auto pem = from_base64(*data)) {
      if (auto cert = x509::parse_cert(std::string_view(reinterpret_cast<const char*>(pem->data()), pem->size()), source)) {
        auto cns = x509::subject_values(cert->get(), NID_commonName);
        if (!cns.empty() && x509::validate_subject_name("user", cns.front())) user = cns.front();
        groups = x509::subject_values(cert->get(), NID_organizationName);
        not_after = format_utc_ms(x509::not_after_ms(cert->get()));
      }
    }
  }
  if (!x509::validate_subject_name("user", user)) user = "admin";

  // Only what kubeadm writes into admin.conf is taken from the node, which is
  // trusted less than the host: a user's `exec` or `auth-provider` (commands
  // kubectl runs), `proxy-url`, `insecure-skip-tls-verify`, `tls-server-name`
  // or paths of host files would let a compromised node reach into the host.
  auto pick = [&](const yaml::Node& body, std::initializer_list<std::string_view> keep,
                  std::initializer_list<std::string_view> need, std::string_view what) -> Result<yaml::Node> {
    yaml::Node picked = yaml::Node::mapping();
    std::string dropped;
    for (const auto& [k, v] : body.map) {
      if (std::find(keep.begin(), keep.end(), k) != keep.end()) picked.set(k, v);
      else dropped += (dropped.empty() ? "" : ", ") + shown(k);
    }
    for (auto k : need)
      if (!picked.get_string(k))
        return make_error(Exit::data, "reading " + source, fmt::format("the {} has no {}", what, k));
    if (!dropped.empty()) warn(kTool, fmt::format("{}: ignoring the {}'s {}", source, what, dropped));
    return picked;
  };
  auto cluster_body = pick(*cl, {"certificate-authority-data", "server"}, {"certificate-authority-data"}, "cluster");
  if (!cluster_body) return cluster_body.error();
  cluster_body->set("server", yaml::Node::scalar(*server));
  auto user_body = pick(*us, {"client-certificate-data", "client-key-data"}, {"client-certificate-data", "client-key-data"}, "user");
  if (!user_body) return user_body.error();
  kubeconfig::WipeOnExit wipe_user(*user_body);
  yaml::Node result = yaml::Node::mapping();
  kubeconfig::WipeOnExit wipe_result(result);
  {
    yaml::Node src = yaml::Node::mapping();
    auto entry = [](const std::string& name, std::string_view key, yaml::Node body) {
      yaml::Node e = yaml::Node::mapping();
      e.set("name", yaml::Node::scalar(name));
      e.set(std::string(key), std::move(body));
      yaml::Node l = yaml::Node::sequence();
      l.items.push_back(std::move(e));
      return l;
    };
    std::string name = kubeconfig::cluster_entry(cluster), uname = kubeconfig::user_entry(user, cluster);
    yaml::Node c = yaml::Node::mapping();
    c.set("cluster", yaml::Node::scalar(name));
    c.set("user", yaml::Node::scalar(uname));
    result.set("apiVersion", yaml::Node::scalar("v1"));
    result.set("kind", yaml::Node::scalar("Config"));
    result.set("clusters", entry(name, "cluster", std::move(*cluster_body)));
    result.set("contexts", entry(name, "context", std::move(c)));
    result.set("current-context", yaml::Node::scalar(name));
    result.set("preferences", yaml::Node::mapping());
    result.set("users", entry(uname, "user", std::move(*user_body)));
  }
  auto lock = lock_cluster(*cdir, "fetch");
  if (!lock) return lock.error();
  fsys::path path = admin_kubeconfig_path(*cdir);
  target = path.string();
  sweep_write_temps(path);
  if (auto st = write_target(path, result); !st) return st;
  auto w = begin_record("Kubeconfig");
  w.field("cluster", cluster).field("user", user).string_array("groups", groups);
  w.field("context", kubeconfig::cluster_entry(cluster)).field("server", *server).field("path", path.string());
  w.field("machine", machine->name);
  if (!not_after.empty()) w.field("notAfter", not_after);
  return print(w);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.argv.assign(argv + 1, argv + argc);
  return kina::run_tool(kTool, argc, argv, [&](CLI::App& app) -> std::function<Status()> {
    app.description(
        "Cluster PKI, least-privilege kubeconfigs, bootstrap tokens, fetch and merge of kubeconfigs.\n"
        "State: $KINA_HOME/clusters/C/ (CA keys sealed with the keystore). Records on stdout, diagnostics on stderr.\n"
        "Exit codes: 0 ok, 64 usage, 65 bad data, 66 not found, 69 kina-vm failed, 73 cannot create, 74 I/O, "
        "75 lock busy or stale, 78 keystore misconfigured (KINA_KEYSTORE, passphrase), 80 refused (wrong key).");
    app.require_subcommand(1);

    auto* pki = app.add_subcommand("pki", "The cluster's certificate authorities");
    pki->require_subcommand(1);
    auto* init = pki->add_subcommand("init", "Create the cluster CA (CN kubernetes), front-proxy CA, etcd CA (CN etcd-ca) "
                                             "and the service-account key pair; prints a PKI record");
    init->add_option("--cluster", o.cluster, "Cluster name")->required();
    init->add_option("--algorithm", o.algorithm, "Key algorithm of the three CAs: ecdsa-p256 (default) or rsa-2048 (the service-account key is always RSA-2048, as kubeadm requires)");
    init->add_option("--ca-ttl", o.ca_ttl, "CA validity, 1d to 10000y and never past 9999-12-31 (default 10y)");
    init->add_flag("--force", o.force, "Replace an existing PKI (everything it signed stops being trusted)");

    auto* exp = pki->add_subcommand("export", "Write the CAs and the service-account pair in kubeadm's layout "
                                              "(/etc/kubernetes/pki), keys in clear with mode 0600");
    exp->add_option("--cluster", o.cluster, "Cluster name")->required();
    exp->add_option("--dir", o.dir, "Target directory")->required();

    auto* issue = pki->add_subcommand("issue", "Issue a leaf certificate and key (kubeadm's profiles); prints a Certificate record");
    issue->add_option("--cluster", o.cluster, "Cluster name")->required();
    issue->add_option("--ca", o.ca, "cluster (default), front-proxy or etcd")->check(CLI::IsMember({"cluster", "front-proxy", "etcd"}));
    issue->add_option("--cn", o.cn, "Common name")->required();
    issue->add_option("--org", o.orgs, "Organization (repeatable)")->allow_extra_args(false);
    issue->add_option("--san", o.sans, "DNS name (RFC 1123, *. wildcard as the whole left label) or IP address (repeatable)")->allow_extra_args(false);
    issue->add_option("--usage", o.usages, "server, client (default) or peer (both); repeatable")->allow_extra_args(false);
    issue->add_option("--ttl", o.ttl, "Validity, 1s to 10y (default 365d; never beyond the CA's)");
    issue->add_option("--algorithm", o.algorithm, "Key algorithm (default: the CA's)");
    issue->add_option("--name", o.name, "File names NAME.crt and NAME.key (default: from the CN)");
    issue->add_option("--out", o.out, "Directory for the certificate and key")->required();

    auto* sign = app.add_subcommand("sign", "Mint a kubeconfig for a user and groups, signed by the cluster CA; prints a "
                                            "Kubeconfig record");
    sign->add_option("--cluster", o.cluster, "Cluster name")->required();
    sign->add_option("--user", o.user, "User name (certificate CN)")->required();
    sign->add_option("--group", o.groups, "Group (certificate O; repeatable)")->allow_extra_args(false);
    sign->add_option("--ttl", o.ttl, "Validity, 1s to 10y (default 24h; never beyond the CA's)");
    sign->add_option("--server", o.server, "API server URL https://HOST[:PORT][/PATH] (default: from the fetched admin kubeconfig)");
    sign->add_option("--algorithm", o.algorithm, "Key algorithm (default: the CA's)");
    sign->add_option("--out", o.out, "Kubeconfig file (default $KINA_HOME/clusters/C/kubeconfigs/USER.kubeconfig); "
                                     "a symlink, device, FIFO or read-only file is refused (73)");

    auto* token = app.add_subcommand("token", "Make a kubeadm bootstrap token; prints a JoinToken record (refused on a terminal)");
    token->add_option("--cluster", o.cluster, "Cluster name")->required();
    token->add_option("--ttl", o.ttl, "Token lifetime, 1s to 1y (default 24h)");

    auto* fetch = app.add_subcommand("fetch", "Copy /etc/kubernetes/admin.conf from a node (kina-vm cp), point it at the "
                                              "host-reachable API endpoint, name it kina-C; prints a Kubeconfig record");
    fetch->add_option("--machine", o.machine, "Node machine name (else a Machine record on stdin)");
    fetch->add_option("--cluster", o.cluster, "Cluster name (default: the machine's)");

    auto* merge = app.add_subcommand("merge", "Merge the kubeconfigs of Kubeconfig records (stdin) into $KUBECONFIG's first "
                                              "file or ~/.kube/config, under PATH.lock, mode 0600");
    auto* merge_kc = merge->add_option("--kubeconfig", o.kubeconfig, "Target file instead (a symlink is followed as kubectl does; a device, FIFO or read-only file is refused: 73)");
    merge->add_option("--from", o.from, "Merge this kubeconfig file instead of reading records (repeatable)")->allow_extra_args(false);
    merge->add_option("--lock-timeout", o.lock_timeout, "How long to wait for PATH.lock, 0s to 1h (default 10s)");

    auto* unmerge = app.add_subcommand("unmerge", "Remove kina's entries for a cluster (kina-C, *@kina-C) and nothing else");
    unmerge->add_option("--cluster", o.cluster, "Cluster name")->required();
    auto* unmerge_kc = unmerge->add_option("--kubeconfig", o.kubeconfig, "Target file instead (a symlink is followed as kubectl does; a device, FIFO or read-only file is refused: 73)");
    unmerge->add_option("--lock-timeout", o.lock_timeout, "How long to wait for PATH.lock, 0s to 1h (default 10s)");

    return [&, init, exp, issue, sign, token, fetch, merge, unmerge, merge_kc, unmerge_kc]() -> Status {
      o.kubeconfig_given = merge_kc->count() > 0 || unmerge_kc->count() > 0;
      if (init->parsed()) return audited(o, "pki-init", o.cluster, [&](std::string& t) { return cmd_pki_init(o, t); });
      if (exp->parsed()) return audited(o, "pki-export", o.cluster, [&](std::string& t) { return cmd_pki_export(o, t); });
      if (issue->parsed()) return audited(o, "pki-issue", o.cluster, [&](std::string& t) { return cmd_pki_issue(o, t); });
      if (sign->parsed()) return audited(o, "sign", o.cluster, [&](std::string& t) { return cmd_sign(o, t); });
      if (token->parsed()) return audited(o, "token", o.cluster, [&](std::string& t) { return cmd_token(o, t); });
      if (fetch->parsed()) return audited(o, "fetch", o.cluster, [&](std::string& t) { return cmd_fetch(o, t); });
      if (merge->parsed()) return audited(o, "merge", "", [&](std::string& t) { return cmd_merge(o, t); });
      if (unmerge->parsed()) return audited(o, "unmerge", o.cluster, [&](std::string& t) { return cmd_unmerge(o, t); });
      return usage_error("no command");
    };
  });
}
