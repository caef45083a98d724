// write_report (see report.hpp): the page, its SVG charts and its tables.
// Charts are drawn in pixels on a fixed 960-wide canvas; every data-to-pixel
// mapping goes through Axes, so each chart only says what to draw.
#include "xgrad/inspect/report.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace xg::inspect {

namespace {

constexpr double kWidth = 960;
constexpr std::size_t kMaxColumns = 300;  // heatmap columns: beyond that, cells thinner than 3 px

std::string escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string num(double v) { return fmt::format("{:.3g}", v); }

// A long name keeps its end, which tells layers apart ("...blocks.11.ffn.layer2").
std::string shortened(const std::string& name, std::size_t max = 30) {
    return name.size() <= max ? name : "\u2026" + name.substr(name.size() - (max - 1));
}

// Matplotlib's viridis at five stops, interpolated: dark for small, yellow for large.
std::string viridis(double t) {
    static const double stops[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = std::clamp(t, 0.0, 1.0) * 4;
    const int i = std::min(static_cast<int>(t), 3);
    const double f = t - i;
    auto mix = [&](int c) {
        return static_cast<int>(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
    };
    return fmt::format("#{:02x}{:02x}{:02x}", mix(0), mix(1), mix(2));
}

// Tableau's ten categorical colours, for lines.
const char* line_color(std::size_t i) {
    static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return colors[i % 10];
}

// The finite range of `values`, widened when it is one point; nullopt if none are finite.
std::optional<std::pair<double, double>> range_of(const std::vector<double>& values) {
    double lo = INFINITY, hi = -INFINITY;
    for (double v : values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (lo > hi) return std::nullopt;
    if (lo == hi) lo -= 0.5, hi += 0.5;
    return std::make_pair(lo, hi);
}

// Round ticks in [lo, hi]: three to seven, a step of 1, 2 or 5 times a power of ten,
// and no finer than min_step (1 for steps, and for decades on a log axis).
std::vector<double> ticks(double lo, double hi, double min_step) {
    if (!(hi > lo)) return {lo};
    const double raw = std::max((hi - lo) / 5, min_step);
    const double power = std::pow(10.0, std::floor(std::log10(raw))), r = raw / power;
    const double step = std::max((r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * power, min_step);
    std::vector<double> out;
    for (double k = std::ceil(lo / step); k * step <= hi + step * 1e-9; ++k)
        out.push_back(k * step + 0.0);  // + 0.0: a tick at -0 reads 0
    return out;
}

// A plot area: data (x0..x1, y0..y1) onto pixels (left, top, width, height).
struct Axes {
    double left, top, width, height;
    double x0, x1, y0, y1;
    bool log_y = false;  // y values are log10 of the data; ticks show the data
    double x(double v) const {
        return x1 == x0 ? left + width / 2 : left + (v - x0) / (x1 - x0) * width;
    }
    double y(double v) const { return top + height - (v - y0) / (y1 - y0) * height; }

    // Panel, round ticks on both axes, and the axis titles.
    std::string draw(const std::string& x_title, const std::string& y_title) const {
        std::string out =
            fmt::format(R"(<rect class="panel" x="{}" y="{}" width="{}" height="{}"/>)", left, top,
                        width, height);
        for (double vx : ticks(x0, x1, 1)) {
            out += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", x(vx),
                               top + height + 16, vx);
        }
        for (double vy : ticks(y0, y1, log_y && y1 - y0 >= 2 ? 1 : 0)) {
            out += fmt::format(R"(<line class="grid" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>)",
                               left, left + width, y(vy), y(vy));
            out += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)", left - 6,
                               y(vy) + 4, num(log_y ? std::pow(10.0, vy) : vy));
        }
        out += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)",
                           left + width / 2, top + height + 34, escape(x_title));
        out += fmt::format(R"svg(<text x="14" y="{0}" transform="rotate(-90 14 {0})" )svg"
                           R"(text-anchor="middle">{1}</text>)",
                           top + height / 2, escape(y_title));
        return out;
    }
};

std::string svg_open(const std::string& id, double width, double height, const std::string& label) {
    return fmt::format(
        R"(<svg id="{}" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">)",
        id, width, height, width, height, escape(label));
}

std::string no_data(const std::string& id, const std::string& what) {
    return svg_open(id, kWidth, 60, what) +
           fmt::format(R"(<text x="10" y="34">{}</text></svg>)", escape(what));
}

struct Series {
    std::string name;
    std::vector<std::pair<double, double>> points;  // (step, y), y already log10 on a log axis
};

// Lines with point markers, a legend at the right when there are several, and
// an optional dashed reference level.
std::string line_chart(const std::string& id, const std::string& y_title,
                       const std::vector<Series>& series, bool log_y,
                       std::optional<double> reference) {
    std::vector<double> xs, ys;
    for (const Series& s : series)
        for (auto [x, y] : s.points)
            if (std::isfinite(y)) xs.push_back(x), ys.push_back(y);
    if (ys.empty()) return no_data(id, "No " + y_title + " recorded yet.");
    if (reference) ys.push_back(*reference);
    const auto [y0, y1] = *range_of(ys);
    const double pad = (y1 - y0) * 0.05;
    const bool legend = series.size() > 1;
    const auto [x0, x1] = std::minmax_element(xs.begin(), xs.end());
    const Axes a{70, 12, legend ? 640.0 : 870.0, 230, *x0, *x1, y0 - pad, y1 + pad, log_y};
    std::string out = svg_open(id, kWidth, 290, y_title) + a.draw("step", y_title);
    if (reference) {
        out += fmt::format(R"(<line class="ref" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>)", a.left,
                           a.left + a.width, a.y(*reference), a.y(*reference));
    }
    for (std::size_t i = 0; i < series.size(); ++i) {
        std::string points, dots;
        for (auto [x, y] : series[i].points) {
            if (!std::isfinite(y)) continue;
            points += fmt::format("{:.1f},{:.1f} ", a.x(x), a.y(y));
            if (series[i].points.size() <= 80)
                dots += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5"/>)", a.x(x), a.y(y));
        }
        out += fmt::format(R"(<g stroke="{0}" fill="{0}"><title>{1}</title>)"
                           R"(<polyline fill="none" stroke-width="1.6" points="{2}"/>{3}</g>)",
                           line_color(i), escape(series[i].name), points, dots);
        if (legend && i < 16) {
            out += fmt::format(R"(<rect x="730" y="{}" width="12" height="12" fill="{}"/>)",
                               14 + 16 * i, line_color(i));
            out += fmt::format(R"(<text x="748" y="{}">{}<title>{}</title></text>)", 24 + 16 * i,
                               escape(shortened(series[i].name, 32)), escape(series[i].name));
        }
    }
    if (legend && series.size() > 16)
        out += fmt::format(R"(<text x="730" y="{}">+{} more</text>)", 24 + 16 * 16,
                           series.size() - 16);
    return out + "</svg>";
}

std::string loss_chart(const std::vector<double>& losses) {
    Series s{"loss", {}};
    const auto range = range_of(losses);
    const bool log_y = range && range->first > 0 && range->second / range->first >= 1000;
    for (std::size_t i = 0; i < losses.size(); ++i)
        s.points.emplace_back(static_cast<double>(i), log_y ? std::log10(losses[i]) : losses[i]);
    return line_chart("loss-curve", "loss", {s}, log_y, std::nullopt);
}

std::string ratio_chart(const std::vector<StepRecord>& records) {
    std::vector<Series> series;
    std::map<std::string, std::size_t> index;  // name -> its series, in first-seen order
    for (const StepRecord& r : records) {
        for (const ParamStats& p : r.params) {
            auto [it, added] = index.emplace(p.name, series.size());
            if (added) series.push_back({p.name, {}});
            if (p.update_ratio && *p.update_ratio > 0)
                series[it->second].points.emplace_back(r.step, std::log10(*p.update_ratio));
        }
    }
    return line_chart("update-ratios", "update / parameter", series, true, -3.0);
}

// Rows: the parameters of the last record; columns: up to kMaxColumns records.
std::string heatmap(const std::vector<StepRecord>& records) {
    if (records.empty() || records.back().params.empty())
        return no_data("grad-heatmap", "No gradient norms recorded yet.");
    const std::vector<ParamStats>& rows = records.back().params;
    const std::size_t cols = std::min(records.size(), kMaxColumns);
    std::vector<const StepRecord*> picked;
    for (std::size_t c = 0; c < cols; ++c) picked.push_back(&records[c * records.size() / cols]);
    // Norms per [row][col], NaN where the parameter had no gradient; the log10
    // of the positive finite ones sets the colour scale.
    std::vector<std::vector<double>> cell(rows.size(), std::vector<double>(cols, NAN));
    std::vector<double> all;
    for (std::size_t c = 0; c < cols; ++c) {
        std::map<std::string_view, double> norms;
        for (const ParamStats& p : picked[c]->params)
            if (p.grad_norm) norms[p.name] = *p.grad_norm;
        for (std::size_t r = 0; r < rows.size(); ++r) {
            if (auto it = norms.find(rows[r].name); it != norms.end()) cell[r][c] = it->second;
            if (cell[r][c] > 0 && std::isfinite(cell[r][c])) all.push_back(std::log10(cell[r][c]));
        }
    }
    const auto [lo, hi] = range_of(all).value_or(std::make_pair(-1.0, 1.0));
    const double cell_h = std::clamp(360.0 / rows.size(), 8.0, 22.0), left = 210, width = 700;
    const double cell_w = width / cols, bottom = 12 + cell_h * rows.size();
    const bool titles = rows.size() * cols <= 3000;
    std::string out = svg_open("grad-heatmap", kWidth, bottom + 70, "log10 gradient norm");
    out += R"(<g shape-rendering="crispEdges">)";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const double y = 12 + cell_h * r;
        out += fmt::format(
            R"(<text x="{}" y="{:.1f}" text-anchor="end">{}<title>{}</title></text>)", left - 6,
            y + cell_h / 2 + 4, escape(shortened(rows[r].name)), escape(rows[r].name));
        for (std::size_t c = 0; c < cols; ++c) {
            const double v = cell[r][c];
            const bool shown = v > 0 && std::isfinite(v);
            const std::string fill = shown ? viridis((std::log10(v) - lo) / (hi - lo)) : "#c8c8c8";
            out += fmt::format(
                R"(<rect x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}" fill="{}">)",
                left + cell_w * c, y, cell_w + 0.3, cell_h, fill);
            if (titles)
                out += fmt::format("<title>{} at step {}: {}</title>", escape(rows[r].name),
                                   picked[c]->step, std::isnan(v) ? "none" : num(v));
            out += "</rect>";
        }
    }
    out += "</g>";
    for (std::size_t c : {std::size_t{0}, cols / 2, cols - 1})
        out += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)",
                           left + cell_w * (c + 0.5), bottom + 16, picked[c]->step);
    out += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">step</text>)", left + width / 2,
                       bottom + 30);
    for (int k = 0; k < 20; ++k)  // the legend: the colour scale from lo to hi
        out += fmt::format(R"(<rect x="{}" y="{}" width="12" height="12" fill="{}"/>)",
                           300 + 12 * k, bottom + 44, viridis(k / 19.0));
    out += fmt::format(R"(<text x="294" y="{0}" text-anchor="end">|grad| {1}</text>)"
                       R"(<text x="546" y="{0}">{2} (grey: none, zero or not finite)</text>)",
                       bottom + 54, num(std::pow(10.0, lo)), num(std::pow(10.0, hi)));
    return out + "</svg>";
}

std::string histogram_figure(const ModuleStats& m) {
    const ActivationStats& a = *m.activation;
    const Histogram& h = a.histogram;
    const double w = 300, height = 120, top = 8, left = 10, plot_w = w - 2 * left;
    const std::int64_t most =
        std::max<std::int64_t>(1, *std::max_element(h.counts.begin(), h.counts.end()));
    std::string svg =
        fmt::format(R"(<svg class="histogram" width="{0}" height="{1}" viewBox="0 0 {0} {1}">)", w,
                    height + 30);
    svg += fmt::format(R"(<rect class="panel" x="{}" y="{}" width="{}" height="{}"/>)", left, top,
                       plot_w, height);
    const double bar_w = plot_w / h.counts.size();
    for (std::size_t i = 0; i < h.counts.size(); ++i) {
        const double bar_h = height * static_cast<double>(h.counts[i]) / static_cast<double>(most);
        svg +=
            fmt::format(R"(<rect class="bar" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}">)"
                        R"(<title>[{}, {}): {}</title></rect>)",
                        left + bar_w * i, top + height - bar_h, std::max(bar_w - 1, 0.5), bar_h,
                        num(h.edges[i]), num(h.edges[i + 1]), h.counts[i]);
    }
    svg += fmt::format(
        R"(<text x="{}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text></svg>)",
        left, top + height + 16, num(h.edges.front()), left + plot_w, top + height + 16,
        num(h.edges.back()));
    return fmt::format(
        "<figure><figcaption><b>{}</b> {}<br>mean {} std {} zeros {:.1f}%</figcaption>{}</figure>",
        escape(m.name), escape(m.type), num(a.mean), num(a.std), 100 * a.zero_fraction(), svg);
}

std::string histograms(const std::vector<StepRecord>& records) {
    for (auto r = records.rbegin(); r != records.rend(); ++r) {
        std::string figures;
        for (const ModuleStats& m : r->modules)
            if (m.activation && !m.activation->histogram.counts.empty())
                figures += histogram_figure(m);
        if (!figures.empty())
            return fmt::format(R"(<h2>Activations at step {}</h2>)"
                               R"(<div id="activation-histograms" class="figures">{}</div>)",
                               r->step, figures);
    }
    return R"(<h2>Activations</h2><div id="activation-histograms"><p>No activations recorded )"
           "yet (call begin_step() before the forward).</p></div>";
}

// One row per module call, indented by depth: "Linear (layer1)", the root by its type.
std::string summary_table(const ModelSummary& s) {
    std::string rows;
    for (const SummaryRow& r : s.rows) {
        std::string shapes;
        for (const Shape& shape : r.output_shapes) {
            if (!shapes.empty()) shapes += ' ';
            shapes += shape_str(shape);
        }
        const std::string label = r.name.empty() ? r.type : r.type + " (" + r.name + ")";
        rows += fmt::format(R"(<tr><td style="padding-left:{}px">{}</td><td>{}</td>)"
                            R"(<td class="n">{}</td><td class="n">{}</td></tr>)",
                            8 + 16 * r.depth, escape(label), shapes, r.params, r.mult_adds);
    }
    return fmt::format(
        "<table><tr><th>Module (name)</th><th>Output shape</th><th>Params</th><th>Mult-adds</th>"
        "</tr>{}</table><p>Total params {} (trainable {}); mult-adds {}; input {:.2f} MB, "
        "activations {:.2f} MB, params {:.2f} MB.</p>",
        rows, s.total_params, s.trainable_params, s.mult_adds, s.input_bytes / 1e6,
        s.activation_bytes / 1e6, s.param_bytes / 1e6);
}

// Without a ModelSummary: the parameters the monitor saw last.
std::string parameter_table(const std::vector<StepRecord>& records) {
    if (records.empty()) return "<p>No step recorded yet.</p>";
    std::string rows;
    std::size_t total = 0;
    for (const ParamStats& p : records.back().params) {
        std::size_t n = 1;
        for (std::size_t d : p.shape) n *= d;
        total += n;
        rows += fmt::format(R"(<tr><td>{}</td><td>{}</td><td class="n">{}</td></tr>)",
                            escape(p.name), shape_str(p.shape), n);
    }
    return fmt::format(
        "<table><tr><th>Parameter</th><th>Shape</th><th>Numel</th></tr>{}</table>"
        "<p>Total params {}.</p>",
        rows, total);
}

// One row per (source, name, kind), in order of first appearance.
std::string flag_table(const GradientMonitor& monitor) {
    struct Row {
        std::size_t count = 0, first = 0, last = 0;
        double value = 0;
    };
    std::vector<std::tuple<std::string, std::string, FlagKind>> order;
    std::map<std::tuple<std::string, std::string, FlagKind>, Row> rows;
    for (const Flag& f : monitor.flags()) {
        auto key = std::make_tuple(f.source, f.name, f.kind);
        auto [it, added] = rows.try_emplace(key, Row{0, f.step, f.step, f.value});
        if (added) order.push_back(key);
        ++it->second.count, it->second.last = f.step, it->second.value = f.value;
    }
    const MonitorOptions& o = monitor.options();
    std::string out = fmt::format(
        "<p>Thresholds: gradient norm below {} (vanishing) or above {} (exploding), or not "
        "finite.</p>",
        num(o.vanishing), num(o.exploding));
    if (order.empty()) return out + "<p>No layer was flagged.</p>";
    out +=
        "<table><tr><th>Name</th><th>Of</th><th>Kind</th><th>Times</th><th>First step</th>"
        "<th>Last step</th><th>Last norm</th></tr>";
    for (const auto& key : order) {
        const Row& r = rows.at(key);
        out += fmt::format(
            R"(<tr class="{2}"><td>{0}</td><td>{1}</td><td>{2}</td><td class="n">{3}</td>)"
            R"(<td class="n">{4}</td><td class="n">{5}</td><td class="n">{6}</td></tr>)",
            escape(std::get<1>(key)), std::get<0>(key) == "param" ? "parameter" : "module output",
            to_string(std::get<2>(key)), r.count, r.first, r.last, num(r.value));
    }
    return out + "</table>";
}

constexpr const char* kStyle =
    "body{font:14px/1.45 sans-serif;color:#222;background:#fff;margin:24px auto;max-width:980px}"
    "h1{font-size:22px}h2{font-size:17px;margin:28px 0 8px}"
    "svg text{font:11px sans-serif;fill:#333}.panel{fill:#eef0f4}"
    ".grid{stroke:#fff;stroke-width:1}.ref{stroke:#555;stroke-dasharray:5 4}"
    ".bar{fill:#3b6ea5}.figures{display:flex;flex-wrap:wrap;gap:10px}"
    "figure{margin:0}figcaption{font-size:12px}"
    "table{border-collapse:collapse;font-size:13px}th,td{padding:3px 10px;text-align:left;"
    "border-bottom:1px solid #ddd}td.n{text-align:right}tr.exploding td,tr.nonfinite td{color:#b00}"
    "tr.vanishing td{color:#1f4e9a}";

std::string page(const GradientMonitor& monitor, const std::string& summary) {
    const auto& records = monitor.records();
    const auto& losses = monitor.losses();
    const std::string last = losses.empty() ? "none" : num(losses.back());
    return fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>xgrad training report</title><style>{}</style></head><body>\n"
        "<h1>xgrad training report</h1><p>{} steps, {} sampled (every {}); last loss {}; {} "
        "flags.</p>\n"
        "<h2>Loss</h2>{}\n<h2>Gradient norm per parameter</h2>{}\n"
        "<h2>Update / parameter ratio</h2>{}\n{}\n"
        "<section id=\"summary\"><h2>Model summary</h2>{}</section>\n"
        "<section id=\"flagged\"><h2>Flagged layers</h2>{}</section>\n</body></html>\n",
        kStyle, monitor.steps(), records.size(), monitor.options().every, last,
        monitor.flags().size(), loss_chart(losses), heatmap(records), ratio_chart(records),
        histograms(records), summary, flag_table(monitor));
}

}  // namespace

std::string report_html(const GradientMonitor& monitor) {
    return page(monitor, parameter_table(monitor.records()));
}

std::string report_html(const GradientMonitor& monitor, const ModelSummary& summary) {
    return page(monitor, summary_table(summary));
}

void write_report(const GradientMonitor& monitor, const std::string& path) {
    detail::write_text_file(path, report_html(monitor), "write_report");
}

void write_report(const GradientMonitor& monitor, const ModelSummary& summary,
                  const std::string& path) {
    detail::write_text_file(path, report_html(monitor, summary), "write_report");
}

}  // namespace xg::inspect
