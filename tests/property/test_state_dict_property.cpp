// Property: for random module trees (containers, layers, float32/float64
// parameters, float/int64 buffers, persistent or not, NaN/Inf/-0/denormal
// values), state_dict -> xg::save -> xg::load -> load_state_dict into a fresh
// tree of the same structure reproduces every tensor bit for bit, in order.
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "property/property.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace property_test_state_dict_property {

namespace {

using property::Rng;
using xg::nn::Module;

constexpr int kCases = 200;

// Overwrites a few random elements (picked by xgrad's generator, so two builds
// of the same structure differ) with values that only a bit-exact copy keeps.
void sprinkle_specials(xg::Tensor& t) {
    if (t.numel() == 0 || t.dtype() == xg::kInt64) return;
    const double specials[] = {
        std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity(), -0.0,
        std::numeric_limits<float>::denorm_min(), 1e-310};
    xg::Tensor at = xg::randint(0, static_cast<std::int64_t>(t.numel()), {3});
    xg::Tensor which = xg::randint(0, 6, {3});
    for (int k = 0; k < 3; ++k) {
        auto i = static_cast<std::size_t>(at.data<std::int64_t>()(k));
        double v = specials[which.data<std::int64_t>()(k)];
        if (t.dtype() == xg::kFloat32)
            t.data<float>().data()[i] = static_cast<float>(v);
        else
            t.data<double>().data()[i] = v;
    }
}

// Random parameters and buffers of every dtype; structure from `rng`, values from xgrad's
// generator.
struct Bag : Module {
    explicit Bag(Rng& rng) {
        int n = rng.integer(1, 4);
        for (int i = 0; i < n; ++i) {
            xg::Shape shape = rng.shape(3, 3);
            int kind = rng.integer(0, 2);
            xg::Dtype dtype = rng.coin() ? xg::kFloat32 : xg::kFloat64;
            if (kind == 0) {
                xg::Tensor p = xg::randn(shape, dtype);
                sprinkle_specials(p);
                register_parameter(fmt::format("p{}", i), p);
            } else if (kind == 1) {
                xg::Tensor b = xg::randn(shape, dtype);
                sprinkle_specials(b);
                register_buffer(fmt::format("b{}", i), b, rng.coin(0.8));
            } else {
                register_buffer(fmt::format("i{}", i),
                                xg::randint(std::numeric_limits<std::int64_t>::min() / 2,
                                            std::numeric_limits<std::int64_t>::max() / 2, shape));
            }
        }
    }
};

std::shared_ptr<Module> leaf(Rng& rng) {
    auto dim = [&] { return static_cast<std::size_t>(rng.integer(1, 5)); };
    std::shared_ptr<Module> m;
    switch (rng.integer(0, 5)) {
        case 0: m = std::make_shared<xg::nn::Linear>(dim(), dim(), rng.coin()); break;
        case 1:
            m = std::make_shared<xg::nn::LayerNorm>(xg::Shape{dim()}, 1e-5, rng.coin(0.8));
            break;
        case 2: m = std::make_shared<xg::nn::Embedding>(dim(), dim()); break;
        case 3: m = xg::nn::FeedForward::swiglu(dim(), dim(), 0.0); break;
        case 4: m = std::make_shared<xg::nn::FeedForward>(dim(), dim(), 0.1); break;
        default: m = std::make_shared<Bag>(rng); break;
    }
    if (rng.coin(0.3)) m->to(xg::kFloat64);
    return m;
}

std::shared_ptr<Module> tree(Rng& rng, int depth) {
    if (depth == 0 || rng.coin(0.3)) return leaf(rng);
    int n = rng.integer(1, 3);
    switch (rng.integer(0, 2)) {
        case 0: {
            auto s = std::make_shared<xg::nn::Sequential>();
            for (int i = 0; i < n; ++i) s->push_back(tree(rng, depth - 1));
            return s;
        }
        case 1: {
            auto l = std::make_shared<xg::nn::ModuleList>();
            for (int i = 0; i < n; ++i) l->push_back(tree(rng, depth - 1));
            return l;
        }
        default: {
            auto d = std::make_shared<xg::nn::ModuleDict>();
            for (int i = 0; i < n; ++i)
                d->insert(fmt::format("k{}", rng.integer(0, 99)), tree(rng, depth - 1));
            return d;
        }
    }
}

// The same structure from the same structure seed, different values per value seed.
std::shared_ptr<Module> build(std::uint64_t structure_seed, std::uint64_t value_seed) {
    Rng rng(structure_seed);
    xg::manual_seed(value_seed);
    return tree(rng, 3);
}

bool same_bits(const xg::Tensor& a, const xg::Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    const std::size_t bytes = a.nbytes();
    auto raw = [](const xg::Tensor& t) -> const void* { return t.data_ptr(); };
    return bytes == 0 || std::memcmp(raw(a), raw(b), bytes) == 0;
}

}  // namespace

TEST_CASE(
    "property: random module trees survive state_dict -> save -> load -> load_state_dict bit for "
    "bit") {
    auto dir = std::filesystem::temp_directory_path() /
               ("xgrad-property-state-dict" + std::string("-") + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string path = (dir / "tree.safetensors").string();
    int tensors = 0;
    for (int c = 0; c < kCases; ++c) {
        CAPTURE(c);
        auto original = build(1000 + static_cast<std::uint64_t>(c), 1);
        auto fresh = build(1000 + static_cast<std::uint64_t>(c), 2);
        xg::StateDict saved = original->state_dict();
        xg::save(saved, path);
        xg::StateDict loaded = xg::load(path);
        REQUIRE(loaded.keys() == saved.keys());
        fresh->load_state_dict(loaded);
        xg::StateDict got = fresh->state_dict();
        REQUIRE(got.keys() == saved.keys());
        for (const auto& [key, t] : saved) {
            const std::string& name =
                key;  // CHECK_MESSAGE's lambda cannot name a binding in clang 14
            CHECK_MESSAGE(same_bits(got.at(name), t), name);
            ++tensors;
        }
    }
    MESSAGE(kCases << " trees, " << tensors << " tensors compared");
    std::filesystem::remove_all(dir);
}

}  // namespace property_test_state_dict_property
