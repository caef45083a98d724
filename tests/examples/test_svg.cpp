// The SVG chart writer used by the examples' --plot.
#include <string>

#include <doctest/doctest.h>

#include "common/svg.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace examples_test_svg {

using xg::examples::nice_ticks;
using xg::examples::Panel;
using xg::examples::SvgChart;

namespace {
std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}
}  // namespace

TEST_CASE("nice_ticks picks round steps that cover the range") {
    CHECK(nice_ticks(0, 10, 5) == std::vector<double>{0, 2, 4, 6, 8, 10});
    CHECK(nice_ticks(0.5, 4.5, 4) == std::vector<double>{1, 2, 3, 4});
    CHECK(nice_ticks(0, 1, 4) == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
    CHECK(nice_ticks(-3, 3, 3) == std::vector<double>{-2, 0, 2});
}

TEST_CASE("a chart has one frame per panel, one polyline per series and a legend entry each") {
    SvgChart chart(600, 200);
    chart.add_panel({"Loss",
                     "epoch",
                     "MSE",
                     true,
                     {{"train", {1, 2, 3}, {1.0, 0.1, 0.01}}, {"val", {1, 2, 3}, {2.0, 0.2, 0.02}}},
                     {}});
    Panel forecast{"Forecast", "t", "value", false, {{"truth", {0, 1}, {0.5, -0.5}}}, {}};
    forecast.bands.push_back({"band", {0, 1}, {-1, -1}, {1, 1}});
    chart.add_panel(forecast);
    std::string svg = chart.render();
    CHECK(svg.rfind("<svg ", 0) == 0);
    CHECK(svg.find("height=\"400\"") != std::string::npos);  // two panels of 200
    CHECK(count(svg, "<polyline") == 3);
    CHECK(count(svg, "<polygon") == 1);
    CHECK(svg.find(">MSE (log scale)</text>") != std::string::npos);
    CHECK(svg.find(">epoch</text>") != std::string::npos);
    // Log axis: decades from 0.01 to 10 become labelled ticks.
    CHECK(svg.find(">0.01</text>") != std::string::npos);
    CHECK(svg.find(">10</text>") != std::string::npos);
    CHECK(svg.find("</svg>") != std::string::npos);
}

TEST_CASE("data map to pixels inside the frame, with y growing upwards") {
    SvgChart chart(340, 180);  // plot area: x 70..150, y 34..134 (legend to the right)
    chart.add_panel({"", "", "", false, {{"line", {0, 10}, {0, 10}}}, {}});
    std::string svg = chart.render();
    CHECK(svg.find("points=\"70.0,134.0 150.0,34.0 \"") != std::string::npos);
}

TEST_CASE("text is escaped so labels cannot break the document") {
    SvgChart chart;
    chart.add_panel({"a < b & c", "x", "y", false, {{"s", {0, 1}, {0, 1}}}, {}});
    std::string svg = chart.render();
    CHECK(svg.find("a &lt; b &amp; c") != std::string::npos);
    CHECK(svg.find("a < b") == std::string::npos);
}

}  // namespace examples_test_svg
