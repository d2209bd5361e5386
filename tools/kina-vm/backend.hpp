// backend.hpp: what a machine backend (qemu, apple) does for kina-vm's
// commands. main.cpp picks one backend per command, once: from --backend for
// boot and network create, from machine.json's or network.json's "backend"
// for the others; the commands then only call this interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "machine.hpp"
#include "names.hpp"

namespace kina::vm {

inline constexpr std::string_view kTool = "kina-vm";

// A value that must stay one line (--env, command arguments).
inline Status check_line(std::string_view what, const std::string& v) {
  if (v.find('\n') != std::string::npos || v.find('\0') != std::string::npos)
    return make_error(Exit::usage, fmt::format("invalid {} {}", what, shown(v)), "must not contain a newline");
  return {};
}

// Bounds of the duration flags (docs/cli.md, "Numeric bounds").
inline constexpr int64_t kMinBootTimeoutMs = 1000, kMaxBootTimeoutMs = 86400LL * 1000, kMaxStopTimeoutMs = 3600LL * 1000;

// When boot and start print the Machine record.
enum class Ready { agent, systemd };
inline const char* ready_name(Ready r) { return r == Ready::systemd ? "systemd" : "agent"; }

// How long boot and start wait for the guest (--timeout, already checked).
struct Wait {
  int64_t timeout_ms = 180000;
  std::string timeout_text = "180s";  // as given, for messages
  Ready ready = Ready::agent;
};

// boot, its flags checked by the caller: names, CPUs, memory, --timeout,
// --publish, --env, --kernel-arg and command lines. The backend checks
// what only it reads (mounts, root filesystems, images, stdin records).
struct BootRequest {
  BootRequest(ClusterName c, MachineName n) : cluster(std::move(c)), name(std::move(n)) {}
  ClusterName cluster;
  MachineName name;
  std::optional<NetworkName> network;
  std::string rootfs, disk, image, accel = "auto";
  int cpus = 1;
  uint64_t memory_bytes = 0;
  std::vector<std::string> publish, env, kernel_args, mounts, command;
  Wait wait;
};

// A machine found by name (its directory holds machine.json).
struct MachineRef {
  fsys::path dir;
  MachineName name;
  ClusterName cluster;
};

struct ExecOptions {
  bool interactive = false, tty = false;
  std::vector<std::string> env, command;
  std::string workdir, user;
};

struct NetworkRequest {
  ClusterName cluster;
  NetworkName name;
  std::string subnet;  // network create: "" for the default
  bool force = false;  // network rm -f
};

// The first line of TEXT, without surrounding blanks, at most 200 bytes.
inline std::string first_line(std::string_view text) {
  std::string_view l = text.substr(0, text.find('\n'));
  while (!l.empty() && (l.back() == ' ' || l.back() == '\r' || l.back() == '\t')) l.remove_suffix(1);
  while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
  return std::string(l.substr(0, 200));
}

class Backend {
 public:
  virtual ~Backend() = default;
  // The Machine record(s) once every machine is ready (stdin records that are
  // not the backend's input are forwarded to stdout on the way).
  virtual Result<std::vector<std::string>> boot(const BootRequest& r) = 0;
  // The Machine record once it is ready; a running machine is left alone.
  virtual Result<std::string> start(const MachineRef& m, const Wait& w) = 0;
  // The Machine record once it is stopped.
  virtual Result<std::string> stop(const MachineRef& m, int64_t timeout_ms, const std::string& timeout_text) = 0;
  virtual Status remove(const MachineRef& m, bool force) = 0;
  // The command's exit status (128+N for signal N).
  virtual Result<int> exec(const MachineRef& m, const ExecOptions& e) = 0;
  virtual Status copy_in(const MachineRef& m, const std::string& host_src, const std::string& guest_dst) = 0;
  virtual Status copy_out(const MachineRef& m, const std::string& guest_src, const std::string& host_dst,
                          uint64_t max_bytes) = 0;
  virtual Status logs(const MachineRef& m, bool follow, bool raw) = 0;
  // The Machine record as it is now (ls, inspect).
  virtual std::string record(const fsys::path& dir, Spec& s) = 0;

  // The Network record of the network created.
  virtual Result<std::string> network_create(const NetworkRequest& r) = 0;
  // The Network record of an existing network of this backend (network ls).
  virtual Result<std::string> network_record(const ClusterName& cluster, const NetworkName& name) = 0;
  virtual Status network_rm(const NetworkRequest& r) = 0;
};

}  // namespace kina::vm
