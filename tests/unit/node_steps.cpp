// Unit tests of tools/kina-node/steps.hpp's retry logic with a scripted
// transport: which failures of kubeadm join are resumed at their phase and
// which start over after `kubeadm reset`, and how many times.
#define BOOST_TEST_MODULE node_steps
#include <boost/test/unit_test.hpp>

#include <deque>
#include <string>
#include <vector>

#include "steps.hpp"

using namespace kina;
using namespace kina::node;

namespace {

// Answers each exec with the next scripted result (success once the script
// is used up) and records every command line.
class ScriptedTransport : public Transport {
 public:
  std::deque<ProcessResult> script;
  std::vector<std::string> calls;

  Result<ProcessResult> exec(const std::string& node, const std::vector<std::string>& argv, std::optional<std::string>,
                             std::chrono::milliseconds) override {
    std::string line = node + ":";
    for (const auto& a : argv) line += " " + a;
    calls.push_back(line);
    if (argv.size() > 1 && argv[0] == "kubeadm" && argv[1] == "reset") return ok();
    if (script.empty()) return ok();
    ProcessResult r = script.front();
    script.pop_front();
    return r;
  }
  Status copy_in(const std::string&, const std::string&, const std::string&) override { return {}; }

  static ProcessResult ok() {
    ProcessResult r;
    r.exited = true;
    return r;
  }
  static ProcessResult failed(const std::string& err) {
    ProcessResult r;
    r.exited = true;
    r.exit_status = 1;
    r.err = err;
    return r;
  }
};

const char* kEtcdJoinFailure =
    "{\"level\":\"warn\",\"method\":\"/etcdserverpb.Cluster/MemberList\",\"error\":\"rpc error: code = "
    "DeadlineExceeded desc = context deadline exceeded\"}\n"
    "error: error execution phase etcd-join: error creating local etcd static pod manifest file: context deadline "
    "exceeded\nTo see the stack trace of this error execute with --v=5 or higher\n";

// join()'s attempts (join_attempts) with the node's side reduced to one
// command line: a fresh attempt skips preflight only, a resumed one the
// phases before the failed one.
struct Joiner {
  explicit Joiner(ScriptedTransport& tr) : t(tr) {}
  ScriptedTransport& t;
  int attempts = 0;
  Status join(const std::string& skips) {
    ++attempts;
    auto r = t.run("cp2", {"kubeadm", "join", "--skip-phases=" + skips}, "kubeadm join on cp2");
    if (!r) return r.error();
    return {};
  }
  Status run() {
    StepOptions o;
    return join_attempts(
        t, "cp2", o, true, [&](int) { return join("preflight"); },
        [&](const JoinResume& at) { return join(at.skips); });
  }
};

size_t count_resets(const std::vector<std::string>& calls) {
  size_t n = 0;
  for (const auto& c : calls) n += c.find("kubeadm reset") != std::string::npos;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(resume_points_from_kubeadm_errors) {
  auto r = join_resume(kEtcdJoinFailure);
  BOOST_REQUIRE(r);
  BOOST_TEST(r->phase == "etcd-join");
  BOOST_TEST(r->skips == "preflight,control-plane-prepare,check-etcd,kubelet-start");
  // A sub-phase names its top-level phase.
  r = join_resume("error execution phase control-plane-join/mark-control-plane: timed out");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->phase == "control-plane-join");
  BOOST_TEST(r->skips == "preflight,control-plane-prepare,check-etcd,kubelet-start,etcd-join,kubelet-wait-bootstrap");
  r = join_resume("x\\x0aerror execution phase wait-control-plane: could not check the API server");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->phase == "wait-control-plane");
  // Failures before or at kubelet-start start over (nothing registered yet,
  // or kubelet-start would refuse the node that already exists).
  BOOST_TEST(!join_resume("error execution phase preflight: [ERROR Port-10250]"));
  BOOST_TEST(!join_resume("error execution phase control-plane-prepare/certs: x"));
  BOOST_TEST(!join_resume("error execution phase kubelet-start: timed out waiting for the condition"));
  BOOST_TEST(!join_resume("error execution phase check-etcd: x"));
  // Unknown phases, no phase, or a phase name that only starts like a known one.
  BOOST_TEST(!join_resume("error execution phase upload-config: x"));
  BOOST_TEST(!join_resume("couldn't validate the identity of the API Server"));
  BOOST_TEST(!join_resume("error execution phase etcd-joinx: x"));
  BOOST_TEST(!join_resume(""));
  // The last phase named is the one that failed.
  r = join_resume("error execution phase kubelet-start: a\nerror execution phase etcd-join: b");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->phase == "etcd-join");
}

BOOST_AUTO_TEST_CASE(etcd_join_failure_is_resumed_without_reset) {
  ScriptedTransport t;
  t.script = {ScriptedTransport::failed(kEtcdJoinFailure), ScriptedTransport::ok()};
  Joiner j(t);
  BOOST_TEST(static_cast<bool>(j.run()));
  BOOST_TEST(j.attempts == 2);
  BOOST_TEST(count_resets(t.calls) == 0u);
  BOOST_REQUIRE(t.calls.size() == 2u);
  BOOST_TEST(t.calls[1] ==
             "cp2: kubeadm join --skip-phases=preflight,control-plane-prepare,check-etcd,kubelet-start");
}

BOOST_AUTO_TEST_CASE(early_failure_resets_then_retries) {
  ScriptedTransport t;
  t.script = {ScriptedTransport::failed("error execution phase kubelet-start: timed out"), ScriptedTransport::ok()};
  Joiner j(t);
  BOOST_TEST(static_cast<bool>(j.run()));
  BOOST_TEST(j.attempts == 2);
  BOOST_TEST(count_resets(t.calls) == 1u);
  BOOST_TEST(t.calls.back() == "cp2: kubeadm join --skip-phases=preflight");
}

BOOST_AUTO_TEST_CASE(resumes_and_resets_are_bounded) {
  ScriptedTransport t;
  for (int i = 0; i < 50; ++i) t.script.push_back(ScriptedTransport::failed(kEtcdJoinFailure));
  Joiner j(t);
  Status st = j.run();
  BOOST_REQUIRE(!st);
  BOOST_TEST(static_cast<int>(st.error().exit) == static_cast<int>(Exit::unavailable));
  BOOST_TEST(st.error().message().find("etcd-join") != std::string::npos);
  // kResumes resumed attempts, then the first attempt and one after each reset.
  BOOST_TEST(j.attempts == kResumes + kAttempts);
  BOOST_TEST(count_resets(t.calls) == static_cast<size_t>(kAttempts - 1));
  // An attempt after a reset starts from the beginning, even when the failure
  // before it named a phase that could have been resumed.
  for (size_t i = 1; i < t.calls.size(); ++i)
    if (t.calls[i - 1].find("kubeadm reset") != std::string::npos)
      BOOST_TEST(t.calls[i] == "cp2: kubeadm join --skip-phases=preflight");
}

BOOST_AUTO_TEST_CASE(other_errors_are_not_retried) {
  ScriptedTransport t;
  ProcessResult timed_out = ScriptedTransport::failed(kEtcdJoinFailure);
  timed_out.timed_out = true;  // the step's own deadline: 75, not retried
  t.script = {timed_out};
  Joiner j(t);
  Status st = j.run();
  BOOST_REQUIRE(!st);
  BOOST_TEST(j.attempts == 1);
  BOOST_TEST(count_resets(t.calls) == 0u);
}
