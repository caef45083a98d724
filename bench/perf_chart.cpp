// Draws bench/compare.sh's CSV as an SVG: step time per row for xgrad, libtorch
// and the GEMM limit (log scale), and each one's ratio to the limit. Rows with
// no limit (compare_encoder.sh's "encoder" rows) appear in the first panel only.
//   perf_chart docs/performance.csv docs/performance.svg
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/svg.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: perf_chart results.csv chart.svg\n";
        return 2;
    }
    std::ifstream in(argv[1]);
    std::string line;
    std::getline(in, line);  // header
    using xg::examples::Series;
    Series torch{"libtorch", {}, {}, "#d62728"}, ours{"xgrad", {}, {}, "#1f77b4"},
        limit{"GEMMs alone (limit)", {}, {}, "#2ca02c", true};
    Series torch_ratio{"libtorch / limit", {}, {}, "#d62728"},
        ours_ratio{"xgrad / limit", {}, {}, "#1f77b4"};
    std::vector<std::string> sizes;
    for (double x = 1; std::getline(in, line); ++x) {
        std::vector<std::string> f;
        std::stringstream cells(line);
        for (std::string cell; std::getline(cells, cell, ',');) f.push_back(cell);
        if (f.size() < 9) continue;
        auto add = [x](Series& s, const std::string& v) {
            if (v.empty()) return;
            s.x.push_back(x);
            s.y.push_back(std::stod(v));
        };
        add(torch, f[6]);
        add(ours, f[7]);
        add(limit, f[8]);
        // compare.sh's ratios (the median of each round's) where the CSV has
        // them, else the ratio of the medians.
        auto ratio = [&f](std::size_t column, std::size_t of) {
            if (f.size() > column && !f[column].empty()) return f[column];
            if (f[of].empty() || f[8].empty()) return std::string();
            return std::to_string(std::stod(f[of]) / std::stod(f[8]));
        };
        add(torch_ratio, ratio(17, 6));
        add(ours_ratio, ratio(16, 7));
        sizes.push_back(f[0]);
    }
    // "tiny, small, medium x3, large x2": the rows, grouped by size.
    std::string rows;
    for (std::size_t i = 0, j; i < sizes.size(); i = j) {
        for (j = i; j < sizes.size() && sizes[j] == sizes[i];) ++j;
        rows +=
            (rows.empty() ? "" : ", ") + sizes[i] + (j - i > 1 ? " x" + std::to_string(j - i) : "");
    }
    xg::examples::SvgChart chart(760, 300);
    chart.add_panel(
        {"Training step (forward, MSE, backward, Adam), median: FFN block rows, then the encoder "
         "layer",
         "table row: " + rows,
         "ms per step",
         true,
         {torch, ours, limit},
         {}});
    chart.add_panel({"Step time relative to its GEMMs alone",
                     "table row: " + rows,
                     "ratio to the limit",
                     true,
                     {torch_ratio, ours_ratio},
                     {}});
    chart.write(argv[2]);
    std::printf("wrote %s\n", argv[2]);
}
