// commands.hpp: kina-kube's command line: what each subcommand's options fill
// in, and the run functions of its table (main.cpp).
#pragma once

#include <string>

#include "kina/cli.hpp"
#include "kina/invocation.hpp"

#include "cluster.hpp"
#include "fetch.hpp"
#include "merge.hpp"
#include "pki.hpp"
#include "sign.hpp"
#include "token.hpp"

namespace kina::kube {

inline constexpr std::string_view kDescription =
    "Cluster PKI, least-privilege kubeconfigs, bootstrap tokens, fetch and merge of kubeconfigs.\n"
    "State: $KINA_HOME/clusters/C/ (CA keys sealed with the keystore). Records on stdout, diagnostics on stderr.\n"
    "Exit codes: 0 ok, 64 usage, 65 bad data, 66 not found, 69 kina-vm failed, 73 cannot create, 74 I/O, "
    "75 lock busy or stale, 78 keystore misconfigured (KINA_KEYSTORE, passphrase), 80 refused (wrong key).";

// What the command line fills in, one set of arguments per command.
struct Options {
  PkiInitArgs init;
  PkiExportArgs exp;
  IssueArgs issue;
  SignArgs sign;
  TokenArgs token;
  FetchArgs fetch;
  MergeArgs merge;
  UnmergeArgs unmerge;
  std::string merge_kubeconfig, unmerge_kubeconfig;  // --kubeconfig, taken when given ("" is an error)
};

// The cluster of a command line CLI11 refused, as far as it was read (the
// audit event of the refusal carries it).
inline std::string refused_cluster(const Options& o) {
  for (const std::string* c : {&o.init.cluster, &o.exp.cluster, &o.issue.cluster, &o.sign.cluster, &o.token.cluster,
                               &o.fetch.cluster, &o.unmerge.cluster})
    if (!c->empty()) return *c;
  return {};
}

inline void pki_init_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.init.cluster, "Cluster name")->required();
  c.add_option("--algorithm", o.init.algorithm, "Key algorithm of the three CAs: ecdsa-p256 (default) or rsa-2048 (the service-account key is always RSA-2048, as kubeadm requires)");
  c.add_option("--ca-ttl", o.init.ca_ttl, "CA validity, 1d to 10000y and never past 9999-12-31 (default 10y)");
  c.add_flag("--force", o.init.force, "Replace an existing PKI (everything it signed stops being trusted)");
}

inline void pki_export_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.exp.cluster, "Cluster name")->required();
  c.add_option("--dir", o.exp.dir, "Target directory")->required();
}

inline void pki_issue_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.issue.cluster, "Cluster name")->required();
  c.add_option("--ca", o.issue.ca, "cluster (default), front-proxy or etcd")->check(CLI::IsMember({"cluster", "front-proxy", "etcd"}));
  c.add_option("--cn", o.issue.cn, "Common name")->required();
  c.add_option("--org", o.issue.orgs, "Organization (repeatable)")->allow_extra_args(false);
  c.add_option("--san", o.issue.sans, "DNS name (RFC 1123, *. wildcard as the whole left label) or IP address (repeatable)")->allow_extra_args(false);
  c.add_option("--usage", o.issue.usages, "server, client (default) or peer (both); repeatable")->allow_extra_args(false);
  c.add_option("--ttl", o.issue.ttl, "Validity, 1s to 10y (default 365d; never beyond the CA's)");
  c.add_option("--algorithm", o.issue.algorithm, "Key algorithm (default: the CA's)");
  c.add_option("--name", o.issue.name, "File names NAME.crt and NAME.key (default: from the CN)");
  c.add_option("--out", o.issue.out, "Directory for the certificate and key")->required();
}

inline void sign_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.sign.cluster, "Cluster name")->required();
  c.add_option("--user", o.sign.user, "User name (certificate CN)")->required();
  c.add_option("--group", o.sign.groups, "Group (certificate O; repeatable)")->allow_extra_args(false);
  c.add_option("--ttl", o.sign.ttl, "Validity, 1s to 10y (default 24h; never beyond the CA's)");
  c.add_option("--server", o.sign.server, "API server URL https://HOST[:PORT][/PATH] (default: from the fetched admin kubeconfig)");
  c.add_option("--algorithm", o.sign.algorithm, "Key algorithm (default: the CA's)");
  c.add_option("--out", o.sign.out, "Kubeconfig file (default $KINA_HOME/clusters/C/kubeconfigs/USER.kubeconfig); "
                                    "a symlink, device, FIFO or read-only file is refused (73)");
}

inline void token_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.token.cluster, "Cluster name")->required();
  c.add_option("--ttl", o.token.ttl, "Token lifetime, 1s to 1y (default 24h)");
}

inline void fetch_options(CLI::App& c, Options& o) {
  c.add_option("--machine", o.fetch.machine, "Node machine name (else a Machine record on stdin)");
  c.add_option("--cluster", o.fetch.cluster, "Cluster name (default: the machine's)");
}

inline constexpr const char* kKubeconfigHelp =
    "Target file instead (a symlink is followed as kubectl does; a device, FIFO or read-only file is refused: 73)";
inline constexpr const char* kLockTimeoutHelp = "How long to wait for PATH.lock, 0s to 1h (default 10s)";

inline void merge_options(CLI::App& c, Options& o) {
  c.add_option("--kubeconfig", o.merge_kubeconfig, kKubeconfigHelp);
  c.add_option("--from", o.merge.from, "Merge this kubeconfig file instead of reading records (repeatable)")->allow_extra_args(false);
  c.add_option("--lock-timeout", o.merge.lock_timeout, kLockTimeoutHelp);
}

inline void unmerge_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.unmerge.cluster, "Cluster name")->required();
  c.add_option("--kubeconfig", o.unmerge_kubeconfig, kKubeconfigHelp);
  c.add_option("--lock-timeout", o.unmerge.lock_timeout, kLockTimeoutHelp);
}

inline Status run_merge(Options& o, Invocation& inv) {
  if (inv.given("--kubeconfig")) o.merge.kubeconfig = o.merge_kubeconfig;
  return merge(o.merge, inv);
}

inline Status run_unmerge(Options& o, Invocation& inv) {
  if (inv.given("--kubeconfig")) o.unmerge.kubeconfig = o.unmerge_kubeconfig;
  return unmerge(o.unmerge, inv);
}

}  // namespace kina::kube
