// fuzz_kind_config: the kind/kina cluster config reader (tools/kina-node/kind_config.hpp
// on yaml.hpp) and the policy file reader must never crash on any input; a
// config they accept must give a plan whose records read back as the same
// plan, and the policy checks must run on it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tools/kina-node/kind_config.hpp"
#include "tools/kina-node/plan.hpp"
#include "tools/kina-node/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kina;
  using namespace kina::node;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  Problems pp("policy");
  Policy pol = parse_policy(text, "/fuzz", "/home/fuzz", pp);

  ConfigOptions o;
  o.source = "/fuzz/kind.yaml";
  o.base_dir = "/fuzz";
  o.home = "/home/fuzz";
  Problems problems("config");
  ParsedConfig cfg = parse_kind_config(text, o, problems);
  for (const auto& e : problems.list())
    if (e.exit != Exit::data) std::abort();  // config problems are bad data, never anything else
  if (!problems.empty()) return 0;

  std::string records = cluster_plan_json(cfg.plan.cluster) + "\n";
  for (const auto& n : cfg.plan.nodes) records += node_plan_json(n) + "\n";
  auto in = RecordReader::from_string(records, "fuzz");
  auto back = read_plan_records(in);
  if (!back) std::abort();  // what plan writes must read back
  if (!(*back == cfg.plan)) {
    // Invalid UTF-8 in strings is written as U+FFFD, so only valid text must survive unchanged.
    if (json::valid_utf8(text)) std::abort();
  }

  HostFacts h;
  h.cpus = 2;
  h.memory_mib = 4096;
  h.home = "/home/fuzz";
  h.kina_home = "/home/fuzz/.kina";
  Problems refusals("policy", Exit::policy);
  if (cfg.policy) pol = tighten(pol, *cfg.policy, h, refusals);
  (void)check_policy(cfg.plan, pol, h, cfg.given_host_paths, std::move(refusals));
  return 0;
}
