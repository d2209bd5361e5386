// kina-kube: cluster PKI (the CAs kubeadm uses), least-privilege kubeconfigs signed
// by the cluster CA, bootstrap tokens, fetching the admin kubeconfig from a node,
// and merging kubeconfigs into the user's kubectl configuration. This file is
// the command line only; each command lives in its own header here (pki.hpp,
// sign.hpp, token.hpp, fetch.hpp, merge.hpp, docs/architecture.md).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/validate.hpp"

#include "cluster.hpp"
#include "fetch.hpp"
#include "merge.hpp"
#include "pki.hpp"
#include "sign.hpp"
#include "token.hpp"

namespace {

using namespace kina;
using namespace kina::kube;

// What the command line fills in, one set of arguments per command.
struct Options {
  std::vector<std::string> argv;
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

// Runs a mutating command and appends its audit event, whatever the outcome.
Status audited(const Options& o, std::string action, const std::string& cluster, const std::function<Status(std::string&)>& fn) {
  return audit::audited(kTool, o.argv, std::move(action), cluster, fn);
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
    init->add_option("--cluster", o.init.cluster, "Cluster name")->required();
    init->add_option("--algorithm", o.init.algorithm, "Key algorithm of the three CAs: ecdsa-p256 (default) or rsa-2048 (the service-account key is always RSA-2048, as kubeadm requires)");
    init->add_option("--ca-ttl", o.init.ca_ttl, "CA validity, 1d to 10000y and never past 9999-12-31 (default 10y)");
    init->add_flag("--force", o.init.force, "Replace an existing PKI (everything it signed stops being trusted)");

    auto* exp = pki->add_subcommand("export", "Write the CAs and the service-account pair in kubeadm's layout "
                                              "(/etc/kubernetes/pki), keys in clear with mode 0600");
    exp->add_option("--cluster", o.exp.cluster, "Cluster name")->required();
    exp->add_option("--dir", o.exp.dir, "Target directory")->required();

    auto* issue = pki->add_subcommand("issue", "Issue a leaf certificate and key (kubeadm's profiles); prints a Certificate record");
    issue->add_option("--cluster", o.issue.cluster, "Cluster name")->required();
    issue->add_option("--ca", o.issue.ca, "cluster (default), front-proxy or etcd")->check(CLI::IsMember({"cluster", "front-proxy", "etcd"}));
    issue->add_option("--cn", o.issue.cn, "Common name")->required();
    issue->add_option("--org", o.issue.orgs, "Organization (repeatable)")->allow_extra_args(false);
    issue->add_option("--san", o.issue.sans, "DNS name (RFC 1123, *. wildcard as the whole left label) or IP address (repeatable)")->allow_extra_args(false);
    issue->add_option("--usage", o.issue.usages, "server, client (default) or peer (both); repeatable")->allow_extra_args(false);
    issue->add_option("--ttl", o.issue.ttl, "Validity, 1s to 10y (default 365d; never beyond the CA's)");
    issue->add_option("--algorithm", o.issue.algorithm, "Key algorithm (default: the CA's)");
    issue->add_option("--name", o.issue.name, "File names NAME.crt and NAME.key (default: from the CN)");
    issue->add_option("--out", o.issue.out, "Directory for the certificate and key")->required();

    auto* sign = app.add_subcommand("sign", "Mint a kubeconfig for a user and groups, signed by the cluster CA; prints a "
                                            "Kubeconfig record");
    sign->add_option("--cluster", o.sign.cluster, "Cluster name")->required();
    sign->add_option("--user", o.sign.user, "User name (certificate CN)")->required();
    sign->add_option("--group", o.sign.groups, "Group (certificate O; repeatable)")->allow_extra_args(false);
    sign->add_option("--ttl", o.sign.ttl, "Validity, 1s to 10y (default 24h; never beyond the CA's)");
    sign->add_option("--server", o.sign.server, "API server URL https://HOST[:PORT][/PATH] (default: from the fetched admin kubeconfig)");
    sign->add_option("--algorithm", o.sign.algorithm, "Key algorithm (default: the CA's)");
    sign->add_option("--out", o.sign.out, "Kubeconfig file (default $KINA_HOME/clusters/C/kubeconfigs/USER.kubeconfig); "
                                          "a symlink, device, FIFO or read-only file is refused (73)");

    auto* token = app.add_subcommand("token", "Make a kubeadm bootstrap token; prints a JoinToken record (refused on a terminal)");
    token->add_option("--cluster", o.token.cluster, "Cluster name")->required();
    token->add_option("--ttl", o.token.ttl, "Token lifetime, 1s to 1y (default 24h)");

    auto* fetch = app.add_subcommand("fetch", "Copy /etc/kubernetes/admin.conf from a node (kina-vm cp), point it at the "
                                              "host-reachable API endpoint, name it kina-C; prints a Kubeconfig record");
    fetch->add_option("--machine", o.fetch.machine, "Node machine name (else a Machine record on stdin)");
    fetch->add_option("--cluster", o.fetch.cluster, "Cluster name (default: the machine's)");

    auto* merge = app.add_subcommand("merge", "Merge the kubeconfigs of Kubeconfig records (stdin) into $KUBECONFIG's first "
                                              "file or ~/.kube/config, under PATH.lock, mode 0600");
    auto* merge_kc = merge->add_option("--kubeconfig", o.merge_kubeconfig, "Target file instead (a symlink is followed as kubectl does; a device, FIFO or read-only file is refused: 73)");
    merge->add_option("--from", o.merge.from, "Merge this kubeconfig file instead of reading records (repeatable)")->allow_extra_args(false);
    merge->add_option("--lock-timeout", o.merge.lock_timeout, "How long to wait for PATH.lock, 0s to 1h (default 10s)");

    auto* unmerge = app.add_subcommand("unmerge", "Remove kina's entries for a cluster (kina-C, *@kina-C) and nothing else");
    unmerge->add_option("--cluster", o.unmerge.cluster, "Cluster name")->required();
    auto* unmerge_kc = unmerge->add_option("--kubeconfig", o.unmerge_kubeconfig, "Target file instead (a symlink is followed as kubectl does; a device, FIFO or read-only file is refused: 73)");
    unmerge->add_option("--lock-timeout", o.unmerge.lock_timeout, "How long to wait for PATH.lock, 0s to 1h (default 10s)");

    return [&, init, exp, issue, sign, token, fetch, merge, unmerge, merge_kc, unmerge_kc]() -> Status {
      if (merge_kc->count() > 0) o.merge.kubeconfig = o.merge_kubeconfig;
      if (unmerge_kc->count() > 0) o.unmerge.kubeconfig = o.unmerge_kubeconfig;
      auto run = [&o](std::string action, const std::string& cluster, auto cmd, const auto& args) {
        return audited(o, std::move(action), cluster, [&](std::string& t) { return cmd(args, t); });
      };
      if (init->parsed()) return run("pki-init", o.init.cluster, pki_init, o.init);
      if (exp->parsed()) return run("pki-export", o.exp.cluster, pki_export, o.exp);
      if (issue->parsed()) return run("pki-issue", o.issue.cluster, pki_issue, o.issue);
      if (sign->parsed()) return run("sign", o.sign.cluster, kube::sign, o.sign);
      if (token->parsed()) return run("token", o.token.cluster, kube::token, o.token);
      if (fetch->parsed()) return run("fetch", o.fetch.cluster, kube::fetch, o.fetch);
      if (merge->parsed()) return run("merge", "", kube::merge, o.merge);
      if (unmerge->parsed()) return run("unmerge", o.unmerge.cluster, kube::unmerge, o.unmerge);
      return usage_error("no command");
    };
  });
}
