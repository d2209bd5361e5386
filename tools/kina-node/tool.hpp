// tool.hpp: the tool's name, as every kina-node header reports it.
#pragma once

#include <string_view>

namespace kina::node {

inline constexpr std::string_view kTool = "kina-node";

}  // namespace kina::node
