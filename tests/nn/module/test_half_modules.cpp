// Modules in 16-bit floats: half() and bfloat16() convert floating parameters,
// buffers and grads (integer buffers stay), a forward rounds once per op as
// PyTorch's CPU kernels do, and the optimizers refuse 16-bit parameters.
#include <cstring>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_half_modules {

using namespace xg;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() &&
           std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

struct WithSteps : nn::Module {
    WithSteps() {
        ffn = register_module("ffn", nn::FeedForward::swiglu(8, 16, 0.0));
        register_buffer("steps", arange(3));
    }
    Tensor forward(const Tensor& x) override { return (*ffn)(x); }
    std::shared_ptr<nn::FeedForward> ffn;
};

}  // namespace

TEST_CASE("half() and bfloat16() round floating parameters and grads; integer buffers stay") {
    for (Dtype dtype : {kFloat16, kBFloat16}) {
        CAPTURE(dtype_name(dtype));
        manual_seed(1);
        auto m = std::make_shared<WithSteps>();
        sum((*m)(randn({3, 8}))).backward();
        std::vector<std::pair<Tensor, Tensor>> expected;  // (handle, rounded copy of its value)
        for (Tensor& p : m->parameters()) expected.emplace_back(p, p.detach().to(dtype));
        const Tensor grad = m->ffn->layer1->weight.grad().to(dtype);
        dtype == kFloat16 ? m->half() : m->bfloat16();
        for (const auto& [handle, rounded] : expected) CHECK(same_bits(handle, rounded));
        CHECK(same_bits(m->ffn->layer1->weight.grad(), grad));
        CHECK(m->get_buffer("steps").dtype() == kInt64);
        // And back: every 16-bit value is a float32 exactly.
        m->float_();
        for (const auto& [handle, rounded] : expected)
            CHECK(same_bits(handle, rounded.to(kFloat32)));
    }
}

TEST_CASE("a bfloat16 FeedForward computes each op in float32 and rounds its result once") {
    manual_seed(2);
    auto ffn = nn::FeedForward::swiglu(8, 16, 0.0);
    ffn->bfloat16();
    const Tensor x = randn({4, 8}).to(kBFloat16);
    const Tensor y = (*ffn)(x);
    REQUIRE(y.dtype() == kBFloat16);
    // By hand: each op in float32 on the bfloat16 values, rounded once. The
    // gate's silu(h) * v is one fused op in FeedForward, so one rounding.
    auto f32 = [](const Tensor& t) { return t.to(kFloat32); };
    const Tensor h = linear(f32(x), f32(ffn->layer1->weight)).to(kBFloat16);
    const Tensor v = linear(f32(x), f32(ffn->linear_v->weight)).to(kBFloat16);
    const Tensor gated = (silu(f32(h)) * f32(v)).to(kBFloat16);
    const Tensor expected = linear(f32(gated), f32(ffn->layer2->weight)).to(kBFloat16);
    CHECK(same_bits(y, expected));
}

TEST_CASE("gradients reach bfloat16 parameters, near the float32 ones") {
    manual_seed(3);
    auto wide = nn::FeedForward::swiglu(8, 16, 0.0);
    auto narrow = std::dynamic_pointer_cast<nn::FeedForward>(wide->clone());
    narrow->bfloat16();
    wide->load_state_dict(narrow->state_dict());  // the same (rounded) weights in float32
    const Tensor x = randn({4, 8});
    sum((*wide)(x)).backward();
    sum((*narrow)(x.to(kBFloat16))).backward();
    const auto wide_params = wide->parameters(), narrow_params = narrow->parameters();
    for (std::size_t i = 0; i < wide_params.size(); ++i) {
        const Tensor g = narrow_params[i].grad();
        REQUIRE(g.defined());
        CHECK(g.dtype() == kBFloat16);
        const Tensor reference = wide_params[i].grad();
        const double scale = amax(abs(reference)).item<double>();
        const double error = amax(abs(g.to(kFloat32) - reference)).item<double>();
        CHECK(error <= scale / 32);  // a few bfloat16 roundings (8 significant bits) deep
    }
}

TEST_CASE("optimizers refuse float16 and bfloat16 parameters, naming them") {
    auto ffn = nn::FeedForward::swiglu(4, 8, 0.0);
    ffn->bfloat16();
    CHECK_THROWS_WITH(optim::Adam(ffn->parameters(), optim::AdamOptions(1e-3)),
                      doctest::Contains("Adam: expected float32 or float64 parameters (got "
                                        "bfloat16 at 0 of group 0)"));
    // Converted after the optimizer was made: step refuses.
    auto later = nn::FeedForward::swiglu(4, 8, 0.0);
    optim::SGD sgd(later->parameters(), optim::SGDOptions(0.1));
    later->half();
    sum((*later)(randn({2, 4}).to(kFloat16))).backward();
    CHECK_THROWS_WITH(sgd.step(), doctest::Contains("SGD.step: expected float32 or float64 "
                                                    "parameters (got float16 at 0 of group 0)"));
}

}  // namespace nn_module_test_half_modules
