// A small SVG line-chart writer for the examples: panels stacked vertically,
// each with line series, an optional shaded band, labelled axes and an
// optional log-scale y axis. Deliberately dependency-free and tested.
#pragma once

#include <string>
#include <vector>

namespace xg::examples {

struct Series {
    std::string label;
    std::vector<double> x, y;
    std::string color = "#1f77b4";
    bool dashed = false;
};

// A filled region between lower and upper over x (e.g. mean ± 2 std).
struct Band {
    std::string label;
    std::vector<double> x, lower, upper;
    std::string color = "#ff7f0e";
};

struct Panel {
    std::string title, x_label, y_label;
    bool log_y = false;
    std::vector<Series> series;
    std::vector<Band> bands;
};

class SvgChart {
public:
    explicit SvgChart(double width = 880, double panel_height = 300)
        : width_(width), panel_height_(panel_height) {}
    Panel& add_panel(Panel panel) { return panels_.emplace_back(std::move(panel)); }
    std::string render() const;
    void write(const std::string& path) const;  // throws std::runtime_error on failure

private:
    double width_, panel_height_;
    std::vector<Panel> panels_;
};

// Round, human-friendly tick positions covering [low, high] (about `count` of them).
std::vector<double> nice_ticks(double low, double high, int count = 5);

}  // namespace xg::examples
