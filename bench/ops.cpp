// Single ops outside the FFN step, with Google Benchmark: what a model built
// from separate modules (Sequential{Linear, ReLU, Dropout, ...}) runs.
//
//   cmake -S . -B build-bench -DXGRAD_BUILD_BENCH=ON && cmake --build build-bench --target ops
//   build-bench/bench/ops
#include <benchmark/benchmark.h>
#include <xgrad/xgrad.hpp>

namespace {

const xg::Shape kShape{2048, 2048};

void BM_DropoutForward(benchmark::State& state) {
    xg::NoGradGuard no_grad;
    xg::Tensor x = xg::randn(kShape);
    for (auto _ : state) benchmark::DoNotOptimize(xg::dropout(x, 0.1, true));
    state.SetItemsProcessed(state.iterations() * std::int64_t(x.numel()));
}
BENCHMARK(BM_DropoutForward)->Unit(benchmark::kMillisecond);

void BM_DropoutForwardBackward(benchmark::State& state) {
    xg::Tensor x = xg::randn(kShape).requires_grad_();
    xg::Tensor grad = xg::ones(kShape);
    for (auto _ : state) {
        xg::dropout(x, 0.1, true).backward(grad);
        x.mutable_grad() = xg::Tensor();
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(x.numel()));
}
BENCHMARK(BM_DropoutForwardBackward)->Unit(benchmark::kMillisecond);

// A unary op forward, then forward and backward, for comparison with dropout.
template <xg::Tensor (*Op)(const xg::Tensor&)>
void BM_UnaryForwardBackward(benchmark::State& state) {
    xg::Tensor x = xg::randn(kShape).requires_grad_();
    xg::Tensor grad = xg::ones(kShape);
    for (auto _ : state) {
        Op(x).backward(grad);
        x.mutable_grad() = xg::Tensor();
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(x.numel()));
}
xg::Tensor relu(const xg::Tensor& x) { return xg::relu(x); }
xg::Tensor gelu(const xg::Tensor& x) { return xg::gelu(x); }
xg::Tensor silu(const xg::Tensor& x) { return xg::silu(x); }
xg::Tensor scale(const xg::Tensor& x) { return x * 0.5; }
xg::Tensor square(const xg::Tensor& x) { return x * x; }
BENCHMARK(BM_UnaryForwardBackward<relu>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<gelu>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<silu>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<scale>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<square>)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
