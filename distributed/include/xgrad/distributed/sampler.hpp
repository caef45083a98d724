// DistributedSampler: which dataset indices each rank trains on, as
// torch.utils.data.distributed.DistributedSampler.
//
// Every epoch the indices 0..dataset_size-1 are shuffled with a generator seeded
// by (seed, epoch), identically on every rank, then padded by repeating the
// first indices until the length divides evenly (or cut with drop_last), and
// rank r takes positions r, r + num_replicas, r + 2 num_replicas, ... So the
// shards are disjoint (up to the padding), equally long, and reshuffle when
// set_epoch() is called at the start of each epoch. The permutation comes from
// std::mt19937_64, so it differs from torch.randperm's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace xg::distributed {

class DistributedSampler {
public:
    DistributedSampler(std::size_t dataset_size, int num_replicas, int rank, bool shuffle = true,
                       std::uint64_t seed = 0, bool drop_last = false);

    // This rank's indices for the current epoch, size() of them.
    std::vector<std::size_t> indices() const;
    std::size_t size() const { return num_samples_; }
    void set_epoch(std::uint64_t epoch) { epoch_ = epoch; }
    std::uint64_t epoch() const { return epoch_; }

private:
    std::size_t dataset_size_, num_samples_;
    int num_replicas_, rank_;
    bool shuffle_;
    std::uint64_t seed_, epoch_ = 0;
};

}  // namespace xg::distributed
