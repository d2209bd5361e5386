// cli.hpp: the same few lines of main() for every tool: a table of its
// subcommands (name, help, options, run, audit action) given to run_tool,
// which parses with CLI11, runs the command, appends its audit event, maps the
// result to an exit code, and checks that stdout really got written.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/exit.hpp"
#include "kina/interrupt.hpp"
#include "kina/invocation.hpp"
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

// The exit codes, as the footer of every --help (docs/protocol.md).
inline std::string exit_code_footer() {
  std::string out = "Exit codes:";
  for (Exit e : {Exit::ok, Exit::negative, Exit::usage, Exit::data, Exit::no_input, Exit::unavailable, Exit::internal,
                 Exit::os, Exit::cant_create, Exit::io, Exit::temp_fail, Exit::config, Exit::policy})
    out += fmt::format("\n  {:<4}{}", code(e), describe(e));
  out += "\n  128+N a child died of signal N";
  return out;
}

inline void add_exit_code_footers(CLI::App& app, const std::string& footer = exit_code_footer()) {
  if (app.get_footer().empty()) app.footer(footer);
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) add_exit_code_footers(*sub, footer);
}

// Edit distance, for "did you mean".
inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The word of argv that should have named a subcommand and does not, with the
// app it was given to: walks argv as CLI11 does (options and their values are
// skipped, known subcommands descended into). Nothing when argv has no such word.
struct UnknownSubcommand {
  std::string word;
  const CLI::App* app = nullptr;
};
inline std::optional<UnknownSubcommand> find_unknown_subcommand(const CLI::App& root, int argc, char** argv) {
  const CLI::App* cur = &root;
  for (int i = 1; i < argc; ++i) {
    std::string_view w = argv[i];
    if (w == "--") return std::nullopt;
    if (w.size() > 1 && w[0] == '-') {
      if (w.find('=') != std::string_view::npos) continue;
      const CLI::Option* opt = cur->get_option_no_throw(std::string(w));
      if (!opt) return std::nullopt;  // CLI11's own message names the unknown option
      if (opt->get_expected_min() > 0 && opt->get_type_size_max() > 0) ++i;  // its value
      continue;
    }
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : cur->get_subcommands([](const CLI::App*) { return true; }))
      if (sub->check_name(std::string(w))) next = sub;
    if (next) {
      cur = next;
      continue;
    }
    if (cur->get_subcommands([](const CLI::App*) { return true; }).empty()) return std::nullopt;  // a positional
    if (cur->get_require_subcommand_min() == 0 && !cur->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty())
      return std::nullopt;
    return UnknownSubcommand{std::string(w), cur};
  }
  return std::nullopt;
}

// "did you mean" for a mistyped subcommand: the nearest name within two edits.
inline Error unknown_subcommand_error(std::string_view tool, const UnknownSubcommand& u) {
  std::string best;
  size_t best_d = 3;
  for (const CLI::App* sub : u.app->get_subcommands([](const CLI::App*) { return true; })) {
    size_t d = edit_distance(u.word, sub->get_name());
    if (d < best_d || (d == best_d && !best.empty() && sub->get_name() < best)) {
      best_d = d;
      best = sub->get_name();
    }
  }
  std::string where = u.app->get_parent() ? fmt::format("{} {}", tool, u.app->get_name()) : std::string(tool);
  std::string why = best.empty() ? fmt::format("{} has no subcommand {}", where, shown(u.word))
                                 : fmt::format("{} has no subcommand {}; did you mean \"{}\"?", where, shown(u.word), best);
  return make_error(Exit::usage, "usage", std::move(why), fmt::format("see {} --help", where));
}

// Runs `fn`, turning an exception that escapes it into an error (70, or 71
// out of memory), so that even a bug ends with a status the audit event holds.
inline Status guarded(const std::function<Status()>& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return make_error(Exit::os, "out of memory");
  } catch (const std::exception& e) {
    return make_error(Exit::internal, "internal error (a bug)", e.what());
  }
}

// Runs a tool: `build` adds options and subcommands to the app and returns
// the action to run after parsing. Exit codes per docs/protocol.md.
// `on_parse_error` (optional) sees a command line CLI11 refused, after the
// message is printed (a tool audits it there); the app tells which
// subcommands were parsed. (kina-vm's entry point; the others give a Tool.)
inline int run_tool(std::string_view tool, int argc, char** argv,
                    const std::function<std::function<Status()>(CLI::App&)>& build,
                    const std::function<void(const CLI::App&, const Error&)>& on_parse_error = {}) {
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must be an EPIPE error, not a silent death
  ::signal(SIGXFSZ, SIG_IGN);  // over `ulimit -f`, write(2) fails with EFBIG and the command cleans up
  CLI::App app{std::string(tool)};
  setup_app(app, tool);
  Status result;
  try {
    auto action = build(app);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      add_exit_code_footers(app);  // only when help is printed: start-up cost
      std::string help = app.help();
      if (auto* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().back()) help = sub->help();
      std::fputs(help.c_str(), stdout);
      return std::fflush(stdout) == 0 ? 0 : code(Exit::io);
    } catch (const CLI::CallForAllHelp&) {
      add_exit_code_footers(app);
      std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
      return std::fflush(stdout) == 0 ? 0 : code(Exit::io);
    } catch (const CLI::CallForVersion&) {
      std::puts(version_string(tool).c_str());
      return std::fflush(stdout) == 0 ? 0 : code(Exit::io);
    } catch (const CLI::ParseError& e) {
      Error err = make_error(Exit::usage, "usage", e.what(), fmt::format("see {} --help", tool));
      if (auto u = find_unknown_subcommand(app, argc, argv)) err = unknown_subcommand_error(tool, *u);
      report(tool, err);
      if (on_parse_error) on_parse_error(app, err);
      return code(Exit::usage);
    }
    result = guarded(action);
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
    if (e.what.empty() && e.why.empty()) {
      // A status passed on (kina-vm exec's command's): nothing to say.
    } else if (e.exit == Exit::negative) {
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

// --- the subcommand table ---------------------------------------------------------

// One subcommand of a tool, as data. `Options` is the tool's struct of
// everything its command line fills in (one per run, owned by run_tool).
template <class Options>
struct Subcommand {
  using AddOptions = void (*)(CLI::App&, Options&);
  using Run = Status (*)(Options&, Invocation&);
  using AuditIf = bool (*)(const Options&);
  // A command.
  Subcommand(std::string name_, std::string help_, AddOptions options_, Run run_, std::string audit_ = {},
             AuditIf audit_if_ = nullptr)
      : name(std::move(name_)), help(std::move(help_)), options(options_), run(run_), audit(std::move(audit_)),
        audit_if(audit_if_) {}
  // A group of commands (`kina-kube pki init`): one of them is required.
  Subcommand(std::string name_, std::string help_, std::vector<Subcommand> subcommands_)
      : name(std::move(name_)), help(std::move(help_)), subcommands(std::move(subcommands_)) {}

  std::string name;
  std::string help;
  AddOptions options = nullptr;  // adds its own options (may be null)
  Run run = nullptr;             // null for a group
  // The audit action: run_tool appends the one audit event of every run with
  // its real outcome and exit code (signals included). Empty: not recorded by
  // run_tool (a read-only command, or one that records itself).
  std::string audit;
  // When set, the command is recorded only when this says so of the options
  // (`kina-vm kernel` registers a kernel with --fetch, only reads without).
  AuditIf audit_if = nullptr;
  std::vector<Subcommand> subcommands;

  bool audited(const Options& o) const { return !audit.empty() && (!audit_if || audit_if(o)); }
};

template <class Options>
struct Tool {
  using AddOptions = typename Subcommand<Options>::AddOptions;
  using RefusedTarget = std::string (*)(const Options&);
  Tool(std::string_view name_, std::string description_, std::vector<Subcommand<Options>> subcommands_,
       AddOptions options_ = nullptr, bool audit_refused_ = false, RefusedTarget refused_target_ = nullptr,
       RefusedTarget refused_cluster_ = nullptr)
      : name(name_), description(std::move(description_)), subcommands(std::move(subcommands_)), options(options_),
        audit_refused(audit_refused_), refused_target(refused_target_), refused_cluster(refused_cluster_) {}

  std::string_view name;
  std::string description;
  std::vector<Subcommand<Options>> subcommands;
  AddOptions options = nullptr;  // the tool's own options (--log, --store)
  // A command line CLI11 refuses is recorded too, under the audit action of
  // the subcommand it names (exit 64), with the target and cluster these give
  // (each may be null) from what was parsed before the refusal.
  bool audit_refused = false;
  RefusedTarget refused_target = nullptr;
  RefusedTarget refused_cluster = nullptr;
};

namespace detail {

template <class Options>
struct Added {
  CLI::App* app;
  const Subcommand<Options>* cmd;
};

template <class Options>
void add_subcommands(CLI::App& parent, const std::vector<Subcommand<Options>>& table, Options& o,
                     std::vector<Added<Options>>& added) {
  for (const auto& c : table) {
    CLI::App* sub = parent.add_subcommand(c.name, c.help);
    // Start-up cost: a subcommand's options are added when the command line
    // names it (before CLI11 parses its words), not for every run.
    if (c.options) sub->preparse_callback([sub, add = c.options, &o](size_t) { add(*sub, o); });
    added.push_back({sub, &c});  // a parent before its children
    if (!c.subcommands.empty()) {
      sub->require_subcommand(1);
      add_subcommands(*sub, c.subcommands, o, added);
    }
  }
}

// The parsed subcommand furthest down (`init` of `pki init`), if any.
template <class Options>
const Added<Options>* parsed_leaf(const std::vector<Added<Options>>& added) {
  const Added<Options>* leaf = nullptr;
  for (const auto& a : added)
    if (a.app->parsed()) leaf = &a;
  return leaf;
}

}  // namespace detail

// Runs a tool from its table: parse, find the parsed subcommand, run it (an
// audited one under SIGINT/SIGTERM/SIGHUP handling, with its audit event
// appended whatever the outcome), map errors to exit codes, check stdout,
// "did you mean" for a mistyped subcommand, exit codes in every --help.
template <class Options>
int run_tool(const Tool<Options>& t, int argc, char** argv) {
  Options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<detail::Added<Options>> added;
  auto build = [&](CLI::App& app) -> std::function<Status()> {
    app.description(t.description);
    app.require_subcommand(1);
    if (t.options) t.options(app, o);
    detail::add_subcommands(app, t.subcommands, o, added);
    return [&]() -> Status {
      const auto* leaf = detail::parsed_leaf(added);
      if (!leaf || !leaf->cmd->run) return usage_error("no command", fmt::format("see {} --help", t.name));
      const CLI::App* sub = leaf->app;
      auto count = [sub](const std::string& opt) { return sub->count(opt); };
      // A status the command passes on (kina-vm exec: its command's) is an
      // error without a message: recorded with that code, nothing printed.
      auto passed_on = [](Status st, const Invocation& inv) {
        if (st && inv.exit_status() != 0) return Status(Error{static_cast<Exit>(inv.exit_status()), {}, {}, {}});
        return st;
      };
      if (!leaf->cmd->audited(o)) {
        Invocation inv(count, nullptr);
        return passed_on(leaf->cmd->run(o, inv), inv);
      }
      Interrupts intr;  // before the command starts any thread
      Invocation inv(count, &intr);
      return audit::audited(t.name, args, leaf->cmd->audit, inv.cluster(), inv.target(),
                            [&] { return passed_on(guarded([&] { return leaf->cmd->run(o, inv); }), inv); }, &intr);
    };
  };
  auto refused = [&](const CLI::App&, const Error& e) {
    if (!t.audit_refused) return;
    const auto* leaf = detail::parsed_leaf(added);
    if (!leaf || !leaf->cmd->audited(o)) return;
    const std::string target = t.refused_target ? t.refused_target(o) : std::string();
    const std::string cluster = t.refused_cluster ? t.refused_cluster(o) : std::string();
    (void)audit::audited(t.name, args, leaf->cmd->audit, cluster, target, [&] { return Status(e); });
  };
  return run_tool(t.name, argc, argv, build, refused);
}

}  // namespace kina
