// The bodies of helpers.hpp's functions, compiled once: inline in the header,
// every test file (at -O0) emitted its own copy of them and of the xtensor
// code they use (about 1.5 s of each file's compile time).
#include "helpers.hpp"

#include <cstdio>

#include <xtensor/xbuilder.hpp>

namespace test {

xt::xarray<double> values(const xg::Tensor& t) {
    switch (t.dtype()) {
        case xg::kFloat32: return xt::cast<double>(t.data<float>());
        case xg::kFloat64: return t.data<double>();
        case xg::kInt64: return xt::cast<double>(t.data<std::int64_t>());
        case xg::kBool: return xt::cast<double>(t.data<bool>());
        default: return t.to(xg::kFloat64).data<double>();  // storage dtypes: exact in float64
    }
}

xg::Shape shape_of(const xt::xarray<double>& a) {
    return xg::Shape(a.shape().begin(), a.shape().end());
}

bool close(const xt::xarray<double>& actual, const xt::xarray<double>& expected, double rtol,
           double atol) {
    if (shape_of(actual) != shape_of(expected)) return false;
    // Empty arrays are equal; xt::allclose would step a null data pointer (UBSan).
    return actual.size() == 0 || xt::allclose(actual, expected, rtol, atol);
}

double rel_error(const xt::xarray<double>& a, const xt::xarray<double>& e) {
    REQUIRE(shape_of(a) == shape_of(e));
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        double d = std::abs(a.data()[i] - e.data()[i]) / std::max(std::abs(e.data()[i]), 1.0);
        if (std::isnan(a.data()[i]) != std::isnan(e.data()[i])) d = INFINITY;
        if (!std::isnan(d)) worst = std::max(worst, d);
    }
    return worst;
}

std::string show(const xt::xarray<double>& a) {
    std::ostringstream os;
    os.precision(17);
    os << xg::shape_str(shape_of(a)) << " {";
    for (std::size_t k = 0; k < a.size(); ++k) os << (k ? ", " : "") << a.data()[k];
    os << "}";
    return os.str();
}

bool identical(const xg::Tensor& a, const xg::Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    if (a.dtype() == xg::kFloat32) return a.data<float>() == b.data<float>();
    return a.data<double>() == b.data<double>();
}

std::size_t count_zeros(const xg::Tensor& t) {
    std::size_t n = 0;
    for (double v : values(t)) n += v == 0.0;
    return n;
}

xg::Tensor f64(const xt::xarray<double>& v, bool requires_grad) {
    return xg::tensor<double>(v, requires_grad);
}

xg::Tensor f32(const xt::xarray<float>& v, bool requires_grad) {
    return xg::tensor<float>(v, requires_grad);
}

xg::Tensor i64(const xt::xarray<std::int64_t>& v) { return xg::tensor<std::int64_t>(v); }

xt::xarray<double> column(const xt::xarray<double>& v) {
    xt::xarray<double> c = v;
    c.reshape({v.size(), 1});
    return c;
}

xg::Tensor arange234() {
    xt::xarray<double> a = xt::arange<double>(24);
    a.reshape({2, 3, 4});
    return f64(a);
}

xg::Tensor randn64(const xg::Shape& shape, std::uint64_t seed) {
    xg::manual_seed(seed);
    return xg::randn(shape, xg::kFloat64);
}

xg::Tensor positive64(const xg::Shape& shape, double lo, std::uint64_t seed) {
    xg::manual_seed(seed);
    xt::xarray<double> v = xg::rand(shape, xg::kFloat64).data<double>() + lo;
    return xg::tensor<double>(v);
}

bool gradcheck(const Fn& fn, const std::vector<xg::Tensor>& inputs) {
    return xg::autograd::gradcheck(fn, inputs);
}

bool gradgradcheck(const Fn& fn, const std::vector<xg::Tensor>& inputs) {
    return xg::autograd::gradgradcheck(fn, inputs);
}

std::vector<std::string> parameter_names(const xg::nn::Module& module) {
    std::vector<std::string> names;
    for (const auto& [name, p] : module.named_parameters()) names.push_back(name);
    return names;
}

std::vector<std::string> child_names(const xg::nn::Module& module) {
    std::vector<std::string> names;
    for (const auto& [name, child] : module.named_children()) names.push_back(name);
    return names;
}

xg::Tensor copy_param(const xg::Tensor& t) {
    xg::Tensor c = t.detach().clone();
    c.requires_grad_(true);
    return c;
}

std::string read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

xg::Tensor away_from_kinks(const xg::Shape& shape, std::uint64_t seed) {
    xt::xarray<double> v = positive64(shape, 0.5, seed).data<double>();
    for (std::size_t i = 0; i < v.size(); i += 2) v.data()[i] = -v.data()[i];
    return f64(v);
}

CommandResult run_command(const std::string& command) {
    const std::string merged = command + " 2>&1";
    std::FILE* pipe = ::popen(merged.c_str(), "r");
    if (pipe == nullptr) return {-1, "popen failed: " + command};
    std::string output;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
        output.append(buffer, n);
    return {::pclose(pipe), output};
}

namespace {
std::string hex_bytes(const xg::Tensor& t) {
    const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
    std::string out;
    for (std::size_t i = 0; i < t.nbytes(); ++i) out += fmt::format("{:02x}", bytes[i]);
    return out;
}
}  // namespace

void check_same_bits(const xg::StateDict& got, const xg::StateDict& expected) {
    REQUIRE(got.keys() == expected.keys());
    for (const auto& [name, e] : expected) {
        const std::string& key = name;  // CAPTURE's lambda cannot capture a structured binding
        CAPTURE(key);
        const xg::Tensor& t = got.at(key);
        CHECK(xg::dtype_name(t.dtype()) == xg::dtype_name(e.dtype()));
        CHECK(t.shape() == e.shape());
        CHECK(hex_bytes(t) == hex_bytes(e));
    }
}

}  // namespace test
