#include "series.hpp"

#include <cmath>
#include <numbers>
#include <random>

namespace xg::examples {

ForecastData make_forecast_data(const SeriesConfig& c) {
    std::mt19937_64 rng(c.seed);
    std::normal_distribution<double> noise(0.0, c.noise);
    std::vector<double> raw(c.length);
    for (std::size_t t = 0; t < c.length; ++t) {
        double x = static_cast<double>(t);
        raw[t] = std::sin(2 * std::numbers::pi * x / static_cast<double>(c.season)) +
                 0.5 * std::sin(2 * std::numbers::pi * x / static_cast<double>(c.second_period)) +
                 0.0005 * x + noise(rng);
    }
    std::size_t windows = c.length - c.lookback - c.horizon + 1;
    auto n_val = static_cast<std::size_t>(static_cast<double>(windows) * c.validation_fraction);
    std::size_t n_train = windows - n_val;
    // Standardise with statistics of the part the training windows can see.
    std::size_t seen = n_train + c.lookback + c.horizon - 1;
    double mean = 0, var = 0;
    for (std::size_t t = 0; t < seen; ++t) mean += raw[t];
    mean /= static_cast<double>(seen);
    for (std::size_t t = 0; t < seen; ++t) var += (raw[t] - mean) * (raw[t] - mean);
    double sd = std::sqrt(var / static_cast<double>(seen));
    ForecastData out;
    for (double v : raw) out.series.push_back((v - mean) / sd);

    auto cut = [&](std::size_t first, std::size_t count, Tensor& x, Tensor& y) {
        xt::xarray<float> xs = xt::zeros<float>({count, c.lookback});
        xt::xarray<float> ys = xt::zeros<float>({count, c.horizon});
        for (std::size_t i = 0; i < count; ++i) {
            for (std::size_t j = 0; j < c.lookback; ++j)
                xs(i, j) = static_cast<float>(out.series[first + i + j]);
            for (std::size_t h = 0; h < c.horizon; ++h)
                ys(i, h) = static_cast<float>(out.series[first + i + c.lookback + h]);
        }
        x = tensor(std::move(xs));
        y = tensor(std::move(ys));
    };
    cut(0, n_train, out.train_x, out.train_y);
    cut(n_train, n_val, out.val_x, out.val_y);

    // Naive baselines on the validation windows.
    double last = 0, season = 0;
    for (std::size_t i = n_train; i < windows; ++i) {
        for (std::size_t h = 0; h < c.horizon; ++h) {
            double truth = out.series[i + c.lookback + h];
            double previous = out.series[i + c.lookback - 1];
            double seasonal = out.series[i + c.lookback + h - c.season * (1 + h / c.season)];
            last += (truth - previous) * (truth - previous);
            season += (truth - seasonal) * (truth - seasonal);
        }
    }
    double n = static_cast<double>(n_val * c.horizon);
    out.naive_last_mse = last / n;
    out.naive_season_mse = season / n;
    return out;
}

Tensor take_rows(const Tensor& x, const std::vector<std::size_t>& rows) {
    const auto& source = x.data<float>();
    std::size_t width = source.shape()[1];
    xt::xarray<float> out = xt::zeros<float>({rows.size(), width});
    for (std::size_t i = 0; i < rows.size(); ++i) {
        std::copy_n(source.data() + rows[i] * width, width, out.data() + i * width);
    }
    return tensor(std::move(out));
}

}  // namespace xg::examples
