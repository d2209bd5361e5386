#define BOOST_TEST_MODULE image_build_spec
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include "build.hpp"

using namespace kina;
using namespace kina::image;

namespace {
Digest diff() { return *Digest::parse("sha256:" + std::string(64, 'd')); }

BuildSpec spec() {
  BuildSpec s;
  s.platform = Platform{"linux", "arm64", "v8"};
  s.labels = {{"z.last", "1"}, {"a.first", "2"}};
  s.entrypoint = std::vector<std::string>{"/sbin/init"};
  s.env = {"B=2", "A=1"};
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(config_has_a_fixed_key_order_and_parses_back) {
  BuildSpec s = spec();
  std::string c = build_config(s, diff());
  BOOST_TEST(c ==
             R"({"created":"1970-01-01T00:00:00Z","architecture":"arm64","os":"linux","variant":"v8","config":{"Env":["B=2","A=1"],)"
             R"("Entrypoint":["/sbin/init"],"Labels":{"a.first":"2","z.last":"1"}},"rootfs":{"type":"layers","diff_ids":["sha256:)" +
                 std::string(64, 'd') +
                 R"("]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"kina-image build"}]})");
  auto parsed = parse_config(c, "config");
  BOOST_TEST_REQUIRE(parsed.ok());
  BOOST_TEST(parsed->platform.str() == "linux/arm64/v8");
  BOOST_TEST(parsed->labels.size() == 2u);
  BOOST_TEST(parsed->labels[0].first == "a.first");
  BOOST_TEST(parsed->cmd.empty());
  // The same spec gives the same bytes; an empty --cmd list is a value.
  BOOST_TEST(build_config(s, diff()) == c);
  s.cmd = std::vector<std::string>{};
  BOOST_TEST(build_config(s, diff()).find(R"("Cmd":[])") != std::string::npos);
  s.source_date_epoch = 1600000000;
  BOOST_TEST(build_config(s, diff()).find(R"("created":"2020-09-13T12:26:40Z")") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(manifest_parses_back) {
  BuildSpec s = spec();
  s.annotations = {{"org.opencontainers.image.version", "v1.37.2"}};
  Digest cfg = *Digest::parse("sha256:" + std::string(64, 'c'));
  Digest layer = *Digest::parse("sha256:" + std::string(64, 'e'));
  std::string m = build_manifest(s, cfg, 123, layer, 456);
  auto d = parse_document(m, "manifest");
  BOOST_TEST_REQUIRE(d.ok());
  BOOST_TEST(!d->index);
  BOOST_TEST(d->config.size == 123);
  BOOST_TEST(d->layers.size() == 1u);
  BOOST_TEST(d->layers[0].size == 456);
  BOOST_TEST(d->layers[0].media_type == std::string(media::kOciLayerGzip));
  BOOST_TEST(m.find(R"("annotations":{"org.opencontainers.image.version":"v1.37.2"})") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(labels_must_be_strings) {
  std::string base = R"({"rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":)";
  BOOST_TEST(parse_config(base + "null}}", "c").ok());
  BOOST_TEST(!parse_config(base + R"({"a":1}}})", "c").ok());
  BOOST_TEST(!parse_config(base + R"(["a"]}})", "c").ok());
}

BOOST_AUTO_TEST_CASE(source_date_epoch) {
  ::unsetenv("SOURCE_DATE_EPOCH");
  BOOST_TEST(!source_date_epoch_from_env()->has_value());
  ::setenv("SOURCE_DATE_EPOCH", "", 1);
  BOOST_TEST(!source_date_epoch_from_env()->has_value());
  ::setenv("SOURCE_DATE_EPOCH", "0", 1);
  BOOST_TEST(**source_date_epoch_from_env() == 0);
  ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
  BOOST_TEST(**source_date_epoch_from_env() == 1700000000);
  for (const char* bad : {"-1", "1.5", "abc", " 1", "253402300800", "9999999999999"}) {
    ::setenv("SOURCE_DATE_EPOCH", bad, 1);
    auto r = source_date_epoch_from_env();
    BOOST_TEST(!r.ok(), bad);
    if (!r.ok()) BOOST_TEST(code(r.error().exit) == 64);
  }
  ::unsetenv("SOURCE_DATE_EPOCH");
  BOOST_TEST(rfc3339_utc(0) == "1970-01-01T00:00:00Z");
  BOOST_TEST(rfc3339_utc(253402300799LL) == "9999-12-31T23:59:59Z");
}

BOOST_AUTO_TEST_CASE(key_values) {
  std::map<std::string, std::string> m;
  BOOST_TEST(parse_key_value("--label", "a=b=c", &m).ok());
  BOOST_TEST(m["a"] == "b=c");
  BOOST_TEST(parse_key_value("--label", "e=", &m).ok());
  BOOST_TEST(m["e"] == "");
  BOOST_TEST(parse_key_value("--label", "a=later", &m).ok());
  BOOST_TEST(m["a"] == "later");
  BOOST_TEST(!parse_key_value("--label", "=x", &m).ok());
  BOOST_TEST(!parse_key_value("--env", "NOEQ", nullptr).ok());
}

// The layer's bytes depend only on the tar stream, not on how it was handed
// to the compressor (the walk writes headers and file data in pieces of any
// size; the compression thread takes fixed 1 MiB chunks).
BOOST_AUTO_TEST_CASE(gzip_bytes_do_not_depend_on_write_sizes) {
  char tmpl[] = "/tmp/kina-unit-build-XXXXXX";
  BOOST_TEST_REQUIRE(::mkdtemp(tmpl) != nullptr);
  auto store = Store::open(tmpl);
  BOOST_TEST_REQUIRE(store.ok());
  std::string data;
  uint32_t x = 1;
  for (size_t i = 0; i < (3u << 20) + 12345; ++i) {
    x = x * 1103515245u + 12345u;
    data.push_back(static_cast<char>((i % 7 == 0) ? (x >> 24) : 'a' + (i % 13)));
  }
  std::vector<std::string> digests;
  for (size_t piece : {size_t(1) << 20, size_t(512), size_t(4093), data.size()}) {
    auto w = BlobWriter::create(*store);
    BOOST_TEST_REQUIRE(w.ok());
    {
      image::detail::GzipSink sink(*w, 6);
      for (size_t off = 0; off < data.size(); off += piece)
        BOOST_TEST_REQUIRE(sink.write(data.data() + off, std::min(piece, data.size() - off)).ok());
      BOOST_TEST_REQUIRE(sink.finish().ok());
      BOOST_TEST(sink.diff_id().str() == Digest::of_data(data).str());
      BOOST_TEST(sink.tar_bytes() == data.size());
    }
    digests.push_back(w->digest().str());
    BOOST_TEST_REQUIRE(w->commit(*store, nullptr, "test").ok());
  }
  for (const auto& d : digests) BOOST_TEST(d == digests[0]);
  // And it is a gzip member zlib reads back, with the fixed header.
  auto blob = read_file(store->blob_path(*Digest::parse(digests[0])));
  BOOST_TEST_REQUIRE(blob.ok());
  BOOST_TEST(blob->substr(0, 10) == std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10));
  std::string out(data.size() + 16, '\0');
  z_stream z{};
  BOOST_TEST_REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(blob->data());
  z.avail_in = static_cast<uInt>(blob->size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  BOOST_TEST(inflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  BOOST_TEST((out == data));
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
}
