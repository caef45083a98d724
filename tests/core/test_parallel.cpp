// xg::parallel_for and the thread pool behind it (core/src/parallel.cpp): every
// element exactly once, in chunks aligned to 64 elements; inline below the
// grain, nested, or while another thread's job holds the pool; after a fork;
// and the kernels split on it give the same bits on 1 and 2 threads.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xgrad/parallel.hpp>
#include <xgrad/xgrad.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_parallel {

using xg::Tensor;

namespace {

// Sets xg's threads for a scope and puts the old count back.
struct Threads {
    int old = xg::get_num_threads();
    explicit Threads(int n) { xg::set_num_threads(n); }
    ~Threads() { xg::set_num_threads(old); }
};

using Chunks = std::vector<std::pair<std::int64_t, std::int64_t>>;

// The chunks parallel_for hands out for [begin, end), sorted, and the threads
// that ran them. With `threads` 2, each chunk waits (up to 10 s) for a second
// thread to start one, so that the caller cannot take every chunk before a worker wakes.
std::pair<Chunks, std::size_t> chunks_of(std::int64_t begin, std::int64_t end, std::int64_t grain,
                                         int threads = 1) {
    std::mutex m;
    Chunks chunks;
    std::vector<std::thread::id> ids;
    std::atomic<int> started = 0;
    xg::parallel_for(begin, end, grain, [&](std::int64_t b, std::int64_t e) {
        ++started;
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (started < threads && std::chrono::steady_clock::now() < give_up)
            std::this_thread::yield();
        std::lock_guard lock(m);
        chunks.emplace_back(b, e);
        if (std::find(ids.begin(), ids.end(), std::this_thread::get_id()) == ids.end())
            ids.push_back(std::this_thread::get_id());
    });
    std::sort(chunks.begin(), chunks.end());
    return {chunks, ids.size()};
}

bool same_bits(const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() &&
           std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

// 300K elements: several times kElementwiseGrain, and not a multiple of 64.
const xg::Shape kShape{300, 1001};

}  // namespace

TEST_CASE("parallel_for covers the range once, one chunk per thread") {
    Threads two(2);
    const std::int64_t begin = 5, end = 5 + 3 * xg::kElementwiseGrain + 7;
    auto [chunks, threads] = chunks_of(begin, end, xg::kElementwiseGrain, 2);
    REQUIRE(chunks.size() == 2);
    CHECK(chunks.front().first == begin);
    CHECK(chunks.back().second == end);
    CHECK(chunks[0].second == chunks[1].first);
    CHECK(chunks[0].second - chunks[0].first == (end - begin + 1) / 2);
    CHECK(threads == 2);
}

TEST_CASE(
    "for_chunks splits at multiples of 64 elements, for_rows at whole rows, for_columns at 64 "
    "columns") {
    Threads two(2);
    std::mutex m;
    std::vector<std::pair<std::size_t, std::size_t>> chunks;
    auto record = [&](std::size_t first, std::size_t count) {
        std::lock_guard lock(m);
        chunks.emplace_back(first, count);
    };
    const std::size_t n = 2 * xg::kElementwiseGrain + 1000;
    xg::detail::for_chunks(n, record);
    std::sort(chunks.begin(), chunks.end());
    REQUIRE(chunks.size() == 2);
    CHECK(chunks[0].first == 0);
    CHECK(chunks[0].second % 64 == 0);
    CHECK(chunks[0].second + chunks[1].second == n);
    CHECK(chunks[1].first == chunks[0].second);

    chunks.clear();
    const std::size_t row = 1000, rows = 99;  // 99 rows of 1000: above two grains of 32K
    xg::detail::for_rows(rows * row, row, record);
    std::sort(chunks.begin(), chunks.end());
    REQUIRE(chunks.size() == 2);
    CHECK(chunks[0] == std::pair<std::size_t, std::size_t>{0, 50 * row});
    CHECK(chunks[1] == std::pair<std::size_t, std::size_t>{50 * row, 49 * row});

    chunks.clear();
    xg::detail::for_columns(99, row, record);  // columns of the same array, multiples of 64
    std::sort(chunks.begin(), chunks.end());
    REQUIRE(chunks.size() == 2);
    CHECK(chunks[0] == std::pair<std::size_t, std::size_t>{0, 512});
    CHECK(chunks[1] == std::pair<std::size_t, std::size_t>{512, row - 512});

    chunks.clear();
    xg::detail::for_rows(10 * row, row, record);  // 10K elements: one call
    CHECK(chunks == std::vector<std::pair<std::size_t, std::size_t>>{{0, 10 * row}});
}

TEST_CASE("parallel_for runs inline on one thread, below two grains and for an empty range") {
    Threads two(2);
    CHECK(chunks_of(0, 2 * 1000 - 1, 1000).first == Chunks{{0, 1999}});
    CHECK(chunks_of(7, 7, 1).first.empty());
    CHECK(chunks_of(9, 3, 1).first.empty());
    Threads one(1);
    CHECK(chunks_of(0, 100000, 10).first == Chunks{{0, 100000}});
}

TEST_CASE("a parallel_for inside another runs inline in the thread that calls it") {
    Threads two(2);
    std::atomic<int> inner_calls = 0, inner_chunks = 0;
    xg::parallel_for(0, 4096, 1024, [&](std::int64_t, std::int64_t) {
        ++inner_calls;
        xg::parallel_for(0, 4096, 1024, [&](std::int64_t b, std::int64_t e) {
            ++inner_chunks;
            CHECK(b == 0);
            CHECK(e == 4096);
        });
    });
    CHECK(inner_calls == 2);
    CHECK(inner_chunks == 2);  // one whole-range call in each outer chunk
}

TEST_CASE("threads calling parallel_for at once each get every element once") {
    Threads two(2);
    const std::int64_t n = 1 << 18;
    std::vector<std::thread> callers;
    std::vector<std::vector<int>> seen(4, std::vector<int>(n, 0));
    for (int c = 0; c < 4; ++c) {
        callers.emplace_back([&, c] {
            for (int round = 0; round < 20; ++round) {
                xg::parallel_for(0, n, 4096, [&](std::int64_t b, std::int64_t e) {
                    for (std::int64_t i = b; i < e; ++i) ++seen[c][i];
                });
            }
        });
    }
    for (auto& t : callers) t.join();
    for (const auto& s : seen)
        CHECK(std::all_of(s.begin(), s.end(), [](int v) { return v == 20; }));
}

TEST_CASE("a forked child runs parallel_for although it has none of its parent's threads") {
    Threads two(2);
    chunks_of(0, 1 << 20, 1024);  // the parent's pool exists
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        auto [chunks, threads] = chunks_of(0, 1 << 20, 1024, 2);
        ::_exit(chunks.size() == 2 && threads == 2 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

// Every split kernel's forward and gradient, computed on `threads` threads.
std::vector<Tensor> split_kernels(int threads) {
    Threads t(threads);
    xg::manual_seed(7);
    Tensor h = xg::randn(kShape).requires_grad_();
    Tensor v = xg::randn(kShape).requires_grad_();
    Tensor row = xg::randn({kShape[1]}).requires_grad_();
    Tensor w = xg::randn({kShape[1]}).requires_grad_();
    Tensor b = xg::randn({kShape[1]}).requires_grad_();
    // linear's bias seeded by rows and its gradient summed by columns (300 x 256:
    // both split). A zero weight keeps OpenBLAS out of the bits: its GEMMs are
    // not the same bits on one and two threads.
    Tensor lw = xg::zeros({256, kShape[1]});
    Tensor lb = xg::randn({256}).requires_grad_();
    Tensor lm = xg::randn({kShape[0], 256});
    std::vector<Tensor> out{
        xg::linear(h, lw, lb) * lm,
        xg::activation_dropout(h, v, xg::FusedActivation::GELU, 0.25, true),
        xg::dropout(xg::exp(h * 0.1) * row + v, 0.5, true),
        xg::activation_dropout(h, Tensor(), xg::FusedActivation::ReLU, 0.1, true),
        xg::softmax(h, 1),
        xg::log_softmax(v, 1),
        xg::layer_norm(h, {kShape[1]}, w, b),
        xg::var(v, {1}),
        xg::logsumexp(h, {1}),
        xg::mse_loss(h, v),
        xg::sum(h * h, {0}),
        xg::sum(v, {1}),
        xg::where(xg::gt(h, 0.0), h, v * 2.0),
        xg::ones(kShape) * h,
        xg::transpose(v, 0, 1),
        h.slice(1, 1, std::nullopt, 3),
        xg::cross_entropy(v, xg::randint(0, std::int64_t(kShape[1]), {kShape[0]})),
        xg::clamp(h, -0.5, 0.5),
        v.clone(),  // copied in chunks
        // gather splits its rows; its gradient (a scatter) splits only along the last dim.
        xg::gather(v, 1, xg::randint(0, std::int64_t(kShape[1]), kShape)),
        xg::gather(h, 0, xg::randint(0, std::int64_t(kShape[0]), kShape)),
        xg::scatter_add(h, 1, xg::randint(0, std::int64_t(kShape[1]), kShape), v),
    };
    Tensor loss = xg::zeros({});
    for (const Tensor& o : out) loss = loss + xg::sum(o * o);
    loss.backward();
    // One Adam step on h (its moments are fresh: exp_avg and exp_avg_sq from this grad).
    xg::optim::Adam adam({h}, xg::optim::AdamOptions(1e-2));
    adam.step();
    for (const Tensor& p : {h, v, row, w, b, lb}) out.push_back(p.grad());
    out.push_back(h.detach());
    return out;
}

TEST_CASE("split kernels give the same bits on one and two threads") {
    auto one = split_kernels(1), two = split_kernels(2);
    REQUIRE(one.size() == two.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
        CAPTURE(i);
        CHECK(same_bits(one[i], two[i]));
    }
}

}  // namespace core_test_parallel
