// names.hpp: cluster, machine and network names, checked once where they
// enter kina-vm (a flag, an argument, a directory or marker read back) and
// carried as types from there, so that no path is built from an unchecked name.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "kina/error.hpp"
#include "kina/validate.hpp"

namespace kina::vm {

// A DNS-1123 label naming one kind of thing (TAG::what, for the error).
template <class Tag>
class Name {
 public:
  static Result<Name> parse(std::string_view s) {
    if (auto st = validate_name(Tag::what, s); !st) return st.error();
    return Name(std::string(s));
  }
  const std::string& str() const { return v_; }
  bool operator==(const Name& o) const { return v_ == o.v_; }

 private:
  explicit Name(std::string v) : v_(std::move(v)) {}
  std::string v_;
};

struct ClusterTag { static constexpr std::string_view what = "cluster name"; };
struct MachineTag { static constexpr std::string_view what = "machine name"; };
struct NetworkTag { static constexpr std::string_view what = "network name"; };
using ClusterName = Name<ClusterTag>;
using MachineName = Name<MachineTag>;
using NetworkName = Name<NetworkTag>;

}  // namespace kina::vm
