// Threads: grad mode and the random generator are per thread; several threads
// may run inference on one shared model at once; a thread may take state_dict
// snapshots while another trains (values copied under the trainer's lock).
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_threads {

using xg::Tensor;

namespace {

// Every tensor summed in float64: tells apart the model after different steps.
double checksum(const xg::StateDict& state) {
    xg::NoGradGuard no_grad;
    double total = 0;
    for (const auto& [key, t] : state) total += xg::sum(t.to(xg::kFloat64)).item<double>();
    return total;
}

}  // namespace

TEST_CASE("grad mode is per thread") {
    xg::NoGradGuard no_grad;  // off here...
    bool recorded = false;
    std::thread([&] {
        Tensor x = xg::ones({2}).requires_grad_();
        recorded = (x * 2.0).requires_grad();  // ...but on in a new thread
    }).join();
    CHECK(recorded);
    CHECK_FALSE((xg::ones({2}).requires_grad_() * 2.0).requires_grad());
}

TEST_CASE("the generator is per thread and manual_seed reproduces each thread") {
    auto draw = [] { return xg::randn({4}, xg::kFloat64).data<double>(); };
    xg::manual_seed(7);
    xt::xarray<double> main_draw = draw();

    // A thread seeded alike draws alike, whatever the others do meanwhile.
    std::vector<xt::xarray<double>> seeded(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            xg::manual_seed(7);
            seeded[t] = draw();
            for (int k = 0; k < 100; ++k) draw();  // noise for the other threads, if shared
        });
    }
    for (auto& thread : threads) thread.join();
    for (const auto& d : seeded) CHECK(d == main_draw);

    // An unseeded thread derives its stream from the global seed and its order.
    auto first_new_thread_draw = [&] {
        xg::manual_seed(7);
        xt::xarray<double> out;
        std::thread([&] { out = draw(); }).join();
        return out;
    };
    xt::xarray<double> a = first_new_thread_draw(), b = first_new_thread_draw();
    CHECK(a == b);
    CHECK(a != main_draw);  // not the main thread's stream again
}

TEST_CASE("4 threads x 1000 forward passes on a shared FeedForward equal the serial results") {
    xg::manual_seed(3);
    auto model = xg::nn::FeedForward::swiglu(8, 32, 0.1);
    model->eval();
    constexpr int kInputs = 1000, kThreads = 4;
    std::vector<Tensor> inputs, serial;
    for (int i = 0; i < kInputs; ++i) inputs.push_back(xg::randn({3, 8}));
    {
        xg::NoGradGuard no_grad;
        for (const auto& x : inputs) serial.push_back((*model)(x));
    }
    std::atomic<int> mismatches{0}, passes{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            xg::NoGradGuard no_grad;  // grad mode is per thread: each worker sets its own
            for (int k = 0; k < kInputs; ++k) {
                int i = (k + t * kInputs / kThreads) % kInputs;  // threads start apart
                Tensor y = (*model)(inputs[i]);
                if (y.requires_grad() || y.data<float>() != serial[i].data<float>()) ++mismatches;
                ++passes;
            }
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(passes == kThreads * kInputs);
    CHECK(mismatches == 0);
}

TEST_CASE("state_dict snapshots taken while another thread trains are whole and consistent") {
    xg::manual_seed(4);
    auto model = xg::nn::FeedForward::swiglu(6, 16, 0.1);
    xg::optim::Adam optimizer(model->parameters(), xg::optim::AdamOptions(1e-2));
    Tensor x = xg::randn({16, 6}), y = xg::randn({16, 6});
    const std::vector<std::string> keys = model->state_dict().keys();

    // The documented contract: state_dict() itself may run at any time (it reads
    // the registries, which training never changes); reading the values races
    // with step() writing them in place, so value copies and step() share a lock.
    std::mutex step_mutex;
    std::vector<double> after_step{checksum(model->state_dict())};
    std::atomic<bool> done{false};
    std::thread trainer([&] {
        for (int step = 0; step < 300; ++step) {
            Tensor loss = xg::mse_loss((*model)(x), y);  // forward and backward need no lock
            optimizer.zero_grad();
            loss.backward();
            std::lock_guard lock(step_mutex);
            optimizer.step();
            after_step.push_back(checksum(model->state_dict()));  // both threads call state_dict()
        }
        done = true;
    });
    std::vector<double> snapshots;
    bool whole = true;
    while (!done || snapshots.empty()) {
        xg::StateDict live = model->state_dict();  // no lock
        xg::StateDict copy;
        {
            std::lock_guard lock(step_mutex);
            for (const auto& [key, t] : live) copy.insert_or_assign(key, t.clone());
        }
        whole = whole && copy.keys() == keys;
        snapshots.push_back(checksum(copy));
    }
    trainer.join();
    CHECK(whole);
    std::set<double> states(after_step.begin(), after_step.end());
    int consistent = 0;
    for (double s : snapshots) consistent += states.count(s) ? 1 : 0;
    CHECK(consistent == static_cast<int>(snapshots.size()));  // each is the model after some step
    MESSAGE(snapshots.size() << " snapshots during 300 steps");
}

}  // namespace core_test_threads
