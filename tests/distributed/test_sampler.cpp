// DistributedSampler: disjoint, equally long shards that cover the dataset and
// reshuffle with the epoch. Pure bookkeeping, the same on any number of ranks.
#include <algorithm>
#include <set>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/distributed.hpp>

using xg::distributed::DistributedSampler;

namespace {
std::vector<std::vector<std::size_t>> shards(std::size_t size, int replicas, bool shuffle,
                                             std::uint64_t epoch, bool drop_last = false) {
    std::vector<std::vector<std::size_t>> out;
    for (int r = 0; r < replicas; ++r) {
        DistributedSampler sampler(size, replicas, r, shuffle, 7, drop_last);
        sampler.set_epoch(epoch);
        out.push_back(sampler.indices());
        CHECK(out.back().size() == sampler.size());
    }
    return out;
}
}  // namespace

TEST_CASE(
    "DistributedSampler: without shuffling rank r takes r, r + n, ... padded from the start") {
    auto s = shards(10, 3, false, 0);
    CHECK(s[0] == std::vector<std::size_t>{0, 3, 6, 9});
    CHECK(s[1] == std::vector<std::size_t>{1, 4, 7, 0});
    CHECK(s[2] == std::vector<std::size_t>{2, 5, 8, 1});
    auto dropped = shards(10, 3, false, 0, true);
    CHECK(dropped[2] == std::vector<std::size_t>{2, 5, 8});
    // More replicas than samples: padding cycles as often as needed.
    auto tiny = shards(2, 5, false, 0);
    CHECK(tiny[4] == std::vector<std::size_t>{0});
}

TEST_CASE("DistributedSampler: shuffled shards are disjoint, cover the data and change by epoch") {
    for (int replicas : {1, 2, 3, 4}) {
        CAPTURE(replicas);
        auto epoch0 = shards(101, replicas, true, 0), again = shards(101, replicas, true, 0),
             epoch1 = shards(101, replicas, true, 1);
        CHECK(epoch0 == again);
        CHECK(epoch0 != epoch1);
        std::multiset<std::size_t> all;
        for (auto& shard : epoch1) all.insert(shard.begin(), shard.end());
        std::set<std::size_t> distinct(all.begin(), all.end());
        CHECK(distinct.size() == 101);
        CHECK(*distinct.rbegin() == 100);
        CHECK(all.size() == (101 + replicas - 1) / replicas * replicas);
    }
}

TEST_CASE("DistributedSampler: bad arguments throw") {
    CHECK_THROWS_WITH_AS(DistributedSampler(10, 2, 2),
                         "DistributedSampler: expected rank in [0, 2) (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS(DistributedSampler(10, 0, 0),
                         "DistributedSampler: expected num_replicas >= 1 (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(DistributedSampler(0, 2, 0),
                         "DistributedSampler: expected a non-empty dataset (got size 0)",
                         xg::Error);
}
