// Single ops outside the FFN step, with Google Benchmark: what a model built
// from separate modules (Sequential{Linear, ReLU, Dropout, ...}) runs.
//
//   cmake -S . -B build-bench -DXGRAD_BUILD_BENCH=ON && cmake --build build-bench --target ops
//   build-bench/bench/ops
#include <algorithm>
#include <vector>

#include <benchmark/benchmark.h>
#include <xgrad/detail/cpu_dispatch.hpp>
#include <xgrad/parallel.hpp>
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
xg::Tensor gelu_tanh(const xg::Tensor& x) { return xg::gelu(x, "tanh"); }
xg::Tensor silu(const xg::Tensor& x) { return xg::silu(x); }
xg::Tensor scale(const xg::Tensor& x) { return x * 0.5; }
xg::Tensor square(const xg::Tensor& x) { return x * x; }
BENCHMARK(BM_UnaryForwardBackward<relu>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<gelu>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<gelu_tanh>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<silu>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<scale>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryForwardBackward<square>)->Unit(benchmark::kMillisecond);

// Forward and backward of f(x) for the other op families, on the same [2048, 2048] input.
template <class F>
void forward_backward(benchmark::State& state, F f) {
    xg::Tensor x = xg::randn(kShape).requires_grad_();
    for (auto _ : state) {
        xg::Tensor y = f(x);
        y.backward(xg::ones(y.shape()));
        x.mutable_grad() = xg::Tensor();
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(x.numel()));
}
void BM_Tanh(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::tanh(x); });
}
void BM_Exp(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::exp(x); });
}
void BM_AddRow(benchmark::State& s) {
    xg::Tensor row = xg::randn({kShape[1]}).requires_grad_();
    forward_backward(s, [&](auto& x) { return x + row; });
}
void BM_MulRow(benchmark::State& s) {
    xg::Tensor row = xg::randn({kShape[1]}).requires_grad_();
    forward_backward(s, [&](auto& x) { return x * row; });
}
void BM_SumRows(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::sum(x, {0}); });
}
void BM_SumCols(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::sum(x, {1}); });
}
void BM_Softmax(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::softmax(x, -1); });
}
void BM_LogSoftmax(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::log_softmax(x, -1); });
}
void BM_LayerNorm(benchmark::State& s) {
    xg::Tensor w = xg::ones({kShape[1]}).requires_grad_(),
               b = xg::zeros({kShape[1]}).requires_grad_();
    forward_backward(s, [&](auto& x) { return xg::layer_norm(x, {kShape[1]}, w, b); });
}
void BM_Transpose(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::transpose(x, 0, 1); });
}
void BM_MseLoss(benchmark::State& s) {
    xg::Tensor target = xg::randn(kShape);
    forward_backward(s, [&](auto& x) { return xg::mse_loss(x, target); });
}
void BM_CrossEntropy(benchmark::State& s) {
    xg::Tensor targets = xg::randint(0, std::int64_t(kShape[1]), {kShape[0]});
    forward_backward(s, [&](auto& x) { return xg::cross_entropy(x, targets); });
}
// Issue 19's ops: selection, slicing, gathering and the new reductions.
void BM_Where(benchmark::State& s) {
    xg::Tensor mask = xg::gt(xg::randn(kShape), 0.0), other = xg::randn(kShape);
    forward_backward(s, [&](auto& x) { return xg::where(mask, x, other); });
}
void BM_Clamp(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::clamp(x, -0.5, 0.5); });
}
void BM_SliceStep2(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return x.slice(1, 0, std::nullopt, 2); });
}
void BM_Gather(benchmark::State& s) {
    xg::Tensor index = xg::randint(0, std::int64_t(kShape[1]), kShape);
    forward_backward(s, [&](auto& x) { return xg::gather(x, 1, index); });
}
void BM_Var(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::var(x, {1}); });
}
void BM_LogSumExp(benchmark::State& s) {
    forward_backward(s, [](auto& x) { return xg::logsumexp(x, {1}); });
}
BENCHMARK(BM_Where)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Clamp)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SliceStep2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gather)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Var)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LogSumExp)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tanh)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Exp)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AddRow)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MulRow)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SumRows)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SumCols)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Softmax)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LogSoftmax)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LayerNorm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Transpose)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MseLoss)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CrossEntropy)->Unit(benchmark::kMillisecond);

// What the memory system allows, for comparison at 1 and 2 threads: the two
// passes relu's forward and backward make over [2048, 2048] float32 arrays
// (y = max(x, 0), then d = g where y > 0: five 16 MiB streams), as bare loops
// into buffers allocated once, split as the library splits them (for_chunks),
// and compiled for AVX-512 and AVX2 as xgrad's loops are, so that one thread
// streams as fast as xgrad's. No memory-bound op splits better than this on the
// same machine: a 2-thread / 1-thread ratio above 0.5 here is the memory's.
XG_CLONES_V4_V3 void relu_loop(const float* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] = std::max(x[i], 0.0f);
}
XG_CLONES_V4_V3 void relu_grad_loop(const float* y, const float* g, float* d, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const float gi = g[i];  // loaded always: GCC vectorises no conditional load
        d[i] = y[i] > 0 ? gi : 0.0f;
    }
}

void BM_StreamRelu(benchmark::State& state) {
    const std::size_t n = kShape[0] * kShape[1];
    std::vector<float> x(n, 1.0f), y(n), g(n, 1.0f), d(n);
    for (auto _ : state) {
        xg::detail::for_chunks(n, [&](std::size_t first, std::size_t count) {
            relu_loop(x.data() + first, y.data() + first, count);
        });
        xg::detail::for_chunks(n, [&](std::size_t first, std::size_t count) {
            relu_grad_loop(y.data() + first, g.data() + first, d.data() + first, count);
        });
        benchmark::DoNotOptimize(d.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(n));
}
BENCHMARK(BM_StreamRelu)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
