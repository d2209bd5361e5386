// Unit tests of the agent protocol (tools/kina-vm/guest/wire.hpp).
#define BOOST_TEST_MODULE vm_wire
#include <boost/test/unit_test.hpp>

#include "guest/wire.hpp"

using namespace kina::wire;

BOOST_AUTO_TEST_CASE(frames_round_trip_split_at_every_byte) {
  std::string stream = encode(Type::stdout_data, 7, "hello") + encode(Type::exit, 7, Encoder().i32(-3).take()) +
                       encode(Type::stdin_close, 0xfffffffe, "");
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameBuffer fb;
    std::vector<Frame> got;
    fb.append(stream.data(), cut);
    while (auto f = fb.next()) got.push_back(*f);
    fb.append(stream.data() + cut, stream.size() - cut);
    while (auto f = fb.next()) got.push_back(*f);
    BOOST_REQUIRE_EQUAL(got.size(), 3u);
    BOOST_TEST((got[0].type == Type::stdout_data));
    BOOST_TEST(got[0].session == 7u);
    BOOST_TEST(got[0].payload == "hello");
    BOOST_TEST(Decoder(got[1].payload).i32() == -3);
    BOOST_TEST(got[2].session == 0xfffffffeu);
    BOOST_TEST(got[2].payload.empty());
    BOOST_TEST(!fb.bad());
  }
}

BOOST_AUTO_TEST_CASE(oversized_or_short_length_is_bad) {
  FrameBuffer fb;
  std::string len = {'\xff', '\xff', '\xff', '\x7f'};
  fb.append(len.data(), len.size());
  BOOST_TEST(!fb.next().has_value());
  BOOST_TEST(fb.bad());
  FrameBuffer fb2;
  std::string tiny = {'\x02', '\x00', '\x00', '\x00', '\x01', '\x00'};
  fb2.append(tiny.data(), tiny.size());
  BOOST_TEST(!fb2.next().has_value());
  BOOST_TEST(fb2.bad());
}

BOOST_AUTO_TEST_CASE(exec_request_round_trip) {
  ExecRequest r;
  r.tty = true;
  r.rows = 50;
  r.cols = 132;
  r.cwd = "/tmp";
  r.user = "1000:5";
  r.argv = {"sh", "-c", std::string("a\0b", 3)};
  r.env = {"A=1", "B="};
  auto d = ExecRequest::decode(r.encode());
  BOOST_REQUIRE(d.has_value());
  BOOST_TEST(d->tty);
  BOOST_TEST(d->rows == 50);
  BOOST_TEST(d->cols == 132);
  BOOST_TEST(d->cwd == "/tmp");
  BOOST_TEST(d->user == "1000:5");
  BOOST_TEST(d->argv == r.argv);
  BOOST_TEST(d->env == r.env);
}

BOOST_AUTO_TEST_CASE(truncated_payloads_are_rejected) {
  ExecRequest r;
  r.argv = {"true"};
  std::string p = r.encode();
  for (size_t n = 0; n < p.size(); ++n) BOOST_TEST(!ExecRequest::decode(p.substr(0, n)).has_value());
  ExecRequest empty;
  BOOST_TEST(!ExecRequest::decode(empty.encode()).has_value());  // no argv
  Entry e;
  e.kind = Entry::symlink;
  e.path = "a/b";
  e.link = "../c";
  std::string q = e.encode();
  for (size_t n = 0; n < q.size(); ++n) BOOST_TEST(!Entry::decode(q.substr(0, n)).has_value());
  auto back = Entry::decode(q);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->link == "../c");
  std::string badkind = q;
  badkind[0] = 9;
  BOOST_TEST(!Entry::decode(badkind).has_value());
}

BOOST_AUTO_TEST_CASE(transfer_paths_stay_inside_the_root) {
  BOOST_TEST(safe_relative(""));
  BOOST_TEST(safe_relative("a"));
  BOOST_TEST(safe_relative("a/b/c.txt"));
  BOOST_TEST(safe_relative("..a/b.."));
  BOOST_TEST(!safe_relative("/etc/passwd"));
  BOOST_TEST(!safe_relative(".."));
  BOOST_TEST(!safe_relative("a/../../b"));
  BOOST_TEST(!safe_relative("a//b"));
  BOOST_TEST(!safe_relative("a/./b"));
  BOOST_TEST(!safe_relative("a/"));
}

BOOST_AUTO_TEST_CASE(credit_frames_and_window_invariants) {
  // A credit carries a u32 byte count for one session; 0xffffffff means "stop counting".
  FrameBuffer fb;
  std::string s = encode(Type::credit, 42, Encoder().u32(kCreditBatch).take()) +
                  encode(Type::credit, 43, Encoder().u32(0xffffffffu).take());
  fb.append(s.data(), s.size());
  auto a = fb.next(), b = fb.next();
  BOOST_REQUIRE(a && b);
  BOOST_TEST((a->type == Type::credit));
  BOOST_TEST(a->session == 42u);
  BOOST_TEST(a->payload.size() == 4u);
  BOOST_TEST(Decoder(a->payload).u32() == kCreditBatch);
  BOOST_TEST(Decoder(b->payload).u32() == 0xffffffffu);
  Decoder shortd(std::string("\x01\x02", 2));
  (void)shortd.u32();
  BOOST_TEST(shortd.failed());  // a truncated credit is ignored, not misread
  // A whole data frame fits in one window and credits are granted before the
  // window is used up, or a session would stall for good.
  BOOST_TEST(kHeader + kChunk <= kWindow);
  BOOST_TEST(kCreditBatch < kWindow);
  BOOST_TEST(kWindow <= kAgentQueueCap);
}
