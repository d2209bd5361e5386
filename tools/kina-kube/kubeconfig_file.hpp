// kubeconfig_file.hpp: the kubeconfig file kina-kube changes: which one
// (--kubeconfig, $KUBECONFIG, ~/.kube/config), read, and written as kubectl does.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <sodium.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/output.hpp"
#include "kina/yaml.hpp"

#include "cluster.hpp"
#include "kubeconfig.hpp"

namespace kina::kube {

// The kubeconfig named by --kubeconfig (`flag`, when given), else by the first
// non-empty entry of $KUBECONFIG (`env`, a colon-separated list); nullopt
// when neither names one (~/.kube/config is then the default).
inline Result<std::optional<fsys::path>> named_kubeconfig(const std::optional<std::string>& flag, const char* env) {
  if (flag) {
    auto p = path_arg("--kubeconfig", *flag);
    if (!p) return p.error();
    return std::optional<fsys::path>(*p);
  }
  if (env && *env) {
    std::string_view list(env);
    while (!list.empty()) {
      size_t colon = list.find(':');
      std::string_view first = list.substr(0, colon);
      if (!first.empty()) {
        auto p = path_arg("KUBECONFIG", std::string(first));
        if (!p) return p.error();
        return std::optional<fsys::path>(*p);
      }
      if (colon == std::string_view::npos) break;
      list.remove_prefix(colon + 1);
    }
  }
  return std::optional<fsys::path>();
}

// The kubeconfig to change: --kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config.
inline Result<fsys::path> target_kubeconfig(const std::optional<std::string>& flag) {
  auto named = named_kubeconfig(flag, std::getenv("KUBECONFIG"));
  if (!named) return named.error();
  if (*named) return **named;
  auto home = user_home();
  if (!home) return home.error();
  return *home / ".kube" / "config";
}

// Reads the target kubeconfig (a missing file is an empty config).
inline Result<yaml::Node> read_target(const fsys::path& p) {
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
inline Result<OutputPlan> plan_target(const fsys::path& p) {
  return plan_output(p, "writing the kubeconfig", 0600, FollowLinks::like_kubectl, true);
}

// Writes the target atomically as planned.
inline Status write_target(const fsys::path& p, const yaml::Node& cfg) {
  auto plan = plan_target(p);
  if (!plan) return plan.error();
  if (auto st = ensure_dir(plan->path.parent_path(), 0700); !st) return st;
  auto text = yaml::emit(cfg);
  if (!text) return text.error();
  Status st = write_output(*plan, *text);
  sodium_memzero(text->data(), text->size());
  return st;
}

}  // namespace kina::kube
