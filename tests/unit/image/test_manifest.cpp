#define BOOST_TEST_MODULE image_manifest
#include <boost/test/unit_test.hpp>

#include "manifest.hpp"

using namespace kina;
using namespace kina::image;

namespace {
const std::string A = "sha256:" + std::string(64, 'a');
const std::string B = "sha256:" + std::string(64, 'b');
const std::string C = "sha256:" + std::string(64, 'c');

std::string desc(std::string_view mt, const std::string& d, int size, std::string platform = "") {
  return fmt::format(R"({{"mediaType":"{}","digest":"{}","size":{}{}}})", mt, d, size, platform);
}
std::string plat(std::string os, std::string arch, std::string variant = "") {
  return fmt::format(R"(,"platform":{{"os":"{}","architecture":"{}"{}}})", os, arch,
                     variant.empty() ? "" : R"(,"variant":")" + variant + "\"");
}
std::string oci_manifest(std::string extra = "") {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
         desc(media::kOciConfig, A, 10) + R"(,"layers":[)" + desc(media::kOciLayerGzip, B, 20) + "," +
         desc(media::kOciLayerZstd, C, 30) + "]" + extra + "}";
}
}  // namespace

BOOST_AUTO_TEST_CASE(oci_and_docker_manifests) {
  auto d = parse_document(oci_manifest(), "m");
  BOOST_TEST_REQUIRE(d.ok());
  BOOST_TEST(!d->index);
  BOOST_TEST(d->config.digest.str() == A);
  BOOST_TEST(d->layers.size() == 2u);
  BOOST_TEST(d->layers[1].media_type == std::string(media::kOciLayerZstd));
  std::string docker = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":)" +
                       desc(media::kDockerConfig, A, 1) + R"(,"layers":[)" + desc(media::kDockerLayer, B, 2) + "]}";
  auto dd = parse_document(docker, "m", "application/vnd.docker.distribution.manifest.v2+json");
  BOOST_TEST_REQUIRE(dd.ok());
  BOOST_TEST(dd->media_type == std::string(media::kDockerManifest));
  // OCI lets mediaType be absent: the Content-Type decides.
  std::string bare = R"({"schemaVersion":2,"config":)" + desc(media::kOciConfig, A, 1) + R"(,"layers":[]})";
  BOOST_TEST(parse_document(bare, "m")->media_type == std::string(media::kOciManifest));
  BOOST_TEST(parse_document(bare, "m", "application/vnd.docker.distribution.manifest.list.v2+json").ok() == false);
}

BOOST_AUTO_TEST_CASE(rejects) {
  auto why = [](std::string_view doc, std::string_view ct = {}) {
    auto r = parse_document(doc, "m", ct);
    BOOST_TEST(!r.ok(), doc);
    return r.ok() ? std::string() : r.error().why;
  };
  std::string both = R"({"schemaVersion":2,"manifests":[],"config":)" + desc(media::kOciConfig, A, 1) + R"(,"layers":[]})";
  BOOST_TEST(why(both) == "ambiguous document: it has both \"manifests\" and \"layers\"/\"config\"");
  std::string both2 = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"layers":[]})";
  BOOST_TEST(why(both2) == "ambiguous document: it has both \"manifests\" and \"layers\"/\"config\"");
  BOOST_TEST(why(oci_manifest(), "application/vnd.docker.distribution.manifest.v2+json") ==
             "Content-Type \"application/vnd.docker.distribution.manifest.v2+json\" disagrees with the document's mediaType "
             "\"application/vnd.oci.image.manifest.v1+json\"");
  BOOST_TEST(why(R"({"schemaVersion":1,"name":"x"})") == "Docker schema 1 manifests are not supported");
  BOOST_TEST(why(R"({"schemaVersion":3,"manifests":[]})") == "unsupported schemaVersion 3");
  BOOST_TEST(why("[1]") == "not a JSON object");
  BOOST_TEST(why("{") .rfind("invalid JSON", 0) == 0);
  BOOST_TEST(why(R"({"schemaVersion":2})") == "neither a manifest (no \"config\") nor an index (no \"manifests\")");
  std::string wrongmt = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":)" +
                        desc(media::kOciConfig, A, 1) + R"(,"layers":[]})";
  BOOST_TEST(why(wrongmt) == "mediaType \"application/vnd.oci.image.index.v1+json\" does not match a manifest");
  std::string baddigest = R"({"schemaVersion":2,"config":)" + desc(media::kOciConfig, "sha256:../../etc", 1) + R"(,"layers":[]})";
  BOOST_TEST(why(baddigest).find("invalid digest") != std::string::npos);
  std::string badlayer = R"({"schemaVersion":2,"config":)" + desc(media::kOciConfig, A, 1) + R"(,"layers":[)" +
                         desc("application/x-weird", B, 1) + "]}";
  BOOST_TEST(why(badlayer) == "layers[0] has unsupported media type \"application/x-weird\"");
  std::string negsize = R"({"schemaVersion":2,"config":)" + desc(media::kOciConfig, A, -1) + R"(,"layers":[]})";
  BOOST_TEST(why(negsize).find("valid \"size\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(index_platforms) {
  std::string idx = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
                    desc("application/vnd.in-toto+json", C, 5, plat("unknown", "unknown")) + "," +
                    desc(media::kOciManifest, A, 5, plat("linux", "arm", "v7")) + "," +
                    desc(media::kOciManifest, B, 5, plat("linux", "arm64")) + "," +
                    desc(media::kDockerManifest, C, 5, plat("linux", "amd64")) + "," +
                    desc(media::kOciManifest, A, 5, plat("linux", "amd64")) + "]}";
  auto d = parse_document(idx, "i", "application/vnd.oci.image.index.v1+json");
  BOOST_TEST_REQUIRE(d.ok());
  BOOST_TEST(d->index);
  BOOST_TEST(d->skipped == 1u);
  BOOST_TEST(d->manifests.size() == 4u);
  BOOST_TEST(select_platform(*d, *parse_platform("linux/amd64"), "i")->digest.str() == C);  // first match wins
  BOOST_TEST(select_platform(*d, *parse_platform("linux/arm64/v8"), "i")->digest.str() == B);
  BOOST_TEST(select_platform(*d, *parse_platform("linux/arm/v7"), "i")->digest.str() == A);
  auto none = select_platform(*d, *parse_platform("linux/s390x"), "i");
  BOOST_TEST_REQUIRE(!none.ok());
  BOOST_TEST((none.error().exit == Exit::no_input));
  BOOST_TEST(none.error().why == "no manifest for platform linux/s390x (available: linux/arm/v7, linux/arm64, linux/amd64, linux/amd64)");
  BOOST_TEST(!parse_platform("linux").ok());
  BOOST_TEST(!parse_platform("linux/amd64/v1/x").ok());
  BOOST_TEST(!parse_platform("linux//v1").ok());
}

BOOST_AUTO_TEST_CASE(config) {
  std::string cfg = R"({"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"],"Cmd":null,"Env":["A=1"],"WorkingDir":"/w","User":"1:2"},"rootfs":{"type":"layers","diff_ids":[")" + A + R"("]}})";
  auto c = parse_config(cfg, "c");
  BOOST_TEST_REQUIRE(c.ok());
  BOOST_TEST(c->platform.str() == "linux/amd64");
  BOOST_TEST(c->entrypoint == std::vector<std::string>{"/bin/sh"});
  BOOST_TEST(c->cmd.empty());
  BOOST_TEST(c->working_dir == "/w");
  BOOST_TEST(c->diff_ids.size() == 1u);
  BOOST_TEST(!parse_config(R"({"rootfs":{"type":"layers","diff_ids":["sha256:x"]}})", "c").ok());
  BOOST_TEST(!parse_config(R"({"rootfs":{"type":"other","diff_ids":[]}})", "c").ok());
  BOOST_TEST(!parse_config(R"({"config":{"Env":"A=1"},"rootfs":{"type":"layers","diff_ids":[]}})", "c").ok());
}
