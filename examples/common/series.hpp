// The toy forecasting task of train_ffn: a synthetic seasonal series (two
// sines with different periods, a slow trend, Gaussian noise), cut into
// windows of `lookback` inputs and `horizon` targets, split by time.
#pragma once

#include <cstdint>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace xg::examples {

struct SeriesConfig {
    std::size_t length = 3000, lookback = 48, horizon = 8, season = 24, second_period = 60;
    double noise = 0.1, validation_fraction = 0.2;
    std::uint64_t seed = 0;
};

struct ForecastData {
    std::vector<double> series;  // standardised with the training part's mean and std
    Tensor train_x, train_y;     // [n, lookback], [n, horizon]
    Tensor val_x, val_y;
    double naive_last_mse = 0;    // repeat the last value
    double naive_season_mse = 0;  // repeat the value one season earlier
};

ForecastData make_forecast_data(const SeriesConfig& config);

// The rows `rows` of a 2-d float tensor, as a new tensor (a mini-batch).
Tensor take_rows(const Tensor& x, const std::vector<std::size_t>& rows);

}  // namespace xg::examples
