// append.hpp: kina-audit append: one event from flags, or AuditEvent records from stdin, added to the log in one batch.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/clock.hpp"
#include "kina/encoding.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

#include "options.hpp"

namespace kina::audit_tool {

inline Result<audit::Event> event_from_record(const Record& r) {
  audit::Event e;
  auto get = [&](std::string_view k, std::string& dst, bool required) -> Status {
    if (required) {
      auto v = r.required_string(k);
      if (!v) return v.error();
      dst = *v;
      return {};
    }
    auto v = r.string_field(k);
    if (!v) return v.error();
    if (*v) dst = **v;
    return {};
  };
  if (auto st = get("tool", e.tool, true); !st) return st.error();
  if (auto st = get("action", e.action, true); !st) return st.error();
  if (auto st = get("cluster", e.cluster, false); !st) return st.error();
  if (auto st = get("target", e.target, false); !st) return st.error();
  if (auto st = get("outcome", e.outcome, false); !st) return st.error();
  if (e.outcome.empty()) e.outcome = "ok";
  auto code_v = r.int_field("exitCode");
  if (!code_v) return code_v.error();
  auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("record {} (AuditEvent)", r.where()), why); };
  // Checked before narrowing: an exitCode of 2^32 must not be stored as 0.
  if (*code_v && (**code_v < 0 || **code_v > 255))
    return bad(fmt::format("exitCode {} is not an exit status (0-255)", **code_v));
  if (*code_v) e.exit_code = static_cast<int>(**code_v);
  auto dur = r.int_field("durationMs");
  if (!dur) return dur.error();
  if (*dur && (**dur < 0 || **dur > audit::kMaxEventDurationMs))
    return bad(fmt::format("durationMs {} is out of range (0 to {}, 10 years)", **dur, audit::kMaxEventDurationMs));
  e.duration_ms = *dur;
  if (auto args = r.root()["args"]; args.error() != simdjson::NO_SUCH_FIELD) {
    simdjson::dom::array arr;
    if (args.get(arr) != simdjson::SUCCESS) return bad("field \"args\" is not an array of strings");
    for (auto a : arr) {
      std::string_view s;
      if (a.get(s) != simdjson::SUCCESS) return bad("field \"args\" is not an array of strings");
      e.args.emplace_back(s);
    }
  }
  if (auto det = r.root()["details"]; det.error() != simdjson::NO_SUCH_FIELD) {
    simdjson::dom::object obj;
    if (det.get(obj) != simdjson::SUCCESS) return bad("field \"details\" is not an object of strings");
    for (auto [k, v] : obj) {
      std::string_view s;
      if (v.get(s) != simdjson::SUCCESS) return bad("field \"details\" is not an object of strings");
      e.details.emplace_back(std::string(k), std::string(s));
    }
  }
  if (auto st = audit::validate_event(e); !st) {
    Error err = st.error();
    err.exit = Exit::data;
    err.what = fmt::format("record {} (AuditEvent): {}", r.where(), err.what);
    return err;
  }
  return e;
}

inline Status cmd_append(Options& o, Invocation& inv) {
  bool from_flags = inv.given("--tool") || inv.given("--action");
  auto path = log_path(o);
  if (!path) return path.error();
  RecordWriter out;
  std::vector<audit::Event> events;
  if (from_flags) {
    if (o.event.tool.empty() || o.event.action.empty())
      return usage_error("append", "--tool and --action go together (or give AuditEvent records on stdin)");
    for (const auto& d : o.details) {
      size_t eq = d.find('=');
      if (eq == std::string::npos || eq == 0) return usage_error(fmt::format("invalid --detail {}", shown(d)), "expected KEY=VALUE");
      o.event.details.emplace_back(d.substr(0, eq), d.substr(eq + 1));
    }
    if (!o.duration.empty()) {
      auto ms = parse_duration_flag("--duration", o.duration, 0, audit::kMaxEventDurationMs);
      if (!ms) return ms.error();
      o.event.duration_ms = *ms;
    }
    o.event.exit_code = o.exit_code;
    events.push_back(o.event);
  } else {
    if (!stdin_has_records())
      return usage_error("append", "give --tool and --action, or pipe AuditEvent records to stdin");
    RecordReader in(0);
    auto st = filter_records(in, out, [&](const Record& rec) -> Result<bool> {
      if (rec.kind != "AuditEvent") return false;
      auto e = event_from_record(rec);
      if (!e) return e.error();
      events.push_back(std::move(*e));
      return true;
    });
    if (!st) return st;
    if (events.empty()) return {};
  }
  auto done = audit::Log(*path).append(std::move(events));
  if (!done) return done.error();
  for (const auto& a : *done) {
    auto w = begin_record("AuditEntry");
    w.field("log", path->string()).field("seq", static_cast<unsigned long long>(a.seq)).field("hash", to_hex(a.hash));
    w.field("time", format_utc_ms(a.time_ms)).field("tool", a.tool).field("action", a.action);
    if (auto st = print(out, w); !st) return st;
  }
  return {};
}

inline void append_options(CLI::App& c, Options& o) {
  c.add_option("--tool", o.event.tool, "Tool that acted (e.g. kina)");
  c.add_option("--action", o.event.action, "What it did (e.g. create-cluster)");
  c.add_option("--cluster", o.event.cluster, "Cluster name");
  c.add_option("--target", o.event.target, "Object acted on");
  c.add_option("--outcome", o.event.outcome, "ok or error")->check(CLI::IsMember({"ok", "error"}));
  c.add_option("--exit-code", o.exit_code, "Exit code of the command (0-255)")->check(int_range(0, 255));
  c.add_option("--duration", o.duration, "How long it took (e.g. 1500ms, 2s; at most 10y)");
  c.add_option("--detail", o.details, "KEY=VALUE (repeatable; secret-looking keys are redacted)")->allow_extra_args(false);
  c.add_option("args", o.event.args, "The command's arguments, after --; secret flags are redacted");
}

}  // namespace kina::audit_tool
