// backends.hpp: the one place kina-vm picks a backend: from --backend for
// boot and network create, from machine.json's or network.json's "backend"
// for everything else; and the lookup of a machine by name that those
// commands start from.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "backend.hpp"
#include "backend_apple.hpp"
#include "backend_qemu.hpp"
#include "kina/home.hpp"
#include "machine.hpp"
#include "names.hpp"
#include "network.hpp"

namespace kina::vm {

// Both backends; each command asks for the one it needs, once.
class Backends {
 public:
  // INTR: the command's signal handling (kina/interrupt.hpp); null in a unit test.
  explicit Backends(const Interrupts* intr = nullptr) : qemu_(intr), apple_(intr) {}
  // --backend of boot and network create: auto is apple on macOS, qemu elsewhere.
  Backend& for_flag(const std::string& flag) {
#ifdef __APPLE__
    if (flag == "auto") return apple_;
#endif
    return named(flag);
  }
  // An existing machine's, from its machine.json (unreadable: qemu, whose
  // commands report it).
  Backend& of_machine(const fsys::path& dir) {
    auto s = Spec::load(dir);
    return named(s ? s->backend : "qemu");
  }
  // An existing network's, from its network.json (absent: qemu).
  Backend& of_network(const fsys::path& dir) { return named(network_backend(dir)); }
  Backend& named(std::string_view name) {
    if (name == "apple") return apple_;
    return qemu_;
  }

 private:
  QemuBackend qemu_;
  AppleBackend apple_;
};

// A machine by name: in CLUSTER when given (--cluster), else the one cluster that has it.
inline Result<MachineRef> find_machine(const std::optional<std::string>& cluster_flag, const std::string& given) {
  auto name = MachineName::parse(given);
  if (!name) return name.error();
  if (cluster_flag) {
    auto cluster = ClusterName::parse(*cluster_flag);
    if (!cluster) return cluster.error();
    auto d = machine_dir(*cluster, *name);
    if (!d) return d.error();
    if (!fsys::exists(*d / file::spec))
      return make_error(Exit::no_input, fmt::format("machine {}", given), fmt::format("no such machine in cluster {}", *cluster_flag));
    return MachineRef{*d, *name, *cluster};
  }
  auto root = kina_subdir("clusters");
  if (!root) return root.error();
  std::vector<MachineRef> found;
  std::error_code ec;
  for (const auto& c : fsys::directory_iterator(*root, ec))
    if (fsys::exists(c.path() / "machines" / given / file::spec))
      if (auto cluster = ClusterName::parse(c.path().filename().string()))
        found.push_back(MachineRef{c.path() / "machines" / given, *name, *cluster});
  if (found.empty()) return make_error(Exit::no_input, fmt::format("machine {}", given), "no such machine", "see: kina-vm ls");
  if (found.size() > 1)
    return make_error(Exit::usage, fmt::format("machine {}", given), "the name exists in several clusters", "give --cluster");
  return found[0];
}

}  // namespace kina::vm
