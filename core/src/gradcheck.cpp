// gradcheck: compares the engine's Jacobian with central finite differences.
#include <cmath>

#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg::autograd {

namespace {

// fn's output flattened to float64 values, evaluated without recording a graph.
std::vector<double> evaluate(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                             const std::vector<Tensor>& inputs) {
    NoGradGuard no_grad;
    Tensor out = fn(inputs).to(kFloat64);
    const auto& values = out.data<double>();
    return {values.begin(), values.end()};
}

}  // namespace

bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, double eps, double atol, double rtol) {
    // Work on float64 copies that require grad, so callers need not prepare inputs.
    std::vector<Tensor> copies;
    for (const Tensor& input : inputs) {
        Tensor copy = input.detach().to(kFloat64);
        copy = is_floating_point(input.dtype()) ? copy.detach().clone() : input.detach();
        if (is_floating_point(input.dtype())) copy.requires_grad_(true);
        copies.push_back(copy);
    }
    Tensor output = fn(copies);
    check(output.defined() && is_floating_point(output.dtype()),
          "gradcheck: expected fn to return a floating-point tensor");
    std::size_t outputs = output.numel();

    // Analytic Jacobian, one backward per output element: analytic[i][k][j].
    std::vector<std::vector<std::vector<double>>> analytic(copies.size());
    for (std::size_t i = 0; i < copies.size(); ++i) {
        analytic[i].assign(copies[i].numel(), std::vector<double>(outputs, 0.0));
    }
    for (std::size_t j = 0; j < outputs && output.requires_grad(); ++j) {
        for (auto& c : copies) {
            if (c.requires_grad()) c.mutable_grad() = Tensor();
        }
        Tensor seed = zeros(output.shape(), output.dtype());
        detail::visit_floating(seed, "gradcheck", [&]<class T>(xt::xarray<T>& s) {
            s.data()[j] = T(1);
            return seed;
        });
        output.backward(seed, /*retain_graph=*/true);
        for (std::size_t i = 0; i < copies.size(); ++i) {
            Tensor g = copies[i].requires_grad() ? copies[i].grad() : Tensor();
            if (!g.defined()) continue;
            const auto& gv = g.data<double>();
            for (std::size_t k = 0; k < gv.size(); ++k) analytic[i][k][j] = gv.data()[k];
        }
    }

    // Numerical Jacobian by central differences, compared entry by entry.
    bool ok = true;
    double worst_excess = 0.0;
    std::string worst;
    for (std::size_t i = 0; i < copies.size(); ++i) {
        if (!copies[i].requires_grad()) continue;
        auto& values = copies[i].data<double>();
        for (std::size_t k = 0; k < values.size(); ++k) {
            double original = values.data()[k];
            values.data()[k] = original + eps;
            std::vector<double> plus = evaluate(fn, copies);
            values.data()[k] = original - eps;
            std::vector<double> minus = evaluate(fn, copies);
            values.data()[k] = original;
            for (std::size_t j = 0; j < outputs; ++j) {
                double numeric = (plus[j] - minus[j]) / (2 * eps);
                double error = std::abs(numeric - analytic[i][k][j]);
                double allowed = atol + rtol * std::abs(numeric);
                if (!(error <= allowed) && error - allowed >= worst_excess) {
                    ok = false;
                    worst_excess = error - allowed;
                    worst = fmt::format(
                        "gradcheck: Jacobian mismatch for input {} element {} output {}: "
                        "numerical {} vs analytical {}",
                        i, k, j, numeric, analytic[i][k][j]);
                }
            }
        }
    }
    if (!ok) fmt::print(stderr, "{}\n", worst);
    return ok;
}

namespace {

// RAII: grad mode on (gradcheck evaluates fn under NoGradGuard, and a first
// derivative needs a graph to be taken).
struct GradEnabled {
    bool previous = GradMode::is_enabled();
    GradEnabled() { GradMode::set_enabled(true); }
    ~GradEnabled() { GradMode::set_enabled(previous); }
};

// Fixed values in [-1, 1) shaped like `like`, from a small LCG: gradgradcheck's
// v must not depend on, nor move, the caller's random stream.
Tensor fixed_probe(const Tensor& like) {
    auto values = xt::xarray<double>::from_shape(like.shape());
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (double& value : values) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        value = static_cast<double>(state >> 11) * 0x1.0p-52 - 1.0;
    }
    return tensor(std::move(values));
}

}  // namespace

bool gradgradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                   const std::vector<Tensor>& inputs, double eps, double atol, double rtol) {
    Tensor shape_of;
    {
        NoGradGuard no_grad;
        std::vector<Tensor> probes;
        for (const Tensor& input : inputs) probes.push_back(input.detach().to(kFloat64));
        shape_of = fn(probes);
    }
    // (inputs..., v) -> the first derivative of <fn(inputs), v>, flattened.
    auto first_derivative = [&fn](const std::vector<Tensor>& args) {
        GradEnabled grad_mode;
        const std::vector<Tensor> xs(args.begin(), args.end() - 1);
        std::vector<Tensor> wrt;
        for (const Tensor& x : xs) {
            if (x.requires_grad()) wrt.push_back(x);
        }
        Tensor output = fn(xs);
        std::vector<Tensor> parts;
        std::vector<Tensor> grads =
            output.requires_grad()
                ? grad({output}, wrt, {args.back().to(output.dtype())}, true, true, true)
                : std::vector<Tensor>(wrt.size());
        for (std::size_t k = 0; k < wrt.size(); ++k) {
            parts.push_back(flatten(grads[k].defined() ? grads[k] : zeros_like(wrt[k])));
        }
        return cat(parts, 0);
    };
    std::vector<Tensor> extended = inputs;
    extended.push_back(fixed_probe(shape_of));
    return gradcheck(first_derivative, extended, eps, atol, rtol);
}

}  // namespace xg::autograd
