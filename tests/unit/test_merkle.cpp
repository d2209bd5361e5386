#define BOOST_TEST_MODULE merkle
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "kina/encoding.hpp"
#include "kina/merkle.hpp"

using namespace kina;

// Known-answer vectors of RFC 6962 as published with the Certificate
// Transparency reference implementations (transparency-dev/merkle).
namespace {
std::vector<std::string> leaves() {
  std::vector<std::string> hex = {"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                  "606162636465666768696a6b6c6d6e6f"};
  std::vector<std::string> out;
  for (const auto& h : hex) {
    auto b = from_hex(h);
    out.emplace_back(b->begin(), b->end());
  }
  return out;
}
const char* roots[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};
struct ProofVector {
  uint64_t leaf;  // 1-based, as published
  uint64_t size;
  std::vector<const char*> path;
};
const ProofVector proofs[] = {
    {1, 8, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {3, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {2, 5, {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};
Hash256 h(const char* hex) {
  auto b = from_hex(hex);
  Hash256 out{};
  std::copy(b->begin(), b->end(), out.begin());
  return out;
}
std::vector<Hash256> leaf_hashes() {
  std::vector<Hash256> out;
  for (const auto& l : leaves()) out.push_back(merkle::leaf_hash(l));
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(empty_tree_root_is_sha256_of_nothing) {
  BOOST_TEST(to_hex(merkle::empty_root()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

BOOST_AUTO_TEST_CASE(roots_of_every_prefix_match_the_vectors) {
  auto lh = leaf_hashes();
  merkle::CompactRange r;
  for (size_t i = 0; i < lh.size(); ++i) {
    r.append(lh[i]);
    BOOST_TEST(to_hex(r.root()) == roots[i], "size " << i + 1);
  }
}

BOOST_AUTO_TEST_CASE(generated_proofs_match_the_vectors) {
  auto lh = leaf_hashes();
  for (const auto& v : proofs) {
    auto p = merkle::inclusion_proof(v.leaf - 1, std::span<const Hash256>(lh.data(), v.size));
    BOOST_REQUIRE_EQUAL(p.size(), v.path.size());
    for (size_t i = 0; i < p.size(); ++i) BOOST_TEST(to_hex(p[i]) == v.path[i]);
  }
}

BOOST_AUTO_TEST_CASE(published_proofs_verify_and_corrupted_ones_do_not) {
  auto lh = leaf_hashes();
  for (const auto& v : proofs) {
    std::vector<Hash256> path;
    for (const char* x : v.path) path.push_back(h(x));
    Hash256 root = h(roots[v.size - 1]);
    uint64_t idx = v.leaf - 1;
    BOOST_TEST(merkle::verify_inclusion(idx, v.size, lh[idx], path, root));
    // Wrong index, wrong size, wrong leaf, wrong root, trailing or missing or flipped elements.
    if (idx > 0) BOOST_TEST(!merkle::verify_inclusion(idx - 1, v.size, lh[idx], path, root));
    BOOST_TEST(!merkle::verify_inclusion(idx + 1, v.size, lh[idx], path, root));
    BOOST_TEST(!merkle::verify_inclusion(idx, v.size * 2, lh[idx], path, root));
    BOOST_TEST(!merkle::verify_inclusion(idx, v.size / 2, lh[idx], path, root));
    BOOST_TEST(!merkle::verify_inclusion(idx, v.size, merkle::leaf_hash("WrongLeaf"), path, root));
    BOOST_TEST(!merkle::verify_inclusion(idx, v.size, lh[idx], path, merkle::empty_root()));
    auto longer = path;
    longer.push_back(root);
    BOOST_TEST(!merkle::verify_inclusion(idx, v.size, lh[idx], longer, root));
    auto shorter = path;
    shorter.pop_back();
    BOOST_TEST(!merkle::verify_inclusion(idx, v.size, lh[idx], shorter, root));
    for (size_t i = 0; i < path.size(); ++i) {
      auto flipped = path;
      flipped[i][0] ^= 8;
      BOOST_TEST(!merkle::verify_inclusion(idx, v.size, lh[idx], flipped, root));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_proof_in_larger_trees_round_trips) {
  std::vector<Hash256> lh;
  for (int i = 0; i < 70; ++i) lh.push_back(merkle::leaf_hash(std::to_string(i)));
  for (uint64_t n = 1; n <= lh.size(); ++n) {
    auto sub = std::span<const Hash256>(lh.data(), n);
    Hash256 root = merkle::subtree_root(sub);
    for (uint64_t i = 0; i < n; ++i) {
      auto p = merkle::inclusion_proof(i, sub);
      BOOST_REQUIRE(merkle::verify_inclusion(i, n, lh[i], p, root));
    }
  }
}
