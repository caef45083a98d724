// Module state: state_dict, load_state_dict and extra state, key for key as
// PyTorch produces and consumes them.
#include <xtensor/xnoalias.hpp>

#include "internal.hpp"
#include "xgrad/nn/module.hpp"

namespace xg::nn {

void replace_storage(const Tensor& target, const Tensor& source);  // module.cpp

namespace {
constexpr const char* kExtraState = "_extra_state";

bool starts_with(const std::string& text, const std::string& prefix) {
    return text.compare(0, prefix.size(), prefix) == 0;
}

std::string quoted_list(const std::vector<std::string>& keys) {
    std::vector<std::string> quoted;
    for (const auto& key : keys) quoted.push_back("\"" + key + "\"");
    return fmt::format("{}", fmt::join(quoted, ", "));
}

// Overwrites target's values with `converted`, already of target's dtype and
// shape: no allocation, so nothing can fail half way.
void copy_values_into(const Tensor& target, const Tensor& converted) {
    std::visit(
        [&](auto& dst) {
            using T = typename std::decay_t<decltype(dst)>::value_type;
            xt::noalias(dst) = converted.data<T>();
        },
        *target.impl()->storage);
}
}  // namespace

namespace {
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

void Module::save_into(StateDict& destination, const std::string& prefix, bool keep_vars) {
    for (auto& [id, hook] : state_dict_pre_hooks_.snapshot()) hook(*this, prefix, keep_vars);
    for (const auto& [member, p] : parameters_) {
        if (p.defined()) destination.insert_or_assign(prefix + member, keep_vars ? p : p.detach());
    }
    for (const auto& [member, b] : buffers_) {
        bool persistent = std::find(non_persistent_.begin(), non_persistent_.end(), member) ==
                          non_persistent_.end();
        if (b.defined() && persistent) {
            destination.insert_or_assign(prefix + member, keep_vars ? b : b.detach());
        }
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

// ---- load_state_dict ----

// Everything a load will do, gathered before anything is changed.
struct Module::LoadPlan {
    std::vector<std::pair<Tensor, Tensor>> copies;  // (model tensor, checkpoint tensor)
    std::vector<std::pair<Module*, StateDict>> extra_states;
    std::vector<std::string> size_mismatches;
    std::vector<Module*> post_order;  // whose load post hooks run, children first
    IncompatibleKeys keys;
};

void Module::plan_load(LoadPlan& plan, StateDict& state_dict, const std::string& prefix) {
    for (auto& [id, hook] : load_pre_hooks_.snapshot()) hook(*this, state_dict, prefix);
    std::vector<std::pair<std::string, Tensor>> local;
    for (const auto& [member, p] : parameters_) {
        if (p.defined()) local.emplace_back(member, p);
    }
    for (const auto& [member, b] : buffers_) {
        bool persistent = std::find(non_persistent_.begin(), non_persistent_.end(), member) ==
                          non_persistent_.end();
        if (b.defined() && persistent) local.emplace_back(member, b);
    }
    for (const auto& [member, tensor] : local) {
        std::string key = prefix + member;
        if (!state_dict.contains(key)) {
            plan.keys.missing_keys.push_back(key);
            continue;
        }
        const Tensor& source = state_dict.at(key);
        if (!source.defined() || source.shape() != tensor.shape()) {
            plan.size_mismatches.push_back(fmt::format(
                "size mismatch for {}: copying a param with shape {} from checkpoint, the shape "
                "in current model is {}.",
                key, source.defined() ? shape_str(source.shape()) : "None",
                shape_str(tensor.shape())));
            continue;
        }
        plan.copies.emplace_back(tensor, source);
    }
    std::string extra_prefix = prefix + kExtraState;
    if (extra_state_if_any()) {
        StateDict extra;
        for (const auto& [key, value] : state_dict) {
            if (starts_with(key, extra_prefix + ".")) {
                extra.insert_or_assign(key.substr(extra_prefix.size() + 1), value);
            }
        }
        if (extra.empty())
            plan.keys.missing_keys.push_back(extra_prefix);
        else
            plan.extra_states.emplace_back(this, std::move(extra));
    }
    for (const auto& [key, value] : state_dict) {
        if (!starts_with(key, prefix) || starts_with(key, extra_prefix)) continue;
        std::string first = key.substr(prefix.size());
        first = first.substr(0, first.find('.'));
        bool known = std::any_of(local.begin(), local.end(),
                                 [&](const auto& entry) { return entry.first == first; });
        const auto* child = children_.find(first);
        if (!known && !(child && *child)) plan.keys.unexpected_keys.push_back(key);
    }
    for (const auto& [member, child] : children_) {
        if (child) child->plan_load(plan, state_dict, prefix + member + ".");
    }
    plan.post_order.push_back(this);
}

IncompatibleKeys Module::load_state_dict(const StateDict& state_dict, bool strict, bool assign) {
    StateDict working = state_dict;  // pre hooks may edit it; the caller's stays intact
    LoadPlan plan;
    plan_load(plan, working, "");

    auto error_text = [&] {
        std::vector<std::string> messages;
        if (strict && !plan.keys.missing_keys.empty()) {
            messages.push_back(fmt::format("Missing key(s) in state_dict: {}. ",
                                           quoted_list(plan.keys.missing_keys)));
        }
        if (strict && !plan.keys.unexpected_keys.empty()) {
            messages.push_back(fmt::format("Unexpected key(s) in state_dict: {}. ",
                                           quoted_list(plan.keys.unexpected_keys)));
        }
        for (const auto& mismatch : plan.size_mismatches) messages.push_back(mismatch);
        return fmt::format("Error(s) in loading state_dict for {}:\n\t{}", name(),
                           fmt::join(messages, "\n\t"));
    };
    bool key_errors =
        strict && (!plan.keys.missing_keys.empty() || !plan.keys.unexpected_keys.empty());
    bool post_hooks = std::any_of(plan.post_order.begin(), plan.post_order.end(),
                                  [](Module* m) { return !m->load_post_hooks_.empty(); });
    // Fail before touching anything; only post hooks (which may forgive missing
    // or unexpected keys) force us to apply first and judge afterwards.
    if (!plan.size_mismatches.empty() || (key_errors && !post_hooks)) throw Error(error_text());

    // Strong guarantee: first what can throw (dtype conversions, which allocate,
    // and user set_extra_state, undone on failure), then copies that cannot.
    // Load post hooks give their verdict after the values are in, so then the
    // values about to be replaced are kept too, and put back if the load fails.
    auto assigns = [&](std::size_t i) {
        return assign && plan.copies[i].second.dtype() == plan.copies[i].first.dtype();
    };
    std::vector<Tensor> converted, previous;
    {
        NoGradGuard no_grad;
        for (std::size_t i = 0; i < plan.copies.size(); ++i) {
            const auto& [target, source] = plan.copies[i];
            converted.push_back(source.detach().to(target.dtype()));
            // An assigned tensor gets new storage: keeping the old one is enough.
            if (post_hooks) previous.push_back(assigns(i) ? target.detach() : target.clone());
        }
    }
    std::vector<std::pair<Module*, std::optional<StateDict>>> previous_extra;
    auto restore_extra = [&] {
        for (auto& [module, before] : previous_extra) {
            try {
                if (before) module->set_extra_state(*before);
            } catch (...) {  // best effort: the first error is the one to report
            }
        }
    };
    try {
        for (auto& [module, extra] : plan.extra_states) {
            previous_extra.emplace_back(module, module->extra_state_if_any());
            module->set_extra_state(extra);
        }
    } catch (...) {
        restore_extra();
        throw;
    }
    for (std::size_t i = 0; i < plan.copies.size(); ++i) {
        const auto& [target, source] = plan.copies[i];
        if (assigns(i))
            replace_storage(target, source.detach());
        else
            copy_values_into(target, converted[i]);
    }
    if (!post_hooks) return plan.keys;

    auto restore = [&] {
        for (std::size_t i = 0; i < plan.copies.size(); ++i) {
            const Tensor& target = plan.copies[i].first;
            if (assigns(i))
                replace_storage(target, previous[i]);
            else
                copy_values_into(target, previous[i]);
        }
        restore_extra();
    };
    try {
        for (Module* module : plan.post_order) {
            for (auto& [id, hook] : module->load_post_hooks_.snapshot()) hook(*module, plan.keys);
        }
    } catch (...) {
        restore();
        throw;
    }
    if (strict && (!plan.keys.missing_keys.empty() || !plan.keys.unexpected_keys.empty())) {
        restore();
        throw Error(error_text());
    }
    return plan.keys;
}

}  // namespace xg::nn
