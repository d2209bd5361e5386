// plan.hpp (test stub): stands in for tools/kina-node/plan.hpp until n-plan's
// is merged; see ../node_plan_stub.hpp.
#pragma once
#include "../node_plan_stub.hpp"
