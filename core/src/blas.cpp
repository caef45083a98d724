// Hand-written CBLAS declarations (see blas.hpp for why) and the gemm wrapper.
#include "blas.hpp"

#include <algorithm>

extern "C" {
enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m, int n,
                 int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                 float* c, int ldc);
void cblas_dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m, int n,
                 int k, double alpha, const double* a, int lda, const double* b, int ldb,
                 double beta, double* c, int ldc);
}

namespace xg::blas {

template <>
void gemm<float>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                 float alpha, const float* a, const float* b, float beta, float* c) {
    if (m == 0 || n == 0) return;
    int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, a,
                std::max(1, trans_a ? M : K), b, std::max(1, trans_b ? K : N), beta, c,
                std::max(1, N));
}

template <>
void gemm<double>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                  double alpha, const double* a, const double* b, double beta, double* c) {
    if (m == 0 || n == 0) return;
    int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, a,
                std::max(1, trans_a ? M : K), b, std::max(1, trans_b ? K : N), beta, c,
                std::max(1, N));
}

}  // namespace xg::blas
