// cli.hpp: the same few lines of main() for every tool: parse with CLI11, run,
// map the result to an exit code, and check that stdout really got written.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/validate.hpp"
#include "kina_config.hpp"

namespace kina {

inline std::string version_string(std::string_view tool) { return fmt::format("{} {}", tool, KINA_VERSION); }

// Common set-up of a tool's CLI11 app: --version, strict parsing.
inline void setup_app(CLI::App& app, std::string_view tool) {
  app.set_version_flag("--version", version_string(tool), "Print the version and exit");
  app.option_defaults()->always_capture_default(false);
  app.allow_extras(false);
  app.require_subcommand(0, 1);
}

// Runs a tool: `build` adds options and subcommands to the app and returns
// the action to run after parsing. Exit codes per docs/protocol.md.
inline int run_tool(std::string_view tool, int argc, char** argv,
                    const std::function<std::function<Status()>(CLI::App&)>& build) {
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must be an EPIPE error, not a silent death
  CLI::App app{std::string(tool)};
  setup_app(app, tool);
  Status result;
  try {
    auto action = build(app);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::string help = app.help();
      if (auto* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().back()) help = sub->help();
      std::fputs(help.c_str(), stdout);
      return std::fflush(stdout) == 0 ? 0 : code(Exit::io);
    } catch (const CLI::CallForAllHelp&) {
      std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
      return std::fflush(stdout) == 0 ? 0 : code(Exit::io);
    } catch (const CLI::CallForVersion&) {
      std::puts(version_string(tool).c_str());
      return std::fflush(stdout) == 0 ? 0 : code(Exit::io);
    } catch (const CLI::ParseError& e) {
      report(tool, make_error(Exit::usage, "usage", e.what(), fmt::format("see {} --help", tool)));
      return code(Exit::usage);
    }
    result = action();
  } catch (const std::bad_alloc&) {
    result = make_error(Exit::os, "out of memory");
  } catch (const std::exception& e) {
    result = make_error(Exit::internal, "internal error (a bug)", e.what());
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    if (result) result = os_error("writing to stdout", errno, Exit::io);
  }
  if (!result) {
    const Error& e = result.error();
    if (e.exit == Exit::negative) {
      // A negative answer is not an error: say what was found, without "error:".
      if (!e.what.empty()) info(tool, e.message());
    } else {
      report(tool, e);
    }
    return code(e.exit);
  }
  return 0;
}

// A CLI11 check for an integer option or argument: decimal digits with an
// optional '-', within [min, max]. CLI11 alone would read "-1" into an unsigned
// as 2^64-1 and accept 0x10 or 1e3; with this, `prove -1` or `-n -5` is a
// usage error that names the option and the range (docs/cli.md, "Numeric bounds").
inline CLI::Validator int_range(int64_t min, int64_t max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        auto v = parse_int_flag("value", s, min, max);
        return v ? std::string() : fmt::format("{} is not an integer from {} to {}", shown(s), min, max);
      },
      fmt::format("INT in [{} - {}]", min, max));
}

// Usage errors found after parsing (conflicting flags and the like).
inline Error usage_error(std::string what, std::string why = {}) { return make_error(Exit::usage, std::move(what), std::move(why)); }

}  // namespace kina
