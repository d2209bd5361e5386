// show.hpp: kina-audit show: the events as AuditEntry records or a table, in bounded memory.
#pragma once

#include <unistd.h>

#include <deque>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/clock.hpp"
#include "kina/json.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

#include "options.hpp"

namespace kina::audit_tool {

inline Status cmd_show(Options& o, Invocation&) {
  auto path = log_path(o);
  if (!path) return path.error();
  std::optional<int64_t> since;
  if (!o.since.empty()) {
    if (auto t = parse_rfc3339_ms(o.since)) {
      since = *t;
    } else {
      auto d = parse_duration(o.since);
      if (!d) return usage_error(fmt::format("invalid --since {}", shown(o.since)),
                                 fmt::format("expected an RFC 3339 time or a duration such as 1h ({})", d.error().why));
      since = now_ms() - *d;
    }
  }
  std::string format = o.format.empty() ? (::isatty(1) ? "table" : "json") : o.format;
  if (format != "json" && format != "table") return usage_error(fmt::format("invalid --format {}", shown(format)), "use json or table");
  // Memory stays bounded: rows are printed as they are read, or (with -n N)
  // only the last N are kept; each row is at most one 1 MiB entry.
  RecordWriter out;
  simdjson::dom::parser row_parser;
  std::string text;
  auto flush_text = [&]() -> Status {
    if (text.empty()) return {};
    auto s2 = write_all(1, text, "writing to stdout");
    text.clear();
    return s2;
  };
  auto emit = [&](std::string_view row) -> Status {
    if (format == "table") {
      simdjson::dom::element doc;
      if (row_parser.parse(row.data(), row.size()).get(doc) != simdjson::SUCCESS) return {};
      auto str = [&](const char* k) {
        std::string_view v;
        return doc[k].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
      };
      uint64_t seq = 0;
      int64_t code_v = 0;
      if (doc["seq"].get(seq) != simdjson::SUCCESS) seq = 0;
      if (doc["exitCode"].get(code_v) != simdjson::SUCCESS) code_v = 0;
      std::string outcome = str("outcome");
      if (code_v) outcome += fmt::format(" ({})", code_v);
      text += detail::one_line(fmt::format("{:<6} {:<24} {:<12} {:<10} {:<8} {:<12} {:<20} {}", seq, str("time"),
                                           str("user"), str("tool"), str("action"), str("cluster"), str("target"), outcome));
      text += '\n';
      return text.size() >= (1u << 16) ? flush_text() : Status{};
    }
    // {"apiVersion":..,"kind":"AuditEntry","log":..., then the stored fields}
    std::string rec = fmt::format("{{\"apiVersion\":\"{}\",\"kind\":\"AuditEntry\",\"log\":{},{}", kApiVersion,
                                  json::quote(path->string()), row.substr(1));
    return out.write_line(rec);
  };
  if (format == "table")
    text = fmt::format("{:<6} {:<24} {:<12} {:<10} {:<8} {:<12} {:<20} {}\n", "SEQ", "TIME", "USER", "TOOL", "ACTION",
                       "CLUSTER", "TARGET", "OUTCOME");
  simdjson::dom::parser parser;
  std::deque<std::string> last;  // with -n N: the last N matching rows
  uint64_t index = 0;
  Status failed;
  auto st = audit::for_each_line(*path, [&](std::string_view line, uint64_t) {
    ++index;
    simdjson::dom::element doc;
    if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS) {
      failed = make_error(Exit::data, fmt::format("reading {} line {}", path->string(), index), "not valid JSON",
                          "run kina-audit verify");
      return false;
    }
    auto str = [&](const char* k) {
      std::string_view v;
      return doc[k].get(v) == simdjson::SUCCESS ? v : std::string_view();
    };
    if (!o.cluster_filter.empty() && str("cluster") != o.cluster_filter) return true;
    if (!o.tool_filter.empty() && str("tool") != o.tool_filter) return true;
    if (since) {
      auto t = parse_rfc3339_ms(str("time"));
      if (!t || *t < *since) return true;
    }
    if (o.last_n < 0) {
      failed = emit(line);
      return failed.ok();
    }
    if (o.last_n == 0) return true;
    last.emplace_back(line);
    if (last.size() > static_cast<size_t>(o.last_n)) last.pop_front();
    return true;
  });
  if (!st) return st;
  if (!failed) return failed;
  for (const auto& row : last)
    if (auto s2 = emit(row); !s2) return s2;
  return flush_text();
}

inline void show_options(CLI::App& c, Options& o) {
  c.add_option("--cluster", o.cluster_filter, "Only this cluster");
  c.add_option("--tool", o.tool_filter, "Only this tool");
  c.add_option("--since", o.since, "Only events at or after TIME (RFC 3339) or within DURATION (e.g. 1h; at most 10000y)");
  c.add_option("-n", o.last_n, "Only the last N matching events (1 or more)")->check(int_range(1, INT64_MAX));
  c.add_option("--format", o.format, "json or table (default: table on a terminal, else json)")
      ->check(CLI::IsMember({"json", "table"}));
}

}  // namespace kina::audit_tool
