// The floor of an FFN training step on OpenBLAS: gemm_limit's GEMMs plus the
// step's own elementwise work, each piece written as one bare pass, over the
// buffers every implementation keeps (a gradient and two Adam moments per
// parameter). What xgrad spends beyond this floor is its own overhead; what the
// floor adds to the limit is work no implementation on these GEMMs can skip:
//   forward   bias rows (the GEMM adds onto them), activation x gate x dropout
//   loss      (y - t)^2 summed, dY and its column sums (db2), one pass
//   backward  the activation's gradient and its column sums (db1, dbv), one pass
//   Adam      one pass per parameter, PyTorch's order of operations (as xgrad's)
// The passes use xgrad's activation rules and dropout hash, so they do the
// arithmetic xgrad does. With --threads n the GEMMs run on n OpenBLAS
// threads and the passes on one; the reported floor credits the passes a perfect
// split (their time / n, timed inside the step), so it stays a lower bound.
//   step_floor --size small --variant gelu --threads 2
#include <array>
#include <cmath>
#include <cstdint>

#include <cblas.h>

#include "bench_common.hpp"
#include "dropout_mask.hpp"
#include "elementwise_rules.hpp"

extern "C" void openblas_set_num_threads(int num_threads);

namespace {

enum class Act { relu, gelu, silu };

struct Layout {
    int T, d, f;  // tokens, d_model, d_ff
    Act act;
    bool gate;
};

// One row of the hidden layer; r.keep[j] scales by `scale` or drops.
struct Row {
    const float *h, *v;  // v: the gate's linear, when gated
    float* a;
    float *dv = nullptr, *db = nullptr, *dbv = nullptr;  // backward only
    const std::uint8_t* keep = nullptr;                  // set per row, with dropout
    float scale;
    int f;
};

// a = act(h) [* v] [* (keep ? scale : 0)], with xgrad's activation rules. The
// rows' arrays never overlap; without saying so (ivdep) GCC leaves the loops scalar.
template <class Rule, bool Gate, bool Dropout>
void forward_row(const Row& r) {
    const float scale = r.scale;  // a local: a float store might change r.scale
    XG_IVDEP
    for (int j = 0; j < r.f; ++j) {
        float out = Rule::forward(r.h[j]);
        if constexpr (Gate) out *= r.v[j];
        if constexpr (Dropout) out *= r.keep[j] ? scale : 0.0f;
        r.a[j] = out;
    }
}

// r.a holds dA on entry and dH on return; dv and the column sums accumulate.
template <class Rule, bool Gate, bool Dropout>
void backward_row(const Row& r) {
    const float scale = r.scale;  // a local: a float store might change r.scale
    XG_IVDEP
    for (int j = 0; j < r.f; ++j) {
        float g = r.a[j];
        if constexpr (Dropout) g *= r.keep[j] ? scale : 0.0f;
        if constexpr (Gate) {
            const float gv = g * Rule::forward(r.h[j]);
            r.dv[j] = gv;
            r.dbv[j] += gv;
            g *= r.v[j];
        }
        const float gh = Rule::grad(r.h[j], g);
        r.a[j] = gh;
        r.db[j] += gh;
    }
}

template <class Rule>
void run_row(bool forward, bool gate, const Row& r) {
    auto run = [&]<bool Gate, bool Dropout>() {
        if (forward)
            forward_row<Rule, Gate, Dropout>(r);
        else
            backward_row<Rule, Gate, Dropout>(r);
    };
    if (gate)
        r.keep ? run.template operator()<true, true>() : run.template operator()<true, false>();
    else
        r.keep ? run.template operator()<false, true>() : run.template operator()<false, false>();
}

// The hidden layer's pass over every row (forward, or backward with dA in r.a),
// compiled for AVX-512, AVX2 and baseline as xgrad's loops are.
// keep: room for one row's mask (d_ff bytes).
XG_CLONES_V4_V3 void hidden_pass(bool forward, const Layout& L, const Row& r,
                                 const xg::detail::Mask& mask, std::uint8_t* keep) {
    for (int i = 0; i < L.T; ++i) {
        const std::size_t at = std::size_t(i) * std::size_t(L.f);
        if (mask.active)
            xg::detail::keep_mask(mask.key, at, std::size_t(L.f), mask.threshold, keep);
        Row row = r;
        row.h += at;
        row.a += at;
        if (L.gate) row.v += at;
        if (L.gate && !forward) row.dv += at;
        row.keep = mask.active ? keep : nullptr;
        switch (L.act) {
            case Act::relu: run_row<xg::detail::ReluRule>(forward, L.gate, row); break;
            case Act::gelu: run_row<xg::detail::GeluRule>(forward, L.gate, row); break;
            case Act::silu: run_row<xg::detail::SiluRule>(forward, L.gate, row); break;
        }
    }
}

// dY = 2 (y - t) / n over [T, d], its column sums into db, and the loss.
XG_CLONES_V4_V3 float loss_pass(const Layout& L, const float* y, const float* t, float* dy,
                                float* db) {
    const std::size_t n = std::size_t(L.T) * std::size_t(L.d);
    const float factor = 2.0f / float(n);
    std::array<float, 16> lanes{};
    for (int c = 0; c < L.d; ++c) db[c] = 0.0f;
    for (int i = 0; i < L.T; ++i) {
        const std::size_t at = std::size_t(i) * std::size_t(L.d);
        for (int c = 0; c < L.d; ++c) {
            const float diff = y[at + c] - t[at + c];
            lanes[std::size_t(c) & 15] += diff * diff;
            dy[at + c] = diff * factor;
            db[c] += dy[at + c];
        }
    }
    float sum = 0.0f;
    for (float lane : lanes) sum += lane;
    return sum / float(n);
}

struct Param {
    std::vector<float> p, g, m, v;
    explicit Param(std::size_t n) : p(n, 0.01f), g(n, 0.0f), m(n, 0.0f), v(n, 0.0f) {}
};

// Adam's update in PyTorch's order of operations (lr 1e-4, betas 0.9/0.999, eps 1e-8).
XG_CLONES_V4_V3 void adam_update(float* __restrict p, const float* __restrict g,
                                 float* __restrict m, float* __restrict v, std::size_t n,
                                 float bc2_sqrt, float neg_step_size) {
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    for (std::size_t i = 0; i < n; ++i) {
        m[i] = m[i] * beta1 + (1.0f - beta1) * g[i];
        v[i] = v[i] * beta2 + (1.0f - beta2) * g[i] * g[i];
        p[i] = p[i] + neg_step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
    }
}

void adam_pass(Param& q, int step) {
    const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(0.999, step)));
    const float neg_step_size = float(-1e-4 / (1.0 - std::pow(0.9, step)));
    adam_update(q.p.data(), q.g.data(), q.m.data(), q.v.data(), q.p.size(), bc2_sqrt,
                neg_step_size);
}

void seed_rows(float* out, const float* bias, int rows, int cols) {
    for (int i = 0; i < rows; ++i)
        std::copy(bias, bias + cols, out + std::size_t(i) * std::size_t(cols));
}

const auto R = CblasRowMajor;
const auto N = CblasNoTrans, Tr = CblasTrans;

// out[rows, cols] (+)= a[rows, k] b^T or a b, as the Linear layers' GEMMs.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int rows, int cols, int k, const float* a,
          int lda, const float* b, int ldb, float beta, float* out) {
    cblas_sgemm(R, ta, tb, rows, cols, k, 1.f, a, lda, b, ldb, beta, out, cols);
}

struct Floor {
    Layout L;
    double dropout;
    Param w1, b1, wv, bv, w2, b2;
    std::vector<float> x, t, h, v, a, y, dy, da, dv, dx;
    std::vector<std::uint8_t> keep;  // one row of the dropout mask
    int steps = 0;
    bool time_passes = false;
    double pass_ms = 0;  // this step's time in the passes, when timed

    Floor(const Layout& l, double p)
        : L(l),
          dropout(p),
          w1(n(L.f, L.d)),
          b1(n(L.f, 1)),
          wv(n(L.gate ? L.f : 0, L.d)),
          bv(n(L.gate ? L.f : 0, 1)),
          w2(n(L.d, L.f)),
          b2(n(L.d, 1)),
          x(n(L.T, L.d), 0.5f),
          t(n(L.T, L.d), 0.25f),
          h(n(L.T, L.f)),
          v(n(L.T, L.f)),
          a(n(L.T, L.f)),
          y(n(L.T, L.d)),
          dy(n(L.T, L.d)),
          da(n(L.T, L.f)),
          dv(n(L.T, L.f)),
          dx(n(L.T, L.d)),
          keep(std::size_t(L.f)) {}
    static std::size_t n(int rows, int cols) { return std::size_t(rows) * std::size_t(cols); }

    template <class F>
    void pass(const F& f) {
        if (!time_passes) return f();
        const auto start = bench::Clock::now();
        f();
        pass_ms += bench::ms_since(start);
    }

    Row row(float* out) const {
        const double scale = dropout == 1.0 ? 0.0 : 1.0 / (1.0 - dropout);
        return Row{.h = h.data(), .v = v.data(), .a = out, .scale = float(scale), .f = L.f};
    }

    // The hidden layer's linears: h (and v) = x W^T + b.
    void hidden_linears() {
        pass([&] { seed_rows(h.data(), b1.p.data(), L.T, L.f); });
        gemm(N, Tr, L.T, L.f, L.d, x.data(), L.d, w1.p.data(), L.d, 1.f, h.data());
        if (!L.gate) return;
        pass([&] { seed_rows(v.data(), bv.p.data(), L.T, L.f); });
        gemm(N, Tr, L.T, L.f, L.d, x.data(), L.d, wv.p.data(), L.d, 1.f, v.data());
    }

    void forward(const xg::detail::Mask& mask) {
        hidden_linears();
        pass([&] { hidden_pass(true, L, row(a.data()), mask, keep.data()); });
        pass([&] { seed_rows(y.data(), b2.p.data(), L.T, L.d); });
        gemm(N, Tr, L.T, L.d, L.f, a.data(), L.f, w2.p.data(), L.f, 1.f, y.data());
    }

    void backward(const xg::detail::Mask& mask) {
        gemm(Tr, N, L.d, L.f, L.T, dy.data(), L.d, a.data(), L.f, 0.f, w2.g.data());
        gemm(N, N, L.T, L.f, L.d, dy.data(), L.d, w2.p.data(), L.f, 0.f, da.data());
        pass([&] {
            Row r = row(da.data());
            r.dv = dv.data();
            r.db = b1.g.data();
            r.dbv = bv.g.data();
            std::fill(b1.g.begin(), b1.g.end(), 0.0f);
            std::fill(bv.g.begin(), bv.g.end(), 0.0f);
            hidden_pass(false, L, r, mask, keep.data());
        });
        gemm(Tr, N, L.f, L.d, L.T, da.data(), L.f, x.data(), L.d, 0.f, w1.g.data());
        if (L.gate) gemm(Tr, N, L.f, L.d, L.T, dv.data(), L.f, x.data(), L.d, 0.f, wv.g.data());
        gemm(N, N, L.T, L.d, L.f, da.data(), L.f, w1.p.data(), L.d, 0.f, dx.data());
        if (L.gate) gemm(N, N, L.T, L.d, L.f, dv.data(), L.f, wv.p.data(), L.d, 1.f, dx.data());
    }

    void step() {
        pass_ms = 0;
        const xg::detail::Mask mask{dropout > 0, std::uint64_t(++steps),
                                    xg::detail::dropout_threshold(dropout)};
        forward(mask);
        pass([&] { loss_pass(L, y.data(), t.data(), dy.data(), b2.g.data()); });
        backward(mask);
        pass([&] {
            for (Param* q : {&w1, &b1, &wv, &bv, &w2, &b2})
                if (!q->p.empty()) adam_pass(*q, steps);
        });
    }

    void inference() {
        pass_ms = 0;
        forward(xg::detail::Mask{false, 0, 0});
    }
};

// The variant's activation, as ffn_step builds it; an unknown name ends the program, as there.
Act act_of(const std::string& variant) {
    if (variant == "relu" || variant == "reglu") return Act::relu;
    if (variant == "gelu" || variant == "geglu") return Act::gelu;
    if (variant == "silu" || variant == "swiglu") return Act::silu;
    std::fprintf(stderr, "unknown variant '%s'\n", variant.c_str());
    std::exit(2);
}

// Median over steps of the step's time, its passes credited a split over n threads.
template <class F>
double floor_ms(const bench::Config& c, Floor& s, const F& body) {
    const double idle = 1.0 - 1.0 / c.threads;
    s.time_passes = c.threads > 1;
    for (int i = 0; i < c.warmup; ++i) body();
    std::vector<double> times;
    for (int i = 0; i < c.steps; ++i) {
        const auto start = bench::Clock::now();
        body();
        times.push_back(bench::ms_since(start) - s.pass_ms * idle);
    }
    return bench::median(times);
}

}  // namespace

int main(int argc, char** argv) {
    bench::Config c = bench::parse(argc, argv);
    if (!c.input_grad) {
        std::fprintf(stderr, "step_floor: only --input-grad 1 (x needs a gradient)\n");
        return 2;
    }
    openblas_set_num_threads(c.threads);
    const Layout L{int(c.tokens), int(c.d_model), int(c.d_ff), act_of(c.variant), bench::gated(c)};
    Floor s(L, c.dropout);
    const double step_ms = floor_ms(c, s, [&] { s.step(); });
    const double forward_ms = floor_ms(c, s, [&] { s.inference(); });
    bench::report("floor", c, step_ms, forward_ms, 0, 0);
}
