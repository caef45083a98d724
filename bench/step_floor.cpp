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
// arithmetic xgrad does. With --threads n the GEMMs run on n OpenBLAS threads
// and the passes on one; the floor (step_ms, forward_ms) credits the passes a
// perfect split (their time / n, timed inside the step), so it stays a lower
// bound. The split floor (split_step_ms, split_forward_ms) instead splits each
// pass over at least two of xgrad's grains into n blocks on xgrad's pool, as
// xgrad's own loops split: what such loops get from this machine's cores and
// memory. At one thread the two are the same.
//   step_floor --size small --variant gelu --threads 2
#include <array>
#include <cmath>
#include <cstdint>

#include <cblas.h>
#include <xgrad/parallel.hpp>
#include <xgrad/tensor.hpp>

#include "bench_common.hpp"
#include "dropout_mask.hpp"
#include "elementwise_rules.hpp"

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

// The hidden layer's pass over rows [first, last) (forward, or backward with dA
// in r.a), compiled for AVX-512, AVX2 and baseline as xgrad's loops are.
// keep: room for one row's mask (d_ff bytes).
XG_CLONES_V4_V3 void hidden_pass(bool forward, const Layout& L, const Row& r,
                                 const xg::detail::Mask& mask, std::uint8_t* keep, int first,
                                 int last) {
    for (int i = first; i < last; ++i) {
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

// dY = 2 (y - t) / n over rows [first, last) of [T, d], their column sums into
// db; returns their sum of squares.
XG_CLONES_V4_V3 float loss_pass(const Layout& L, const float* y, const float* t, float* dy,
                                float* db, int first, int last) {
    const std::size_t n = std::size_t(L.T) * std::size_t(L.d);
    const float factor = 2.0f / float(n);
    std::array<float, 16> lanes{};
    for (int c = 0; c < L.d; ++c) db[c] = 0.0f;
    for (int i = first; i < last; ++i) {
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
    return sum;
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

// Runs body(first, last, k) over [0, count) in `blocks` contiguous blocks on
// xgrad's pool, block k on one thread.
template <class F>
void split(std::size_t count, int blocks, const F& body) {
    if (blocks == 1) return body(std::size_t(0), count, 0);
    xg::parallel_for(0, blocks, 1, [&](std::int64_t begin, std::int64_t end) {
        for (auto k = begin; k < end; ++k)
            body(count * std::size_t(k) / std::size_t(blocks),
                 count * std::size_t(k + 1) / std::size_t(blocks), int(k));
    });
}

void seed_rows(float* out, const float* bias, std::size_t first, std::size_t last, int cols) {
    for (std::size_t i = first; i < last; ++i)
        std::copy(bias, bias + cols, out + i * std::size_t(cols));
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
    int threads;
    Param w1, b1, wv, bv, w2, b2;
    std::vector<float> x, t, h, v, a, y, dy, da, dv, dx;
    // Per block: one row of the dropout mask, and column sums (db1, dbv, db2) to add up.
    std::vector<std::uint8_t> keep;
    std::vector<float> sums, parts;  // parts: each block's sum of squares
    int steps = 0;
    bool split_passes = false;  // else the passes run on one thread, timed
    double pass_ms = 0;         // this step's time in the passes, at n > 1 threads

    Floor(const Layout& l, double p, int n_threads)
        : L(l),
          dropout(p),
          threads(n_threads),
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
          keep(n(n_threads, L.f)),
          sums(n(n_threads, 2 * L.f + L.d)),
          parts(std::size_t(n_threads)) {}
    static std::size_t n(int rows, int cols) { return std::size_t(rows) * std::size_t(cols); }

    // How many blocks a pass over `elements` splits into: xgrad's rule (two grains).
    int blocks(std::size_t elements) const {
        const bool big = elements >= std::size_t(2 * xg::kElementwiseGrain);
        return split_passes && big ? threads : 1;
    }
    float* sums_of(int k) { return sums.data() + n(k, 2 * L.f + L.d); }

    template <class F>
    void pass(const F& f) {
        if (split_passes || threads == 1) return f();
        const auto start = bench::Clock::now();
        f();
        pass_ms += bench::ms_since(start);
    }

    Row row(float* out) const {
        const double scale = dropout == 1.0 ? 0.0 : 1.0 / (1.0 - dropout);
        return Row{.h = h.data(), .v = v.data(), .a = out, .scale = float(scale), .f = L.f};
    }

    void seed(std::vector<float>& out, const Param& bias, int rows, int cols) {
        pass([&] {
            split(std::size_t(rows), blocks(n(rows, cols)), [&](std::size_t b, std::size_t e, int) {
                seed_rows(out.data(), bias.p.data(), b, e, cols);
            });
        });
    }

    // The hidden layer's linears: h (and v) = x W^T + b.
    void hidden_linears() {
        seed(h, b1, L.T, L.f);
        gemm(N, Tr, L.T, L.f, L.d, x.data(), L.d, w1.p.data(), L.d, 1.f, h.data());
        if (!L.gate) return;
        seed(v, bv, L.T, L.f);
        gemm(N, Tr, L.T, L.f, L.d, x.data(), L.d, wv.p.data(), L.d, 1.f, v.data());
    }

    // The hidden pass forward, or backward with dA in da (each block's column
    // sums in its own rows of `sums`, added up after).
    void hidden(bool forward, const xg::detail::Mask& mask) {
        const int k_blocks = blocks(n(L.T, L.f));
        pass([&] {
            split(std::size_t(L.T), k_blocks, [&](std::size_t b, std::size_t e, int k) {
                Row r = row(forward ? a.data() : da.data());
                if (!forward) {
                    r.dv = dv.data();
                    r.db = sums_of(k);
                    r.dbv = r.db + L.f;
                    std::fill(r.db, r.db + 2 * L.f, 0.0f);
                }
                hidden_pass(forward, L, r, mask, keep.data() + n(k, L.f), int(b), int(e));
            });
            if (!forward) add_sums(k_blocks, 0, b1.g, L.gate ? &bv.g : nullptr);
        });
    }

    // g (and g2) = the blocks' column sums at offset `at` (and at + L.f).
    void add_sums(int k_blocks, std::size_t at, std::vector<float>& g, std::vector<float>* g2) {
        for (std::size_t j = 0; j < g.size(); ++j) {
            float s = 0.0f, s2 = 0.0f;
            for (int k = 0; k < k_blocks; ++k) {
                s += sums_of(k)[at + j];
                if (g2) s2 += sums_of(k)[at + std::size_t(L.f) + j];
            }
            g[j] = s;
            if (g2) (*g2)[j] = s2;
        }
    }

    void forward(const xg::detail::Mask& mask) {
        hidden_linears();
        hidden(true, mask);
        seed(y, b2, L.T, L.d);
        gemm(N, Tr, L.T, L.d, L.f, a.data(), L.f, w2.p.data(), L.f, 1.f, y.data());
    }

    float loss() {
        const int k_blocks = blocks(n(L.T, L.d));
        split(std::size_t(L.T), k_blocks, [&](std::size_t b, std::size_t e, int k) {
            float* db = sums_of(k) + 2 * L.f;
            parts[std::size_t(k)] = loss_pass(L, y.data(), t.data(), dy.data(), db, int(b), int(e));
        });
        add_sums(k_blocks, 2 * std::size_t(L.f), b2.g, nullptr);
        float sum = 0.0f;
        for (int k = 0; k < k_blocks; ++k) sum += parts[std::size_t(k)];
        return sum / float(n(L.T, L.d));
    }

    void backward(const xg::detail::Mask& mask) {
        gemm(Tr, N, L.d, L.f, L.T, dy.data(), L.d, a.data(), L.f, 0.f, w2.g.data());
        gemm(N, N, L.T, L.f, L.d, dy.data(), L.d, w2.p.data(), L.f, 0.f, da.data());
        hidden(false, mask);
        gemm(Tr, N, L.f, L.d, L.T, da.data(), L.f, x.data(), L.d, 0.f, w1.g.data());
        if (L.gate) gemm(Tr, N, L.f, L.d, L.T, dv.data(), L.f, x.data(), L.d, 0.f, wv.g.data());
        gemm(N, N, L.T, L.d, L.f, da.data(), L.f, w1.p.data(), L.d, 0.f, dx.data());
        if (L.gate) gemm(N, N, L.T, L.d, L.f, dv.data(), L.f, wv.p.data(), L.d, 1.f, dx.data());
    }

    // Adam on every parameter, each split as an elementwise loop.
    void adam() {
        const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(0.999, steps)));
        const float neg_step_size = float(-1e-4 / (1.0 - std::pow(0.9, steps)));
        for (Param* q : {&w1, &b1, &wv, &bv, &w2, &b2}) {
            split(q->p.size(), blocks(q->p.size()), [&](std::size_t b, std::size_t e, int) {
                adam_update(q->p.data() + b, q->g.data() + b, q->m.data() + b, q->v.data() + b,
                            e - b, bc2_sqrt, neg_step_size);
            });
        }
    }

    void step() {
        pass_ms = 0;
        const xg::detail::Mask mask{dropout > 0, std::uint64_t(++steps),
                                    xg::detail::dropout_threshold(dropout)};
        forward(mask);
        pass([&] { (void)loss(); });
        backward(mask);
        pass([&] { adam(); });
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

// Median over steps of the step's time; unless split, its passes (timed on one
// thread) credited a perfect split over n threads.
template <class F>
double floor_ms(const bench::Config& c, Floor& s, const F& body) {
    const double idle = s.split_passes ? 0.0 : 1.0 - 1.0 / c.threads;
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
    xg::set_num_threads(c.threads);  // OpenBLAS's threads and xgrad's pool
    const Layout L{int(c.tokens), int(c.d_model), int(c.d_ff), act_of(c.variant), bench::gated(c)};
    Floor s(L, c.dropout, c.threads);
    s.split_passes = false;
    const double step_ms = floor_ms(c, s, [&] { s.step(); });
    const double forward_ms = floor_ms(c, s, [&] { s.inference(); });
    double split_step_ms = step_ms, split_forward_ms = forward_ms;
    if (c.threads > 1) {
        s.split_passes = true;
        split_step_ms = floor_ms(c, s, [&] { s.step(); });
        split_forward_ms = floor_ms(c, s, [&] { s.inference(); });
    }
    char split[96];
    std::snprintf(split, sizeof split, " split_step_ms=%.4f split_forward_ms=%.4f", split_step_ms,
                  split_forward_ms);
    bench::report("floor", c, step_ms, forward_ms, 0, 0, split);
}
