// plan_cmd.hpp: `kina-node plan`: config (or kind's defaults) + policy -> one
// ClusterPlan record and one NodePlan per node on stdout; nothing on stdout
// when any check fails.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/record.hpp"

#include "kind_config.hpp"
#include "plan.hpp"
#include "policy.hpp"
#include "tool.hpp"

namespace kina::node {

struct PlanArgs {
  std::optional<std::string> config;  // a file, or "-" for stdin; unset: kind's defaults
  std::optional<std::string> name;
  std::optional<std::string> image;
  std::optional<std::string> policy;  // a policy file
  bool allow_public = false;
};

// Reports every problem but the last on stderr (one line each) and returns the
// last, which the caller reports with its exit code.
inline Error report_all(const std::vector<Error>& list) {
  for (size_t i = 0; i + 1 < list.size(); ++i) report(kTool, list[i]);
  return list.back();
}

inline Result<Plan> make_plan(const PlanArgs& a, const HostFacts& host) {
  if (a.name)
    if (auto why = detail::ConfigReader::cluster_name_problem(*a.name); !why.empty())
      return make_error(Exit::usage, fmt::format("invalid --name {}", shown(*a.name)), why);
  if (a.image)
    if (auto why = image_problem(*a.image); !why.empty()) return make_error(Exit::usage, fmt::format("invalid --image {}", shown(*a.image)), why);

  ConfigOptions opts;
  opts.name = a.name;
  opts.image = a.image;
  opts.home = host.home;
  std::error_code ec;
  fsys::path cwd = fsys::current_path(ec);
  if (ec) return make_error(Exit::os, "finding the current directory", ec.message());
  std::string label = "config (kind's defaults)";
  std::string text;
  if (a.config) {
    if (a.config->empty()) return make_error(Exit::usage, "--config", "an empty file name (use - for stdin)");
    if (*a.config == "-") {
      label = "config <stdin>";
      opts.source = "-";
      opts.base_dir = cwd;
      auto t = read_fd(0, "reading the config from stdin", kMaxConfigBytes);
      if (!t) return t.error();
      text = std::move(*t);
    } else {
      fsys::path p = fsys::absolute(*a.config, ec);
      if (ec) p = *a.config;
      label = fmt::format("config {}", *a.config);
      opts.source = p.lexically_normal().string();
      opts.base_dir = p.lexically_normal().parent_path();
      auto t = read_file(p, kMaxConfigBytes);
      if (!t) return t.error();
      text = std::move(*t);
    }
  }

  Problems problems(label);
  ParsedConfig cfg = a.config ? parse_kind_config(text, opts, problems) : default_config(opts, problems);
  if (!problems.empty()) return report_all(problems.list());

  Policy pol;
  if (a.policy) {
    fsys::path p = fsys::absolute(*a.policy, ec);
    if (ec) p = *a.policy;
    auto t = read_file(p, kMaxPolicyBytes);
    if (!t) return t.error();
    Problems pp(fmt::format("policy {}", *a.policy));
    pol = parse_policy(*t, p.lexically_normal().parent_path(), host.home, pp);
    if (!pp.empty()) return report_all(pp.list());
  }
  if (a.allow_public) pol.allow_public_ports = true;

  Problems refusals("policy", Exit::policy);
  if (cfg.policy) pol = tighten(std::move(pol), *cfg.policy, host, refusals);
  refusals = check_policy(cfg.plan, pol, host, cfg.given_host_paths, std::move(refusals));
  if (!refusals.empty()) return report_all(refusals.list());
  return std::move(cfg.plan);
}

inline Status plan(const PlanArgs& a) {
  auto host = host_facts();
  if (!host) return host.error();
  auto p = make_plan(a, *host);
  if (!p) return p.error();
  RecordWriter out;
  return write_plan(out, *p);
}

}  // namespace kina::node
