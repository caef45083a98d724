// The BLAS calls xgrad makes. Declared by hand in blas.cpp because <cblas.h>
// clashes with xtensor-blas's declarations.
#pragma once

#include <cstddef>

namespace xg::blas {

// C = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X^T when trans_x.
// op(A) is [m, k], op(B) is [k, n], C is [m, n].
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
          const T* a, const T* b, T beta, T* c);

}  // namespace xg::blas
