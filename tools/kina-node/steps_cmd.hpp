// steps_cmd.hpp: the commands init, join, addons and wait: read the plan, the
// Machine records and maybe a JoinToken from stdin (or, by hand, from the
// cluster's saved plan and `kina-vm ls`), run the step (steps.hpp), forward
// the records and print Node records.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/invocation.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

#include "plan.hpp"
#include "steps.hpp"
#include "tool.hpp"
#include "transport.hpp"

namespace kina::node {

struct StepArgs {
  std::string cluster;   // by hand: read $KINA_HOME/clusters/C/plan.jsonl and kina-vm ls
  std::string node;      // join
  std::string timeout = "30m";
  bool verbose = false;
};

// A Machine record's name and address (kina-vm's record, docs/protocol.md).
inline Result<std::optional<MachineInfo>> machine_from_record(const Record& r) {
  auto name = r.required_string("name");
  if (!name) return name.error();
  auto ip = r.string_field("ip");
  if (!ip) return ip.error();
  if (!ip->has_value() || (*ip)->empty()) return std::optional<MachineInfo>{};
  return std::optional<MachineInfo>{MachineInfo{*name, **ip}};
}

inline Result<JoinToken> token_from_record(const Record& r) {
  JoinToken t;
  auto id = r.required_string("tokenID");
  auto tok = r.required_string("token");
  auto exp = r.required_string("expires");
  if (!id) return id.error();
  if (!tok) return tok.error();
  if (!exp) return exp.error();
  t.id = *id, t.token = *tok, t.expires = *exp;
  simdjson::dom::array hashes;
  if (r.root()["caCertHashes"].get(hashes) == simdjson::SUCCESS)
    for (auto h : hashes) {
      std::string_view s;
      if (h.get(s) == simdjson::SUCCESS) t.ca_cert_hashes.emplace_back(s);
    }
  if (t.ca_cert_hashes.empty())
    return make_error(Exit::data, fmt::format("record {} (JoinToken)", r.where()), "no caCertHashes: a join must pin the CA");
  return t;
}

// The step's input: from stdin records, or by hand from --cluster.
inline Result<StepInput> read_step_input(const StepArgs& a, RecordWriter& out) {
  StepInput in;
  auto take = [&](const Record& r) -> Status {
    if (r.kind == "Machine") {
      auto m = machine_from_record(r);
      if (!m) return m.error();
      if (*m) in.machines[(*m)->name] = **m;
      return out.forward(r);
    }
    if (r.kind == "JoinToken") {  // consumed: the secret goes no further down the pipe
      auto t = token_from_record(r);
      if (!t) return t.error();
      in.token = std::move(*t);
      return {};
    }
    if (r.kind == "Node") return {};  // the previous step's; this one prints its own
    return out.forward(r);
  };
  if (stdin_has_records() && a.cluster.empty()) {
    RecordReader reader(0);
    auto plan = read_plan_records(reader, take);
    if (!plan) return plan.error();
    in.plan = std::move(*plan);
  } else {
    if (a.cluster.empty())
      return make_error(Exit::usage, "no input", "pipe the plan and Machine records in, or name the cluster with --cluster");
    if (auto st = validate_name("cluster name", a.cluster); !st) return st.error();
    auto home = kina_home(false);
    if (!home) return home.error();
    fsys::path file = *home / "clusters" / a.cluster / "plan.jsonl";
    auto text = read_file(file, 16u << 20);
    if (!text) return text.error();
    auto reader = RecordReader::from_string(std::move(*text), file.string());
    auto plan = read_plan_records(reader, take);
    if (!plan) return plan.error();
    in.plan = std::move(*plan);
    ProcessSpec spec;
    spec.env = tool_env();
    spec.argv = {"kina-vm", "ls", "--cluster", a.cluster};
    auto ls = run_checked_tool(std::move(spec), "kina-vm ls", [](int) { return Exit::unavailable; });
    if (!ls) return ls.error();
    auto lr = RecordReader::from_string(std::move(ls->out), "kina-vm ls");
    for (;;) {
      auto r = lr.next();
      if (!r) return r.error();
      if (!r->has_value()) break;
      if ((*r)->kind == "Machine")
        if (auto st = take(**r); !st) return st.error();
    }
  }
  if (auto st = write_plan(out, in.plan); !st) return st.error();
  return in;
}

enum class Step { init, join, addons, wait };

inline std::string_view step_name(Step s) {
  switch (s) {
    case Step::init: return "init";
    case Step::join: return "join";
    case Step::addons: return "addons";
    case Step::wait: return "wait";
  }
  return "?";
}

// Runs one step; the audit event's cluster and target are set on `inv`.
inline Status run_step(Step s, const StepArgs& a, Invocation& inv) {
  inv.set_cluster(a.cluster);
  auto t = parse_duration_flag("--timeout", a.timeout, 1000, 24LL * 3600 * 1000);
  if (!t) return t.error();
  StepOptions o;
  o.timeout = std::chrono::milliseconds(*t);
  o.verbose = a.verbose;
  RecordWriter out;
  auto in = read_step_input(a, out);
  if (!in) return in.error();
  inv.set_cluster(in->plan.cluster.name);
  VmTransport vm(inv.cluster());
  switch (s) {
    case Step::init: {
      if (const NodePlan* b = bootstrap_node(in->plan)) inv.set_target(b->name);
      auto rec = init(vm, *in, o);
      if (!rec) return rec.error();
      return out.write_line(*rec);
    }
    case Step::join: {
      inv.set_target(a.node);
      if (a.node.empty()) return make_error(Exit::usage, "join", "name the node with --node");
      auto rec = join(vm, *in, a.node, o);
      if (!rec) return rec.error();
      return out.write_line(*rec);
    }
    case Step::addons:
      return addons(vm, *in, o);
    case Step::wait: {
      auto recs = wait_ready(vm, *in, o);
      if (!recs) return recs.error();
      for (const auto& r : *recs)
        if (auto st = out.write_line(r); !st) return st;
      return {};
    }
  }
  return {};
}

}  // namespace kina::node
