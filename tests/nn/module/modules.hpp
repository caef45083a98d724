// Small modules shared by the Module tests. Each mirrors, class for class, a
// Python module in reference/gen_reference.py (same class name, registration
// order, extra_repr and values), so traversal orders, state_dict keys, reprs and
// hook traces can be compared with what PyTorch produced.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xarray.hpp>

namespace mt {

// Deterministic values shared with the generator: (-1)^i * scale * (i + 1) + offset.
inline xg::Tensor values(const xg::Shape& shape, double scale = 0.1, double offset = 0.0,
                         xg::Dtype dtype = xg::kFloat64) {
    xt::xarray<double> a = xt::zeros<double>(shape);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a.flat(i) = (i % 2 == 0 ? 1.0 : -1.0) * scale * static_cast<double>(i + 1) + offset;
    }
    xg::Tensor t = xg::tensor<double>(a);
    return dtype == xg::kFloat64 ? t : t.to(dtype);
}

// A tensor's values as a flat float64 vector, read straight from storage.
inline std::vector<double> flat(const xg::Tensor& t) {
    std::vector<double> out;
    switch (t.dtype()) {
        case xg::kFloat32:
            for (float v : t.data<float>()) out.push_back(v);
            break;
        case xg::kFloat64:
            for (double v : t.data<double>()) out.push_back(v);
            break;
        case xg::kInt64:
            for (std::int64_t v : t.data<std::int64_t>()) out.push_back(static_cast<double>(v));
            break;
        case xg::kBool:
            for (bool v : t.data<bool>()) out.push_back(v ? 1.0 : 0.0);
            break;
        default:  // storage dtypes: exact in float64
            for (double v : t.to(xg::kFloat64).data<double>()) out.push_back(v);
            break;
    }
    return out;
}

inline bool near(const std::vector<double>& a, const std::vector<double>& b, double tol = 1e-12) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::abs(a[i] - b[i]) > tol * (1.0 + std::abs(b[i]))) return false;
    }
    return true;
}

template <class Pairs>
std::vector<std::string> names_of(const Pairs& pairs) {
    std::vector<std::string> out;
    for (const auto& [name, value] : pairs) out.push_back(name);
    return out;
}

// y = x W^T + b, with a persistent buffer and a non-persistent one.
struct TinyLinear : xg::nn::Module {
    TinyLinear(std::size_t in, std::size_t out, bool with_bias = true,
               xg::Dtype dtype = xg::kFloat64)
        : in_features(in), out_features(out) {
        weight = register_parameter("weight", values({out, in}, 0.1, 0.0, dtype));
        bias =
            register_parameter("bias", with_bias ? values({out}, 0.05, 0.0, dtype) : xg::Tensor());
        running_mean = register_buffer("running_mean", xg::zeros({out}, dtype));
        scratch = register_buffer("scratch", xg::zeros({1}, dtype), /*persistent=*/false);
    }
    xg::Tensor forward(const xg::Tensor& x) override { return xg::linear(x, weight, bias); }
    std::string extra_repr() const override {
        return "in_features=" + std::to_string(in_features) +
               ", out_features=" + std::to_string(out_features) +
               ", bias=" + (bias.defined() ? "True" : "False");
    }

    std::size_t in_features, out_features;
    xg::Tensor weight, bias, running_mean, scratch;

protected:
    std::shared_ptr<Module> make_fresh() const override {
        return std::make_shared<TinyLinear>(in_features, out_features, bias.defined());
    }
};

struct TinyTanh : xg::nn::Module {
    xg::Tensor forward(const xg::Tensor& x) override { return xg::tanh(x); }

protected:
    std::shared_ptr<Module> make_fresh() const override { return std::make_shared<TinyTanh>(); }
};

// A parameter, a child, a persistent and a non-persistent buffer; a two-line extra_repr.
struct Block : xg::nn::Module {
    Block() {
        gain = register_parameter("gain", xg::ones({4}, xg::kFloat64));
        fc = register_module("fc", std::make_shared<TinyLinear>(4, 4));
        register_buffer("count", xg::zeros({1}, xg::kFloat64));
        register_buffer("tmp", xg::zeros({1}, xg::kFloat64), /*persistent=*/false);
    }
    xg::Tensor forward(const xg::Tensor& x) override { return (*fc)(x)*gain; }
    std::string extra_repr() const override { return "scale=0.5\nmode=fast"; }

    xg::Tensor gain;
    std::shared_ptr<TinyLinear> fc;

protected:
    std::shared_ptr<Module> make_fresh() const override { return std::make_shared<Block>(); }
};

// a, act, b, a2 (the same module as a), empty (nullptr); parameter "tied" is a.weight.
struct Net : xg::nn::Module {
    Net() {
        a = register_module("a", std::make_shared<TinyLinear>(3, 4));
        register_parameter("tied", a->weight);
        act = register_module("act", std::make_shared<TinyTanh>());
        b = register_module("b", std::make_shared<Block>());
        register_module("a2", a);
        register_module("empty", std::shared_ptr<Module>());
    }
    std::shared_ptr<TinyLinear> a;
    std::shared_ptr<TinyTanh> act;
    std::shared_ptr<Block> b;
};

// Children "0", "1", "2" run in order, like Sequential.
struct Chain : xg::nn::Module {
    Chain() {
        register_module("0", std::make_shared<TinyLinear>(3, 4));
        register_module("1", std::make_shared<TinyTanh>());
        register_module("2", std::make_shared<TinyLinear>(4, 2));
    }
    xg::Tensor forward(const xg::Tensor& x) override {
        xg::Tensor h = x;
        for (auto& child : children()) h = (*child)(h);
        return h;
    }

protected:
    std::shared_ptr<Module> make_fresh() const override { return std::make_shared<Chain>(); }
};

struct Deep : xg::nn::Module {
    Deep() {
        chain = register_module("chain", std::make_shared<Chain>());
        block = register_module("block", std::make_shared<Block>());
        head = register_module("head", std::make_shared<TinyLinear>(2, 1, false));
    }
    std::shared_ptr<Chain> chain;
    std::shared_ptr<Block> block;
    std::shared_ptr<TinyLinear> head;

protected:
    std::shared_ptr<Module> make_fresh() const override { return std::make_shared<Deep>(); }
};

// a = TinyLinear(3, 2), b = TinyLinear(4, 2): the load_state_dict error model.
struct Net2 : xg::nn::Module {
    Net2() {
        a = register_module("a", std::make_shared<TinyLinear>(3, 2));
        b = register_module("b", std::make_shared<TinyLinear>(4, 2));
    }
    xg::Tensor forward(const xg::Tensor& x) override { return (*a)(x); }
    std::shared_ptr<TinyLinear> a, b;
};

}  // namespace mt
