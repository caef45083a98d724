// The value type of the generated reference headers: a shape and row-major values.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/xgrad.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

namespace reference {

struct Array {
    std::vector<std::size_t> shape;
    std::vector<double> values;

    xt::xarray<double> array() const {
        xt::xarray<double> a = xt::adapt(values, shape);
        return a;
    }
    xg::Tensor tensor(xg::Dtype dtype = xg::kFloat64, bool requires_grad = false) const {
        xg::Tensor t = xg::tensor<double>(array());
        if (dtype != xg::kFloat64) t = t.to(dtype);
        return t.requires_grad_(requires_grad), t;
    }
};

// The value stored under `key` in a generated name -> value list.
template <class V>
const V& lookup(const std::vector<std::pair<std::string, V>>& items, const std::string& key) {
    for (const auto& [name, value] : items) {
        if (name == key) return value;
    }
    throw std::out_of_range("reference: no entry named " + key);
}

}  // namespace reference
