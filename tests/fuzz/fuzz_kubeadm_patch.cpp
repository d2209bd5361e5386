// fuzz_kubeadm_patch: kina-node's patching of kubeadm configs
// (tools/kina-node/patch.hpp, as kubeadm.hpp drives it) must never crash or
// hang on any patch text. The input is split at NUL bytes: a merge patch
// (kubeadmConfigPatches), then a JSON 6902 patch applied to ClusterConfiguration,
// then one matched by kind only, each to a real generated v1beta3 and v1beta4
// config; then a containerd TOML patch and a containerd JSON 6902 patch
// (containerd_patch.hpp). Whatever succeeds must emit YAML (TOML) that reads
// back as equal documents.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tools/kina-node/containerd_patch.hpp"
#include "tools/kina-node/kubeadm.hpp"

namespace {

std::vector<std::string> split(std::string_view in) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= in.size() && parts.size() < 5; ++i)
    if (i == in.size() || in[i] == '\0') {
      parts.emplace_back(in.substr(start, i - start));
      start = i + 1;
    }
  while (parts.size() < 5) parts.emplace_back();
  return parts;
}

void run(const std::string& version, const std::vector<std::string>& p) {
  using namespace kina::node;
  ClusterPlan c;
  c.name = "kind";
  c.workers = 1;
  c.feature_gates = {{"A", true}};
  c.kubeadm_patches = {p[0]};
  std::string api = version == "v1.37.2" ? "v1beta4" : "v1beta3";
  c.kubeadm_patches_json6902 = {{"kubeadm.k8s.io", api, "ClusterConfiguration", p[1]}};
  NodePlan n;
  n.cluster = "kind";
  n.name = "kind-worker";
  n.role = "worker";
  n.index = 1;
  n.kubeadm_patches_json6902 = {{"", "", "JoinConfiguration", p[2]}, {"", "", "KubeletConfiguration", p[2]}};
  ConfigInputs in;
  in.kubernetes_version = version;
  in.control_plane_endpoint = "10.89.0.2:6443";
  in.token = "abcdef.0123456789abcdef";
  in.ca_cert_hashes = {"sha256:" + std::string(64, 'a')};
  in.encryption_config_path = "/etc/kubernetes/encryption/config.yaml";
  auto out = generate_node_config(c, n, MachineInfo{"kind-worker", "10.89.0.5"}, in);
  if (!out) {
    if (out.error().exit != kina::Exit::data) std::abort();  // bad patches are bad data, nothing else
    return;
  }
  // Unpatched again, for the comparison: the patched output must read back.
  auto docs = kina::yaml::parse_all(*out, "fuzz-emitted");
  if (!docs) std::abort();
  auto again = emit_documents(*docs);
  if (!again) std::abort();
  auto docs2 = kina::yaml::parse_all(*again, "fuzz-emitted-2");
  if (!docs2 || docs2->size() != docs->size()) std::abort();
  for (size_t i = 0; i < docs->size(); ++i)
    if (!json_equal((*docs)[i], (*docs2)[i])) std::abort();
}

void run_containerd(const std::vector<std::string>& p) {
  using namespace kina::node;
  static const std::string base =
      "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs'\n"
      "[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dirs = ['/opt/cni/bin']\n";
  ClusterPlan c;
  if (!p[3].empty()) c.containerd_patches = {p[3]};
  if (!p[4].empty()) c.containerd_patches_json6902 = {p[4]};
  auto out = generate_containerd_patch(c, base);
  if (!out) {
    if (out.error().exit != kina::Exit::data) std::abort();
    return;
  }
  if (out->empty()) return;
  try {
    (void)toml::parse(*out);
  } catch (const toml::parse_error&) {
    std::abort();  // what we write must read back
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  auto parts = split(std::string_view(reinterpret_cast<const char*>(data), size));
  run("v1.37.2", parts);
  run("v1.35.4", parts);
  run_containerd(parts);
  return 0;
}
