// DistributedSampler: see the header for the sharding rule.
#include "xgrad/distributed/sampler.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include "xgrad/error.hpp"

namespace xg::distributed {

DistributedSampler::DistributedSampler(std::size_t dataset_size, int num_replicas, int rank,
                                       bool shuffle, std::uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size),
      num_replicas_(num_replicas),
      rank_(rank),
      shuffle_(shuffle),
      seed_(seed) {
    check(num_replicas > 0, "DistributedSampler: expected num_replicas >= 1 (got {})",
          num_replicas);
    check(rank >= 0 && rank < num_replicas, "DistributedSampler: expected rank in [0, {}) (got {})",
          num_replicas, rank);
    auto replicas = static_cast<std::size_t>(num_replicas);
    num_samples_ = drop_last ? dataset_size / replicas : (dataset_size + replicas - 1) / replicas;
    check(dataset_size > 0 || drop_last,
          "DistributedSampler: expected a non-empty dataset (got size 0)");
}

std::vector<std::size_t> DistributedSampler::indices() const {
    std::vector<std::size_t> all(dataset_size_);
    std::iota(all.begin(), all.end(), 0);
    if (shuffle_) {
        // The same (seed, epoch) on every rank gives every rank the same permutation.
        std::mt19937_64 generator(seed_ + epoch_);
        std::shuffle(all.begin(), all.end(), generator);
    }
    std::size_t total = num_samples_ * static_cast<std::size_t>(num_replicas_);
    // Pad by cycling from the start (more than once when total > 2 * size).
    for (std::size_t i = 0; all.size() < total; ++i) all.push_back(all[i]);
    all.resize(total);
    std::vector<std::size_t> mine;
    mine.reserve(num_samples_);
    for (std::size_t i = static_cast<std::size_t>(rank_); i < total;
         i += static_cast<std::size_t>(num_replicas_))
        mine.push_back(all[i]);
    return mine;
}

}  // namespace xg::distributed
