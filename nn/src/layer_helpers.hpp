// Private helpers for the built-in layers: Python-style spelling of values, so
// extra_repr strings match PyTorch's byte for byte, and RNG-neutral construction.
#pragma once

#include <string>

#include <fmt/format.h>

#include "xgrad/nn/module.hpp"
#include "xgrad/tensor.hpp"

namespace xg::nn::detail {

// repr(float): shortest round-trip digits, always with a '.' or an exponent
// (0.1 -> "0.1", 1.0 -> "1.0", 1e-05 -> "1e-05").
inline std::string py_float(double value) {
    std::string s = fmt::format("{}", value);
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    return s;
}

inline const char* py_bool(bool value) { return value ? "True" : "False"; }

// repr(tuple): (8,) for one element, (2, 3) for more.
inline std::string py_tuple(const Shape& shape) {
    if (shape.size() == 1) return fmt::format("({},)", shape[0]);
    return fmt::format("({})", fmt::join(shape, ", "));
}

// Runs make() (a constructor that draws initial values) and restores the global
// generator afterwards: clone() overwrites those values anyway, and should not
// shift the random stream of the program that calls it.
template <class F>
auto without_consuming_rng(F make) {
    std::string state = get_rng_state();
    auto made = make();
    set_rng_state(state);
    return made;
}

// `child` as the type a layer's typed member needs, or an error naming both.
template <class M>
std::shared_ptr<M> require_child(const char* owner, const std::string& member,
                                 const std::shared_ptr<Module>& child, const char* expected) {
    auto typed = std::dynamic_pointer_cast<M>(child);
    check(typed != nullptr, "{}: expected a {} (or subclass) for '{}' (got {})", owner, expected,
          member, child ? child->name() : "None");
    return typed;
}

}  // namespace xg::nn::detail
