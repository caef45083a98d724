// DistributedDataParallel: data-parallel training over MPI, as
// torch.nn.parallel.DistributedDataParallel.
//
//   input [local batch, ...] -> module(input)   (each rank runs the whole module on its shard)
//
// Construction broadcasts rank 0's parameters and buffers, so every rank starts
// from the same model. During backward each parameter's gradient is averaged
// over the ranks: the result equals, up to rounding, the gradient of the mean
// loss over the concatenation of every rank's batch (for equal local batches).
//
// How (the PyTorch Reducer, simplified): parameters requiring grad are grouped,
// in reverse registration order (roughly the order backward produces them), into
// buckets of one dtype and about bucket_cap_mb. A tensor hook on each parameter
// copies its gradient into its bucket; a full bucket starts a non-blocking
// MPI_Iallreduce while backward carries on. Buckets start in index order on
// every rank, as MPI requires of collectives.
//
// Finishing needs no end-of-backward callback: the engine sums all of a leaf's
// gradient contributions before running its hooks, so each parameter's hook fires
// exactly once per backward, and the hook that makes the last parameter ready
// waits for every bucket; backward returns only after that. Tensor hooks run
// before the engine accumulates into .grad, so each hook puts .grad + its gradient
// into the bucket, and the wait overwrites .grad with the bucket's average (so
// gradients keep accumulating across backward calls); the one hook that runs the
// wait hands the engine zeros to add afterwards.
//
// Every rank reduces its whole .grad, as in PyTorch, so gradients accumulated
// locally under no_sync() are averaged by the next synchronised backward.
//
// A parameter that gets no gradient: with find_unused_parameters(true) forward
// walks the output's graph, and parameters it does not reach contribute zeros when
// backward starts (so their .grad becomes the average over the ranks that used
// them; one no rank used keeps an undefined .grad). Otherwise, as in PyTorch, the
// reduction cannot finish and the next forward throws an xg::Error naming them. Backward through a
// graph not built by this wrapper's forward (e.g. calling module() directly), a second backward
// through the same graph, and backward inside no_sync() accumulate local gradients without
// communication, as in PyTorch.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

// Options, libtorch-style: DistributedDataParallelOptions().bucket_cap_mb(4).
struct DistributedDataParallelOptions {
    DistributedDataParallelOptions& bucket_cap_mb(double v) { return bucket_cap_mb_ = v, *this; }
    DistributedDataParallelOptions& find_unused_parameters(bool v) {
        return find_unused_parameters_ = v, *this;
    }
    // Re-broadcast rank 0's buffers at every forward (PyTorch's default).
    DistributedDataParallelOptions& broadcast_buffers(bool v) {
        return broadcast_buffers_ = v, *this;
    }
    double bucket_cap_mb() const { return bucket_cap_mb_; }
    bool find_unused_parameters() const { return find_unused_parameters_; }
    bool broadcast_buffers() const { return broadcast_buffers_; }

private:
    double bucket_cap_mb_ = 25;
    bool find_unused_parameters_ = false;
    bool broadcast_buffers_ = true;
};

class DistributedDataParallel : public Module {
public:
    // Needs xg::distributed::init(); a collective: every rank constructs it.
    explicit DistributedDataParallel(std::shared_ptr<Module> module,
                                     DistributedDataParallelOptions options = {});
    ~DistributedDataParallel() override;

    Tensor forward(const Tensor& input) override;
    // The wrapped module, registered as child "module" (state_dict keys "module.*").
    const std::shared_ptr<Module>& module() const { return module_; }

    // While alive, backward passes accumulate local gradients without
    // communication (gradient accumulation); the first backward after it syncs.
    class NoSync {
    public:
        ~NoSync();
        NoSync(const NoSync&) = delete;
        NoSync& operator=(const NoSync&) = delete;

    private:
        friend class DistributedDataParallel;
        explicit NoSync(DistributedDataParallel& ddp);
        DistributedDataParallel& ddp_;
        bool previous_;
    };
    [[nodiscard]] NoSync no_sync() { return NoSync(*this); }

    // The parameter names ("module.layer.weight") in each bucket, in launch order.
    std::vector<std::vector<std::string>> bucket_assignment() const;

    struct Reducer;

private:
    std::shared_ptr<Module> module_;
    DistributedDataParallelOptions options_;
    std::shared_ptr<Reducer> reducer_;
};

}  // namespace xg::nn
