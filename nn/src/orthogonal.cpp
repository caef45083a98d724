// Orthogonal (see parametrize.hpp), PyTorch 1.13's _Orthogonal for real 2-D
// tensors: [n, k] original -> [n, k] orthogonal matrix.
//
// The three maps are written with differentiable xgrad ops (matmul, tril, cat,
// narrow, ...), so autograd needs no backward of its own and gradients are the
// exact derivatives of what is computed:
//  - matrix_exp by scaling and squaring: B = A / 2^s with |B|_1 <= 1/2, a
//    degree-16 Taylor polynomial in Horner form (its remainder is below
//    0.5^17 / 17! ~ 2e-20 of |exp(B)| = 1), squared s times. PyTorch uses
//    Pade approximants; both agree to float64 round-off on the skew-symmetric
//    matrices that occur, whose exponentials are orthogonal (norm 1).
//  - cayley by Gauss-Jordan elimination without pivoting: I - A/2 with A skew
//    has the identity as its symmetric part, so every pivot is positive.
//  - householder as the product of the reflectors applied to [I; 0].
// Registration's QR decomposition runs on plain arrays, without history.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>

#include "xgrad/autograd.hpp"
#include "xgrad/nn/parametrize.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn::utils::parametrizations {

namespace {

// ---- QR on plain arrays (registration only) ----

// A QR decomposition as LAPACK's geqrf stores it: R on and above the diagonal,
// the reflectors' vectors below it (their first entry, 1, implied), and tau.
struct Reflectors {
    xt::xarray<double> a;
    std::vector<double> tau;
};

// LAPACK's unblocked dgeqr2 with dlarfg's conventions, so the reflectors are
// PyTorch's: beta = -sign(alpha) |x|, tau = (beta - alpha) / beta, and no
// reflection (tau = 0) for a column that is zero below the diagonal.
Reflectors geqrf(xt::xarray<double> a) {
    const std::size_t n = a.shape(0), k = a.shape(1);
    std::vector<double> tau(std::min(n, k), 0.0);
    for (std::size_t j = 0; j < tau.size(); ++j) {
        double below = 0.0;
        for (std::size_t i = j + 1; i < n; ++i) below += a(i, j) * a(i, j);
        if (below == 0.0) continue;
        const double alpha = a(j, j);
        const double beta = -std::copysign(std::sqrt(alpha * alpha + below), alpha);
        tau[j] = (beta - alpha) / beta;
        for (std::size_t i = j + 1; i < n; ++i) a(i, j) /= alpha - beta;
        a(j, j) = beta;
        for (std::size_t c = j + 1; c < k; ++c) {  // the trailing columns: H_j a
            double w = a(j, c);
            for (std::size_t i = j + 1; i < n; ++i) w += a(i, j) * a(i, c);
            w *= tau[j];
            a(j, c) -= w;
            for (std::size_t i = j + 1; i < n; ++i) a(i, c) -= w * a(i, j);
        }
    }
    return {std::move(a), std::move(tau)};
}

// PyTorch's _make_orthogonal: the Q factor of a tall `a` (H_1 ... H_k [I; 0],
// as linalg.householder_product), each column times the sign of R's diagonal
// entry, so that R's diagonal is non-negative.
xt::xarray<double> make_orthogonal(const xt::xarray<double>& a) {
    const Reflectors qr = geqrf(a);
    const std::size_t n = a.shape(0), k = a.shape(1);
    xt::xarray<double> q = xt::zeros<double>({n, k});
    for (std::size_t i = 0; i < k; ++i) q(i, i) = 1.0;
    for (std::size_t j = qr.tau.size(); j-- > 0;) {
        for (std::size_t c = 0; c < k; ++c) {
            double w = q(j, c);
            for (std::size_t i = j + 1; i < n; ++i) w += qr.a(i, j) * q(i, c);
            w *= qr.tau[j];
            q(j, c) -= w;
            for (std::size_t i = j + 1; i < n; ++i) q(i, c) -= w * qr.a(i, j);
        }
    }
    for (std::size_t c = 0; c < k; ++c) {
        const double r = qr.a(c, c);
        const double sign = r > 0.0 ? 1.0 : (r < 0.0 ? -1.0 : 0.0);  // torch.sgn
        for (std::size_t i = 0; i < n; ++i) q(i, c) *= sign;
    }
    return q;
}

// PyTorch's _is_orthogonal: allclose(Q^T Q, I) with rtol 1e-5 and atol
// 10 n eps of the dtype.
bool is_orthogonal(const xt::xarray<double>& q, Dtype dtype) {
    const std::size_t n = q.shape(0), k = q.shape(1);
    const double eps = dtype == kFloat64 ? 2.220446049250313e-16 : 1.1920928955078125e-07;
    const double atol = 10.0 * static_cast<double>(n) * eps;
    for (std::size_t r = 0; r < k; ++r) {
        for (std::size_t c = 0; c < k; ++c) {
            double dot = 0.0;
            for (std::size_t i = 0; i < n; ++i) dot += q(i, r) * q(i, c);
            const double id = r == c ? 1.0 : 0.0;
            if (!(std::abs(dot - id) <= atol + 1e-5 * id)) return false;
        }
    }
    return true;
}

xt::xarray<double> values_of(const Tensor& t) {
    return t.dtype() == kFloat64 ? t.data<double>() : t.to(kFloat64).data<double>();
}

// ---- the maps, from differentiable ops ----

Tensor matrix_exp(const Tensor& a) {
    constexpr int kDegree = 16;
    const xt::xarray<double> values = values_of(a);
    const double norm1 = xt::amax(xt::sum(xt::abs(values), {0}))();  // max column sum
    const int s = norm1 > 0.5 ? static_cast<int>(std::ceil(std::log2(norm1 / 0.5))) : 0;
    const Tensor b = s > 0 ? a / std::ldexp(1.0, s) : a;
    const Tensor id = eye(static_cast<std::int64_t>(a.shape()[0]), -1, a.dtype());
    Tensor p = id;  // I + B (I + B/2 (I + B/3 (...)))
    for (int j = kDegree; j >= 1; --j) p = id + matmul(b, p) / static_cast<double>(j);
    for (int i = 0; i < s; ++i) p = matmul(p, p);
    return p;
}

// m^{-1} b by Gauss-Jordan elimination on [m | b], without pivoting: step j
// divides row j by its pivot and clears column j from the other rows.
Tensor solve_unpivoted(const Tensor& m, const Tensor& b) {
    const auto n = static_cast<std::int64_t>(m.shape()[0]);
    const Tensor id = eye(n, -1, m.dtype());
    Tensor aug = cat({m, b}, 1);
    for (std::int64_t j = 0; j < n; ++j) {
        const Tensor row = narrow(aug, 0, j, 1);
        const Tensor pivot_row = row / narrow(row, 1, j, 1);
        aug = aug - (narrow(aug, 1, j, 1) - narrow(id, 1, j, 1)) * pivot_row;
    }
    return narrow(aug, 1, n, static_cast<std::int64_t>(b.shape()[1]));
}

Tensor cayley(const Tensor& a) {
    const Tensor id = eye(static_cast<std::int64_t>(a.shape()[0]), -1, a.dtype());
    return solve_unpivoted(id - a * 0.5, id + a * 0.5);
}

// linalg.householder_product(a, tau) for a tall a whose diagonal and upper
// part are zero: H_1 ... H_k [I; 0], applied to [I; 0] from H_k on.
Tensor householder_product(const Tensor& a, const Tensor& tau) {
    const auto n = static_cast<std::int64_t>(a.shape()[0]);
    const auto k = static_cast<std::int64_t>(a.shape()[1]);
    const Tensor id = eye(n, k, a.dtype());
    const Tensor vectors = a + id;  // the implied unit diagonal
    Tensor q = id;
    for (std::int64_t i = k; i-- > 0;) {
        const Tensor v = narrow(vectors, 1, i, 1);
        q = q - matmul(v, matmul(transpose(v, 0, 1), q)) * narrow(tau, 0, i, 1);
    }
    return q;
}

// X's diagonal truncated to integers as a [1, k] row, without history (PyTorch's .int()).
Tensor truncated_diagonal(const Tensor& x) {
    const xt::xarray<double> values = values_of(x);
    const std::size_t k = values.shape(1);
    xt::xarray<double> row = xt::zeros<double>({std::size_t{1}, k});
    for (std::size_t i = 0; i < k; ++i) row(0, i) = std::trunc(values(i, i));
    return tensor(row).to(x.dtype());
}

xt::xarray<double> transposed_copy(const xt::xarray<double>& values) {
    xt::xarray<double> out = xt::transpose(values);
    return out;
}

Tensor to_tensor(const xt::xarray<double>& values, Dtype dtype) { return tensor(values).to(dtype); }

}  // namespace

Orthogonal::Orthogonal(Shape shape, OrthogonalMap orthogonal_map, bool use_trivialization)
    : shape(std::move(shape)),
      orthogonal_map(orthogonal_map),
      use_trivialization(use_trivialization) {
    if (this->shape.size() != 2) {
        fail("Orthogonal: expected the shape of a matrix (got {})", shape_str(this->shape));
    }
    if (use_trivialization) base = register_buffer("base", Tensor());
}

Tensor Orthogonal::forward(const Tensor& x) {
    if (x.dim() != 2) {
        fail("Orthogonal: expected a matrix (got a tensor of shape {})", shape_str(x.shape()));
    }
    check(!use_trivialization || base.defined(),
          "Orthogonal: expected the buffer base, which right_inverse sets, to be defined (got "
          "an undefined tensor)");
    auto n = static_cast<std::int64_t>(x.shape()[0]), k = static_cast<std::int64_t>(x.shape()[1]);
    const bool transposed = n < k;
    const Tensor tall = transposed ? transpose(x, 0, 1) : x;
    if (transposed) std::swap(n, k);
    Tensor q;
    if (orthogonal_map == OrthogonalMap::householder) {
        const Tensor a = tril(tall, -1);
        const Tensor tau = 2.0 / (1.0 + sum(a * a, {0}));
        q = householder_product(a, tau) * truncated_diagonal(tall);
    } else {
        Tensor lower = tril(tall);
        if (n != k) {
            const Shape pad{static_cast<std::size_t>(n), static_cast<std::size_t>(n - k)};
            lower = cat({lower, zeros(pad, tall.dtype())}, 1);
        }
        const Tensor a = lower - transpose(lower, 0, 1);
        q = orthogonal_map == OrthogonalMap::matrix_exp ? matrix_exp(a) : cayley(a);
        if (n != k) q = narrow(q, 1, 0, k);
    }
    if (use_trivialization) q = matmul(base, q);
    return transposed ? transpose(q, 0, 1) : q;
}

Value Orthogonal::right_inverse(const Tensor& q) {
    if (q.shape() != shape) {
        fail("Orthogonal: expected a matrix of shape {} (got {})", shape_str(shape),
             shape_str(q.shape()));
    }
    const bool first = !registered_;
    registered_ = true;
    NoGradGuard no_grad;
    const bool transposed = shape[0] < shape[1];
    xt::xarray<double> tall = values_of(q);
    if (transposed) tall = transposed_copy(tall);
    const std::size_t n = tall.shape(0), k = tall.shape(1);
    if (!use_trivialization) {
        if (orthogonal_map != OrthogonalMap::householder) {
            check(first,
                  "Orthogonal: it is not possible to assign to the matrix_exp or cayley "
                  "parametrizations when use_trivialization=false (got an assignment)");
            return q;
        }
        // The reflectors, with R's diagonal replaced by its signs: the forward
        // multiplies by them, and reflects where geqrf did not (tau = 0).
        Reflectors qr = geqrf(tall);
        for (std::size_t j = 0; j < k; ++j) {
            const double r = qr.a(j, j);
            qr.a(j, j) = (r > 0.0 ? 1.0 : (r < 0.0 ? -1.0 : 0.0)) * (qr.tau[j] == 0.0 ? -1.0 : 1.0);
        }
        if (transposed) qr.a = transposed_copy(qr.a);
        return to_tensor(qr.a, q.dtype());
    }
    xt::xarray<double> square;
    if (n == k) {
        square = is_orthogonal(tall, q.dtype()) ? tall : make_orthogonal(tall);
    } else {  // completed to [n, n] with random columns, which the forward never reads
        const xt::xarray<double> extra = values_of(randn({n, n - k}, q.dtype()));
        square = make_orthogonal(xt::concatenate(xt::xtuple(tall, extra), 1));
    }
    base = register_buffer("base", to_tensor(square, q.dtype()));
    return eye(static_cast<std::int64_t>(shape[0]), static_cast<std::int64_t>(shape[1]),
               q.dtype()) *
           -1.0;
}

std::shared_ptr<Module> Orthogonal::make_fresh() const {
    auto fresh = std::make_shared<Orthogonal>(shape, orthogonal_map, use_trivialization);
    if (base.defined()) fresh->register_buffer("base", zeros_like(base));
    fresh->registered_ = registered_;
    return fresh;
}

// Keeps `base` in step with the registry (load with assign, functional_call).
void Orthogonal::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "base") base = value;
}

}  // namespace xg::nn::utils::parametrizations
