// The physical limit of an FFN step: only its GEMMs, in OpenBLAS, into buffers
// allocated once. Forward: layer1 (and linear_v when gated), layer2. Backward:
// layer2's dH and dW2, layer1's dW1 (and dWv), and dX when the input needs a
// gradient. Prints step_ms (all of them) and forward_ms (the forward ones).
#include <cblas.h>

#include "bench_common.hpp"

extern "C" void openblas_set_num_threads(int num_threads);

int main(int argc, char** argv) {
    bench::Config c = bench::parse(argc, argv);
    openblas_set_num_threads(c.threads);
    const int T = static_cast<int>(c.tokens), d = static_cast<int>(c.d_model),
              f = static_cast<int>(c.d_ff);
    const bool gate = bench::gated(c);
    auto buffer = [](long n) { return std::vector<float>(static_cast<std::size_t>(n), 0.01f); };
    auto x = buffer(long(T) * d), w1 = buffer(long(f) * d), wv = buffer(long(f) * d),
         w2 = buffer(long(d) * f), a = buffer(long(T) * f), v = buffer(long(T) * f),
         y = buffer(long(T) * d), dh = buffer(long(T) * f), dw = buffer(long(f) * d),
         dx = buffer(long(T) * d);
    const auto R = CblasRowMajor;
    const auto N = CblasNoTrans, Tr = CblasTrans;
    auto forward = [&] {
        cblas_sgemm(R, N, Tr, T, f, d, 1.f, x.data(), d, w1.data(), d, 0.f, a.data(), f);
        if (gate) cblas_sgemm(R, N, Tr, T, f, d, 1.f, x.data(), d, wv.data(), d, 0.f, v.data(), f);
        cblas_sgemm(R, N, Tr, T, d, f, 1.f, a.data(), f, w2.data(), f, 0.f, y.data(), d);
    };
    auto step = [&] {
        forward();
        // layer2: dH = dY W2 [T, f], dW2 = dY^T H [d, f]
        cblas_sgemm(R, N, N, T, f, d, 1.f, y.data(), d, w2.data(), f, 0.f, dh.data(), f);
        cblas_sgemm(R, Tr, N, d, f, T, 1.f, y.data(), d, a.data(), f, 0.f, dw.data(), f);
        // layer1 (and linear_v): dW = dA^T X [f, d], dX = dA W [T, d]
        cblas_sgemm(R, Tr, N, f, d, T, 1.f, dh.data(), f, x.data(), d, 0.f, dw.data(), d);
        if (gate) cblas_sgemm(R, Tr, N, f, d, T, 1.f, v.data(), f, x.data(), d, 0.f, dw.data(), d);
        if (c.input_grad) {
            cblas_sgemm(R, N, N, T, d, f, 1.f, dh.data(), f, w1.data(), d, 0.f, dx.data(), d);
            if (gate)
                cblas_sgemm(R, N, N, T, d, f, 1.f, v.data(), f, wv.data(), d, 1.f, dx.data(), d);
        }
    };
    double step_ms = bench::timed(c, c.steps, step);
    double forward_ms = bench::timed(c, c.steps, forward);
    bench::report("limit", c, step_ms, forward_ms, 0, 0);
}
