#define BOOST_TEST_MODULE record
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kina/record.hpp"

using namespace kina;

BOOST_AUTO_TEST_CASE(reads_records_and_skips_blank_lines) {
  auto r = RecordReader::from_string(
      "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"Image\",\"reference\":\"alpine\"}\n\n"
      "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"Rootfs\",\"unknown\":{\"x\":1}}");
  auto a = r.next();
  BOOST_REQUIRE(a.ok() && a->has_value());
  BOOST_TEST((*a)->kind == "Image");
  BOOST_TEST((*a)->line == 1u);
  auto ref = (*a)->string_field("reference");
  BOOST_REQUIRE(ref.ok());
  BOOST_TEST(**ref == "alpine");
  auto b = r.next();
  BOOST_REQUIRE(b.ok() && b->has_value());
  BOOST_TEST((*b)->kind == "Rootfs");
  BOOST_TEST((*b)->line == 3u);
  // The raw line is kept byte for byte for forwarding.
  BOOST_TEST((*b)->raw == "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"Rootfs\",\"unknown\":{\"x\":1}}");
  auto c = r.next();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(!c->has_value());
}

BOOST_AUTO_TEST_CASE(unknown_api_version_is_exit_65_naming_it) {
  auto r = RecordReader::from_string("{\"apiVersion\":\"kina/v9\",\"kind\":\"Image\"}\n", "<stdin>");
  auto a = r.next();
  BOOST_REQUIRE(!a.ok());
  BOOST_TEST(code(a.error().exit) == 65);
  BOOST_TEST(a.error().message().find("kina/v9") != std::string::npos);
  BOOST_TEST(a.error().what.find("<stdin>:1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(errors_name_line_and_problem) {
  auto r = RecordReader::from_string(
      "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"A\"}\n{\"apiVersion\":\"kina/v1alpha1\",\"kind\":}\n", "in.jsonl");
  BOOST_REQUIRE(r.next().ok());
  auto b = r.next();
  BOOST_REQUIRE(!b.ok());
  BOOST_TEST(b.error().what == "reading record at in.jsonl:2");
  BOOST_TEST(b.error().why.find("invalid JSON") == 0u);

  for (const char* bad : {"[1,2]", "{\"kind\":\"A\"}", "{\"apiVersion\":\"kina/v1alpha1\"}",
                          "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"\"}", "{\"apiVersion\":1,\"kind\":\"A\"}",
                          "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"A\",\"s\":\"\xff\"}"}) {
    auto rr = RecordReader::from_string(std::string(bad) + "\n");
    auto x = rr.next();
    BOOST_TEST(!x.ok(), bad);
    if (!x.ok()) BOOST_TEST(code(x.error().exit) == 65);
  }
}

BOOST_AUTO_TEST_CASE(rejects_a_line_over_the_limit) {
  std::string big = "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"A\",\"pad\":\"" + std::string(2000, 'x') + "\"}\n";
  auto r = RecordReader::from_string(big, "<stdin>", 1000);
  auto a = r.next();
  BOOST_REQUIRE(!a.ok());
  BOOST_TEST(a.error().why.find("longer than 1000 bytes") != std::string::npos);
  // Without a newline at all, the limit still applies (no unbounded buffering).
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  std::string chunk(5000, 'y');
  BOOST_REQUIRE(::write(p[1], chunk.data(), chunk.size()) == 5000);
  ::close(p[1]);
  RecordReader fr(p[0], "<pipe>", 1000);
  auto b = fr.next();
  ::close(p[0]);
  BOOST_REQUIRE(!b.ok());
  BOOST_TEST(code(b.error().exit) == 65);
}

BOOST_AUTO_TEST_CASE(streams_many_records_from_a_pipe) {
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  const int n = 20000;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    std::string line = "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"N\",\"i\":0}\n";
    for (int i = 0; i < n; ++i)
      if (::write(p[1], line.data(), line.size()) < 0) _exit(1);
    _exit(0);
  }
  ::close(p[1]);
  RecordReader r(p[0]);
  int count = 0;
  for (;;) {
    auto x = r.next();
    BOOST_REQUIRE(x.ok());
    if (!x->has_value()) break;
    ++count;
  }
  ::close(p[0]);
  int st;
  ::waitpid(pid, &st, 0);
  BOOST_TEST(count == n);
}

BOOST_AUTO_TEST_CASE(writer_reports_a_closed_pipe_as_io_error) {
  ::signal(SIGPIPE, SIG_IGN);
  int p[2];
  BOOST_REQUIRE(::pipe(p) == 0);
  ::close(p[0]);
  RecordWriter w(p[1], "pipe");
  auto st = w.write_line("{}");
  ::close(p[1]);
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(code(st.error().exit) == 74);
}

BOOST_AUTO_TEST_CASE(writer_reports_a_full_disk) {
  int fd = ::open("/dev/full", O_WRONLY);
  if (fd < 0) return;  // no /dev/full on this system
  RecordWriter w(fd, "/dev/full");
  auto st = w.write_line("{\"a\":1}");
  ::close(fd);
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(code(st.error().exit) == 74);
}

BOOST_AUTO_TEST_CASE(begin_record_sets_api_version_and_kind) {
  auto w = begin_record("Machine");
  w.field("name", "n1").end_object();
  BOOST_TEST(w.str() == R"({"apiVersion":"kina/v1alpha1","kind":"Machine","name":"n1"})");
}
