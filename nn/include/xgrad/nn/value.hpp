// xg::nn::Value: one argument or result of a module call, as Python hands them
// to a module: None, a Tensor, a bool, an int, a float, a str, or a tuple.
//
// A module with a typed forward (say MultiheadAttention's seven parameters) is
// called the natural way, `(*mha)(q, k, v)`, and its arguments still travel as
// values: hooks see them as Args (positional) and Kwargs (keyword, in order),
// and a call through a std::shared_ptr<Module> passes them the same way,
// `module->call({q, k, v}, {{"need_weights", false}})`. invoke_forward binds
// them to forward's parameters as Python binds a call: by position, then by
// name, then defaults, with Python's errors naming the module and signature.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "xgrad/tensor.hpp"

namespace xg::nn {

class Module;

class Value {
public:
    using List = std::vector<Value>;  // a tuple, a pair, or a list of values

    Value() = default;     // None
    Value(Tensor tensor);  // NOLINT: implicit, as every Python value is one; None when undefined
    Value(bool value) : value_(value) {}  // NOLINT
    template <std::integral I>
    requires(!std::same_as<I, bool>) Value(I value)
        : value_(static_cast<std::int64_t>(value)) {}  // NOLINT
    template <std::floating_point F>
    Value(F value) : value_(static_cast<double>(value)) {}    // NOLINT
    Value(const char* value) : value_(std::string(value)) {}  // NOLINT
    Value(std::string value) : value_(std::move(value)) {}    // NOLINT
    Value(List items) : value_(std::move(items)) {}           // NOLINT
    Value(const std::vector<Tensor>& tensors);                // NOLINT
    template <class A, class B>
    Value(const std::pair<A, B>& pair) : Value(List{Value(pair.first), Value(pair.second)}) {}
    template <class... T>
    Value(const std::tuple<T...>& tuple)  // NOLINT
        : Value(std::apply([](const auto&... item) { return List{Value(item)...}; }, tuple)) {}

    bool is_none() const { return value_.index() == 0; }
    bool is_tensor() const { return std::holds_alternative<Tensor>(value_); }
    bool is_bool() const { return std::holds_alternative<bool>(value_); }
    bool is_int() const { return std::holds_alternative<std::int64_t>(value_); }
    bool is_double() const { return std::holds_alternative<double>(value_); }
    bool is_string() const { return std::holds_alternative<std::string>(value_); }
    bool is_list() const { return std::holds_alternative<List>(value_); }

    // The held value; each throws xg::Error naming what it holds instead.
    const Tensor& tensor() const;
    bool to_bool() const;
    std::int64_t to_int() const;
    double to_double() const;  // an int converts, as Python's float(3)
    const std::string& string() const;
    const List& list() const;

    // Python's names: "None", "Tensor", "bool", "int", "float", "str", "tuple".
    std::string type_name() const;
    // For messages: "Tensor[2, 3] float32", "True", "3", "0.5", "'relu'", "(Tensor[2] float64,
    // None)".
    std::string describe() const;

private:
    std::variant<std::monostate, Tensor, bool, std::int64_t, double, std::string, List> value_;
};

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

// One parameter of a forward: its name and, when it may be left out, its default.
struct Parameter {
    Parameter(const char* name) : name(name) {}  // NOLINT: required, as {"query"}
    Parameter(std::string name, Value default_value)
        : name(std::move(name)), default_value(std::move(default_value)) {}
    std::string name;
    std::optional<Value> default_value;
};
using Signature = std::vector<Parameter>;

// ---- conversions between values and the C++ types of a typed forward ----

namespace detail {
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_tuple_like : std::false_type {};
template <class... T>
struct is_tuple_like<std::tuple<T...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};

template <class T>
std::optional<T> tuple_from(const Value::List& items);
}  // namespace detail

// `value` as a T, or nullopt when it is not one. None is an undefined Tensor,
// or an empty optional.
template <class T>
std::optional<T> value_as(const Value& value) {
    if constexpr (std::is_same_v<T, Value>) {
        return value;
    } else if constexpr (std::is_same_v<T, Tensor>) {
        if (value.is_none()) return Tensor();
        if (value.is_tensor()) return value.tensor();
    } else if constexpr (detail::is_optional<T>::value) {
        if (value.is_none()) return T(std::nullopt);
        if (auto inner = value_as<typename T::value_type>(value)) return T(std::move(*inner));
    } else if constexpr (std::is_same_v<T, bool>) {
        if (value.is_bool()) return value.to_bool();
    } else if constexpr (std::is_integral_v<T>) {
        if (value.is_int()) return static_cast<T>(value.to_int());
    } else if constexpr (std::is_floating_point_v<T>) {
        if (value.is_double() || value.is_int()) return static_cast<T>(value.to_double());
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (value.is_string()) return value.string();
    } else if constexpr (detail::is_vector<T>::value) {
        if (!value.is_list()) return std::nullopt;
        T items;
        for (const Value& item : value.list()) {
            auto converted = value_as<typename T::value_type>(item);
            if (!converted) return std::nullopt;
            items.push_back(std::move(*converted));
        }
        return items;
    } else if constexpr (detail::is_tuple_like<T>::value) {
        if (value.is_list()) return detail::tuple_from<T>(value.list());
    } else {
        static_assert(sizeof(T) == 0, "xg::nn::Value does not convert to this type");
    }
    return std::nullopt;
}

// How a signature prints a parameter of type T: "Tensor", "bool", "Optional[float]", ...
template <class T>
std::string type_label() {
    if constexpr (std::is_same_v<T, Value>) {
        return "Any";
    } else if constexpr (std::is_same_v<T, Tensor>) {
        return "Tensor";
    } else if constexpr (detail::is_optional<T>::value) {
        return "Optional[" + type_label<typename T::value_type>() + "]";
    } else if constexpr (std::is_same_v<T, bool>) {
        return "bool";
    } else if constexpr (std::is_integral_v<T>) {
        return "int";
    } else if constexpr (std::is_floating_point_v<T>) {
        return "float";
    } else if constexpr (std::is_same_v<T, std::string>) {
        return "str";
    } else if constexpr (detail::is_vector<T>::value) {
        return "List[" + type_label<typename T::value_type>() + "]";
    } else {
        return "tuple";
    }
}

namespace detail {
template <class T>
std::optional<T> tuple_from(const Value::List& items) {
    constexpr std::size_t n = std::tuple_size_v<T>;
    if (items.size() != n) return std::nullopt;
    // Checked first, then converted (value() cannot read an empty optional):
    // GCC's maybe-uninitialized analysis trips over a tuple of optionals.
    auto each = [&]<std::size_t... I>(std::index_sequence<I...>) {
        return (value_as<std::tuple_element_t<I, T>>(items[I]).has_value() && ...);
    };
    if (!each(std::make_index_sequence<n>{})) return std::nullopt;
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return T{value_as<std::tuple_element_t<I, T>>(items[I]).value()...};
    }
    (std::make_index_sequence<n>{});
}

// Python's binding of a call to a signature: positional arguments first, then
// keyword ones, then defaults. Returns one value per parameter, or throws the
// xg::Error Python would raise, naming the module and its signature.
Args bind_arguments(const Module& module, const Signature& signature,
                    const std::vector<std::string>& types, const Args& args, const Kwargs& kwargs);
[[noreturn]] void bad_argument_type(const Module& module, const Signature& signature,
                                    const std::vector<std::string>& types, std::size_t index,
                                    const Value& got);
[[noreturn]] void bad_result_type(const Module& module, const std::string& expected,
                                  const Value& got);

template <class T>
T argument(const Module& module, const Signature& signature, const std::vector<std::string>& types,
           const Args& bound, std::size_t index) {
    if (auto converted = value_as<T>(bound[index])) return std::move(*converted);
    bad_argument_type(module, signature, types, index, bound[index]);
}
}  // namespace detail

// A call's result as the type a typed operator() returns, or an xg::Error
// naming the module (a forward hook may have replaced it with something else).
template <class R>
R result_as(const Module& module, const Value& result) {
    if (auto converted = value_as<R>(result)) return std::move(*converted);
    detail::bad_result_type(module, type_label<R>(), result);
}

// Binds `args` and `kwargs` to a typed forward's parameters, as named by
// `signature` (with their defaults), converts each value to its C++ type and
// calls it. A module's forward_args override is this one line:
//   return invoke_forward<MyBlock>(*this, &MyBlock::forward, kSignature, args, kwargs);
// (D is named so that &MyBlock::forward picks MyBlock's own forward even when
// `using Module::forward;` brings the single-tensor one into scope too.)
template <class D, class R, class... P>
Value invoke_forward(std::type_identity_t<D>& self, R (D::*forward)(P...),
                     const Signature& signature, const Args& args, const Kwargs& kwargs) {
    static const std::vector<std::string> types{type_label<std::decay_t<P>>()...};
    const Args bound = detail::bind_arguments(self, signature, types, args, kwargs);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
        // Braced, so the arguments convert left to right and the first bad one is reported.
        std::tuple<std::decay_t<P>...> converted{
            detail::argument<std::decay_t<P>>(self, signature, types, bound, I)...};
        return Value((self.*forward)(std::get<I>(converted)...));
    }
    (std::index_sequence_for<P...>{});
}

}  // namespace xg::nn
