// transport.hpp: the one seam through which kina-node acts on a node: run a
// command, write a small file, copy a directory. Today every node is a
// kina-vm machine (`kina-vm exec`/`cp`); the same interface over ssh to a
// real host is the planned second implementation.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/exit.hpp"
#include "kina/process.hpp"

namespace kina::node {

// The environment of the kina tools kina-node runs: the default allowlist and
// what makes them act as this invocation does: the same audit log and keystore
// (a passphrase stays in the environment, never argv), and the create's marker
// (KINA_CREATE_ID) by which `kina delete cluster` finds what a killed create left.
inline std::vector<std::string> tool_env() {
  auto names = default_env_allowlist();
  for (const char* n : {"KINA_AUDIT_LOG", "KINA_KEYSTORE", "KINA_PASSPHRASE", "KINA_PASSPHRASE_FILE", "KINA_CREATE_ID"})
    names.emplace_back(n);
  return build_env(names);
}

class Transport {
 public:
  virtual ~Transport() = default;
  // Runs argv on the node; `input` is its stdin. The result carries the exit
  // status; only a failure to reach the node is an error.
  virtual Result<ProcessResult> exec(const std::string& node, const std::vector<std::string>& argv,
                                     std::optional<std::string> input, std::chrono::milliseconds timeout) = 0;
  // Copies a host directory or file to `guest_path` on the node.
  virtual Status copy_in(const std::string& host_path, const std::string& node, const std::string& guest_path) = 0;

  // Runs argv and requires status 0; the error names `what` and quotes what
  // the command said (at most 400 bytes, one line).
  Result<ProcessResult> run(const std::string& node, const std::vector<std::string>& argv, const std::string& what,
                            std::optional<std::string> input = std::nullopt,
                            std::chrono::milliseconds timeout = std::chrono::minutes(10)) {
    auto r = exec(node, argv, std::move(input), timeout);
    if (!r) return r.error();
    if (!r->success()) {
      std::string said = r->err.empty() ? r->out : r->err;
      while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
      if (said.size() > 400) said = said.substr(said.size() - 400);
      std::string why = fmt::format("{} on {}", r->describe(), node);
      if (!said.empty()) why += ": " + kina::detail::one_line(said);
      return make_error(r->timed_out ? Exit::temp_fail : Exit::unavailable, what, why);
    }
    return r;
  }

  // Writes `content` to `path` on the node with `mode`, the directory made
  // first; the data travels on stdin (never in an argument) and lands in a
  // temporary name renamed into place, so a reader never sees half a file.
  Status put(const std::string& node, const std::string& path, const std::string& content, mode_t mode = 0600) {
    auto slash = path.rfind('/');
    std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    std::string script = fmt::format(
        "set -e; umask 077; mkdir -p '{0}'; t='{1}.kina-tmp'; cat > \"$t\"; chmod {2:o} \"$t\"; mv -f \"$t\" '{1}'", dir,
        path, mode);
    auto r = run(node, {"sh", "-c", script}, fmt::format("writing {} on {}", path, node), content,
                 std::chrono::minutes(2));
    if (!r) return r.error();
    return {};
  }
};

// The machines of a kina-vm cluster.
class VmTransport : public Transport {
 public:
  explicit VmTransport(std::string cluster) : cluster_(std::move(cluster)) {}

  Result<ProcessResult> exec(const std::string& node, const std::vector<std::string>& argv,
                             std::optional<std::string> input, std::chrono::milliseconds timeout) override {
    ProcessSpec spec;
    spec.env = tool_env();
    spec.argv = {"kina-vm", "exec", "--cluster", cluster_};
    if (input) spec.argv.push_back("-i");
    spec.argv.push_back(node);
    spec.argv.push_back("--");
    spec.argv.insert(spec.argv.end(), argv.begin(), argv.end());
    spec.input = std::move(input);
    spec.timeout = timeout;
    return run_process(spec);
  }

  Status copy_in(const std::string& host_path, const std::string& node, const std::string& guest_path) override {
    ProcessSpec spec;
    spec.env = tool_env();
    spec.argv = {"kina-vm", "cp", "--cluster", cluster_, host_path, node + ":" + guest_path};
    auto r = run_checked_tool(std::move(spec), fmt::format("copying {} to {}:{}", host_path, node, guest_path),
                              [](int) { return Exit::unavailable; });
    if (!r) return r.error();
    return {};
  }

 private:
  std::string cluster_;
};

}  // namespace kina::node
