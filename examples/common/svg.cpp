// SvgChart: maps data to pixels per panel and emits plain SVG 1.1.
#include "svg.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace xg::examples {

namespace {

// The right margin holds the legend, so it never covers the data.
constexpr double kLeft = 70, kRight = 190, kTop = 34, kBottom = 46;

std::string escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '<')
            out += "&lt;";
        else if (c == '>')
            out += "&gt;";
        else if (c == '&')
            out += "&amp;";
        else if (c == '"')
            out += "&quot;";
        else
            out += c;
    }
    return out;
}

struct Range {
    double low = std::numeric_limits<double>::infinity();
    double high = -std::numeric_limits<double>::infinity();
    void add(double v) {
        if (!std::isfinite(v)) return;
        low = std::min(low, v);
        high = std::max(high, v);
    }
    void settle() {
        if (!(low <= high)) low = 0, high = 1;
        if (low == high) low -= 0.5, high += 0.5;
    }
};

std::string format_tick(double v) {
    if (v != 0 && (std::abs(v) >= 1e4 || std::abs(v) < 1e-3)) return fmt::format("{:.0e}", v);
    return fmt::format("{:g}", v);
}

}  // namespace

std::vector<double> nice_ticks(double low, double high, int count) {
    if (!(high > low) || count < 1) return {low};
    double raw = (high - low) / count;
    double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    }
    std::vector<double> ticks;
    for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
        ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    }
    return ticks;
}

std::string SvgChart::render() const {
    double height = panel_height_ * static_cast<double>(std::max<std::size_t>(panels_.size(), 1));
    std::string out = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
        "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        width_, height);
    for (std::size_t p = 0; p < panels_.size(); ++p) {
        const Panel& panel = panels_[p];
        double top = panel_height_ * static_cast<double>(p);
        double x0 = kLeft, x1 = width_ - kRight, y0 = top + panel_height_ - kBottom,
               y1 = top + kTop;
        auto transform = [&](double v) { return panel.log_y ? std::log10(v) : v; };
        Range xr, yr;
        for (const auto& s : panel.series) {
            for (double v : s.x) xr.add(v);
            for (double v : s.y) yr.add(transform(v));
        }
        for (const auto& b : panel.bands) {
            for (double v : b.x) xr.add(v);
            for (double v : b.lower) yr.add(transform(v));
            for (double v : b.upper) yr.add(transform(v));
        }
        xr.settle();
        yr.settle();
        if (panel.log_y) yr.low = std::floor(yr.low), yr.high = std::ceil(yr.high);
        auto px = [&](double v) { return x0 + (v - xr.low) / (xr.high - xr.low) * (x1 - x0); };
        auto py = [&](double v) {
            return y0 - (transform(v) - yr.low) / (yr.high - yr.low) * (y0 - y1);
        };

        out +=
            fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
                        x0, top + 20, escape(panel.title));
        out += fmt::format(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
            x0, y1, x1 - x0, y0 - y1);
        for (double t : nice_ticks(xr.low, xr.high)) {
            out += fmt::format(
                "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
                "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
                px(t), y1, y0, y0 + 16, format_tick(t));
        }
        std::vector<double> y_ticks;
        if (panel.log_y) {
            for (double e = yr.low; e <= yr.high; ++e) y_ticks.push_back(std::pow(10.0, e));
        } else {
            y_ticks = nice_ticks(yr.low, yr.high);
        }
        for (double t : y_ticks) {
            out += fmt::format(
                "<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
                "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                py(t), x0, x1, x0 - 6, py(t) + 4, format_tick(t));
        }
        out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                           (x0 + x1) / 2, y0 + 36, escape(panel.x_label));
        out += fmt::format(
            "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}{}</text>\n",
            18, (y0 + y1) / 2, escape(panel.y_label), panel.log_y ? " (log scale)" : "");

        double legend_y = y1 + 16;
        auto legend = [&](const std::string& label, const std::string& color) {
            out += fmt::format(
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{}\"/>"
                "<text x=\"{}\" y=\"{}\">{}</text>\n",
                x1 + 12, legend_y - 4, color, x1 + 30, legend_y, escape(label));
            legend_y += 16;
        };
        for (const auto& b : panel.bands) {
            std::string points;
            for (std::size_t i = 0; i < b.x.size(); ++i)
                points += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.upper[i]));
            for (std::size_t i = b.x.size(); i-- > 0;)
                points += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.lower[i]));
            out += fmt::format(
                "<polygon points=\"{}\" fill=\"{}\" fill-opacity=\"0.25\" stroke=\"none\"/>\n",
                points, b.color);
            legend(b.label, b.color);
        }
        for (const auto& s : panel.series) {
            std::string points;
            for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
                if (std::isfinite(transform(s.y[i])))
                    points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
            }
            out += fmt::format(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n",
                points, s.color, s.dashed ? " stroke-dasharray=\"6,4\"" : "");
            legend(s.label, s.color);
        }
    }
    return out + "</svg>\n";
}

void SvgChart::write(const std::string& path) const {
    std::ofstream file(path);
    file << render();
    if (!file) throw std::runtime_error("cannot write SVG to '" + path + "'");
}

}  // namespace xg::examples
