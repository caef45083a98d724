// GraphRecorder (graph.hpp): which module made each node of a backward graph.
//
// A forward pre hook notes where the node numbering stands when a module's
// call starts; its forward hook walks back from the call's outputs through
// the nodes numbered after that point, which are exactly the nodes made during
// the call that the outputs depend on, and gives each one not yet claimed to
// the module. Hooks of inner modules run first, so an inner module claims its
// nodes before the outer one walks over them: the innermost module wins. The
// walk passes through claimed nodes, since the outer module's own earlier ops
// (before it called the inner one) lie behind them. Numbers, not the inputs'
// nodes, bound the walk: a module may also use tensors it did not receive as
// inputs (a cached mask), and their history is not its own.
#include "xgrad/inspect/graph.hpp"

#include <algorithm>
#include <unordered_set>

#include "xgrad/autograd.hpp"
#include "xgrad/to_dot.hpp"

namespace xg::inspect {

namespace {

// Nodes take their sequence_nr from one process-wide counter as they are made,
// so a throwaway node's number lies between every node made before it and
// every node made after.
std::uint64_t next_sequence_nr() { return autograd::Node("", {}, nullptr).sequence_nr; }

void collect_tensors(const nn::Value& value, std::vector<Tensor>& out) {
    if (value.is_tensor()) {
        out.push_back(value.tensor());
    } else if (value.is_list()) {
        for (const auto& item : value.list()) collect_tensors(item, out);
    }
}

}  // namespace

GraphRecorder::GraphRecorder(nn::Module& model) : model_(model) {
    for (const auto& [path, module] : model.named_modules()) {
        handles_.push_back(module->register_forward_pre_hook(
            [this, path = path](nn::Module& m, const nn::Args&) { enter(m, path); }));
        // always_call: a forward that throws still ends its call here.
        handles_.push_back(module->register_forward_hook(
            [this](nn::Module& m, const nn::Args&, const nn::Value& output) {
                std::vector<Tensor> outputs;
                collect_tensors(output, outputs);
                leave(m, outputs);
            },
            /*prepend=*/false, /*always_call=*/true));
    }
}

void GraphRecorder::remove() {
    for (auto& handle : handles_) handle.remove();
    handles_.clear();
    calls_.clear();
}

void GraphRecorder::enter(const nn::Module& module, const std::string& path) {
    calls_.push_back({&module, path, next_sequence_nr()});
}

void GraphRecorder::leave(const nn::Module& module, const std::vector<Tensor>& outputs) {
    // The innermost call of this module; calls above it whose forward hook
    // never ran (a later pre hook threw) end with it.
    auto call = std::find_if(calls_.rbegin(), calls_.rend(),
                             [&](const Call& c) { return c.module == &module; });
    if (call == calls_.rend()) return;
    const Call ending = *call;
    calls_.erase(std::prev(call.base()), calls_.end());

    std::vector<std::shared_ptr<autograd::Node>> stack;
    for (const Tensor& t : outputs) {
        if (t.defined()) stack.push_back(t.grad_fn());
    }
    std::unordered_set<const autograd::Node*> seen;
    while (!stack.empty()) {
        std::shared_ptr<autograd::Node> node = std::move(stack.back());
        stack.pop_back();
        if (!node || node->is_accumulator || node->sequence_nr <= ending.first_node ||
            !seen.insert(node.get()).second)
            continue;
        auto [it, added] = owners_.try_emplace(node.get(), Owner{node, ending.path});
        if (!added && it->second.node.expired()) it->second = Owner{node, ending.path};
        for (const auto& next : node->next) stack.push_back(next);
    }
    // Entries of graphs since freed are dropped now and then, so a recorder
    // left on through training stays as large as the graphs alive.
    if (owners_.size() > 2 * live_after_prune_ + 1024) {
        std::erase_if(owners_, [](const auto& entry) { return entry.second.node.expired(); });
        live_after_prune_ = owners_.size();
    }
}

std::string GraphRecorder::module_of(const autograd::Node& node) const {
    auto it = owners_.find(&node);
    if (it == owners_.end() || it->second.node.lock().get() != &node) return "";
    return it->second.path;
}

std::string GraphRecorder::to_dot(const Tensor& root, bool show_saved) const {
    autograd::DotOptions options;
    options.show_saved = show_saved;
    options.params = model_.named_parameters();
    // A parameter's leaf is drawn with the module that owns it: "layer1.weight" in layer1.
    std::unordered_map<const TensorImpl*, std::string> owner_of_param;
    for (const auto& [name, param] : options.params) {
        std::size_t dot = name.rfind('.');
        owner_of_param.try_emplace(param.impl(),
                                   dot == std::string::npos ? "" : name.substr(0, dot));
    }
    options.cluster_of = [&](const autograd::Node& node) -> std::string {
        if (!node.is_accumulator) return module_of(node);
        auto leaf = node.output.lock();
        auto it = leaf ? owner_of_param.find(leaf.get()) : owner_of_param.end();
        return it != owner_of_param.end() ? it->second : "";
    };
    return autograd::to_dot(root, options);
}

}  // namespace xg::inspect
