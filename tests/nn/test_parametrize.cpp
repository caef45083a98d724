// Parametrizations: weight_norm and spectral_norm against PyTorch
// (gen_parametrize.py: state_dict keys and values, outputs, gradients, _u and
// _v along training steps), strict loads of PyTorch's state_dicts, round trips,
// custom parametrizations with and without right_inverse, chains,
// remove_parametrizations both ways, cached(), errors and gradchecks;
// orthogonal's maps against PyTorch's values, strict loads and a gradcheck.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xnoalias.hpp>

#include "helpers.hpp"
#include "nn/reference/parametrize_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_parametrize {

using reference::lookup;
namespace ref = reference::parametrize;
namespace nn = xg::nn;
namespace pz = xg::nn::utils::parametrize;
namespace pzs = xg::nn::utils::parametrizations;
using xg::StateDict;
using xg::Tensor;

namespace {

constexpr double kRtol = 1e-10, kAtol = 1e-12;  // float64 against float64

std::shared_ptr<nn::Linear> reference_linear() {
    auto lin = std::make_shared<nn::Linear>(ref::in, ref::out);
    lin->to(xg::kFloat64);
    lin->load_state_dict({{"weight", ref::weight.tensor()}, {"bias", ref::bias.tensor()}});
    return lin;
}

// y = x @ weight^T for a [2, 3, 4] weight: PyTorch's Holder in gen_parametrize.py.
struct Holder : nn::Module {
    Holder() { weight = register_parameter("weight", ref::weight3.tensor()); }
    Tensor forward(const Tensor& x) override {
        return xg::matmul(x, xg::transpose(weight, -1, -2));
    }
    Tensor weight;

protected:
    void on_tensor_set(const std::string& member, const Tensor& value) override {
        if (member == "weight") weight = value;
    }
};

// X.triu() + X.triu(1)^T, with right_inverse A.triu(): PyTorch's documented example.
struct Symmetric : nn::Module, pz::RightInverse {
    Tensor forward(const Tensor& x) override {
        return xg::triu(x) + xg::transpose(xg::triu(x, 1), 0, 1);
    }
    nn::Value right_inverse(const Tensor& a) override { return xg::triu(a); }
};

struct Double : nn::Module {  // no right_inverse
    Tensor forward(const Tensor& x) override { return x * 2.0; }
};

// Symmetric's right_inverse, but a forward that changes the shape.
struct FlatSymmetric : Symmetric {
    Tensor forward(const Tensor& x) override { return xg::flatten(Symmetric::forward(x)); }
};

struct Flatten : nn::Module {
    Tensor forward(const Tensor& x) override { return xg::flatten(x); }
};

struct Transpose : nn::Module {
    Tensor forward(const Tensor& x) override { return xg::transpose(x, 0, 1); }
};

struct ToFloat32 : nn::Module {
    Tensor forward(const Tensor& x) override { return x.to(xg::kFloat32); }
};

struct Counting : nn::Module {
    Tensor forward(const Tensor& x) override {
        ++calls;
        return x * 3.0;
    }
    int calls = 0;
};

StateDict state_of(const ref::Named& named) {
    StateDict out;
    for (const auto& entry : named) out.insert_or_assign(entry.first, entry.second.tensor());
    return out;
}

std::vector<std::string> keys_of(const ref::Named& named) {
    std::vector<std::string> out;
    for (const auto& entry : named) out.push_back(entry.first);
    return out;
}

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
    std::vector<std::string> out;
    for (const auto& entry : named) out.push_back(entry.first);
    return out;
}

void check_close(const Tensor& actual, const reference::Array& expected) {
    REQUIRE(actual.defined());
    CHECK_VALUES_TOL(actual, expected.array(), kRtol, kAtol);
}

// Every parameter's gradient against the reference, in named_parameters order.
void check_grads(const nn::Module& module, const ref::Named& expected) {
    const auto named = module.named_parameters();
    CHECK(names_of(named) == keys_of(expected));
    for (std::size_t i = 0; i < named.size() && i < expected.size(); ++i) {
        INFO(named[i].first);
        check_close(named[i].second.grad(), expected[i].second);
    }
}

void sgd_step(nn::Module& module) {
    for (const Tensor& p : module.parameters()) {
        xt::noalias(p.data<double>()) -= ref::lr * p.grad().data<double>();
    }
}

std::shared_ptr<pz::ParametrizationList> list_of(nn::Module& module, const std::string& name) {
    return std::dynamic_pointer_cast<pz::ParametrizationList>(
        module.get_submodule("parametrizations." + name));
}

std::optional<int> weight_norm_dim(const std::string& name) {
    if (name == "dim0") return 0;
    if (name == "dim1") return 1;
    return std::nullopt;
}

}  // namespace

TEST_CASE("weight_norm: keys, values, outputs and gradients match PyTorch's") {
    for (const ref::WeightNormCase& c : ref::weight_norm_cases()) {
        INFO(c.name);
        auto lin = reference_linear();
        pzs::weight_norm(*lin, "weight", weight_norm_dim(c.name));
        const StateDict sd = lin->state_dict();
        CHECK(sd.keys() == keys_of(c.state));
        for (const auto& entry : c.state) {
            INFO(entry.first);
            check_close(sd.at(entry.first), entry.second);
        }
        // Before any call, the member holds the registration's value: the weight itself.
        CHECK_VALUES_TOL(lin->weight, ref::weight.array(), kRtol, kAtol);
        Tensor x = ref::inputs[0].tensor(xg::kFloat64, true);
        Tensor y = (*lin)(x);
        check_close(y, c.output);
        xg::sum(y * ref::upstream[0].tensor()).backward();
        check_close(x.grad(), c.grad_input);
        check_grads(*lin, c.grads);
    }
}

TEST_CASE("weight_norm: PyTorch's state_dict loads strictly, and xgrad's round-trips") {
    const ref::WeightNormCase& c = ref::weight_norm_cases()[1];
    auto lin = std::make_shared<nn::Linear>(ref::in, ref::out);  // other values
    lin->to(xg::kFloat64);
    pzs::weight_norm(*lin, "weight", 1);
    const nn::IncompatibleKeys keys = lin->load_state_dict(state_of(c.state));
    CHECK(keys.missing_keys.empty());
    CHECK(keys.unexpected_keys.empty());
    check_close((*lin)(ref::inputs[0].tensor()), c.output);

    auto copy = std::make_shared<nn::Linear>(ref::in, ref::out);
    copy->to(xg::kFloat64);
    pzs::weight_norm(copy, "weight", 1);
    copy->load_state_dict(lin->state_dict());
    CHECK(test::identical((*copy)(ref::inputs[0].tensor()), (*lin)(ref::inputs[0].tensor())));

    // The older torch.nn.utils.weight_norm's keys, weight_g and weight_v, load too.
    auto legacy = pzs::weight_norm(std::make_shared<nn::Linear>(ref::in, ref::out), "weight", 1);
    legacy->to(xg::kFloat64);
    legacy->load_state_dict(
        {{"bias", lookup(c.state, "bias").tensor()},
         {"weight_g", lookup(c.state, "parametrizations.weight.original0").tensor()},
         {"weight_v", lookup(c.state, "parametrizations.weight.original1").tensor()}});
    check_close((*legacy)(ref::inputs[0].tensor()), c.output);
}

TEST_CASE("spectral_norm: training steps update _u and _v as PyTorch's, eval mode does not") {
    for (const ref::SpectralCase& c : ref::spectral_cases()) {
        INFO(c.name);
        const bool holder = c.name == "holder";
        std::shared_ptr<nn::Module> module;
        if (holder)
            module = pzs::spectral_norm(std::make_shared<Holder>(), "weight", 1, 1e-12, 1);
        else
            module = pzs::spectral_norm(reference_linear());
        CHECK(module->state_dict().keys() == keys_of(c.state));
        module->load_state_dict(state_of(c.state));  // PyTorch's random u and v
        const auto& upstream = holder ? ref::upstream3 : ref::upstream;
        for (std::size_t i = 0; i < c.steps.size(); ++i) {
            INFO("step ", i);
            const ref::SpectralStep& s = c.steps[i];
            module->zero_grad();
            Tensor x = ref::inputs[i].tensor(xg::kFloat64, true);
            Tensor y = (*module)(x);
            check_close(module->get_buffer("parametrizations.weight.0._u"), s.u);
            check_close(module->get_buffer("parametrizations.weight.0._v"), s.v);
            check_close(y, s.output);
            xg::sum(y * upstream[i].tensor()).backward();
            check_close(x.grad(), s.grad_input);
            check_grads(*module, s.grads);
            sgd_step(*module);
        }
        module->eval();
        check_close((*module)(ref::inputs.back().tensor()), c.eval_output);
        check_close(module->get_buffer("parametrizations.weight.0._u"), c.steps.back().u);
        check_close(module->get_buffer("parametrizations.weight.0._v"), c.steps.back().v);
        pz::remove_parametrizations(*module, "weight");
        check_close(module->get_parameter("weight"), c.removed_weight);
    }
}

TEST_CASE("spectral_norm: a trained module's state_dict round-trips") {
    const ref::SpectralCase& c = ref::spectral_cases()[0];
    auto lin = pzs::spectral_norm(reference_linear());
    lin->load_state_dict(state_of(c.state));
    (*lin)(ref::inputs[0].tensor());  // one power iteration
    auto copy = pzs::spectral_norm(reference_linear());
    copy->load_state_dict(lin->state_dict());
    lin->eval();
    copy->eval();
    CHECK(test::identical((*copy)(ref::inputs[1].tensor()), (*lin)(ref::inputs[1].tensor())));
    // A state_dict shares the buffers, which power iteration updates in place, as PyTorch's.
    const StateDict sd = copy->state_dict();
    const auto u_before = test::values(sd.at("parametrizations.weight.0._u"));
    copy->get_parameter("parametrizations.weight.original").data<double>()(0, 0) += 3.0;
    copy->train();
    (*copy)(ref::inputs[1].tensor());
    CHECK_FALSE(test::values(sd.at("parametrizations.weight.0._u")) == u_before);
    CHECK(test::identical(sd.at("parametrizations.weight.0._u"),
                          copy->get_buffer("parametrizations.weight.0._u")));
}

TEST_CASE("register_parametrization: PyTorch's layout, printing and the computed member") {
    xg::manual_seed(3);
    auto lin = pzs::spectral_norm(reference_linear());
    CHECK(pz::is_parametrized(*lin));
    CHECK(pz::is_parametrized(*lin, "weight"));
    CHECK_FALSE(pz::is_parametrized(*lin, "bias"));
    CHECK_FALSE(pz::is_parametrized(*reference_linear()));
    CHECK(test::parameter_names(*lin) ==
          std::vector<std::string>{"bias", "parametrizations.weight.original"});
    CHECK(names_of(lin->named_buffers()) ==
          std::vector<std::string>{"parametrizations.weight.0._u", "parametrizations.weight.0._v"});
    CHECK(test::child_names(*lin) == std::vector<std::string>{"parametrizations"});
    // As PyTorch prints it, but for the class names: ParametrizedLinear and _SpectralNorm there.
    CHECK(lin->repr() ==
          "Linear(\n"
          "  in_features=4, out_features=3, bias=True\n"
          "  (parametrizations): ModuleDict(\n"
          "    (weight): ParametrizationList(\n"
          "      (0): SpectralNorm()\n"
          "    )\n"
          "  )\n"
          ")");
    // The original is the weight tensor itself: an optimizer built before keeps working.
    auto plain = std::make_shared<nn::Linear>(3, 3);
    const xg::TensorImpl* weight = plain->weight.impl();
    pz::register_parametrization(*plain, "weight", std::make_shared<Symmetric>());
    CHECK(list_of(*plain, "weight")->originals()[0].impl() == weight);
    CHECK(list_of(*plain, "weight")->is_tensor());
    CHECK(plain->weight.impl() != weight);
    CHECK(plain->weight.grad_fn_name() != "");
}

TEST_CASE("register_parametrization: a custom parametrization, its right_inverse and a chain") {
    auto lin = std::make_shared<nn::Linear>(3, 3);
    lin->to(xg::kFloat64);
    const Tensor a = test::randn64({3, 3}, 5);
    lin->load_state_dict({{"weight", a}, {"bias", xg::zeros({3}, xg::kFloat64)}});
    pz::register_parametrization(*lin, "weight", std::make_shared<Symmetric>());
    const Tensor original = list_of(*lin, "weight")->originals()[0];
    CHECK(test::identical(original, xg::triu(a)));  // right_inverse's value
    const Tensor x = test::randn64({2, 3}, 6);
    Tensor y = (*lin)(x);
    const Tensor sym = xg::triu(a) + xg::transpose(xg::triu(a, 1), 0, 1);
    CHECK_VALUES(lin->weight, test::values(sym));
    CHECK_VALUES(y, test::values(xg::linear(x, sym, lin->bias)));
    xg::sum(y).backward();
    REQUIRE(original.grad().defined());
    CHECK(original.grad().shape() == xg::Shape{3, 3});

    // A second parametrization applies after the first: weight = 2 sym(original).
    pz::register_parametrization(*lin, "weight", std::make_shared<Double>());
    CHECK(list_of(*lin, "weight")->size() == 2);
    CHECK_VALUES((*lin)(x), test::values(xg::linear(x, sym * 2.0, lin->bias)));
    // Assigning the weight runs the right_inverses, last first; Double has none.
    CHECK_THROWS_WITH_AS(list_of(*lin, "weight")->right_inverse(sym),
                         "ParametrizationList.right_inverse: expected every parametrization to "
                         "implement right_inverse (got Double without one)",
                         xg::Error);
    pz::remove_parametrizations(*lin, "weight", /*leave_parametrized=*/false);
    CHECK(lin->weight.impl() == original.impl());
    pz::register_parametrization(*lin, "weight", std::make_shared<Symmetric>());
    const Tensor s2 = xg::transpose(sym, 0, 1) * 0.5 + sym * 0.5;
    list_of(*lin, "weight")->right_inverse(s2);
    (*lin)(x);
    CHECK_VALUES(lin->weight, test::values(s2));
}

TEST_CASE("remove_parametrizations: leaving the value or the original") {
    SUBCASE("weight_norm, leave_parametrized = true: a plain parameter with the value") {
        auto lin = pzs::weight_norm(reference_linear());
        list_of(*lin, "weight")->originals()[0].data<double>() *= 2.0;  // g doubled
        (*lin)(ref::inputs[0].tensor());
        const xt::xarray<double> value = test::values(lin->weight);
        CHECK(test::close(value, ref::weight.array() * 2.0));
        pz::remove_parametrizations(*lin, "weight");
        CHECK_FALSE(pz::is_parametrized(*lin));
        CHECK(lin->weight.is_leaf());
        CHECK(lin->weight.requires_grad());
        CHECK_VALUES(lin->weight, value);
        CHECK(test::parameter_names(*lin) == std::vector<std::string>{"weight", "bias"});
        CHECK(lin->state_dict().keys() == std::vector<std::string>{"weight", "bias"});
        CHECK(test::child_names(*lin).empty());
        // A module cannot drop a child, so the slot stays, empty (PyTorch deletes the attribute).
        CHECK(lin->repr() ==
              "Linear(\n  in_features=4, out_features=3, bias=True\n  (parametrizations): None\n)");
        // And it can be parametrized again.
        pzs::weight_norm(*lin);
        CHECK(pz::is_parametrized(*lin, "weight"));
    }
    SUBCASE("weight_norm, leave_parametrized = false: refused, nothing changes") {
        auto lin = pzs::weight_norm(reference_linear());
        CHECK_THROWS_WITH_AS(pz::remove_parametrizations(*lin, "weight", false),
                             "remove_parametrizations: leave_parametrized=false expects "
                             "Linear.weight to be parametrized by one original tensor (got 2)",
                             xg::Error);
        CHECK(pz::is_parametrized(*lin, "weight"));
        CHECK(lin->named_parameters().size() == 3);
    }
    SUBCASE("one of two parametrized tensors") {
        auto lin = pzs::weight_norm(reference_linear());
        pz::register_parametrization(*lin, "bias", std::make_shared<Double>());
        CHECK(lin->state_dict().keys() ==
              std::vector<std::string>{"parametrizations.weight.original0",
                                       "parametrizations.weight.original1",
                                       "parametrizations.bias.original"});
        pz::remove_parametrizations(*lin, "weight");
        CHECK(pz::is_parametrized(*lin));
        CHECK(lin->state_dict().keys() ==
              std::vector<std::string>{"weight", "parametrizations.bias.original"});
        const Tensor x = ref::inputs[0].tensor();
        CHECK_VALUES((*lin)(x),
                     test::values(xg::linear(x, ref::weight.tensor(), ref::bias.tensor() * 2.0)));
        pz::remove_parametrizations(*lin, "bias", false);
        CHECK_VALUES(lin->bias, ref::bias.array());
        CHECK_FALSE(pz::is_parametrized(*lin));
    }
}

TEST_CASE("cached(): each parametrized tensor is computed once while a guard lives") {
    auto lin = reference_linear();
    auto counting = std::make_shared<Counting>();
    pz::register_parametrization(*lin, "weight", counting);
    CHECK(counting->calls == 1);  // the registration's consistency check
    const Tensor x = ref::inputs[0].tensor();
    (*lin)(x);
    (*lin)(x);
    CHECK(counting->calls == 3);
    {
        auto guard = pz::cached();
        Tensor w = list_of(*lin, "weight")->originals()[0];
        Tensor y = (*lin)(x) + (*lin)(x);
        CHECK(counting->calls == 4);
        {
            auto inner = pz::cached();
            (*lin)(x);
        }
        (*lin)(x);
        CHECK(counting->calls == 4);
        // Both uses of the one computed weight reach the original.
        xg::sum(y).backward();
        const Tensor once =
            xg::matmul(xg::transpose(xg::ones({ref::batch, ref::out}, xg::kFloat64), 0, 1), x) *
            3.0;
        CHECK_VALUES(w.grad(), test::values(once * 2.0));
    }
    (*lin)(x);
    CHECK(counting->calls == 5);
}

TEST_CASE("parametrized modules: hooks, functional_call, train/eval and dtype conversion") {
    auto lin = pzs::weight_norm(reference_linear());
    // A forward pre hook of the module sees this call's weight.
    Tensor seen;
    lin->register_forward_pre_hook(
        [&](nn::Module& m, const Tensor&) { seen = dynamic_cast<nn::Linear&>(m).weight; });
    list_of(*lin, "weight")->originals()[0].data<double>() *= 3.0;
    (*lin)(ref::inputs[0].tensor());
    CHECK_VALUES(seen, ref::weight.array() * 3.0);

    // functional_call substitutes the originals; gradients reach the given ones.
    const Tensor g = lookup(ref::weight_norm_cases()[0].state, "parametrizations.weight.original0")
                         .tensor(xg::kFloat64, true);
    const Tensor v = ref::weight.tensor(xg::kFloat64, true);
    Tensor y = xg::func::functional_call(*lin,
                                         {{"parametrizations.weight.original0", g},
                                          {"parametrizations.weight.original1", v}},
                                         ref::inputs[0].tensor())
                   .tensor();
    check_close(y, ref::weight_norm_cases()[0].output);
    xg::sum(y * ref::upstream[0].tensor()).backward();
    check_close(g.grad(),
                lookup(ref::weight_norm_cases()[0].grads, "parametrizations.weight.original0"));
    CHECK_FALSE(list_of(*lin, "weight")->originals()[0].grad().defined());

    auto sn = pzs::spectral_norm(reference_linear());
    sn->eval();
    CHECK_FALSE(list_of(*sn, "weight")->operator[](0)->is_training());
    sn->to(xg::kFloat32);
    CHECK((*sn)(ref::inputs[0].tensor(xg::kFloat32)).dtype() == xg::kFloat32);
    CHECK(sn->get_buffer("parametrizations.weight.0._u").dtype() == xg::kFloat32);
}

TEST_CASE("parametrize: errors name the module, the tensor and what was expected") {
    auto lin = reference_linear();
    const auto before = test::values(lin->weight);
    CHECK_THROWS_WITH_AS(pz::register_parametrization(*lin, "weights", std::make_shared<Double>()),
                         "register_parametrization: expected a parameter, a buffer or a "
                         "parametrized tensor named 'weights' in Linear (got none by that name)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(pz::register_parametrization(*lin, "weight", nullptr),
                         "register_parametrization: expected a parametrization module for "
                         "Linear.weight (got nullptr)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        pz::register_parametrization(*lin, "weight", std::make_shared<Transpose>()),
        "register_parametrization: expected Transpose to keep the shape of "
        "Linear.weight, [3, 4], unless unsafe is set (got [4, 3])",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        pz::register_parametrization(*lin, "weight", std::make_shared<ToFloat32>()),
        "register_parametrization: expected ToFloat32 to keep the dtype of "
        "Linear.weight, float64, unless unsafe is set (got float32)",
        xg::Error);
    CHECK_FALSE(pz::is_parametrized(*lin));
    CHECK(test::parameter_names(*lin) == std::vector<std::string>{"weight", "bias"});
    CHECK(test::values(lin->weight) == before);
    // A refused registration changes nothing, also when right_inverse had set the original.
    auto square = std::make_shared<nn::Linear>(3, 3);
    const auto square_before = test::values(square->weight);
    CHECK_THROWS_WITH_AS(
        pz::register_parametrization(*square, "weight", std::make_shared<FlatSymmetric>()),
        "register_parametrization: expected FlatSymmetric to keep the shape of Linear.weight, "
        "[3, 3], unless unsafe is set (got [9])",
        xg::Error);
    CHECK(test::values(square->weight) == square_before);
    CHECK_FALSE(pz::is_parametrized(*square));
    // The same check for a further parametrization leaves the list as it was.
    pz::register_parametrization(*square, "weight", std::make_shared<Symmetric>());
    CHECK_THROWS_WITH_AS(
        pz::register_parametrization(*square, "weight", std::make_shared<Flatten>()),
        "register_parametrization: expected Flatten to keep the shape of Linear.weight, [3, 3], "
        "unless unsafe is set (got [9])",
        xg::Error);
    CHECK(list_of(*square, "weight")->size() == 1);
    // unsafe lets the shape change.
    pz::register_parametrization(*lin, "weight", std::make_shared<Transpose>(), true);
    CHECK(lin->weight.shape() == xg::Shape{4, 3});
    pz::remove_parametrizations(*lin, "weight", false);

    CHECK_THROWS_WITH_AS(pz::remove_parametrizations(*lin, "weight"),
                         "remove_parametrizations: expected a parametrized tensor of Linear (got "
                         "'weight'; parametrized: none)",
                         xg::Error);
    pzs::weight_norm(*lin);
    CHECK_THROWS_WITH_AS(pz::remove_parametrizations(*lin, "bias"),
                         "remove_parametrizations: expected a parametrized tensor of Linear (got "
                         "'bias'; parametrized: 'weight')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(lin->clone(),
                         "clone: a parametrized module cannot be cloned (the forward pre hook "
                         "that computes its tensor is not copied); clone it before "
                         "register_parametrization, or call remove_parametrizations first",
                         xg::Error);
    CHECK_THROWS_WITH_AS(pzs::spectral_norm(*reference_linear(), "weights"),
                         "spectral_norm: expected a parameter or buffer named 'weights' in Linear "
                         "(got none)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(pzs::spectral_norm(*reference_linear(), "weight", 1, 1e-12, 2),
                         "SpectralNorm: expected dim in [-2, 1] (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS(pzs::spectral_norm(*reference_linear(), "weight", 0),
                         "SpectralNorm: expected n_power_iterations > 0 (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(pzs::weight_norm(*reference_linear(), "weight", 2),
                         "WeightNorm: expected dim in [-2, 1] or -1 (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS((*list_of(*lin, "weight"))(ref::inputs[0].tensor()),
                         "ParametrizationList: forward() takes no arguments (got 1 positional "
                         "and 0 keyword)",
                         xg::Error);
}

TEST_CASE("gradcheck: the weight_norm and spectral_norm weight functions, in float64") {
    for (int dim : {0, 1, -1}) {
        INFO("weight_norm dim ", dim);
        auto wn = std::make_shared<pzs::WeightNorm>(dim);
        const Tensor v = test::randn64({3, 4}, 11);
        const Tensor g = wn->right_inverse(v).list()[0].tensor() * 1.5;
        CHECK(test::gradcheck(
            [wn](const std::vector<Tensor>& in) { return wn->forward(in[0], in[1]); }, {g, v}));
    }
    const std::vector<std::pair<xg::Shape, int>> shapes{
        {{3, 4}, 0}, {{3, 4}, 1}, {{2, 3, 4}, 1}, {{5}, 0}};
    for (const auto& shape_dim : shapes) {
        INFO("spectral_norm dim ", shape_dim.second, " of ", xg::shape_str(shape_dim.first));
        xg::manual_seed(12);
        const Tensor w = test::randn64(shape_dim.first, 13);
        auto sn = std::make_shared<pzs::SpectralNorm>(w, 1, shape_dim.second);
        sn->eval();  // fixed u and v: a function of the weight alone
        CHECK(test::gradcheck([sn](const std::vector<Tensor>& in) { return sn->forward(in[0]); },
                              {w}));
    }
}

namespace {

std::shared_ptr<nn::Linear> orthogonal_linear(const ref::OrthogonalCase& c, xg::Dtype dtype) {
    auto lin = std::make_shared<nn::Linear>(c.in, c.out);
    lin->to(dtype);
    lin->load_state_dict({{"weight", c.weight.tensor(dtype)}, {"bias", c.bias.tensor(dtype)}});
    const std::optional<std::string> map =
        c.map.empty() ? std::nullopt : std::optional<std::string>(c.map);
    return pzs::orthogonal(lin, "weight", map, c.use_trivialization);
}

// W^T W = I for a tall (or square) W, W W^T = I for a wide one.
void check_orthogonal(const Tensor& w, double atol) {
    const Tensor t = xg::transpose(w, 0, 1);
    const Tensor gram = w.shape()[0] >= w.shape()[1] ? xg::matmul(t, w) : xg::matmul(w, t);
    const auto n = static_cast<std::int64_t>(gram.shape()[0]);
    CHECK_VALUES_TOL(gram, test::values(xg::eye(n, -1, xg::kFloat64)), 0.0, atol);
}

}  // namespace

TEST_CASE("orthogonal: registration, outputs and gradients match PyTorch's") {
    for (const ref::OrthogonalCase& c : ref::orthogonal_cases()) {
        INFO(c.name);
        auto lin = orthogonal_linear(c, xg::kFloat64);
        const StateDict sd = lin->state_dict();
        CHECK(sd.keys() == keys_of(c.registered));
        for (const auto& entry : c.registered) {
            INFO(entry.first);
            // Where PyTorch completes a non-square base with random columns, xgrad draws its own.
            if (c.in != c.out && entry.first == "parametrizations.weight.0.base") continue;
            check_close(sd.at(entry.first), entry.second);
        }
        check_close(lin->weight, c.registered_weight);
        check_orthogonal(lin->weight, 1e-12);

        const nn::IncompatibleKeys keys = lin->load_state_dict(state_of(c.state));
        CHECK(keys.missing_keys.empty());
        CHECK(keys.unexpected_keys.empty());
        Tensor x = c.input.tensor(xg::kFloat64, true);
        Tensor y = (*lin)(x);
        check_close(y, c.output);
        check_orthogonal(lin->weight, 1e-12);
        xg::sum(y * c.upstream.tensor()).backward();
        check_close(x.grad(), c.grad_input);
        check_grads(*lin, c.grads);
    }
}

TEST_CASE("orthogonal: PyTorch's state_dict loads into a fresh module; assignment; float32") {
    for (const ref::OrthogonalCase& c : ref::orthogonal_cases()) {
        INFO(c.name);
        auto fresh = std::make_shared<nn::Linear>(c.in, c.out);  // other values
        fresh->to(xg::kFloat64);
        pzs::orthogonal(*fresh, "weight", c.map.empty() ? std::nullopt : std::optional(c.map),
                        c.use_trivialization);
        fresh->load_state_dict(state_of(c.state));
        check_close((*fresh)(c.input.tensor()), c.output);

        // float32: PyTorch's float64 weight to float32 precision.
        auto lin32 = orthogonal_linear(c, xg::kFloat32);
        CHECK(lin32->weight.dtype() == xg::kFloat32);
        CHECK_VALUES_TOL(lin32->weight, c.registered_weight.array(), 0.0, 1e-5);
    }
    // Assigning an orthogonal matrix makes it the base, the original -I again.
    const ref::OrthogonalCase& square = ref::orthogonal_cases()[0];
    auto lin = orthogonal_linear(square, xg::kFloat64);
    lin->load_state_dict(state_of(square.state));
    const Tensor q = list_of(*lin, "weight")->forward().detach();
    list_of(*lin, "weight")->right_inverse(q);
    CHECK(test::identical(lin->get_buffer("parametrizations.weight.0.base"), q));
    CHECK_VALUES(list_of(*lin, "weight")->originals()[0],
                 test::values(xg::eye(4, -1, xg::kFloat64) * -1.0));
    (*lin)(square.input.tensor());
    CHECK_VALUES_TOL(lin->weight, test::values(q), 0.0, 1e-15);
    // Without use_trivialization, matrix_exp has no right_inverse to assign with.
    const ref::OrthogonalCase& plain = ref::orthogonal_cases()[6];
    REQUIRE(plain.name == "square_plain");
    auto exp_plain = orthogonal_linear(plain, xg::kFloat64);
    CHECK_THROWS_WITH_AS(list_of(*exp_plain, "weight")->right_inverse(q),
                         "Orthogonal: it is not possible to assign to the matrix_exp or cayley "
                         "parametrizations when use_trivialization=false (got an assignment)",
                         xg::Error);
}

TEST_CASE("orthogonal: errors name what was expected") {
    CHECK_THROWS_WITH_AS(pzs::orthogonal(*reference_linear(), "bias"),
                         "orthogonal: expected a matrix (got a tensor of shape [3])", xg::Error);
    CHECK_THROWS_WITH_AS(pzs::orthogonal(*reference_linear(), "weight", "qr"),
                         "orthogonal: expected orthogonal_map \"matrix_exp\", \"cayley\" or "
                         "\"householder\" (got \"qr\")",
                         xg::Error);
    CHECK_THROWS_WITH_AS(pzs::orthogonal(*reference_linear(), "weights"),
                         "orthogonal: expected a parameter or buffer named 'weights' in Linear "
                         "(got none)",
                         xg::Error);
    auto lin = pzs::orthogonal(reference_linear());
    CHECK_THROWS_WITH_AS(pzs::orthogonal(*lin),
                         "orthogonal: expected use_trivialization=false for the already "
                         "parametrized Linear.weight (got true)",
                         xg::Error);
    CHECK(list_of(*lin, "weight")->size() == 1);
    CHECK_THROWS_WITH_AS(list_of(*lin, "weight")->right_inverse(ref::inputs[0].tensor()),
                         "Orthogonal: expected a matrix of shape [3, 4] (got [5, 4])", xg::Error);
}

TEST_CASE("gradcheck: orthogonal's three maps, with and without the base, in float64") {
    const std::vector<std::pair<std::string, pzs::OrthogonalMap>> maps{
        {"matrix_exp", pzs::OrthogonalMap::matrix_exp},
        {"cayley", pzs::OrthogonalMap::cayley},
        {"householder", pzs::OrthogonalMap::householder}};
    const std::vector<xg::Shape> shapes{{4, 4}, {5, 3}, {3, 5}};
    for (const auto& map : maps) {
        for (const xg::Shape& shape : shapes) {
            for (bool trivialization : {true, false}) {
                INFO(map.first, " ", xg::shape_str(shape), " base ", trivialization);
                xg::manual_seed(21);
                auto p = std::make_shared<pzs::Orthogonal>(shape, map.second, trivialization);
                const auto n = static_cast<std::int64_t>(shape[0]);
                const auto k = static_cast<std::int64_t>(shape[1]);
                const Tensor eye = xg::eye(n, k, xg::kFloat64);
                p->right_inverse(test::randn64(shape, 22));  // base, or nothing
                // Off-diagonal entries large enough for matrix_exp to scale and
                // square; a diagonal of -1.5, whose integer part (-1) householder
                // multiplies by: -1 itself would sit where truncation jumps.
                const Tensor x =
                    (test::randn64(shape, 23) * 1.5 * (1.0 - eye) - 1.5 * eye).detach();
                check_orthogonal(p->forward(x), 1e-12);
                CHECK(test::gradcheck(
                    [p](const std::vector<Tensor>& in) { return p->forward(in[0]); }, {x}));
            }
        }
    }
}

}  // namespace nn_test_parametrize
