// to_dot and render_svg (to_dot.hpp): the walk over a backward graph that
// writes DOT, and running Graphviz on it.
#include "xgrad/to_dot.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <unordered_map>
#include <variant>

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.hpp"

extern char** environ;  // handed to dot, so it sees the caller's fonts and locale

namespace xg::autograd {

namespace {

// ---- DOT text ----

// `lines` as one DOT quoted string, one per line. Graphviz reads backslash
// escapes inside labels (\n, \l, \N ...), so a name's own backslashes and
// quotes are escaped before the line breaks go in.
std::string quoted(const std::vector<std::string>& lines) {
    std::string out = "\"";
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) out += "\\n";
        for (char c : lines[i]) {
            if (c == '"' || c == '\\') out += '\\';
            if (c == '\n') {
                out += "\\n";
                continue;
            }
            out += c;
        }
    }
    return out + "\"";
}

std::string node_statement(const std::string& id, const std::vector<std::string>& label,
                           const char* fill) {
    std::string out = id + " [label=" + quoted(label);
    if (*fill) out += std::string(", fillcolor=") + fill;
    return out + "];";
}

// Statements grouped by cluster, clusters in the order they first appear.
class Statements {
public:
    void add(const std::string& cluster, std::string statement) {
        if (cluster.empty()) {
            outside_.push_back(std::move(statement));
            return;
        }
        auto [it, added] = index_.try_emplace(cluster, clusters_.size());
        if (added) clusters_.push_back({cluster, {}});
        clusters_[it->second].second.push_back(std::move(statement));
    }
    void add_edge(std::string statement) { edges_.push_back(std::move(statement)); }

    std::string finish(const std::string& graph_name) const {
        std::string out = "digraph " + quoted({graph_name}) + " {\n";
        out +=
            "    node [shape=box, style=filled, fillcolor=lightgrey, fontname=monospace, "
            "fontsize=10];\n";
        for (const auto& s : outside_) out += "    " + s + "\n";
        for (std::size_t k = 0; k < clusters_.size(); ++k) {
            out += "    subgraph cluster_" + std::to_string(k) + " {\n";
            out += "        label=" + quoted({clusters_[k].first}) + ";\n";
            for (const auto& s : clusters_[k].second) out += "        " + s + "\n";
            out += "    }\n";
        }
        for (const auto& s : edges_) out += "    " + s + "\n";
        return out + "}\n";
    }

private:
    std::vector<std::string> outside_, edges_;
    std::vector<std::pair<std::string, std::vector<std::string>>> clusters_;
    std::unordered_map<std::string, std::size_t> index_;
};

// ---- the graph ----

// The nodes reachable from root's grad_fn in breadth-first order: nodes[i] is
// drawn as "n<i + 1>" ("n0" is the root tensor). Each edge is (from, to): a
// gradient flows from `to` into `from`, drawn the way the forward ran.
struct Graph {
    std::vector<const Node*> nodes;
    std::vector<std::pair<std::size_t, std::size_t>> edges;
};

Graph walk(const Tensor& root) {
    Graph graph;
    if (!root.grad_fn()) return graph;
    std::unordered_map<const Node*, std::size_t> ids;
    auto id_of = [&](const Node* node) {
        auto [it, added] = ids.try_emplace(node, graph.nodes.size() + 1);
        if (added) graph.nodes.push_back(node);
        return it->second;
    };
    graph.edges.emplace_back(id_of(root.grad_fn().get()), 0);
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {  // grows as the walk finds nodes
        for (const auto& next : graph.nodes[i]->next) {
            if (next) graph.edges.emplace_back(id_of(next.get()), i + 1);
        }
    }
    return graph;
}

using Names = std::unordered_map<const TensorImpl*, std::string>;

// A tensor's name followed by its shape, or `unnamed` when it has no name.
std::vector<std::string> tensor_label(const Tensor& t, const Names& names, const char* unnamed) {
    auto it = names.find(t.impl());
    std::string name = it != names.end() ? it->second : unnamed;
    if (name.empty()) return {shape_str(t.shape())};
    return {name, shape_str(t.shape())};
}

std::vector<std::string> node_label(const Node& node, const Names& names) {
    if (node.is_accumulator) {
        // The accumulator only points at its leaf; a leaf since dropped has no shape to show.
        if (auto leaf = node.output.lock()) return tensor_label(Tensor(leaf), names, "");
        return {std::string(node.name)};
    }
    if (node.released) return {std::string(node.name), "(freed by backward)"};
    return {std::string(node.name)};
}

Shape storage_shape(const Storage& storage) {
    return std::visit([](const auto& values) { return detail::to_shape(values.shape()); },
                      static_cast<const StorageValues&>(storage));
}

// What Node::saved_versions records, as to_dot.hpp's show_saved describes it.
// An expired entry (or an empty one, for an undefined input) is skipped: its
// values are gone, so the backward does not read them.
std::vector<std::vector<std::string>> saved_labels(const Node& node) {
    std::vector<std::vector<std::string>> out;
    for (std::size_t i = 0; i < node.saved_versions.size(); ++i) {
        const Node::SavedVersion& saved = node.saved_versions[i];
        auto storage = saved.storage.lock();
        if (!storage) continue;
        std::vector<std::string> label{
            node.reads == Reads::Output ? std::string("output") : "input " + std::to_string(i),
            shape_str(storage_shape(*storage))};
        if (storage->version != saved.version) label.push_back("modified in place");
        out.push_back(std::move(label));
    }
    return out;
}

}  // namespace

std::string to_dot(const Tensor& root, const DotOptions& options) {
    check(root.defined(), "to_dot: expected a defined tensor (got an undefined one)");
    Names names;
    for (const auto& [name, t] : options.params) {
        if (t.defined()) names.try_emplace(t.impl(), name);  // the first name of a shared tensor
    }
    const Graph graph = walk(root);
    Statements out;
    out.add("", node_statement("n0", tensor_label(root, names, "output"), "darkolivegreen1"));
    std::size_t saved_count = 0;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = *graph.nodes[i];
        const std::string id = fmt::format("n{}", i + 1);  // not "n" + to_string: GCC 12 -Wrestrict
        const std::string cluster = options.cluster_of ? options.cluster_of(node) : "";
        out.add(cluster, node_statement(id, node_label(node, names),
                                        node.is_accumulator ? "lightblue" : ""));
        if (!options.show_saved) continue;
        for (const auto& label : saved_labels(node)) {
            const std::string saved_id = fmt::format("s{}", saved_count++);
            out.add(cluster, node_statement(saved_id, label, "orange"));
            out.add_edge(saved_id + " -> " + id + " [style=dashed, dir=none];");
        }
    }
    for (const auto& [from, to] : graph.edges) out.add_edge(fmt::format("n{} -> n{};", from, to));
    return out.finish(options.graph_name);
}

// ---- render_svg ----

namespace {

// The first executable `program` in the directories of PATH, or "" (an empty
// entry is the current directory, as for the shell).
std::string find_on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    while (true) {
        std::size_t colon = dirs.find(':');
        std::string dir(dirs.substr(0, colon));
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        struct stat info {};
        if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
            ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
        if (colon == std::string_view::npos) return "";
        dirs.remove_prefix(colon + 1);
    }
}

// A fresh file in the temporary directory, removed with this object.
class TempFile {
public:
    explicit TempFile(const char* what) {
        path_ = (std::filesystem::temp_directory_path() / "xgrad-dot-XXXXXX").string();
        fd_ = ::mkstemp(path_.data());
        check(fd_ >= 0, "render_svg: could not create a temporary file for {} ({})", what,
              std::strerror(errno));
    }
    ~TempFile() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    void write_all(std::string_view text) const {
        while (!text.empty()) {
            ssize_t n = ::write(fd_, text.data(), text.size());
            if (n < 0 && errno == EINTR) continue;
            check(n > 0, "render_svg: could not write {} ({})", path_, std::strerror(errno));
            text.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    std::string read_all() const {
        std::ifstream in(path_, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

private:
    std::string path_;
    int fd_ = -1;
};

// Runs program with argv (argv[0] included), its stderr into stderr_fd, and
// returns its wait status.
int run(const std::string& program, std::vector<std::string> args, int stderr_fd) {
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
    pid_t pid = 0;
    int error = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    check(error == 0, "render_svg: could not run {} ({})", program, std::strerror(error));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        check(errno == EINTR, "render_svg: waiting for {} failed ({})", program,
              std::strerror(errno));
    }
    return status;
}

}  // namespace

void render_svg(const std::string& dot, const std::string& svg_path) {
    const std::string program = find_on_path("dot");
    check(!program.empty(),
          "render_svg: Graphviz's 'dot' was not found on PATH (install the graphviz package)");
    TempFile input("the DOT text"), errors("dot's messages");
    input.write_all(dot);
    int status = run(program, {"dot", "-Tsvg", "-o", svg_path, input.path()}, errors.fd());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    std::string message = errors.read_all();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "signal " + std::to_string(WTERMSIG(status));
    fail("render_svg: dot -Tsvg failed ({}): {}", how, message);
}

}  // namespace xg::autograd
