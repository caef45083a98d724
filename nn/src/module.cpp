// Module: registration, traversal, paths, modes, conversion and printing.
// State (state_dict / load_state_dict) is in module_state.cpp, calls and hooks
// in module_hooks.cpp.
#include "xgrad/nn/module.hpp"

#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <typeinfo>

#include <cxxabi.h>

#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
}

// Splits "a.b.c" at its dots, the way std::getline reads: "" has no parts and
// a trailing dot adds none ("a." is "a").
std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream stream(path);
    while (std::getline(stream, part, '.')) parts.push_back(part);
    return parts;
}
}  // namespace

// ---- registration ----

void Module::check_name(const std::string& member, const char* op, MemberKind kind) const {
    check(!member.empty(), "{}: expected a non-empty name (got \"\")", op);
    check(member.find('.') == std::string::npos, "{}: expected a name without '.' (got '{}')", op,
          member);
    bool clash = (kind != MemberKind::Parameter && parameters_.find(member)) ||
                 (kind != MemberKind::Buffer && buffers_.find(member)) ||
                 (kind != MemberKind::Child && children_.find(member));
    check(!clash, "{}: expected a name not used by another member of {} (got '{}')", op, name(),
          member);
}

Tensor& Module::register_parameter(const std::string& member, Tensor value, bool requires_grad) {
    check_name(member, "register_parameter", MemberKind::Parameter);
    if (value.defined()) {
        check(value.is_leaf(),
              "register_parameter: expected a leaf tensor for '{}' (got one made by {}); "
              "parameters must be created explicitly",
              member, value.grad_fn_name());
        value.requires_grad_(requires_grad);
    }
    Tensor& registered = parameters_.insert_or_assign(member, std::move(value));
    on_tensor_set(member, registered);
    return registered;
}

Tensor& Module::register_buffer(const std::string& member, Tensor value, bool persistent) {
    check_name(member, "register_buffer", MemberKind::Buffer);
    std::erase(non_persistent_, member);
    if (!persistent) non_persistent_.push_back(member);
    Tensor& registered = buffers_.insert_or_assign(member, std::move(value));
    on_tensor_set(member, registered);
    return registered;
}

void Module::register_child(const std::string& member, std::shared_ptr<Module> module) {
    check_name(member, "register_module", MemberKind::Child);
    on_child_set(member, module);
    children_.insert_or_assign(member, std::move(module));
}

Tensor Module::swap_tensor(const std::string& member, Tensor value) {
    Tensor* slot = parameters_.find(member);
    if (slot == nullptr) slot = buffers_.find(member);
    check(slot != nullptr, "swap_tensor: expected a parameter or buffer of {} (got '{}')", name(),
          member);
    std::swap(*slot, value);
    on_tensor_set(member, *slot);
    return value;
}

void Module::on_child_set(const std::string&, const std::shared_ptr<Module>&) {}
void Module::on_tensor_set(const std::string&, const Tensor&) {}

// ---- traversal ----

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules(
    const std::string& prefix, bool remove_duplicate) const {
    // Depth-first, self first, as PyTorch; `seen` drops modules reached twice.
    // Const like children(): the handles given out are the module's own.
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
    std::set<const Module*> seen;
    auto self = std::const_pointer_cast<Module>(weak_from_this().lock());
    // Not owned by a shared_ptr (a module on the stack): a handle that does not own.
    if (!self) self = std::shared_ptr<Module>(std::shared_ptr<Module>(), const_cast<Module*>(this));
    std::vector<std::pair<std::string, const Module*>> stack{{prefix, this}};
    std::vector<std::shared_ptr<Module>> owners{self};
    while (!stack.empty()) {
        auto [path, module] = stack.back();
        std::shared_ptr<Module> owner = owners.back();
        stack.pop_back();
        owners.pop_back();
        if (remove_duplicate && !seen.insert(module).second) continue;
        out.emplace_back(path, owner);
        // Push children in reverse so they pop in registration order.
        for (auto it = module->children_.rbegin(); it != module->children_.rend(); ++it) {
            if (!it->second) continue;
            stack.emplace_back(join(path, it->first), it->second.get());
            owners.push_back(it->second);
        }
    }
    return out;
}

std::vector<std::shared_ptr<Module>> Module::modules() const {
    std::vector<std::shared_ptr<Module>> out;
    for (auto& [path, module] : named_modules()) out.push_back(module);
    return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
    std::set<const Module*> seen;
    for (const auto& [member, child] : children_) {
        if (child && seen.insert(child.get()).second) out.emplace_back(member, child);
    }
    return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
    std::vector<std::shared_ptr<Module>> out;
    for (auto& [member, child] : named_children()) out.push_back(child);
    return out;
}

namespace {
// Shared walk of named_parameters and named_buffers.
template <class Select>
std::vector<std::pair<std::string, Tensor>> named_members(const Module& root,
                                                          const std::string& prefix, bool recurse,
                                                          bool remove_duplicate, Select select) {
    std::vector<std::pair<std::string, const Module*>> modules;
    if (recurse) {
        for (auto& [path, module] : root.named_modules(prefix, remove_duplicate)) {
            modules.emplace_back(path, module.get());
        }
    } else {
        modules.emplace_back(prefix, &root);
    }
    std::vector<std::pair<std::string, Tensor>> out;
    std::set<const TensorImpl*> seen;
    for (auto& [path, module] : modules) {
        for (const auto& [member, tensor] : select(*module)) {
            if (!tensor.defined()) continue;
            if (remove_duplicate && !seen.insert(tensor.impl()).second) continue;
            out.emplace_back(join(path, member), tensor);
        }
    }
    return out;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(const std::string& prefix,
                                                                     bool recurse,
                                                                     bool remove_duplicate) const {
    return named_members(
        *this, prefix, recurse, remove_duplicate,
        [](const Module& m) -> const auto& { return m.parameters_; });
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(const std::string& prefix,
                                                                  bool recurse,
                                                                  bool remove_duplicate) const {
    return named_members(
        *this, prefix, recurse, remove_duplicate,
        [](const Module& m) -> const auto& { return m.buffers_; });
}

std::vector<Tensor> Module::parameters(bool recurse) const {
    std::vector<Tensor> out;
    for (auto& [path, p] : named_parameters("", recurse)) out.push_back(p);
    return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
    std::vector<Tensor> out;
    for (auto& [path, b] : named_buffers("", recurse)) out.push_back(b);
    return out;
}

// ---- paths ----
// get_submodule walks the whole path; get_parameter, get_buffer and
// set_submodule walk to the module owning the last part, as PyTorch's do.

Module::PathEnd Module::resolve_path(const std::string& path) {
    PathEnd end{this, weak_from_this().lock()};
    for (const std::string& part : split_path(path)) {
        const Module& at = *end.module;
        const auto* child = at.children_.find(part);
        if (child == nullptr || !*child) {
            // An empty slot (PyTorch's None) exists but is not a Module either.
            bool other = child || at.parameters_.find(part) || at.buffers_.find(part);
            throw Error(other ? fmt::format("get_submodule: '{}' is not a Module", part)
                              : fmt::format("{} has no attribute '{}'", at.name(), part));
        }
        end = {child->get(), *child};
    }
    return end;
}

std::pair<Module*, std::string> Module::resolve_owner(const std::string& target) {
    auto dot = target.rfind('.');
    if (dot == std::string::npos) return {this, target};
    return {resolve_path(target.substr(0, dot)).module, target.substr(dot + 1)};
}

std::shared_ptr<Module> Module::get_submodule(const std::string& target) {
    return resolve_path(target).handle;
}

void Module::set_submodule(const std::string& target, std::shared_ptr<Module> module) {
    check(!target.empty(), "set_submodule: expected a non-empty target (got \"\")");
    auto [owner, member] = resolve_owner(target);
    owner->register_child(member, std::move(module));
}

Tensor Module::get_parameter(const std::string& target) {
    auto [owner, member] = resolve_owner(target);
    if (const Tensor* p = owner->parameters_.find(member)) return *p;
    check(!owner->buffers_.find(member) && !owner->children_.find(member),
          "get_parameter: '{}' is not a parameter", member);
    throw Error(fmt::format("{} has no attribute '{}'", owner->name(), member));
}

Tensor Module::get_buffer(const std::string& target) {
    auto [owner, member] = resolve_owner(target);
    if (const Tensor* b = owner->buffers_.find(member)) return *b;
    check(!owner->parameters_.find(member) && !owner->children_.find(member),
          "get_buffer: '{}' is not a buffer", member);
    throw Error(fmt::format("{} has no attribute '{}'", owner->name(), member));
}

// ---- modes and gradients ----

Module& Module::train(bool mode) {
    training_ = mode;
    for (auto& [member, child] : children_) {
        if (child) child->train(mode);
    }
    return *this;
}

Module& Module::requires_grad_(bool requires_grad) {
    for (Tensor& p : parameters()) p.requires_grad_(requires_grad);
    return *this;
}

void Module::zero_grad(bool set_to_none) {
    for (const Tensor& p : parameters()) {
        Tensor& grad = p.mutable_grad();
        if (!grad.defined()) continue;
        if (set_to_none) {
            grad = Tensor();
        } else {
            grad = grad.detach();                            // drop any history, then zero in place
            std::memset(grad.data_ptr(), 0, grad.nbytes());  // zero is all-zero bits in every dtype
        }
    }
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
    for (auto& child : children()) child->apply(fn);
    fn(*this);
    return *this;
}

// ---- conversion ----

void Module::convert_tensors(Dtype dtype, bool floating_only) {
    // set_data swaps a tensor's storage in place, so every handle to it (a
    // layer's member, the registry, an optimizer) sees the change.
    auto convert = [=](const Tensor& t) {
        if (!t.defined() || t.dtype() == dtype) return;
        if (floating_only && !is_floating_point(t.dtype())) return;
        NoGradGuard no_grad;
        t.set_data(t.detach().to(dtype));
        if (Tensor& g = t.mutable_grad(); g.defined()) g = g.detach().to(dtype);
    };
    for (auto& [path, module] : named_modules("", false)) {
        Module& m = *module;
        for (auto& [member, p] : m.parameters_) convert(p);
        for (auto& [member, b] : m.buffers_) convert(b);
    }
}

Module& Module::to(Dtype dtype) {
    if (!is_floating_point(dtype)) {
        fail("Module.to: expected a floating-point dtype (got {})", dtype_name(dtype));
    }
    convert_tensors(dtype, true);
    return *this;
}

Module& Module::type(Dtype dtype) {
    // As PyTorch's .data assignment: a tensor that requires grad stays floating
    // point. Checked for every parameter first, so a refused call changes nothing.
    if (!is_floating_point(dtype)) {
        for (const auto& [name, p] : named_parameters()) {
            if (p.requires_grad()) {
                fail("{}.type: parameter '{}' requires grad and must stay floating point (got {})",
                     this->name(), name, dtype_name(dtype));
            }
        }
    }
    convert_tensors(dtype, false);
    return *this;
}

void Module::refuse_legacy_backward_hook() const {
    throw Error(fmt::format(
        "{}.register_backward_hook: the legacy module backward hook is not supported (its "
        "grad_input would be that of the last op inside forward, not of the module's inputs); "
        "use register_full_backward_hook",
        name()));
}

namespace {
std::atomic<bool> swap_module_params_on_conversion{false};
}  // namespace

void set_swap_module_params_on_conversion(bool value) { swap_module_params_on_conversion = value; }
bool get_swap_module_params_on_conversion() { return swap_module_params_on_conversion; }

Module& Module::to(const std::string& device) {
    check(device == "cpu", "Module.to: xgrad runs on the CPU only (got device '{}')", device);
    return *this;
}

Module& Module::to_empty() {
    auto renew = [](const Tensor& t) {
        if (t.defined()) t.set_data(empty(t.shape(), t.dtype()));
    };
    for (auto& [path, module] : named_modules("", false)) {
        Module& m = *module;
        for (auto& [member, p] : m.parameters_) renew(p);
        for (auto& [member, b] : m.buffers_) renew(b);
    }
    return *this;
}

std::shared_ptr<Module> Module::make_fresh() const {
    throw Error(fmt::format(
        "clone: {} does not support clone(); override make_fresh() to construct a new {} "
        "with the same configuration",
        name(), name()));
}

struct Module::CloneMemo {
    std::map<const Module*, std::shared_ptr<Module>> copies;
    std::map<const TensorImpl*, Tensor> tensors;  // a tensor held twice is copied once
    std::set<const TensorImpl*> targets;          // the copies made so far
};

// Copies `from`'s values into `to`, a module of the same structure, keeping
// `to`'s own tensor handles and children (its layers hold them as members).
void Module::copy_values(const Module& from, Module& to, CloneMemo& memo) {
    to.training_ = from.training_;
    auto copy_members = [&](const OrderedDict<Tensor>& source, OrderedDict<Tensor>& target) {
        for (const auto& [member, tensor] : source) {
            Tensor* existing = target.find(member);
            if (!tensor.defined()) {
                to.on_tensor_set(member, target.insert_or_assign(member, Tensor()));
                continue;
            }
            if (auto copied = memo.tensors.find(tensor.impl()); copied != memo.tensors.end()) {
                // Tied in the source (one Parameter under two names): tied in the copy.
                to.on_tensor_set(member, target.insert_or_assign(member, copied->second));
                continue;
            }
            // Copy into the fresh module's own handle (its layer's member), unless
            // that handle already took another tensor's copy: the fresh module is
            // tied where the source is not.
            Tensor copy = tensor.detach().clone();
            if (existing && existing->defined() && !memo.targets.contains(existing->impl())) {
                existing->set_data(copy);
                copy = *existing;
            } else {
                to.on_tensor_set(member, target.insert_or_assign(member, copy));
            }
            copy.requires_grad_(tensor.requires_grad());
            memo.targets.insert(copy.impl());
            memo.tensors.emplace(tensor.impl(), copy);
        }
    };
    copy_members(from.parameters_, to.parameters_);
    copy_members(from.buffers_, to.buffers_);
    to.non_persistent_ = from.non_persistent_;
    for (const auto& [member, child] : from.children_) {
        auto* existing = to.children_.find(member);
        if (!child) {
            to.register_child(member, nullptr);
        } else if (auto copied = memo.copies.find(child.get()); copied != memo.copies.end()) {
            to.register_child(member, copied->second);
        } else if (existing && *existing && (*existing)->repr() == child->repr()) {
            // Reuse the fresh child (the parent's members point at it) only when its
            // configuration matches; a child swapped in after construction (say, one
            // without a bias) is cloned as it stands.
            memo.copies.emplace(child.get(), *existing);
            copy_values(*child, **existing, memo);
        } else {
            to.register_child(member, child->clone_with(memo));
        }
    }
    if (auto extra = from.extra_state_if_any()) to.set_extra_state(*extra);
}

std::shared_ptr<Module> Module::clone_with(CloneMemo& memo) const {
    std::shared_ptr<Module> copy = make_fresh();
    memo.copies.emplace(this, copy);
    copy_values(*this, *copy, memo);
    return copy;
}

std::shared_ptr<Module> Module::clone() const {
    CloneMemo memo;
    return clone_with(memo);
}

// ---- printing ----

std::string Module::name() const {
    int status = 0;
    const char* mangled = typeid(*this).name();
    std::unique_ptr<char, void (*)(void*)> demangled(
        abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    std::string full = status == 0 ? demangled.get() : mangled;
    // Drop namespaces ("xg::nn::Linear" -> "Linear"), but not inside template arguments.
    std::size_t depth = 0, start = 0;
    for (std::size_t i = 0; i < full.size(); ++i) {
        if (full[i] == '<')
            ++depth;
        else if (full[i] == '>')
            --depth;
        else if (depth == 0 && std::string_view(full).substr(i).starts_with("::"))
            start = i + 2;
    }
    return full.substr(start);
}

std::string Module::repr() const {
    // PyTorch's __repr__: extra_repr lines, then "(name): child" lines with
    // the child's continuation lines indented by two spaces.
    std::vector<std::string> lines;
    std::string extra = extra_repr();
    std::size_t extra_lines = 0;
    if (!extra.empty()) {
        std::istringstream stream(extra);
        for (std::string line; std::getline(stream, line);) lines.push_back(line), ++extra_lines;
    }
    for (const auto& [member, child] : children_) {
        std::string child_repr = child ? child->repr() : "None";
        std::string indented;
        for (char c : child_repr) {
            indented += c;
            if (c == '\n') indented += "  ";
        }
        lines.push_back("(" + member + "): " + indented);
    }
    std::string out = name() + "(";
    if (extra_lines == 1 && lines.size() == 1) {
        out += lines[0];
    } else if (!lines.empty()) {
        out += "\n";
        for (const auto& line : lines) out += "  " + line + "\n";
    }
    return out + ")";
}

std::ostream& operator<<(std::ostream& out, const Module& module) { return out << module.repr(); }

}  // namespace xg::nn
