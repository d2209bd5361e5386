#define BOOST_TEST_MODULE audit
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include "kina/audit.hpp"

using namespace kina;

namespace {
struct TempLog {
  fsys::path dir, log;
  TempLog() {
    std::string t = (fsys::temp_directory_path() / "kina-audit-XXXXXX").string();
    dir = ::mkdtemp(t.data());
    log = dir / "log.jsonl";
  }
  ~TempLog() { fsys::remove_all(dir); }
};
audit::Event ev(std::string action) {
  audit::Event e;
  e.tool = "test";
  e.action = std::move(action);
  return e;
}
std::vector<std::string> lines(const fsys::path& p) {
  std::vector<std::string> out;
  std::string data = *read_file(p);
  size_t start = 0, nl;
  while ((nl = data.find('\n', start)) != std::string::npos) {
    out.push_back(data.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}
void write_lines(const fsys::path& p, const std::vector<std::string>& ls) {
  std::string s;
  for (const auto& l : ls) s += l + "\n";
  BOOST_REQUIRE(write_file_atomic(p, s, 0600).ok());
}
audit::Report verify(const fsys::path& p) { return *audit::verify(p, {}, std::nullopt); }
}  // namespace

BOOST_AUTO_TEST_CASE(redaction_of_secret_flags) {
  std::vector<std::string> in = {"kina", "--token", "abc", "--name", "x", "--password=hunter2", "--client-key", "k.pem",
                                 "API_KEY=zzz", "plain=1", "--secret", "--other"};
  auto out = audit::redact_args(in);
  std::vector<std::string> want = {"kina", "--token", "[redacted]", "--name", "x", "--password=[redacted]",
                                   "--client-key", "[redacted]", "API_KEY=[redacted]", "plain=1", "--secret", "--other"};
  BOOST_TEST(out == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(append_chains_entries_and_verifies) {
  TempLog t;
  audit::Log log(t.log);
  auto a = log.append({ev("one"), ev("two")});
  BOOST_REQUIRE(a.ok());
  BOOST_TEST((*a)[0].seq == 0u);
  BOOST_TEST((*a)[1].seq == 1u);
  auto b = log.append({ev("three")});
  BOOST_REQUIRE(b.ok());
  BOOST_TEST((*b)[0].seq == 2u);
  auto rep = verify(t.log);
  BOOST_TEST(rep.intact());
  BOOST_TEST(rep.entries == 3u);
  // The root equals the Merkle root over the leaves of the stored bodies.
  auto leaves = audit::leaf_hashes(t.log);
  BOOST_TEST((merkle::subtree_root(*leaves) == rep.root));
  // Secret details are redacted on disk.
  auto e = ev("four");
  e.details = {{"token", "tok-hunter2"}, {"node", "n1"}};
  BOOST_REQUIRE(log.append({e}).ok());
  auto ls = lines(t.log);
  BOOST_TEST(ls[3].find("hunter2") == std::string::npos);
  BOOST_TEST(ls[3].find("\"token\":\"[redacted]\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_tampering_is_detected) {
  TempLog t;
  audit::Log log(t.log);
  std::vector<audit::Event> es;
  for (int i = 0; i < 6; ++i) es.push_back(ev("a" + std::to_string(i)));
  BOOST_REQUIRE(log.append(es).ok());
  const auto orig = lines(t.log);

  // A modified byte anywhere in any entry, the last one included.
  for (size_t k = 0; k < orig.size(); ++k) {
    for (size_t pos : {size_t{1}, orig[k].size() / 2, orig[k].size() - 5}) {
      auto ls = orig;
      ls[k][pos] = ls[k][pos] == 'x' ? 'y' : 'x';
      write_lines(t.log, ls);
      auto rep = verify(t.log);
      BOOST_REQUIRE_MESSAGE(!rep.intact(), "entry " << k << " byte " << pos);
      BOOST_TEST(rep.problems[0].seq.value_or(999) == k, "entry " << k << " byte " << pos);
    }
  }
  auto expect = [&](std::vector<std::string> ls, uint64_t seq, const std::string& kind) {
    write_lines(t.log, ls);
    auto rep = verify(t.log);
    BOOST_REQUIRE(!rep.intact());
    BOOST_TEST(rep.problems[0].kind == kind);
    BOOST_TEST(rep.problems[0].seq.value_or(999) == seq);
  };
  {  // deleted
    auto ls = orig;
    ls.erase(ls.begin() + 2);
    expect(ls, 2, "sequence");
  }
  {  // duplicated
    auto ls = orig;
    ls.insert(ls.begin() + 3, orig[2]);
    expect(ls, 3, "sequence");
  }
  {  // reordered
    auto ls = orig;
    std::swap(ls[1], ls[4]);
    expect(ls, 1, "sequence");
  }
  {  // inserted: a well-formed entry forged with a correct own hash but no chain
    auto forged = audit::entry_body(ev("forged"), 3, audit::kZeroHash, 0);
    auto ls = orig;
    ls.insert(ls.begin() + 3, audit::entry_line(forged, merkle::leaf_hash(forged)));
    expect(ls, 3, "chain");
  }
  {  // entry rewritten with a recomputed own hash: the next entry's prev breaks
    auto ls = orig;
    std::string body = ls[2].substr(0, ls[2].size() - audit::kHashSuffixLen) + "}";
    body.replace(body.find("\"a2\""), 4, "\"zz\"");
    ls[2] = audit::entry_line(body, merkle::leaf_hash(body));
    expect(ls, 3, "chain");
  }
  write_lines(t.log, orig);
  BOOST_TEST(verify(t.log).intact());
}

BOOST_AUTO_TEST_CASE(torn_tail_is_reported_then_repaired_and_logged) {
  TempLog t;
  audit::Log log(t.log);
  BOOST_REQUIRE(log.append({ev("a"), ev("b")}).ok());
  std::string data = *read_file(t.log);
  data += "{\"seq\":2,\"time\":\"2026";  // an interrupted append
  BOOST_REQUIRE(write_file_atomic(t.log, data, 0600).ok());
  auto rep = verify(t.log);
  BOOST_REQUIRE(!rep.intact());
  BOOST_TEST(rep.problems[0].kind == "torn-tail");
  auto r = log.append({ev("c")});
  BOOST_REQUIRE(r.ok());
  BOOST_REQUIRE(r->size() == 2u);  // the repair record, then ours
  BOOST_TEST((*r)[0].seq == 2u);
  BOOST_TEST((*r)[0].action == "repair");
  BOOST_TEST((*r)[1].seq == 3u);
  auto ls = lines(t.log);
  BOOST_REQUIRE(ls.size() == 4u);
  BOOST_TEST(ls[2].find("\"action\":\"repair\"") != std::string::npos);
  BOOST_TEST(ls[2].find("\"truncatedBytes\":\"21\"") != std::string::npos);
  BOOST_TEST(verify(t.log).intact());
}

BOOST_AUTO_TEST_CASE(refuses_to_chain_onto_a_corrupt_tail) {
  TempLog t;
  audit::Log log(t.log);
  BOOST_REQUIRE(log.append({ev("a")}).ok());
  auto ls = lines(t.log);
  ls[0][10] ^= 1;
  write_lines(t.log, ls);
  auto r = log.append({ev("b")});
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 65);
}

BOOST_AUTO_TEST_CASE(invalid_events_are_rejected_before_anything_is_written) {
  TempLog t;
  audit::Log log(t.log);
  auto bad = ev("Bad Action");
  auto r = log.append({ev("ok"), bad});
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 64);
  BOOST_TEST(!fsys::exists(t.log));
}

BOOST_AUTO_TEST_CASE(checkpoints_detect_truncation_and_rollback) {
  TempLog t;
  audit::Log log(t.log);
  BOOST_REQUIRE(log.append({ev("a"), ev("b"), ev("c")}).ok());
  auto signer = note::generate("test-log");
  auto v = signer.verifier();
  auto rep = verify(t.log);
  note::Checkpoint cp{"test-log", rep.entries, rep.root, {}};
  std::vector<audit::CheckpointInput> cps = {{"cp", note::sign(cp.text(), signer)}};
  BOOST_TEST(audit::verify(t.log, cps, v)->intact());
  const auto orig = lines(t.log);
  // Truncation: the last entry removed.
  write_lines(t.log, {orig[0], orig[1]});
  auto r1 = audit::verify(t.log, cps, v);
  BOOST_REQUIRE(!r1->intact());
  BOOST_TEST(r1->problems[0].kind == "truncated");
  // Rollback and regrow: the chain is valid but the history differs.
  write_lines(t.log, {orig[0], orig[1]});
  BOOST_REQUIRE(log.append({ev("x"), ev("y")}).ok());
  auto r2 = audit::verify(t.log, cps, v);
  BOOST_REQUIRE(!r2->intact());
  BOOST_TEST(r2->problems[0].kind == "checkpoint-mismatch");
  // A forged signature.
  std::string forged = cps[0].data;
  forged[forged.size() - 10] = forged[forged.size() - 10] == 'A' ? 'B' : 'A';
  write_lines(t.log, orig);
  auto r3 = audit::verify(t.log, {{"forged", forged}}, v);
  BOOST_REQUIRE(!r3->intact());
  BOOST_TEST(r3->problems[0].kind == "checkpoint-signature");
}
