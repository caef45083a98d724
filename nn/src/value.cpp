// Value, and binding a call's values to a forward's parameters (see value.hpp).
#include "xgrad/nn/value.hpp"

#include <fmt/format.h>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

Value::Value(Tensor tensor) {
    if (tensor.defined()) value_ = std::move(tensor);
}

Value::Value(const std::vector<Tensor>& tensors) {
    List items(tensors.begin(), tensors.end());
    value_ = std::move(items);
}

namespace {
template <class T>
const T& held(const std::variant<std::monostate, Tensor, bool, std::int64_t, double, std::string,
                                 Value::List>& value,
              const Value& self, const char* wanted) {
    if (const T* p = std::get_if<T>(&value)) return *p;
    fail("Value: expected {} (got {})", wanted, self.describe());
}
}  // namespace

const Tensor& Value::tensor() const { return held<Tensor>(value_, *this, "a Tensor"); }
bool Value::to_bool() const { return held<bool>(value_, *this, "a bool"); }
std::int64_t Value::to_int() const { return held<std::int64_t>(value_, *this, "an int"); }
double Value::to_double() const {
    if (is_int()) return static_cast<double>(to_int());
    return held<double>(value_, *this, "a float");
}
const std::string& Value::string() const { return held<std::string>(value_, *this, "a str"); }
const Value::List& Value::list() const { return held<List>(value_, *this, "a tuple"); }

std::string Value::type_name() const {
    static const char* const names[] = {"None", "Tensor", "bool", "int", "float", "str", "tuple"};
    return names[value_.index()];
}

std::string Value::describe() const {
    if (is_tensor()) {
        return fmt::format("Tensor{} {}", shape_str(tensor().shape()),
                           dtype_name(tensor().dtype()));
    }
    if (is_bool()) return to_bool() ? "True" : "False";
    if (is_int()) return std::to_string(to_int());
    if (is_double()) {  // Python's repr: 1.0, 0.5, 1e-05
        std::string text = fmt::format("{}", to_double());
        return text.find_first_of(".en") == std::string::npos ? text + ".0" : text;
    }
    if (is_string()) return fmt::format("'{}'", string());
    if (is_list()) {
        std::vector<std::string> items;
        for (const Value& item : list()) items.push_back(item.describe());
        return fmt::format("({}{})", fmt::join(items, ", "), items.size() == 1 ? "," : "");
    }
    return "None";
}

namespace detail {
namespace {

// "forward(query: Tensor, need_weights: bool = True)", Python's way with annotations.
std::string signature_str(const Signature& signature, const std::vector<std::string>& types) {
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < signature.size(); ++i) {
        const auto& default_value = signature[i].default_value;
        parts.push_back(fmt::format("{}: {}{}", signature[i].name, types[i],
                                    default_value ? " = " + default_value->describe() : ""));
    }
    return fmt::format("forward({})", fmt::join(parts, ", "));
}

std::string call_str(const Args& args, const Kwargs& kwargs) {
    std::vector<std::string> parts;
    for (const Value& arg : args) parts.push_back(arg.describe());
    for (const auto& [name, value] : kwargs)
        parts.push_back(fmt::format("{}={}", name, value.describe()));
    return fmt::format("({})", fmt::join(parts, ", "));
}

// Python's list of names: 'a', 'a' and 'b', 'a', 'b' and 'c'.
std::string quoted_names(const std::vector<std::string>& names) {
    std::string text;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) text += i + 1 == names.size() ? (names.size() > 2 ? ", and " : " and ") : ", ";
        text += fmt::format("'{}'", names[i]);
    }
    return text;
}

[[noreturn]] void bad_call(const Module& module, const Signature& signature,
                           const std::vector<std::string>& types, const Args& args,
                           const Kwargs& kwargs, const std::string& what) {
    fail("{}: forward() {} (expected {}; got {})", module.name(), what,
         signature_str(signature, types), call_str(args, kwargs));
}

}  // namespace

Args bind_arguments(const Module& module, const Signature& signature,
                    const std::vector<std::string>& types, const Args& args, const Kwargs& kwargs) {
    if (signature.size() != types.size()) {
        fail("{}: forward takes {} parameters but its signature names {}", module.name(),
             types.size(), signature.size());
    }
    if (args.size() > signature.size()) {
        bad_call(module, signature, types, args, kwargs,
                 fmt::format("takes {} positional arguments but {} were given", signature.size(),
                             args.size()));
    }
    if (kwargs.empty() && args.size() == signature.size()) return args;  // all by position
    std::vector<std::optional<Value>> bound(signature.size());
    for (std::size_t i = 0; i < args.size(); ++i) bound[i] = args[i];
    for (const auto& [name, value] : kwargs) {
        std::size_t i = 0;
        while (i < signature.size() && signature[i].name != name) ++i;
        if (i == signature.size()) {
            bad_call(module, signature, types, args, kwargs,
                     fmt::format("got an unexpected keyword argument '{}'", name));
        }
        if (bound[i]) {
            bad_call(module, signature, types, args, kwargs,
                     fmt::format("got multiple values for argument '{}'", name));
        }
        bound[i] = value;
    }
    std::vector<std::string> missing;
    Args values;
    values.reserve(signature.size());
    for (std::size_t i = 0; i < signature.size(); ++i) {
        if (!bound[i] && !signature[i].default_value) missing.push_back(signature[i].name);
        if (missing.empty()) values.push_back(bound[i] ? *bound[i] : *signature[i].default_value);
    }
    if (!missing.empty()) {
        bad_call(module, signature, types, args, kwargs,
                 fmt::format("missing {} required positional argument{}: {}", missing.size(),
                             missing.size() == 1 ? "" : "s", quoted_names(missing)));
    }
    return values;
}

void bad_argument_type(const Module& module, const Signature& signature,
                       const std::vector<std::string>& types, std::size_t index, const Value& got) {
    fail("{}: {}: argument '{}' (position {}) must be {} (got {})", module.name(),
         signature_str(signature, types), signature[index].name, index + 1, types[index],
         got.describe());
}

void bad_result_type(const Module& module, const std::string& expected, const Value& got) {
    fail("{}: expected the call to return {} (got {})", module.name(), expected, got.describe());
}

}  // namespace detail
}  // namespace xg::nn
