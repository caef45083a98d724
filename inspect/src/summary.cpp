// summary: one recorded forward, the counting rules of summary.hpp, and
// torchinfo's table.
#include "xgrad/inspect/summary.hpp"

#include <algorithm>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "xgrad/autograd.hpp"

namespace xg::inspect {

namespace {

// Every tensor in a call's value, depth-first (a tuple output gives each of its tensors).
void collect_tensors(const nn::Value& value, std::vector<Tensor>& out) {
    if (value.is_tensor()) {
        if (value.tensor().defined()) out.push_back(value.tensor());
    } else if (value.is_list()) {
        for (const nn::Value& item : value.list()) collect_tensors(item, out);
    }
}

std::int64_t bytes_of(const std::vector<Tensor>& tensors) {
    std::int64_t bytes = 0;
    for (const Tensor& t : tensors) bytes += static_cast<std::int64_t>(t.nbytes());
    return bytes;
}

std::int64_t argument_bytes(const nn::Args& args, const nn::Kwargs& kwargs) {
    std::vector<Tensor> inputs;
    for (const nn::Value& arg : args) collect_tensors(arg, inputs);
    for (const auto& [key, value] : kwargs) collect_tensors(value, inputs);
    return bytes_of(inputs);
}

// A forward's argument passed by position or by name; undefined when absent.
Tensor argument(const nn::Args& args, const nn::Kwargs& kwargs, std::size_t position,
                const char* name) {
    if (position < args.size())
        return args[position].is_tensor() ? args[position].tensor() : Tensor();
    for (const auto& [key, value] : kwargs) {
        if (key == name && value.is_tensor()) return value.tensor();
    }
    return Tensor();
}

// (L N + 2 S N) E^2 for the q, k, v projections, 2 N L S E for q k^T and the
// weights times v (each head does L S head_dim, and the heads' dims add to E).
std::int64_t attention_mult_adds(const nn::MultiheadAttention& attention, const nn::Args& args,
                                 const nn::Kwargs& kwargs) {
    const Tensor query = argument(args, kwargs, 0, "query");
    const Tensor key = argument(args, kwargs, 1, "key");
    if (!query.defined() || !key.defined() || attention.embed_dim == 0) return 0;
    const auto e = static_cast<std::int64_t>(attention.embed_dim);
    // Unbatched [L, E] inputs are one sequence.
    const std::int64_t n =
        query.dim() == 3 ? static_cast<std::int64_t>(query.shape()[attention.batch_first ? 0 : 1])
                         : 1;
    if (n == 0) return 0;
    const auto query_rows = static_cast<std::int64_t>(query.numel()) / e;  // L N
    const auto key_rows = static_cast<std::int64_t>(key.numel()) / e;      // S N
    return (query_rows + 2 * key_rows) * e * e + 2 * query_rows * (key_rows / n) * e;
}

// The mult-adds of the matrix products a call does itself (see summary.hpp).
std::int64_t mult_adds(const nn::Module& module, const nn::Args& args, const nn::Kwargs& kwargs,
                       const std::vector<Tensor>& outputs) {
    if (const auto* linear = dynamic_cast<const nn::Linear*>(&module)) {
        if (outputs.empty() || linear->out_features == 0 || !linear->weight.defined()) return 0;
        const std::size_t rows = outputs.front().numel() / linear->out_features;
        return static_cast<std::int64_t>(linear->weight.numel() * rows);
    }
    if (const auto* attention = dynamic_cast<const nn::MultiheadAttention*>(&module))
        return attention_mult_adds(*attention, args, kwargs);
    return 0;
}

// Removes its hooks when it goes, however the scope is left.
struct Handles {
    std::vector<RemovableHandle> list;
    ~Handles() {
        for (RemovableHandle& handle : list) handle.remove();
    }
};

// A pre hook and an always-call forward hook on every module of the tree: the
// pre hook opens a row (so rows follow the order calls start, and a call's
// depth is how many calls are open), the forward hook fills in its outputs.
class Recorder {
public:
    explicit Recorder(nn::Module& root) {
        const auto modules = root.named_modules();
        handles_.list.reserve(2 * modules.size());
        for (const auto& [path, module] : modules) {
            paths_.emplace(module.get(), path);
            handles_.list.push_back(module->register_forward_pre_hook(
                [this](nn::Module& m, const nn::Args& args, const nn::Kwargs& kwargs) {
                    on_call(m, args, kwargs);
                },
                false, true));
            // always_call, so a call that throws still closes its row.
            handles_.list.push_back(module->register_forward_hook(
                [this](nn::Module& m, const nn::Args& args, const nn::Kwargs& kwargs,
                       const nn::Value& output) { on_return(m, args, kwargs, output); },
                false, true, true));
        }
    }

    Recorder(const Recorder&) = delete;  // the hooks point at this one
    Recorder& operator=(const Recorder&) = delete;

    std::vector<SummaryRow> rows;
    std::vector<const nn::Module*> row_modules;  // beside rows
    std::int64_t input_bytes = 0;

private:
    void on_call(const nn::Module& m, const nn::Args& args, const nn::Kwargs& kwargs) {
        SummaryRow row;
        const auto path = paths_.find(&m);
        if (path != paths_.end()) row.name = path->second;
        row.type = m.name();
        row.depth = open_.size();
        row.recursive = !called_.insert(&m).second;
        if (open_.empty()) input_bytes += argument_bytes(args, kwargs);
        rows.push_back(std::move(row));
        row_modules.push_back(&m);
        open_.push_back(rows.size() - 1);
    }

    void on_return(const nn::Module& m, const nn::Args& args, const nn::Kwargs& kwargs,
                   const nn::Value& output) {
        // m's innermost open call; calls inside it that are still open (a
        // caller caught their error) close with it.
        const auto it = std::find_if(open_.rbegin(), open_.rend(),
                                     [&](std::size_t r) { return row_modules[r] == &m; });
        if (it == open_.rend()) return;
        SummaryRow& row = rows[*it];
        open_.erase(std::next(it).base(), open_.end());
        std::vector<Tensor> outputs;
        collect_tensors(output, outputs);  // none when forward threw
        for (const Tensor& t : outputs) row.output_shapes.push_back(t.shape());
        row.output_bytes = bytes_of(outputs);
        row.mult_adds = mult_adds(m, args, kwargs, outputs);
    }

    std::unordered_map<const nn::Module*, std::string> paths_;
    std::set<const nn::Module*> called_;
    std::vector<std::size_t> open_;  // rows whose call is running, outermost first
    Handles handles_;                // last member: removed first, before what the hooks use
};

// Every module's training flag, put back on destruction. train() recurses, so
// the flags go back parents first and each child then gets its own. (A module
// shared by two parents gets the flag of the later parent in that order.)
class ModeRestore {
public:
    explicit ModeRestore(nn::Module& root) {
        for (const auto& [path, module] : root.named_modules())
            saved_.emplace_back(module, module->is_training());
    }
    ~ModeRestore() {
        for (const auto& [module, training] : saved_) module->train(training);
    }
    ModeRestore(const ModeRestore&) = delete;
    ModeRestore& operator=(const ModeRestore&) = delete;

private:
    std::vector<std::pair<std::shared_ptr<nn::Module>, bool>> saved_;
};

// Counts each parameter of `root` once, on the deepest row whose module holds
// it (the first such row in call order), and the parameter totals.
void count_parameters(const nn::Module& root, const std::vector<const nn::Module*>& row_modules,
                      ModelSummary& out) {
    std::unordered_map<const TensorImpl*, std::size_t> owner;
    for (std::size_t r = 0; r < out.rows.size(); ++r) {
        if (out.rows[r].recursive) continue;
        for (const Tensor& p : row_modules[r]->parameters()) {
            const auto [it, first] = owner.try_emplace(p.impl(), r);
            if (!first && out.rows[r].depth > out.rows[it->second].depth) it->second = r;
        }
    }
    std::set<const TensorImpl*> seen;
    for (const Tensor& p : root.parameters()) {
        if (!seen.insert(p.impl()).second) continue;
        const auto n = static_cast<std::int64_t>(p.numel());
        const std::int64_t trainable = p.requires_grad() ? n : 0;
        out.total_params += n;
        out.trainable_params += trainable;
        out.param_bytes += static_cast<std::int64_t>(p.nbytes());
        if (const auto it = owner.find(p.impl()); it != owner.end()) {
            out.rows[it->second].params += n;
            out.rows[it->second].trainable += trainable;
        }
    }
}

void count_calls(ModelSummary& out) {
    const std::vector<SummaryRow>& rows = out.rows;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        out.mult_adds += rows[r].mult_adds;
        const bool leaf = r + 1 == rows.size() || rows[r + 1].depth <= rows[r].depth;
        if (leaf) out.activation_bytes += rows[r].output_bytes;
    }
}

}  // namespace

ModelSummary summary(nn::Module& module, const std::function<void()>& forward) {
    ModelSummary out;
    ModeRestore modes(module);
    Recorder recorder(module);
    module.eval();
    {
        NoGradGuard no_grad;
        forward();
    }
    out.rows = std::move(recorder.rows);
    out.input_bytes = recorder.input_bytes;
    count_parameters(module, recorder.row_modules, out);
    count_calls(out);
    return out;
}

// ---- the table ----

namespace {

// Display columns of UTF-8 text: the tree's box-drawing characters take three bytes and one column.
std::size_t columns(const std::string& text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

std::string pad(const std::string& text, std::size_t width) {
    const std::size_t used = columns(text);
    return text + std::string(width > used ? width - used : 0, ' ');
}

std::string with_commas(std::int64_t n) {
    const std::string digits = std::to_string(n < 0 ? -n : n);
    std::string out = n < 0 ? "-" : "";
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// torchinfo's "├─Linear (layer1): 1-1": the tree, the class, the member name,
// the depth and the call's number among the calls at that depth.
std::string layer_label(const SummaryRow& row, std::size_t index) {
    std::string label;
    if (row.depth > 0) {
        for (std::size_t d = 1; d < row.depth; ++d) label += "│    ";
        label += row.depth == 1 ? "├─" : "└─";
    }
    label += row.type;
    const std::size_t dot = row.name.rfind('.');
    const std::string member = dot == std::string::npos ? row.name : row.name.substr(dot + 1);
    if (!member.empty()) label += " (" + member + ")";
    if (row.depth > 0) label += fmt::format(": {}-{}", row.depth, index);
    return label;
}

std::vector<std::string> row_cells(const SummaryRow& row, std::size_t index) {
    std::string shapes;
    for (const Shape& shape : row.output_shapes)
        shapes += (shapes.empty() ? "" : ", ") + shape_str(shape);
    std::string params = row.recursive    ? "(recursive)"
                         : row.params > 0 ? with_commas(row.params)
                                          : "--";
    std::string trainable = row.recursive || row.params == 0 ? "--"
                            : row.trainable == row.params    ? "True"
                            : row.trainable == 0             ? "False"
                                                             : "Partial";
    return {layer_label(row, index), shapes.empty() ? "--" : shapes, std::move(params),
            std::move(trainable), row.mult_adds > 0 ? with_commas(row.mult_adds) : "--"};
}

// One line of padded cells, without trailing blanks.
std::string table_line(const std::vector<std::string>& cells,
                       const std::vector<std::size_t>& widths) {
    std::string line;
    for (std::size_t c = 0; c < cells.size(); ++c) line += pad(cells[c], widths[c]);
    line.erase(line.find_last_not_of(' ') + 1);
    return line + "\n";
}

std::string megabytes(std::int64_t bytes) {
    return fmt::format("{:.2f}", static_cast<double>(bytes) / 1e6);
}

// torchinfo's unit: millions, or billions / trillions once there are that many.
std::string mult_adds_line(std::int64_t n) {
    const double x = static_cast<double>(n);
    if (x >= 1e12) return fmt::format("Total mult-adds (T): {:.2f}\n", x / 1e12);
    if (x >= 1e9) return fmt::format("Total mult-adds (G): {:.2f}\n", x / 1e9);
    return fmt::format("Total mult-adds (M): {:.2f}\n", x / 1e6);
}

}  // namespace

std::string ModelSummary::to_string() const {
    std::vector<std::vector<std::string>> table{
        {"Layer (type (var_name):depth-idx)", "Output Shape", "Param #", "Trainable", "Mult-Adds"}};
    std::unordered_map<std::size_t, std::size_t> calls_at_depth;
    for (const SummaryRow& row : rows) table.push_back(row_cells(row, ++calls_at_depth[row.depth]));
    // torchinfo's widths (40 for the layer, 25 for the shapes), wider when the text is.
    std::vector<std::size_t> widths{40, 25, 15, 12, 15};
    for (const auto& cells : table) {
        for (std::size_t c = 0; c < cells.size(); ++c)
            widths[c] = std::max(widths[c], columns(cells[c]) + 2);
    }
    std::size_t total_width = 0;
    for (std::size_t w : widths) total_width += w;
    const std::string rule = std::string(total_width, '=') + "\n";

    std::string out = rule + table_line(table.front(), widths) + rule;
    for (std::size_t r = 1; r < table.size(); ++r) out += table_line(table[r], widths);
    out += rule;
    out += "Total params: " + with_commas(total_params) + "\n";
    out += "Trainable params: " + with_commas(trainable_params) + "\n";
    out += "Non-trainable params: " + with_commas(total_params - trainable_params) + "\n";
    out += mult_adds_line(mult_adds) + rule;
    // Forward/backward: each activation and its gradient, as torchinfo's estimate.
    const std::int64_t pass_bytes = 2 * activation_bytes;
    out += "Input size (MB): " + megabytes(input_bytes) + "\n";
    out += "Forward/backward pass size (MB): " + megabytes(pass_bytes) + "\n";
    out += "Params size (MB): " + megabytes(param_bytes) + "\n";
    out += "Estimated Total Size (MB): " + megabytes(input_bytes + pass_bytes + param_bytes) + "\n";
    return out + rule;
}

std::ostream& operator<<(std::ostream& out, const ModelSummary& summary) {
    return out << summary.to_string();
}

}  // namespace xg::inspect
