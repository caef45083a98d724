// What a GradientMonitor writes. The CSV and JSON Lines files: their rows,
// quoting and parse. write_report: the page holds every chart, the summary and
// the flags, escapes names and loads nothing from elsewhere; and in a real
// browser (headless Chromium) its DOM has every chart and summary row and its
// screenshot is neither blank nor solid. XGRAD_UPDATE_DOCS=1 copies that
// screenshot to docs/report.png, the README's picture.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/inspect/report.hpp>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace inspect_test_report {

namespace nn = xg::nn;
namespace fs = std::filesystem;
using xg::Tensor;
using xg::inspect::GradientMonitor;
using xg::inspect::MonitorOptions;

namespace {

const fs::path kRoot = XGRAD_SOURCE_DIR;
const std::string kOddName = "<mix>&\"";  // a module name that needs escaping
const std::string kOddEscaped = "&lt;mix&gt;&amp;";
const std::vector<std::string> kIds = {
    "loss-curve", "grad-heatmap", "update-ratios", "activation-histograms", "summary", "flagged"};

// How the summary table shows a row, `name` escaped as the page or the DOM has it.
std::string label(const xg::inspect::SummaryRow& row, const std::string& name) {
    return row.name.empty() ? ">" + row.type + "</td>" : row.type + " (" + name + ")";
}

// An MLP to fit tanh(x w) with Adam. Its output layer starts at zero, so at
// step 0 no gradient reaches the layers below it: they are flagged vanishing.
std::shared_ptr<nn::Sequential> model() {
    xg::manual_seed(11);
    auto m = std::make_shared<nn::Sequential>();
    m->push_back(std::make_shared<nn::Linear>(8, 32));
    m->push_back(std::make_shared<nn::ReLU>());
    m->register_module(kOddName, std::make_shared<nn::Linear>(32, 32));
    m->push_back(std::make_shared<nn::ReLU>());
    auto head = std::make_shared<nn::Linear>(32, 1);
    {
        xg::NoGradGuard no_grad;
        head->weight.zero_();
    }
    m->push_back(head);
    return m;
}

void train(nn::Module& m, GradientMonitor& monitor, const Tensor& x, int steps) {
    const Tensor y = xg::tanh(xg::matmul(x, xg::randn({8, 1})));
    xg::optim::Adam adam(m.parameters(), xg::optim::AdamOptions(1e-2));
    for (int step = 0; step < steps; ++step) {
        monitor.begin_step();
        const Tensor loss = xg::mse_loss(m(x), y);
        loss.backward();
        monitor.step(adam, loss);
        adam.zero_grad();
    }
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// The text from `id`'s element on (to the end: sections come last).
std::string from_id(const std::string& html, const std::string& id) {
    const auto at = html.find("id=\"" + id + "\"");
    return at == std::string::npos ? "" : html.substr(at);
}

std::string temp_dir(const std::string& what) {
    const fs::path dir =
        fs::temp_directory_path() / ("xgrad-" + what + "-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir.string();
}

std::vector<std::string> lines_of(const std::string& path) {
    std::istringstream in(test::read_bytes(path));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

}  // namespace

TEST_CASE("GradientMonitor writes one CSV row per step and name, and a JSON line per step") {
    auto m = model();
    GradientMonitor monitor(*m, MonitorOptions{.every = 2});
    train(*m, monitor, xg::randn({16, 8}), 5);
    const std::string dir = temp_dir("monitor-files");
    monitor.write_csv(dir + "/grads.csv");
    monitor.write_jsonl(dir + "/grads.jsonl");

    const auto rows = lines_of(dir + "/grads.csv");
    REQUIRE(rows.size() == 1 + 3 * (6 + 5));  // steps 0, 2, 4 x (6 parameters + 5 modules)
    CHECK(rows[0] ==
          "step,name,kind,grad_norm,param_norm,update_ratio,grad_output_norm,act_mean,act_std,"
          "act_zero_fraction,act_min,act_max");
    for (const std::string& row : rows) CHECK(std::count(row.begin(), row.end(), ',') == 11);
    CHECK(rows[1].starts_with("0,0.weight,param,0,"));  // the zero head lets no gradient through
    CHECK(rows[3].starts_with(R"(0,"<mix>&"".weight",param,0,)"));
    CHECK(rows[7].starts_with("0,0,module,,,,"));
    CHECK(rows[23].starts_with("4,0.weight,param,"));

    const auto lines = lines_of(dir + "/grads.jsonl");
    REQUIRE(lines.size() == 5);
    CHECK(lines[0].starts_with(R"({"step":0,"loss":)"));
    CHECK(contains(lines[0], R"("sampled":true,"params":[{"name":"0.weight","grad_norm":0,)"));
    CHECK(contains(lines[0], R"({"name":"<mix>&\".weight",)"));
    CHECK(contains(lines[0], R"("histogram":{"edges":[)"));
    CHECK(lines[1].ends_with(R"("sampled":false})"));
    const auto parsed = test::run_command(
        "python3 -c \"import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; "
        "assert [r['sampled'] for r in rows] == [True, False, True, False, True]; "
        "assert rows[0]['modules'][2]['name'] == chr(60)+'mix'+chr(62)+chr(38)+chr(34); "
        "assert len(rows[4]['modules'][1]['activation']['histogram']['counts']) == 20\" " +
        dir + "/grads.jsonl");
    CHECK_MESSAGE(parsed.status == 0, parsed.output);

    CHECK_THROWS_WITH_AS(monitor.write_csv("/nonexistent-xgrad-dir/grads.csv"),
                         "write_csv: expected a path that can be written (got "
                         "'/nonexistent-xgrad-dir/grads.csv')",
                         xg::Error);
    fs::remove_all(dir);
}

TEST_CASE("the report holds every chart, the summary and the flags, escaped and self-contained") {
    auto m = model();
    const Tensor x = xg::randn({64, 8});
    const auto summary = xg::inspect::summary(*m, x);
    GradientMonitor monitor(*m, MonitorOptions{.every = 2});
    train(*m, monitor, x, 12);
    const std::string html = xg::inspect::report_html(monitor, summary);

    for (const std::string& id : kIds) CHECK_MESSAGE(contains(html, "id=\"" + id + "\""), id);
    for (const auto& row : summary.rows) {
        const std::string name = row.name == kOddName ? kOddEscaped + "&quot;" : row.name;
        CHECK_MESSAGE(contains(from_id(html, "summary"), label(row, name)), row.name);
    }
    CHECK(contains(from_id(html, "activation-histograms"), kOddEscaped + "&quot;"));
    CHECK(contains(from_id(html, "grad-heatmap"), kOddEscaped + "&quot;.weight"));
    CHECK_FALSE(contains(html, kOddName));
    const std::string flagged = from_id(html, "flagged");
    CHECK(contains(flagged, "<td>0.weight</td><td>parameter</td><td>vanishing</td>"));
    CHECK(contains(flagged, "<td>" + kOddEscaped + "&quot;.weight</td>"));
    for (const char* outside : {"http://", "https://", "<script", "src=", "url(", "@import"})
        CHECK_MESSAGE(!contains(html, outside), outside);

    // Without a ModelSummary the summary lists the parameters.
    const std::string plain = from_id(xg::inspect::report_html(monitor), "summary");
    CHECK(contains(plain, "<th>Parameter</th>"));
    CHECK(contains(plain, "<td>0.weight</td><td>[32, 8]</td>"));

    // Before any step every section is still there, saying so.
    GradientMonitor idle(*m);
    const std::string empty = xg::inspect::report_html(idle);
    for (const std::string& id : kIds) CHECK_MESSAGE(contains(empty, "id=\"" + id + "\""), id);
    CHECK(contains(empty, "No step recorded yet."));

    CHECK_THROWS_WITH_AS(xg::inspect::write_report(monitor, "/nonexistent-xgrad-dir/r.html"),
                         "write_report: expected a path that can be written (got "
                         "'/nonexistent-xgrad-dir/r.html')",
                         xg::Error);
}

TEST_CASE("headless Chromium renders the report: every chart and summary row, and ink") {
    const auto which = test::run_command("command -v chromium");
    REQUIRE_MESSAGE(which.status == 0,
                    "chromium not found: install Debian's chromium (scripts/install-deps.sh) to "
                    "run the report's browser test");
    auto m = model();
    const Tensor x = xg::randn({64, 8});
    const auto summary = xg::inspect::summary(*m, x);
    GradientMonitor monitor(*m, MonitorOptions{.every = 2});
    train(*m, monitor, x, 60);
    const std::string dir = temp_dir("report");
    const std::string page = dir + "/report.html", png = dir + "/report.png";
    xg::inspect::write_report(monitor, summary, page);

    // Root in a container needs --no-sandbox; a profile of its own lets runs overlap.
    const std::string chromium =
        "timeout 60 chromium --headless --disable-gpu --no-sandbox "
        "--disable-dev-shm-usage --no-first-run --user-data-dir=" +
        dir + "/profile ";
    const auto dom = test::run_command("(" + chromium + "--dump-dom file://" + page + " > " + dir +
                                       "/dom.html 2> " + dir + "/chromium.log)");
    REQUIRE_MESSAGE(dom.status == 0, test::read_bytes(dir + "/chromium.log"));
    const std::string rendered = test::read_bytes(dir + "/dom.html");
    for (const std::string& id : kIds) CHECK_MESSAGE(contains(rendered, "id=\"" + id + "\""), id);
    for (const char* chart : {"<svg id=\"loss-curve\"", "<svg id=\"grad-heatmap\"",
                              "<svg id=\"update-ratios\"", "<svg class=\"histogram\""})
        CHECK_MESSAGE(contains(rendered, chart), chart);
    const std::string shown = from_id(rendered, "summary");
    for (const auto& row : summary.rows) {  // the DOM writes '"' in text as it is
        const std::string name = row.name == kOddName ? kOddEscaped + "\"" : row.name;
        CHECK_MESSAGE(contains(shown, label(row, name)), row.name);
    }

    const auto shot = test::run_command(
        "(" + chromium + "--hide-scrollbars --window-size=1200,1600 --screenshot=" + png +
        " file://" + page + " > " + dir + "/chromium.log 2>&1)");
    REQUIRE_MESSAGE((shot.status == 0 && fs::exists(png)), test::read_bytes(dir + "/chromium.log"));
    const auto share = test::run_command(
        "python3 " + (kRoot / "tests/inspect/nonwhite_share.py").string() + " " + png);
    REQUIRE_MESSAGE(share.status == 0, share.output);
    const double ink = std::stod(share.output);
    CAPTURE(ink);
    CHECK(ink > 0.05);  // charts drawn, not a blank page
    CHECK(ink < 0.90);  // and not a solid one
    if (const char* update = std::getenv("XGRAD_UPDATE_DOCS"); update && std::string(update) == "1")
        fs::copy_file(png, kRoot / "docs/report.png", fs::copy_options::overwrite_existing);
    fs::remove_all(dir);
}

}  // namespace inspect_test_report
