// options.hpp: what kina-audit's command line fills in, the log it works on,
// and what its commands share (the keys directory, printing a record).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kina/audit.hpp"
#include "kina/cli.hpp"
#include "kina/home.hpp"
#include "kina/invocation.hpp"
#include "kina/json.hpp"
#include "kina/record.hpp"

namespace kina::audit_tool {

inline constexpr std::string_view kTool = "kina-audit";
// The keystore role of keys/audit.key (a sealed file copied over it is refused).
inline constexpr std::string_view kSignerRole = "kina-audit signing key";

inline constexpr std::string_view kDescription =
    "Append to, show, checkpoint and verify kina's tamper-evident audit log.\n"
    "Default log: $KINA_HOME/audit/log.jsonl (or $KINA_AUDIT_LOG). Records on stdout, diagnostics on stderr.\n"
    "Exit codes: 0 ok, 1 verification failed, 64 usage, 65 bad data (not kina's log, corrupt, a line over the 1 MiB cap,\n"
    "a FIFO or device as input), 66 not found, 73 cannot create output (a device, FIFO, symlink or read-only file as\n"
    "output, disk full), 74 I/O, 75 lock busy.";

struct Options {
  std::string log;
  // append
  audit::Event event;
  std::string duration;
  std::vector<std::string> details;
  int exit_code = 0;
  // verify / prove / verify-proof
  std::vector<std::string> checkpoints;
  std::string vkey;
  bool no_stored = false;
  uint64_t seq = 0;
  std::string proof_file;
  // checkpoint / keygen
  std::string out;
  std::string key_name;
  bool force = false;
  // show
  std::string cluster_filter, tool_filter, since, format;
  long long last_n = -1;
};

inline Result<fsys::path> log_path(const Options& o) {
  if (!o.log.empty()) return fsys::absolute(o.log);
  return audit::default_log_path();
}

inline Result<fsys::path> keys_dir() { return kina_subdir("keys"); }

inline Status print(RecordWriter& out, json::Writer& w) {
  w.end_object();
  return out.write_line(w.str());
}

// --- append ------------------------------------------------------------------

// The tool's own option: the log.
inline void log_options(CLI::App& app, Options& o) {
  app.add_option("--log", o.log, "Audit log file (default $KINA_HOME/audit/log.jsonl); a regular file, never a symlink, device or FIFO")->type_name("PATH");
}

}  // namespace kina::audit_tool
