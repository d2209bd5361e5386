// merkle.hpp: RFC 6962 / RFC 9162 Merkle tree hashing (SHA-256, 0x00 leaf and 0x01
// node prefixes), a streaming root, inclusion proofs and their verification.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "kina/sha256.hpp"

namespace kina::merkle {

inline Hash256 leaf_hash(std::string_view data) {
  thread_local Sha256 h;
  return h.update(uint8_t{0}).update(data).finish();
}

inline Hash256 node_hash(const Hash256& left, const Hash256& right) {
  thread_local Sha256 h;
  return h.update(uint8_t{1}).update(left.data(), left.size()).update(right.data(), right.size()).finish();
}

// MTH of the empty tree: SHA-256 of the empty string.
inline Hash256 empty_root() { return sha256({}); }

// Builds the root of a growing tree in O(log n) memory: a stack of the roots of
// the perfect subtrees that make up the leaves so far (the binary digits of n).
class CompactRange {
 public:
  void append(const Hash256& leaf) {
    Hash256 h = leaf;
    uint64_t n = size_;
    while (n & 1) {
      h = node_hash(stack_.back(), h);
      stack_.pop_back();
      n >>= 1;
    }
    stack_.push_back(h);
    ++size_;
  }
  uint64_t size() const { return size_; }
  Hash256 root() const {
    if (stack_.empty()) return empty_root();
    Hash256 acc = stack_.back();
    for (size_t i = stack_.size() - 1; i-- > 0;) acc = node_hash(stack_[i], acc);
    return acc;
  }

 private:
  std::vector<Hash256> stack_;
  uint64_t size_ = 0;
};

// MTH over leaf hashes [begin, end).
inline Hash256 subtree_root(std::span<const Hash256> leaves) {
  CompactRange r;
  for (const auto& l : leaves) r.append(l);
  return r.root();
}

namespace detail {
inline uint64_t split_point(uint64_t n) {  // largest power of two < n
  uint64_t k = 1;
  while (k << 1 < n) k <<= 1;
  return k;
}
inline void path(uint64_t m, std::span<const Hash256> d, std::vector<Hash256>& out) {
  uint64_t n = d.size();
  if (n <= 1) return;
  uint64_t k = split_point(n);
  if (m < k) {
    path(m, d.subspan(0, k), out);
    out.push_back(subtree_root(d.subspan(k)));
  } else {
    path(m - k, d.subspan(k), out);
    out.push_back(subtree_root(d.subspan(0, k)));
  }
}
}  // namespace detail

// The audit path PATH(m, D[n]) of RFC 6962 section 2.1.1, leaf first.
inline std::vector<Hash256> inclusion_proof(uint64_t index, std::span<const Hash256> leaves) {
  std::vector<Hash256> out;
  if (index < leaves.size()) detail::path(index, leaves, out);
  return out;
}

// RFC 9162 section 2.1.3.2: the root that the proof implies for `leaf` at
// `index` in a tree of `size`, or nullopt when the proof has the wrong shape.
inline std::optional<Hash256> root_from_inclusion_proof(uint64_t index, uint64_t size, const Hash256& leaf,
                                                        std::span<const Hash256> proof) {
  if (index >= size) return std::nullopt;
  uint64_t fn = index, sn = size - 1;
  Hash256 r = leaf;
  for (const auto& p : proof) {
    if (sn == 0) return std::nullopt;
    if ((fn & 1) || fn == sn) {
      r = node_hash(p, r);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return std::nullopt;
  return r;
}

inline bool verify_inclusion(uint64_t index, uint64_t size, const Hash256& leaf, std::span<const Hash256> proof,
                             const Hash256& root) {
  auto r = root_from_inclusion_proof(index, size, leaf, proof);
  return r && *r == root;
}

}  // namespace kina::merkle
