// xg::inspect: seeing inside training, built on the public hooks of nn and optim.
#pragma once

#include "xgrad/inspect/graph.hpp"
#include "xgrad/inspect/monitor.hpp"
#include "xgrad/inspect/nonfinite.hpp"
#include "xgrad/inspect/report.hpp"
#include "xgrad/inspect/summary.hpp"
