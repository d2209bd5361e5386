// kina-kube: cluster PKI, kubeconfigs, bootstrap tokens, fetch and merge
// (docs/cli.md). The table of subcommands; each lives in its own header.
#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace kina::kube;
  using kina::Invocation;
  return kina::run_tool<Options>(
      {kTool, std::string(kDescription),
       {{"pki", "The cluster's certificate authorities",
         {{"init", "Create the cluster CA (CN kubernetes), front-proxy CA, etcd CA (CN etcd-ca) and the service-account "
                   "key pair; prints a PKI record",
           pki_init_options, [](Options& o, Invocation& i) { return pki_init(o.init, i); }, "pki-init"},
          {"export", "Write the CAs and the service-account pair in kubeadm's layout (/etc/kubernetes/pki), keys in "
                     "clear with mode 0600",
           pki_export_options, [](Options& o, Invocation& i) { return pki_export(o.exp, i); }, "pki-export"},
          {"issue", "Issue a leaf certificate and key (kubeadm's profiles); prints a Certificate record",
           pki_issue_options, [](Options& o, Invocation& i) { return pki_issue(o.issue, i); }, "pki-issue"}}},
        {"sign", "Mint a kubeconfig for a user and groups, signed by the cluster CA; prints a Kubeconfig record",
         sign_options, [](Options& o, Invocation& i) { return sign(o.sign, i); }, "sign"},
        {"token", "Make a kubeadm bootstrap token; prints a JoinToken record (refused on a terminal)", token_options,
         [](Options& o, Invocation& i) { return token(o.token, i); }, "token"},
        {"fetch", "Copy /etc/kubernetes/admin.conf from a node (kina-vm cp), point it at the host-reachable API "
                  "endpoint, name it kina-C; prints a Kubeconfig record",
         fetch_options, [](Options& o, Invocation& i) { return fetch(o.fetch, i); }, "fetch"},
        {"merge", "Merge the kubeconfigs of Kubeconfig records (stdin) into $KUBECONFIG's first file or "
                  "~/.kube/config, under PATH.lock, mode 0600",
         merge_options, run_merge, "merge"},
        {"unmerge", "Remove kina's entries for a cluster (kina-C, *@kina-C) and nothing else", unmerge_options,
         run_unmerge, "unmerge"}},
       nullptr, true, nullptr, refused_cluster},
      argc, argv);
}
