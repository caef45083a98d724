// Helpers shared by the layer tests (on top of the core test helpers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

#include "core/helpers.hpp"

namespace test {

inline std::vector<std::string> parameter_names(const xg::nn::Module& module) {
    std::vector<std::string> names;
    for (const auto& [name, p] : module.named_parameters()) names.push_back(name);
    return names;
}

inline std::vector<std::string> child_names(const xg::nn::Module& module) {
    std::vector<std::string> names;
    for (const auto& [name, child] : module.named_children()) names.push_back(name);
    return names;
}

// How many elements of t are exactly zero.
inline std::size_t count_zeros(const xg::Tensor& t) {
    std::size_t n = 0;
    for (double v : values(t)) n += v == 0.0;
    return n;
}

}  // namespace test
