// kina-node: kind-compatible clusters of VM nodes (docs/cli.md, docs/cluster.md).
// The table of subcommands; each lives in its own header.
#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace kina::node;
  using kina::Invocation;
  return kina::run_tool<Options>(
      {kTool, std::string(kDescription),
       {{"plan", "Read a cluster config and print one ClusterPlan record, then one NodePlan per node; every config "
                 "problem is reported (65), then every policy refusal (80, docs/security.md \"Cluster policy\")",
         plan_options, run_plan},
        {"init", "kubeadm init on the bootstrap control plane: the cluster CAs from kina-kube pki export, the Secrets "
                 "encryption key, the node's kubeadm config, and the binding of kina's admin group "
                 "(kina:cluster-admins) to cluster-admin; prints a Node record",
         step_options, run_step_cmd<Step::init>, "init"},
        {"join", "kubeadm join of one node with a bootstrap token of its own and the CA pinned (caCertHashes); "
                 "control planes get the CAs first; prints a Node record",
         join_options, run_step_cmd<Step::join>, "join"},
        {"addons", "Apply the node image's CNI manifest (with the pod subnet; not with disableDefaultCNI) and storage "
                   "manifest on the bootstrap control plane",
         step_options, run_step_cmd<Step::addons>, "addons"},
        {"wait", "Wait until every node of the plan is Ready; prints a Node record each", step_options,
         run_step_cmd<Step::wait>, "wait"},
        {"lb", "Run the TCP load balancer in front of several control planes until SIGTERM (the front end starts it "
               "for clusters with more than one; docs/cluster.md)",
         lb_options, [](Options& o, Invocation&) { return run_lb(o.lb); }},
        {"lock", "Take an exclusive flock(2) on a descriptor the caller opened and leave it held by the caller "
                 "(flock(1)'s `flock -w SECS FD`, for hosts without it); 75 when still held by another after "
                 "--timeout",
         lock_options, [](Options& o, Invocation&) { return run_lock(o.lock); }}}},
      argc, argv);
}
