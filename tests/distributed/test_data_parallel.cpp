// DistributedDataParallel: after K steps every rank holds bit-identical
// parameters equal to a single process trained on the concatenated batches;
// bucket boundaries, mixed dtypes, no_sync, unused parameters, buffers, errors.
#include <cstring>
#include <functional>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/distributed.hpp>
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

namespace dist = xg::distributed;
namespace nn = xg::nn;
using xg::Dtype;
using xg::Shape;
using xg::Tensor;
using DDP = nn::DistributedDataParallel;
using DDPOptions = nn::DistributedDataParallelOptions;

namespace {

constexpr std::size_t kLocalBatch = 4, kIn = 6, kOut = 3;

std::shared_ptr<nn::Module> make_mlp(std::uint64_t seed, Dtype dtype) {
    xg::manual_seed(seed);
    auto model =
        std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Linear>(kIn, 16), std::make_shared<nn::Tanh>(),
            std::make_shared<nn::LayerNorm>(Shape{16}), std::make_shared<nn::Linear>(16, 16),
            std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(16, kOut)});
    model->to(dtype);
    return model;
}

// Float32 and float64 parameters side by side: buckets never mix dtypes.
struct MixedNet : nn::Module {
    std::shared_ptr<nn::Linear> narrow, wide, head;
    MixedNet() {
        narrow = register_module("narrow", std::make_shared<nn::Linear>(kIn, 8));
        wide = register_module("wide", std::make_shared<nn::Linear>(kIn, 8));
        wide->to(xg::kFloat64);
        head = register_module("head", std::make_shared<nn::Linear>(8, kOut));
    }
    Tensor forward(const Tensor& x) override {
        Tensor h = xg::tanh((*narrow)(x)) + xg::tanh((*wide)(x.to(xg::kFloat64))).to(xg::kFloat32);
        return (*head)(h);
    }
};

std::shared_ptr<nn::Module> make_mixed(std::uint64_t seed, Dtype) {
    xg::manual_seed(seed);
    return std::make_shared<MixedNet>();
}

// Rows [begin, end) of a 2-D tensor.
Tensor rows(const Tensor& t, std::size_t begin, std::size_t end) {
    if (t.dtype() == xg::kFloat32)
        return xg::tensor(xt::xarray<float>(xt::view(t.data<float>(), xt::range(begin, end))));
    return xg::tensor(xt::xarray<double>(xt::view(t.data<double>(), xt::range(begin, end))));
}

// The global batch of a step: world_size * kLocalBatch rows, the same on every rank.
std::pair<Tensor, Tensor> global_batch(int step, Dtype dtype) {
    xg::manual_seed(1000 + static_cast<std::uint64_t>(step));
    auto n = static_cast<std::size_t>(dist::world_size()) * kLocalBatch;
    return {xg::randn({n, kIn}, dtype), xg::randn({n, kOut}, dtype)};
}

std::pair<Tensor, Tensor> local_batch(int step, Dtype dtype) {
    auto [x, y] = global_batch(step, dtype);
    auto begin = static_cast<std::size_t>(dist::rank()) * kLocalBatch;
    return {rows(x, begin, begin + kLocalBatch), rows(y, begin, begin + kLocalBatch)};
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    if (a.dtype() == xg::kFloat32) return xt::amax(xt::abs(a.data<float>() - b.data<float>()))();
    return xt::amax(xt::abs(a.data<double>() - b.data<double>()))();
}

// Whether `t` holds exactly rank 0's bytes.
bool same_bits_as_rank0(const Tensor& t) {
    Tensor root = t.detach().clone();
    dist::broadcast(root, 0);
    bool mine = t.dtype() == xg::kFloat32
                    ? std::memcmp(t.data<float>().data(), root.data<float>().data(),
                                  t.numel() * sizeof(float)) == 0
                    : std::memcmp(t.data<double>().data(), root.data<double>().data(),
                                  t.numel() * sizeof(double)) == 0;
    Tensor all = xg::full({1}, mine ? 1 : 0, xg::kInt64);
    dist::all_reduce(all, dist::ReduceOp::Min);
    return all.item<int>() == 1;
}

using Factory = std::function<std::shared_ptr<nn::Module>(std::uint64_t, Dtype)>;
using MakeOptimizer =
    std::function<std::shared_ptr<xg::optim::Optimizer>(const std::vector<Tensor>&)>;

// K steps with DDP on each rank's slice vs one process on the whole batch.
void check_matches_single_process(const Factory& make, Dtype dtype, DDPOptions options,
                                  const MakeOptimizer& make_optimizer, double tolerance) {
    const int steps = 5;
    auto reference = make(1234, dtype);
    auto local = make(1234 + 17 * static_cast<std::uint64_t>(dist::rank()), dtype);
    auto ddp = std::make_shared<DDP>(local, options);
    auto ref_params = reference->parameters(), params = ddp->parameters();
    REQUIRE(ref_params.size() == params.size());
    for (std::size_t i = 0; i < params.size(); ++i)  // rank 0's initial values everywhere
        CHECK(max_abs_diff(params[i], ref_params[i]) == 0);

    auto ref_opt = make_optimizer(ref_params), opt = make_optimizer(params);
    Dtype data_dtype = dtype == xg::kFloat64 ? xg::kFloat64 : xg::kFloat32;
    for (int step = 0; step < steps; ++step) {
        auto [x, y] = global_batch(step, data_dtype);
        ref_opt->zero_grad();
        xg::mse_loss((*reference)(x), y).backward();
        ref_opt->step();

        auto [lx, ly] = local_batch(step, data_dtype);
        Tensor loss = xg::mse_loss((*ddp)(lx), ly);
        opt->zero_grad();  // between forward and backward, as examples do
        loss.backward();
        if (step == 0) {
            for (std::size_t i = 0; i < params.size(); ++i) {
                CAPTURE(i);
                REQUIRE(params[i].grad().defined());
                CHECK(max_abs_diff(params[i].grad(), ref_params[i].grad()) <= tolerance);
            }
        }
        opt->step();
    }
    auto named = ddp->named_parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
        CAPTURE(named[i].first);
        CHECK(max_abs_diff(params[i], ref_params[i]) <= tolerance);
        CHECK(same_bits_as_rank0(params[i]));
    }
}

MakeOptimizer sgd = [](const std::vector<Tensor>& p) {
    return std::make_shared<xg::optim::SGD>(p, xg::optim::SGDOptions(0.1).momentum(0.9));
};
MakeOptimizer adam = [](const std::vector<Tensor>& p) {
    return std::make_shared<xg::optim::Adam>(p, xg::optim::AdamOptions(1e-2));
};

}  // namespace

TEST_CASE("DistributedDataParallel: K steps equal one process on the concatenated batches") {
    // 25 MB: one bucket. 0.0004 MB = 419 bytes: many buckets, cut mid-layer.
    for (double cap : {25.0, 0.0004}) {
        CAPTURE(cap);
        SUBCASE("float32, SGD with momentum") {
            check_matches_single_process(make_mlp, xg::kFloat32, DDPOptions().bucket_cap_mb(cap),
                                         sgd, 1e-6);
        }
        SUBCASE("float32, Adam") {
            check_matches_single_process(make_mlp, xg::kFloat32, DDPOptions().bucket_cap_mb(cap),
                                         adam, 1e-6);
        }
        SUBCASE("float64, Adam") {
            check_matches_single_process(make_mlp, xg::kFloat64, DDPOptions().bucket_cap_mb(cap),
                                         adam, 1e-12);
        }
        SUBCASE("float32 and float64 parameters in one model") {
            check_matches_single_process(make_mixed, xg::kFloat32, DDPOptions().bucket_cap_mb(cap),
                                         sgd, 1e-6);
        }
    }
}

TEST_CASE("DistributedDataParallel: buckets follow reverse parameter order, one dtype each") {
    // weight [4, 4] (64 bytes) + bias [4] (16 bytes) fill an 80-byte bucket exactly.
    xg::manual_seed(0);
    auto model =
        std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Linear>(4, 4), std::make_shared<nn::Linear>(4, 4),
            std::make_shared<nn::Linear>(4, 4)});
    DDP ddp(model, DDPOptions().bucket_cap_mb(80.0 / (1024 * 1024)));
    using Names = std::vector<std::string>;
    CHECK(ddp.bucket_assignment() == std::vector<Names>{{"module.2.bias", "module.2.weight"},
                                                        {"module.1.bias", "module.1.weight"},
                                                        {"module.0.bias", "module.0.weight"}});
    DDP one(model->clone());
    CHECK(one.bucket_assignment().size() == 1);
    DDP mixed(make_mixed(0, xg::kFloat32), DDPOptions().bucket_cap_mb(1));
    CHECK(mixed.bucket_assignment() ==
          std::vector<Names>{{"module.head.bias", "module.head.weight", "module.narrow.bias",
                              "module.narrow.weight"},
                             {"module.wide.bias", "module.wide.weight"}});
    CHECK_THROWS_WITH_AS(DDP(model, DDPOptions().bucket_cap_mb(0)),
                         "DistributedDataParallel: expected bucket_cap_mb > 0 (got 0)", xg::Error);
}

TEST_CASE("DistributedDataParallel: gradients accumulate, and no_sync defers the averaging") {
    auto reference = make_mlp(5, xg::kFloat64);
    DDP ddp(make_mlp(5, xg::kFloat64));
    auto [x0, y0] = global_batch(0, xg::kFloat64);
    auto [x1, y1] = global_batch(1, xg::kFloat64);
    xg::mse_loss((*reference)(x0), y0).backward();
    xg::mse_loss((*reference)(x1), y1).backward();
    auto expected = reference->parameters();

    SUBCASE("two synchronised backward passes") {
        auto [a0, b0] = local_batch(0, xg::kFloat64);
        auto [a1, b1] = local_batch(1, xg::kFloat64);
        xg::mse_loss(ddp(a0), b0).backward();
        xg::mse_loss(ddp(a1), b1).backward();
    }
    SUBCASE("a local backward under no_sync, then a synchronised one") {
        auto [a0, b0] = local_batch(0, xg::kFloat64);
        auto [a1, b1] = local_batch(1, xg::kFloat64);
        {
            auto guard = ddp.no_sync();
            xg::mse_loss(ddp(a0), b0).backward();
        }
        xg::mse_loss(ddp(a1), b1).backward();
    }
    auto params = ddp.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
        CAPTURE(i);
        CHECK(max_abs_diff(params[i].grad(), expected[i].grad()) <= 1e-12);
        CHECK(same_bits_as_rank0(params[i].grad()));
    }
}

namespace {
// `b` joins in only on the ranks listed; `c` never does.
struct Heads : nn::Module {
    std::shared_ptr<nn::Linear> a, b, c;
    bool use_b;
    explicit Heads(bool use_b_) : use_b(use_b_) {
        xg::manual_seed(3);
        a = register_module("a", std::make_shared<nn::Linear>(kIn, kOut));
        b = register_module("b", std::make_shared<nn::Linear>(kIn, kOut));
        c = register_module("c", std::make_shared<nn::Linear>(kIn, kOut));
    }
    Tensor forward(const Tensor& x) override { return use_b ? (*a)(x) + (*b)(x) : (*a)(x); }
};
}  // namespace

TEST_CASE("DistributedDataParallel: unused parameters are an error unless find_unused_parameters") {
    auto [x, y] = local_batch(0, xg::kFloat32);
    SUBCASE("default: the next forward names the parameters without a gradient") {
        DDP ddp(std::make_shared<Heads>(true));
        xg::mse_loss(ddp(x), y).backward();
        CHECK_THROWS_WITH_AS(
            ddp(x),
            "DistributedDataParallel: expected the previous backward to produce a gradient for "
            "every parameter before the next forward (got none for module.c.weight, "
            "module.c.bias); construct with "
            "DistributedDataParallelOptions().find_unused_parameters(true) if some are unused in "
            "forward",
            xg::Error);
    }
    SUBCASE("find_unused_parameters: unused ones count as zeros, ones nobody used stay undefined") {
        // b is used on rank 0 only, so its gradient is rank 0's divided by the world size.
        bool use_b = dist::rank() == 0;
        auto plain = std::make_shared<Heads>(use_b);
        auto wrapped = std::make_shared<Heads>(use_b);
        DDP ddp(wrapped, DDPOptions().find_unused_parameters(true).bucket_cap_mb(0.0001));
        for (int step = 0; step < 2; ++step) {  // the second step reuses the stale .grad slots
            auto [lx, ly] = local_batch(step, xg::kFloat32);
            plain->zero_grad();
            xg::mse_loss((*plain)(lx), ly).backward();
            Tensor loss = xg::mse_loss(ddp(lx), ly);
            ddp.zero_grad();
            loss.backward();
            Tensor b_expected = plain->b->weight.grad().defined()
                                    ? plain->b->weight.grad().detach().clone()
                                    : xg::zeros({kOut, kIn});
            dist::broadcast(b_expected, 0);
            double n = dist::world_size();
            CHECK(max_abs_diff(wrapped->b->weight.grad(), b_expected / n) <= 1e-7);
            CHECK_FALSE(wrapped->c->weight.grad().defined());
            CHECK(same_bits_as_rank0(wrapped->a->weight.grad()));
        }
    }
}

TEST_CASE("DistributedDataParallel: wraps as PyTorch does: child 'module', rank 0's buffers") {
    struct WithBuffer : nn::Module {
        std::shared_ptr<nn::Linear> l;
        Tensor running;
        WithBuffer() {
            xg::manual_seed(static_cast<std::uint64_t>(dist::rank()));
            l = register_module("l", std::make_shared<nn::Linear>(kIn, kOut));
            running = register_buffer("running", xg::full({kOut}, dist::rank() + 1.0));
        }
        Tensor forward(const Tensor& x) override { return (*l)(x) + running; }
    };
    auto inner = std::make_shared<WithBuffer>();
    DDP ddp(inner);
    // A module's own buffers come before its children's entries, as in PyTorch.
    CHECK(ddp.state_dict().keys() ==
          std::vector<std::string>{"module.running", "module.l.weight", "module.l.bias"});
    CHECK(ddp.module() == inner);
    CHECK(inner->running.data<float>()(0) == 1.0f);  // rank 0's buffer
    CHECK(same_bits_as_rank0(inner->l->weight));
    inner->running.data<float>()(0) = static_cast<float>(10 * dist::rank());
    auto [x, y] = local_batch(0, xg::kFloat32);
    xg::mse_loss(ddp(x), y).backward();  // forward re-broadcasts the buffers
    CHECK(inner->running.data<float>()(0) == 0.0f);
    CHECK(ddp.repr().rfind("DistributedDataParallel(\n  (module): WithBuffer(", 0) == 0);

    // Backward through the wrapped module itself stays local.
    inner->zero_grad();
    Tensor plain_loss = xg::mse_loss((*inner)(x), y);
    plain_loss.backward();
    Tensor local = inner->l->weight.grad().detach().clone();
    auto copy = std::make_shared<WithBuffer>();
    copy->load_state_dict(inner->state_dict());
    xg::mse_loss((*copy)(x), y).backward();
    CHECK(max_abs_diff(local, copy->l->weight.grad()) == 0);
}

TEST_CASE("DistributedDataParallel: every rank must wrap the same model") {
    if (dist::world_size() == 1) return;
    int r = dist::rank();
    CHECK_THROWS_WITH_AS(DDP(std::make_shared<nn::Linear>(3, r == 1 ? 5 : 4)),
                         doctest::Contains("DistributedDataParallel: expected the same parameters "
                                           "and buffers (names, shapes, dtypes) on every rank as "
                                           "on rank 0 (got a different model on"),
                         xg::Error);
    CHECK_THROWS_WITH_AS(DDP(std::make_shared<nn::Linear>(3, 4, r != 1)),
                         doctest::Contains("(got a different number of them)"), xg::Error);
    dist::barrier();
}
