// Module state: state_dict, load_state_dict and extra state, key for key as
// PyTorch produces and consumes them.
//
// A load runs in three steps, so that a failed load changes nothing:
//   plan_load      walks the tree (running load pre hooks) and lists every
//                  (target, source) assignment and every finding: missing,
//                  unexpected and mis-sized keys; nothing is changed yet;
//   apply_load     writes the values, keeping what it replaces when asked;
//   rollback_load  puts those back when the load fails after being applied (a
//                  load post hook throws, or strict keys the hooks did not forgive).
#include <cstdint>
#include <cstring>

#include <xtensor/xnoalias.hpp>

#include "xgrad/autograd.hpp"
#include "xgrad/nn/module.hpp"

namespace xg::nn {

namespace {
constexpr const char* kExtraState = "_extra_state";

std::string quoted_list(const std::vector<std::string>& keys) {
    std::vector<std::string> quoted;
    for (const auto& key : keys) quoted.push_back("\"" + key + "\"");
    return fmt::format("{}", fmt::join(quoted, ", "));
}

// Overwrites target's values with `converted`, already of target's dtype and
// shape: no allocation, so nothing can fail half way.
void copy_values_into(const Tensor& target, const Tensor& converted) {
    std::memcpy(target.data_ptr(), converted.data_ptr(), target.nbytes());
}

// One tensor write of a load: `value` into the model's `target`, either by
// taking value's storage (assign=true, set_data as `param.data = value`) or by
// copying its values into target's own storage. Neither allocates nor throws.
struct TensorWrite {
    Tensor target;
    Tensor value;
    bool take_storage = false;

    void run() const {
        if (take_storage)
            target.set_data(value);
        else
            copy_values_into(target, value);
    }
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Set by the base get_extra_state, so extra_state_if_any() can tell nobody
// overrode it. Per thread, so threads may take state_dicts of one module at once.
thread_local bool extra_state_is_default = false;
}  // namespace

StateDict Module::get_extra_state() const {
    extra_state_is_default = true;
    return {};
}

void Module::set_extra_state(const StateDict&) {
    throw Error(fmt::format(
        "{}: state_dict has extra state but the module does not override set_extra_state", name()));
}

std::optional<StateDict> Module::extra_state_if_any() const {
    extra_state_is_default = false;
    StateDict state = get_extra_state();
    if (extra_state_is_default) return std::nullopt;
    return state;
}

// ---- state_dict ----

// What state_dict saves and load_state_dict fills for this module alone:
// defined parameters, then defined persistent buffers, in registration order.
std::vector<std::pair<std::string, Tensor>> Module::saved_members() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& [member, p] : parameters_) {
        if (p.defined()) out.emplace_back(member, p);
    }
    for (const auto& [member, b] : buffers_) {
        bool persistent = std::find(non_persistent_.begin(), non_persistent_.end(), member) ==
                          non_persistent_.end();
        if (b.defined() && persistent) out.emplace_back(member, b);
    }
    return out;
}

void Module::save_into(StateDict& destination, const std::string& prefix, bool keep_vars) {
    for (auto& [id, hook] : state_dict_pre_hooks_.snapshot()) hook(*this, prefix, keep_vars);
    for (const auto& [member, t] : saved_members()) {
        destination.insert_or_assign(prefix + member, keep_vars ? t : t.detach());
    }
    if (auto extra = extra_state_if_any()) {
        for (const auto& [key, value] : *extra) {
            destination.insert_or_assign(prefix + kExtraState + "." + key, value);
        }
    }
    for (const auto& [member, child] : children_) {
        if (child) child->save_into(destination, prefix + member + ".", keep_vars);
    }
    for (auto& [id, hook] : state_dict_post_hooks_.snapshot()) hook(*this, destination, prefix);
}

StateDict Module::state_dict(const std::string& prefix, bool keep_vars) {
    StateDict destination;
    save_into(destination, prefix, keep_vars);
    return destination;
}

// ---- load_state_dict: plan ----

// Everything a load will do, gathered before anything is changed. The add_*
// functions plan one module's part, under its key prefix.
struct Module::LoadPlan {
    std::vector<std::pair<Tensor, Tensor>> assignments;       // (model tensor, checkpoint tensor)
    std::vector<std::pair<Module*, StateDict>> extra_states;  // set_extra_state calls to make
    std::vector<std::string> size_mismatches;                 // PyTorch's message for each
    std::vector<Module*> post_order;  // whose load post hooks run, children first
    IncompatibleKeys keys;

    void add_tensors(const NamedTensors& local, const StateDict& state_dict,
                     const std::string& prefix);
    void add_extra_state(Module& module, const StateDict& state_dict, const std::string& prefix);
    void add_unexpected_keys(const Module& module, const NamedTensors& local,
                             const StateDict& state_dict, const std::string& prefix);

    bool has_post_hooks() const;
    void run_post_hooks();
    // Whether a strict load fails on missing or unexpected keys.
    bool key_errors(bool strict) const {
        return strict && (!keys.missing_keys.empty() || !keys.unexpected_keys.empty());
    }
    std::string error_text(const std::string& module_name, bool strict) const;
};

void Module::LoadPlan::add_tensors(const NamedTensors& local, const StateDict& state_dict,
                                   const std::string& prefix) {
    for (const auto& [member, tensor] : local) {
        std::string key = prefix + member;
        if (!state_dict.contains(key)) {
            keys.missing_keys.push_back(key);
            continue;
        }
        const Tensor& source = state_dict.at(key);
        if (!source.defined() || source.shape() != tensor.shape()) {
            size_mismatches.push_back(fmt::format(
                "size mismatch for {}: copying a param with shape {} from checkpoint, the shape "
                "in current model is {}.",
                key, source.defined() ? shape_str(source.shape()) : "None",
                shape_str(tensor.shape())));
            continue;
        }
        assignments.emplace_back(tensor, source);
    }
}

// A module with extra state takes every "<prefix>_extra_state.<key>" entry;
// with none, "<prefix>_extra_state" is missing.
void Module::LoadPlan::add_extra_state(Module& module, const StateDict& state_dict,
                                       const std::string& prefix) {
    if (!module.extra_state_if_any()) return;
    const std::string extra_prefix = prefix + kExtraState + ".";
    StateDict extra;
    for (const auto& [key, value] : state_dict) {
        if (key.starts_with(extra_prefix)) {
            extra.insert_or_assign(key.substr(extra_prefix.size()), value);
        }
    }
    if (extra.empty())
        keys.missing_keys.push_back(prefix + kExtraState);
    else
        extra_states.emplace_back(&module, std::move(extra));
}

// Keys under `prefix` whose first part names neither a tensor of `local` nor
// a child (extra state keys are add_extra_state's).
void Module::LoadPlan::add_unexpected_keys(const Module& module, const NamedTensors& local,
                                           const StateDict& state_dict, const std::string& prefix) {
    const std::string extra_prefix = prefix + kExtraState;
    for (const auto& [key, value] : state_dict) {
        if (!key.starts_with(prefix) || key.starts_with(extra_prefix)) continue;
        std::string first = key.substr(prefix.size());
        first = first.substr(0, first.find('.'));
        bool known = std::any_of(local.begin(), local.end(),
                                 [&](const auto& entry) { return entry.first == first; });
        const auto* child = module.children_.find(first);
        if (!known && !(child && *child)) keys.unexpected_keys.push_back(key);
    }
}

bool Module::LoadPlan::has_post_hooks() const {
    return std::any_of(post_order.begin(), post_order.end(),
                       [](const Module* m) { return !m->load_post_hooks_.empty(); });
}

void Module::LoadPlan::run_post_hooks() {
    for (Module* module : post_order) {
        for (auto& [id, hook] : module->load_post_hooks_.snapshot()) hook(*module, keys);
    }
}

// PyTorch's message: key errors only when strict, size mismatches always.
std::string Module::LoadPlan::error_text(const std::string& module_name, bool strict) const {
    std::vector<std::string> messages;
    if (strict && !keys.missing_keys.empty()) {
        messages.push_back(
            fmt::format("Missing key(s) in state_dict: {}. ", quoted_list(keys.missing_keys)));
    }
    if (strict && !keys.unexpected_keys.empty()) {
        messages.push_back(fmt::format("Unexpected key(s) in state_dict: {}. ",
                                       quoted_list(keys.unexpected_keys)));
    }
    for (const auto& mismatch : size_mismatches) messages.push_back(mismatch);
    return fmt::format("Error(s) in loading state_dict for {}:\n\t{}", module_name,
                       fmt::join(messages, "\n\t"));
}

// Runs the load pre hooks of this module (which may edit `state_dict`), plans
// its own part, then its children's.
void Module::plan_load(LoadPlan& plan, StateDict& state_dict, const std::string& prefix) {
    for (auto& [id, hook] : load_pre_hooks_.snapshot()) hook(*this, state_dict, prefix);
    const NamedTensors local = saved_members();
    plan.add_tensors(local, state_dict, prefix);
    plan.add_extra_state(*this, state_dict, prefix);
    plan.add_unexpected_keys(*this, local, state_dict, prefix);
    for (const auto& [member, child] : children_) {
        if (child) child->plan_load(plan, state_dict, prefix + member + ".");
    }
    plan.post_order.push_back(this);
}

// ---- load_state_dict: apply and roll back ----

// What apply_load replaced, for rollback_load to put back.
struct Module::LoadUndo {
    std::vector<TensorWrite> tensors;  // writes of the replaced values; empty unless kept
    std::vector<std::pair<Module*, std::optional<StateDict>>> extra_states;  // before the load
};

// First what can throw, while nothing has changed yet: converting the
// checkpoint's values to the model's dtypes (which allocates) and, with
// `keep_replaced`, saving the values about to be replaced. Then the modules'
// set_extra_state (user code; undone if one throws), then tensor writes, which
// cannot throw. Replaced tensors need keeping only when something can still
// fail the load after it is applied: its load post hooks.
Module::LoadUndo Module::apply_load(const LoadPlan& plan, bool assign, bool keep_replaced) {
    std::vector<TensorWrite> writes, replaced;
    {
        NoGradGuard no_grad;
        for (const auto& [target, source] : plan.assignments) {
            // assign=true takes the checkpoint's storage unless a dtype conversion is needed.
            bool take_storage = assign && source.dtype() == target.dtype();
            writes.push_back({target, source.detach().to(target.dtype()), take_storage});
            // A target that takes other storage keeps its own intact: holding it is enough.
            if (keep_replaced) {
                replaced.push_back(
                    {target, take_storage ? target.detach() : target.clone(), take_storage});
            }
        }
    }
    LoadUndo undo;
    try {
        for (const auto& [module, extra] : plan.extra_states) {
            undo.extra_states.emplace_back(module, module->extra_state_if_any());
            module->set_extra_state(extra);
        }
    } catch (...) {
        rollback_load(undo);  // no tensor written yet: only extra states to restore
        throw;
    }
    for (const TensorWrite& write : writes) write.run();
    undo.tensors = std::move(replaced);
    return undo;
}

void Module::rollback_load(const LoadUndo& undo) {
    for (const TensorWrite& write : undo.tensors) write.run();
    for (const auto& [module, before] : undo.extra_states) {
        try {
            if (before) module->set_extra_state(*before);
        } catch (...) {  // best effort: the first error is the one to report
        }
    }
}

IncompatibleKeys Module::load_state_dict(const StateDict& state_dict, bool strict, bool assign) {
    StateDict working = state_dict;  // pre hooks may edit it; the caller's stays intact
    LoadPlan plan;
    plan_load(plan, working, "");
    // Load post hooks judge the final key lists and may forgive missing or
    // unexpected keys; with any of them the load is applied first and judged
    // afterwards, without them it fails before anything changes.
    const bool post_hooks = plan.has_post_hooks();
    if (!plan.size_mismatches.empty() || (!post_hooks && plan.key_errors(strict))) {
        throw Error(plan.error_text(name(), strict));
    }
    LoadUndo undo = apply_load(plan, assign, /*keep_replaced=*/post_hooks);
    if (!post_hooks) return plan.keys;
    try {
        plan.run_post_hooks();
    } catch (...) {
        rollback_load(undo);
        throw;
    }
    if (plan.key_errors(strict)) {
        rollback_load(undo);
        throw Error(plan.error_text(name(), strict));
    }
    return plan.keys;
}

}  // namespace xg::nn
