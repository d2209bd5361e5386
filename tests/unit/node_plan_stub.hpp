// node_plan_stub.hpp: the plan structs of the issue-10 contract (namespace
// kina::node), for n-config's unit tests and fuzz target only. The real
// tools/kina-node/plan.hpp (n-plan's) declares the same names; once it exists,
// `#include "plan.hpp"` from tools/kina-node/ finds it first and this stub is
// no longer read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kina::node {

struct Mount {
  std::string host_path, container_path;
  bool read_only = false;
  bool selinux_relabel = false;
  std::string propagation = "None";
};
struct Port {
  std::string listen_address = "127.0.0.1";
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "TCP";
};
struct Json6902 {
  std::string group, version, kind, patch;
};
struct NodePlan {
  std::string cluster, name;
  std::string role;
  int index = 0;
  bool bootstrap = false;
  std::string image;
  int cpus = 2;
  int64_t memory_mib = 2048;
  std::map<std::string, std::string> labels;
  std::vector<Mount> mounts;
  std::vector<Port> ports;
  std::vector<std::string> kubeadm_patches;
  std::vector<Json6902> kubeadm_patches_json6902;
};
struct Networking {
  std::string ip_family = "ipv4", api_server_address = "127.0.0.1";
  int api_server_port = 0;
  std::string pod_subnet = "10.244.0.0/16", service_subnet = "10.96.0.0/16";
  bool disable_default_cni = false;
  std::string kube_proxy_mode = "iptables";
  std::optional<std::vector<std::string>> dns_search;
};
struct ClusterPlan {
  std::string name;
  std::string source;
  std::string config_api_version;
  std::string backend = "auto";
  std::string image;
  Networking networking;
  std::map<std::string, bool> feature_gates;
  std::map<std::string, std::string> runtime_config;
  std::vector<std::string> kubeadm_patches;
  std::vector<Json6902> kubeadm_patches_json6902;
  std::vector<std::string> containerd_patches;
  std::vector<std::string> containerd_patches_json6902;
  int control_planes = 1, workers = 0;
  bool encrypt_secrets = true;
};

}  // namespace kina::node
