// GradientMonitor's statistics (monitor_stats.cpp): norms and activation
// statistics, read straight from a tensor's values (float32 and float64 in
// place, other dtypes through a float64 copy).
#pragma once

#include <cstddef>

#include "xgrad/inspect/monitor.hpp"

namespace xg::inspect::stats {

// The sum of t's squared values, and of (a - b)^2 for two tensors of one size.
double sum_of_squares(const Tensor& t);
double squared_distance(const Tensor& a, const Tensor& b);

// Mean, std, zeros, extremes and a `bins`-bin histogram over the extremes;
// Inf and NaN are counted and left out.
ActivationStats activation_stats(const Tensor& t, std::size_t bins);

// The statistics of two calls' values together (the histogram over the
// first's bins).
ActivationStats merged(const ActivationStats& a, const ActivationStats& b);

}  // namespace xg::inspect::stats
