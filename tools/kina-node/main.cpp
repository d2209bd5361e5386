// kina-node: kind-compatible clusters of VM nodes. `plan` reads kind's Cluster
// config (or kina/v1alpha1), applies kina's cluster policy and prints the
// plan as records. This file is the command line only; each command lives in
// its own header here (plan_cmd.hpp; kind_config.hpp, policy.hpp, plan.hpp).
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/clock.hpp"
#include "kina/diag.hpp"
#include "kina/validate.hpp"

#include "lb.hpp"
#include "plan_cmd.hpp"
#include "steps_cmd.hpp"
#include "tool.hpp"

namespace {

using namespace kina;
using namespace kina::node;

// What the command line fills in, one set of arguments per command.
struct Options {
  std::vector<std::string> argv;
  PlanArgs plan;
  StepArgs step;
  LbArgs lb;
  std::string plan_config, plan_name, plan_image, plan_policy;  // taken when given
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
        "kind-compatible clusters whose nodes are VMs. Reads kind's kind.x-k8s.io/v1alpha4 Cluster config (and "
        "kina/v1alpha1), checks kina's cluster policy, and prints the plan as records.\n"
        "Records on stdout, diagnostics on stderr.");
    app.require_subcommand(1);

    auto* plan = app.add_subcommand(
        "plan", "Read a cluster config and print one ClusterPlan record, then one NodePlan per node; every config "
                "problem is reported (65), then every policy refusal (80, docs/security.md \"Cluster policy\")");
    auto* config = plan->add_option("--config", o.plan_config,
                                    "kind config file (kind.x-k8s.io/v1alpha4 or kina/v1alpha1, at most 1 MiB), - for "
                                    "stdin; without it, kind's default cluster (one control plane)");
    auto* name = plan->add_option("--name", o.plan_name, "Cluster name instead of the config's (default kind)");
    auto* image = plan->add_option("--image", o.plan_image,
                                   "Node image for every node, instead of the config's (default kina.local/node:v1.37.2)");
    auto* policy = plan->add_option("--policy", o.plan_policy, "Policy file (apiVersion: kina/v1alpha1, kind: Policy)");
    plan->add_flag("--allow-public", o.plan.allow_public,
                   "Allow port mappings and the API server on non-loopback addresses (reachable from other hosts)");

    // The node steps: each reads the plan and the Machine records on stdin (or,
    // with --cluster, the cluster's saved plan and `kina-vm ls`), forwards them
    // and prints Node records.
    auto add_step = [&](const char* cmd, const char* what) {
      auto* sc = app.add_subcommand(cmd, what);
      sc->add_option("--cluster", o.step.cluster,
                     "Read the plan from $KINA_HOME/clusters/C/plan.jsonl and the machines from kina-vm ls instead of stdin");
      sc->add_option("--timeout", o.step.timeout, "How long kubeadm (or the wait) may take, 1s to 24h (default 30m)");
      sc->add_flag("-v,--verbose", o.step.verbose, "Say what is done on stderr");
      return sc;
    };
    auto* init = add_step("init", "kubeadm init on the bootstrap control plane: the cluster CAs from kina-kube pki export, "
                                  "the Secrets encryption key, the node's kubeadm config, and the binding of kina's admin "
                                  "group (kina:cluster-admins) to cluster-admin; prints a Node record");
    auto* join = add_step("join", "kubeadm join of one node with a bootstrap token of its own and the CA pinned "
                                  "(caCertHashes); control planes get the CAs first; prints a Node record");
    join->add_option("--node", o.step.node, "The node to join (its NodePlan name)")->required();
    auto* addons = add_step("addons", "Apply the node image's CNI manifest (with the pod subnet; not with disableDefaultCNI) "
                                      "and storage manifest on the bootstrap control plane");
    auto* wait = add_step("wait", "Wait until every node of the plan is Ready; prints a Node record each");

    auto* lb = app.add_subcommand("lb", "Run the TCP load balancer in front of several control planes until SIGTERM "
                                        "(the front end starts it for clusters with more than one; docs/cluster.md)");
    lb->add_option("--listen", o.lb.listen, "IPV4:PORT to listen on (the API server's host address)")->required();
    lb->add_option("--backend", o.lb.backends, "IPV4:PORT of a control plane's API server (repeatable)")
        ->required()
        ->allow_extra_args(false);

    return [&, plan, config, name, image, policy, init, join, addons, wait, lb]() -> Status {
      if (lb->parsed()) return run_lb(o.lb);
      auto step = [&o](Step s) {
        std::string cluster = o.step.cluster;
        return audited(o, std::string(step_name(s)), cluster, [&](std::string& target) {
          return run_step(s, o.step, cluster, target);
        });
      };
      if (init->parsed()) return step(Step::init);
      if (join->parsed()) return step(Step::join);
      if (addons->parsed()) return step(Step::addons);
      if (wait->parsed()) return step(Step::wait);
      if (plan->parsed()) {
        if (config->count() > 0) o.plan.config = o.plan_config;
        if (name->count() > 0) o.plan.name = o.plan_name;
        if (image->count() > 0) o.plan.image = o.plan_image;
        if (policy->count() > 0) o.plan.policy = o.plan_policy;
        return node::plan(o.plan);
      }
      return usage_error("no command");
    };
  });
}
