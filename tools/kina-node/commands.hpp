// commands.hpp: kina-node's command line: what each subcommand's options fill
// in, and the run functions of its table (main.cpp).
#pragma once

#include <string>

#include "kina/cli.hpp"
#include "kina/invocation.hpp"

#include "lb.hpp"
#include "lock.hpp"
#include "plan_cmd.hpp"
#include "steps_cmd.hpp"
#include "tool.hpp"

namespace kina::node {

inline constexpr std::string_view kDescription =
    "kind-compatible clusters whose nodes are VMs. Reads kind's kind.x-k8s.io/v1alpha4 Cluster config (and "
    "kina/v1alpha1), checks kina's cluster policy, and prints the plan as records.\n"
    "Records on stdout, diagnostics on stderr.";

// What the command line fills in, one set of arguments per command.
struct Options {
  PlanArgs plan;
  StepArgs step;
  LbArgs lb;
  LockArgs lock;
  std::string plan_config, plan_name, plan_image, plan_policy;  // taken when given
};

inline void plan_options(CLI::App& c, Options& o) {
  c.add_option("--config", o.plan_config,
               "kind config file (kind.x-k8s.io/v1alpha4 or kina/v1alpha1, at most 1 MiB), - for "
               "stdin; without it, kind's default cluster (one control plane)");
  c.add_option("--name", o.plan_name, "Cluster name instead of the config's (default kind)");
  c.add_option("--image", o.plan_image, "Node image for every node, instead of the config's (default kina.local/node:v1.37.2)");
  c.add_option("--policy", o.plan_policy, "Policy file (apiVersion: kina/v1alpha1, kind: Policy)");
  c.add_flag("--allow-public", o.plan.allow_public,
             "Allow port mappings and the API server on non-loopback addresses (reachable from other hosts)");
}

inline Status run_plan(Options& o, Invocation& inv) {
  if (inv.given("--config")) o.plan.config = o.plan_config;
  if (inv.given("--name")) o.plan.name = o.plan_name;
  if (inv.given("--image")) o.plan.image = o.plan_image;
  if (inv.given("--policy")) o.plan.policy = o.plan_policy;
  return plan(o.plan);
}

// The node steps: each reads the plan and the Machine records on stdin (or,
// with --cluster, the cluster's saved plan and `kina-vm ls`), forwards them
// and prints Node records.
inline void step_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.step.cluster,
               "Read the plan from $KINA_HOME/clusters/C/plan.jsonl and the machines from kina-vm ls instead of stdin");
  c.add_option("--timeout", o.step.timeout, "How long kubeadm (or the wait) may take, 1s to 24h (default 30m)");
  c.add_flag("-v,--verbose", o.step.verbose, "Say what is done on stderr");
}

inline void join_options(CLI::App& c, Options& o) {
  step_options(c, o);
  c.add_option("--node", o.step.node, "The node to join (its NodePlan name)")->required();
}

template <Step S>
Status run_step_cmd(Options& o, Invocation& inv) {
  return run_step(S, o.step, inv);
}

inline void lb_options(CLI::App& c, Options& o) {
  c.add_option("--listen", o.lb.listen, "IPV4:PORT to listen on (the API server's host address)")->required();
  c.add_option("--backend", o.lb.backends, "IPV4:PORT of a control plane's API server (repeatable)")
      ->allow_extra_args(false);
  c.add_option("--backends-file", o.lb.backends_file,
               "FILE of backends, one IPV4:PORT per line, read again whenever it changes (instead of --backend)");
  c.add_flag("--detach", o.lb.detach,
             "Start a session of its own (setsid(2)) before listening, so the terminal's signals to the caller "
             "do not reach it (the front end runs it in the background this way; no setsid(1) needed)");
}

inline void lock_options(CLI::App& c, Options& o) {
  c.add_option("--fd", o.lock.fd, "Descriptor, open on a regular file, inherited from the caller")->required();
  c.add_option("--timeout", o.lock.timeout, "How long to wait for the lock, 0s to 24h (default 10m)");
}

}  // namespace kina::node
