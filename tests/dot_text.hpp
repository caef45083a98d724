// A reader for the DOT text xg::autograd::to_dot writes, shared by the tests
// of to_dot (tests/core/test_to_dot.cpp) and GraphRecorder
// (tests/inspect/test_graph.cpp): each node with its label, fill and the label
// of the cluster it is drawn in, the edges, and every line it did not read.
#pragma once

#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace test {

struct DotNode {
    std::string id, label, fill, cluster;
};

struct DotText {
    std::vector<DotNode> nodes;
    std::vector<std::pair<std::string, std::string>> edges;  // ids, from -> to
    std::vector<std::string> unparsed;

    const DotNode* find(const std::string& id) const {
        for (const auto& node : nodes) {
            if (node.id == id) return &node;
        }
        return nullptr;
    }
};

inline std::string dot_unescape(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) {
            ++i;
            out += text[i] == 'n' ? '\n' : text[i];
        } else {
            out += text[i];
        }
    }
    return out;
}

inline DotText parse_dot(const std::string& text) {
    static const std::string str = R"re("((?:[^"\\]|\\.)*)")re";
    static const std::regex node(R"(^\s*([ns]\d+) \[label=)" + str +
                                 R"((?:, fillcolor=(\w+))?\];$)");
    static const std::regex edge(R"(^\s*([ns]\d+) -> ([ns]\d+)(?: \[[^\]]*\])?;$)");
    static const std::regex cluster_start(R"(^\s*subgraph cluster_\d+ \{$)");
    static const std::regex cluster_label(R"(^\s*label=)" + str + ";$");
    static const std::regex frame("^(digraph " + str + R"( \{|\s*node \[[^\]]*\];|\})$)");
    DotText dot;
    std::string cluster;
    bool in_cluster = false;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, node)) {
            dot.nodes.push_back({m[1].str(), dot_unescape(m[2].str()), m[3].str(), cluster});
        } else if (std::regex_match(line, m, edge)) {
            dot.edges.emplace_back(m[1].str(), m[2].str());
        } else if (std::regex_match(line, cluster_start)) {
            in_cluster = true;
        } else if (in_cluster && std::regex_match(line, m, cluster_label)) {
            cluster = dot_unescape(m[1].str());
        } else if (in_cluster && line == "    }") {
            in_cluster = false;
            cluster.clear();
        } else if (!std::regex_match(line, frame)) {
            dot.unparsed.push_back(line);
        }
    }
    return dot;
}

}  // namespace test
