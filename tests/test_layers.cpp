// The layers (core <- nn, optim <- inspect <- checkpoint; docs/internals.md): no file in a
// layer includes a header of a layer above it or beside it, and no layer
// includes another layer's private headers (its src/ folder). The build
// enforces most of this through per-layer targets; this test also catches an
// include that happens to resolve, e.g. through the umbrella header.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace test_layers {

namespace {

namespace fs = std::filesystem;
const fs::path kRoot = XGRAD_SOURCE_DIR;

// Public header prefixes (after "xgrad/") of each layer.
const std::map<std::string, std::vector<std::string>> kPublic = {
    {"core",
     {"activation_checkpoint", "autograd", "error", "half", "key_map", "ops", "removable_handle",
      "serialize", "small_vector", "state_dict", "tensor", "to_dot"}},
    {"nn", {"nn"}},
    {"optim", {"optim"}},
    {"inspect", {"inspect"}},
    {"checkpoint", {"checkpoint", "xgrad.hpp"}},
};
// What each layer may use besides itself.
const std::map<std::string, std::set<std::string>> kBelow = {
    {"core", {}},
    {"nn", {"core"}},
    {"optim", {"core"}},
    {"inspect", {"core", "nn", "optim"}},
    {"checkpoint", {"core", "nn", "optim", "inspect"}},
};

std::string owner_of_public(const std::string& header) {
    for (const auto& [layer, prefixes] : kPublic) {
        for (const auto& prefix : prefixes) {
            if (header == prefix || header.starts_with(prefix + "/") ||
                header.starts_with(prefix + "."))
                return layer;
        }
    }
    return "";
}

std::set<std::string> private_headers(const std::string& layer) {
    std::set<std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(kRoot / layer)) {
        if (entry.path().extension() == ".hpp" &&
            entry.path().string().find("/include/") == std::string::npos)
            out.insert(entry.path().filename().string());
    }
    return out;
}

// "<file>: includes <what> (<why>)" for every include that breaks the layering.
std::vector<std::string> violations(const std::string& layer) {
    static const std::regex include(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
    std::set<std::string> own = private_headers(layer), others;
    for (const auto& [other, below] : kBelow) {
        if (other == layer) continue;
        for (const auto& name : private_headers(other))
            if (!own.contains(name)) others.insert(name);
    }
    std::vector<std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(kRoot / layer)) {
        auto ext = entry.path().extension();
        if (ext != ".cpp" && ext != ".hpp") continue;
        std::ifstream in(entry.path());
        std::string where = fs::relative(entry.path(), kRoot).string();
        for (std::string line; std::getline(in, line);) {
            std::smatch m;
            if (!std::regex_search(line, m, include)) continue;
            const std::string header = m[1];
            std::string base = fs::path(header).filename().string();
            if (header.starts_with("xgrad/")) {
                std::string owner = owner_of_public(header.substr(6));
                if (!owner.empty() && owner != layer && !kBelow.at(layer).contains(owner))
                    out.push_back(where + ": includes " + header + " (layer " + owner + ")");
            } else if (header.find("/src/") != std::string::npos || others.contains(base)) {
                out.push_back(where + ": includes " + header + " (another layer's private header)");
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("no layer includes a header of a higher layer or another layer's private headers") {
    for (const auto& [layer, below] : kBelow) {
        const auto& checked = layer;  // CAPTURE's lambda cannot name a binding in clang 14
        CAPTURE(checked);
        REQUIRE(fs::exists(kRoot / layer));
        auto found = violations(layer);
        std::string report;
        for (const auto& v : found) report += v + "\n";
        CHECK_MESSAGE(found.empty(), report);
    }
}

TEST_CASE("the layering check sees an upward include") {
    // The check itself must be able to fail: core names no nn header, yet the
    // pattern that would flag one does match.
    CHECK(owner_of_public("nn/module.hpp") == "nn");
    CHECK(owner_of_public("xgrad.hpp") == "checkpoint");
    CHECK(owner_of_public("tensor.hpp") == "core");
    CHECK(private_headers("core").contains("internal.hpp"));
}

}  // namespace test_layers
