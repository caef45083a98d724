// DistributedDataParallel and its Reducer: gradient buckets filled by tensor
// hooks and averaged with non-blocking MPI_Iallreduce (see the header).
#include "xgrad/nn/distributed_data_parallel.hpp"

#include <climits>
#include <cstdint>
#include <cstring>
#include <unordered_set>

#include <xtensor/xadapt.hpp>

#include "mpi_internal.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/distributed.hpp"

namespace xg::nn {

namespace dist = xg::distributed;
using dist::detail::check_mpi;

namespace {

// Every rank must wrap the same model: same parameters and buffers, same
// shapes and dtypes. Checked against rank 0, failing on every rank together.
void check_same_model(const std::vector<Tensor>& tensors) {
    std::vector<std::int64_t> signature{static_cast<std::int64_t>(tensors.size())};
    for (const Tensor& t : tensors) {
        signature.push_back(static_cast<std::int64_t>(t.dtype()));
        for (std::size_t d : t.shape()) signature.push_back(static_cast<std::int64_t>(d));
        signature.push_back(-1);
    }
    xt::xarray<std::int64_t> values = xt::adapt(signature, {signature.size()});
    Tensor mine = tensor(values), roots = tensor(values);
    const char* expected =
        "DistributedDataParallel: expected the same parameters and buffers (names, shapes, "
        "dtypes) on every rank as on rank 0 (got a different ";
    try {
        dist::broadcast(roots, 0);
    } catch (const Error&) {
        throw Error(std::string(expected) + "number of them)");
    }
    Tensor same = tensor(xt::xarray<std::int64_t>::from_shape({1}));
    same.data<std::int64_t>()(0) = mine.data<std::int64_t>() == roots.data<std::int64_t>();
    dist::all_reduce(same, dist::ReduceOp::Min);
    bool mine_matches = mine.data<std::int64_t>() == roots.data<std::int64_t>();
    check(same.data<std::int64_t>()(0) == 1, "{}{})", expected,
          mine_matches ? "model on another rank" : fmt::format("model on rank {}", dist::rank()));
}

}  // namespace

struct DistributedDataParallel::Reducer {
    struct Bucket {
        Dtype dtype;
        std::vector<std::size_t> members;  // parameter indices
        std::vector<std::size_t> offsets;  // element offset of each member in buffer
        std::size_t numel = 0;
        Tensor buffer;  // flat, one dtype; summed in place by MPI
        std::size_t pending = 0;
        MPI_Request request = MPI_REQUEST_NULL;  // null again once complete
    };

    std::vector<Tensor> params;
    std::vector<std::string> names;
    std::vector<std::pair<std::size_t, std::size_t>> slot;  // param -> (bucket, member)
    std::vector<Bucket> buckets;
    std::vector<char> ready;
    std::vector<RemovableHandle> hooks;
    MPI_Comm comm = MPI_COMM_NULL;
    int world = 1;
    bool find_unused = false;
    bool sync = true;    // false inside no_sync()
    bool armed = false;  // forward expects a synchronised backward
    // find_unused_parameters: what forward's graph did not reach, marked ready
    // (with zeros) at the first hook of backward, after any zero_grad().
    std::vector<std::size_t> unreached;
    bool unreached_pending = false;
    std::vector<int> used;  // got a gradient on this rank in this backward
    std::size_t ready_count = 0, next_launch = 0;

    void assign_buckets(double cap_mb) {
        check(cap_mb > 0, "DistributedDataParallel: expected bucket_cap_mb > 0 (got {})", cap_mb);
        auto cap_bytes = static_cast<std::size_t>(cap_mb * 1024 * 1024);
        std::vector<std::size_t> open;  // index of the bucket being filled, per dtype
        slot.resize(params.size());
        // Reverse registration order: later layers' gradients are ready first.
        for (std::size_t i = params.size(); i-- > 0;) {
            Dtype dtype = params[i].dtype();
            std::size_t numel = params[i].numel(), size = dist::detail::element_size(dtype);
            check(numel <= static_cast<std::size_t>(INT_MAX),
                  "DistributedDataParallel: expected parameters of at most {} elements (got {} "
                  "in {})",
                  INT_MAX, numel, names[i]);
            auto d = static_cast<std::size_t>(dtype);
            if (open.size() <= d) open.resize(d + 1, SIZE_MAX);
            if (open[d] == SIZE_MAX ||
                (buckets[open[d]].numel > 0 &&
                 (buckets[open[d]].numel + numel) * size > cap_bytes) ||
                buckets[open[d]].numel + numel > static_cast<std::size_t>(INT_MAX)) {
                open[d] = buckets.size();
                buckets.push_back(Bucket{dtype, {}, {}, 0, {}, 0, MPI_REQUEST_NULL});
            }
            Bucket& b = buckets[open[d]];
            slot[i] = {open[d], b.members.size()};
            b.members.push_back(i);
            b.offsets.push_back(b.numel);
            b.numel += numel;
        }
        for (Bucket& b : buckets) b.buffer = zeros({b.numel}, b.dtype);
    }

    char* data_of(const Bucket& b, std::size_t member) {
        return static_cast<char*>(dist::detail::raw_data(b.buffer)) +
               b.offsets[member] * dist::detail::element_size(b.dtype);
    }

    void reset() {
        std::fill(ready.begin(), ready.end(), 0);
        used.assign(params.size(), 0);
        unreached_pending = false;
        ready_count = next_launch = 0;
        for (Bucket& b : buckets) b.pending = b.members.size();
    }

    // The forward just built a graph that the next backward will walk.
    void prepare(const Tensor& output) {
        if (armed && ready_count > 0) {
            std::string missing;
            for (std::size_t i = 0; i < params.size(); ++i)
                if (!ready[i]) missing += (missing.empty() ? "" : ", ") + names[i];
            throw Error(fmt::format(
                "DistributedDataParallel: expected the previous backward to produce a gradient "
                "for every parameter before the next forward (got none for {}); construct with "
                "DistributedDataParallelOptions().find_unused_parameters(true) if some are "
                "unused in forward",
                missing));
        }
        reset();
        armed = true;
        if (find_unused) find_unreached(output);
    }

    void find_unreached(const Tensor& output) {
        std::unordered_set<const TensorImpl*> reached{output.impl()};
        std::unordered_set<const autograd::Node*> seen;
        std::vector<autograd::Node*> stack;
        if (output.grad_fn()) stack.push_back(output.grad_fn().get());
        while (!stack.empty()) {
            autograd::Node* node = stack.back();
            stack.pop_back();
            if (!seen.insert(node).second) continue;
            if (auto leaf = node->output.lock(); leaf && node->is_accumulator)
                reached.insert(leaf.get());
            for (auto& child : node->next)
                if (child) stack.push_back(child.get());
        }
        unreached.clear();
        for (std::size_t i = 0; i < params.size(); ++i)
            if (!reached.count(params[i].impl())) unreached.push_back(i);
        unreached_pending = !unreached.empty();
    }

    // The hook of parameter i, inside backward; true when it finished the reduction.
    bool on_gradient(std::size_t i, const Tensor& grad) {
        if (unreached_pending) {
            unreached_pending = false;
            for (std::size_t j : unreached) mark_ready(j, nullptr);
        }
        used[i] = 1;
        mark_ready(i, &grad);
        return !armed;
    }

    // A parameter's gradient (or, when null, zeros) goes into its bucket.
    void mark_ready(std::size_t i, const Tensor* grad) {
        check(!ready[i],
              "DistributedDataParallel: expected one gradient per parameter per backward (got a "
              "second for {}); was it used outside the forward that find_unused_parameters "
              "inspected?",
              names[i]);
        auto [bi, member] = slot[i];
        Bucket& b = buckets[bi];
        std::size_t bytes = params[i].numel() * dist::detail::element_size(b.dtype);
        if (grad) {
            if (!(grad->dtype() == b.dtype && grad->numel() == params[i].numel())) {
                fail(
                    "DistributedDataParallel: expected a {} gradient of shape {} for {} (got {} of "
                    "shape {})",
                    dtype_name(b.dtype), shape_str(params[i].shape()), names[i],
                    dtype_name(grad->dtype()), shape_str(grad->shape()));
            }
            if (bytes) std::memcpy(data_of(b, member), dist::detail::raw_data(*grad), bytes);
            // Reduce the whole .grad, as PyTorch does: what no_sync() accumulated
            // locally gets averaged too, and an averaged .grad stays averaged.
            if (const Tensor& held = params[i].grad(); held.defined() && bytes) {
                if (b.dtype == kFloat32) {
                    add_into(data_of(b, member), held.data<float>().data(), params[i].numel());
                } else {
                    add_into(data_of(b, member), held.data<double>().data(), params[i].numel());
                }
            }
        } else if (bytes) {
            if (const Tensor& held = params[i].grad(); held.defined()) {
                std::memcpy(data_of(b, member), dist::detail::raw_data(held), bytes);
            } else {
                std::memset(data_of(b, member), 0, bytes);
            }
        }
        ready[i] = 1;
        ++ready_count;
        if (--b.pending == 0) launch_ready_buckets();
        progress();
        if (ready_count == params.size()) finish();
    }

    // Buckets start strictly in index order, so every rank issues the same sequence.
    void launch_ready_buckets() {
        while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
            Bucket& b = buckets[next_launch++];
            check_mpi(MPI_Iallreduce(MPI_IN_PLACE, dist::detail::raw_data(b.buffer),
                                     static_cast<int>(b.numel), dist::detail::mpi_type(b.dtype),
                                     MPI_SUM, comm, &b.request),
                      "MPI_Iallreduce");
        }
    }

    // MPI moves non-blocking collectives along only inside MPI calls: poke them.
    void progress() {
        for (std::size_t k = 0; k < next_launch; ++k) {
            if (buckets[k].request == MPI_REQUEST_NULL) continue;
            int done = 0;
            check_mpi(MPI_Test(&buckets[k].request, &done, MPI_STATUS_IGNORE), "MPI_Test");
            if (!done) break;
        }
    }

    // Every bucket is in flight: wait, then .grad = the average over the ranks.
    // A parameter no rank used and that had no .grad keeps none, as in PyTorch.
    void finish() {
        armed = false;
        if (find_unused) {
            check_mpi(MPI_Allreduce(MPI_IN_PLACE, used.data(), static_cast<int>(used.size()),
                                    MPI_INT, MPI_MAX, comm),
                      "MPI_Allreduce");
        }
        for (Bucket& b : buckets) {
            check_mpi(MPI_Wait(&b.request, MPI_STATUS_IGNORE), "MPI_Wait");
            for (std::size_t m = 0; m < b.members.size(); ++m) {
                Tensor& param = params[b.members[m]];
                Tensor& grad = param.mutable_grad();
                if (!grad.defined() && find_unused && !used[b.members[m]]) continue;
                if (!grad.defined()) grad = zeros(param.shape(), param.dtype());
                if (b.dtype == kFloat32) {
                    set_average(grad.data<float>().data(), data_of(b, m), param.numel());
                } else {
                    set_average(grad.data<double>().data(), data_of(b, m), param.numel());
                }
            }
        }
    }

    template <class T>
    void set_average(T* grad, const char* sum_bytes, std::size_t n) const {
        const T* sum = reinterpret_cast<const T*>(sum_bytes);
        const T w = static_cast<T>(world);
        for (std::size_t k = 0; k < n; ++k) grad[k] = sum[k] / w;
    }
    template <class T>
    static void add_into(char* bucket_bytes, const T* values, std::size_t n) {
        T* slot = reinterpret_cast<T*>(bucket_bytes);
        for (std::size_t k = 0; k < n; ++k) slot[k] += values[k];
    }
};

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<Module> module,
                                                 DistributedDataParallelOptions options)
    : module_(std::move(module)), options_(options), reducer_(std::make_shared<Reducer>()) {
    check(module_ != nullptr, "DistributedDataParallel: expected a module (got nullptr)");
    register_module("module", module_);
    Reducer& r = *reducer_;
    r.comm = dist::detail::communicator("DistributedDataParallel");
    r.world = dist::world_size();
    r.find_unused = options.find_unused_parameters();

    // Same model everywhere, then rank 0's values everywhere.
    std::vector<Tensor> state;
    for (auto& [name, p] : named_parameters()) state.push_back(p);
    for (auto& [name, b] : named_buffers()) state.push_back(b);
    check_same_model(state);
    for (Tensor& t : state) dist::broadcast(t, 0);

    for (auto& [name, p] : named_parameters()) {
        if (!p.requires_grad()) continue;
        if (!is_floating_point(p.dtype())) {
            fail("DistributedDataParallel: expected floating-point parameters (got {} for {})",
                 dtype_name(p.dtype()), name);
        }
        r.params.push_back(p);
        r.names.push_back(name);
    }
    r.ready.assign(r.params.size(), 0);
    r.assign_buckets(options.bucket_cap_mb());
    r.reset();
    for (std::size_t i = 0; i < r.params.size(); ++i) {
        r.hooks.push_back(r.params[i].register_hook([&r, i](const Tensor& grad) -> Tensor {
            if (!r.armed) return Tensor();  // no_sync or an unwrapped graph: stay local
            // finish() overwrites .grad with the average after the engine has added
            // `grad` to it, except for the parameter whose hook runs finish() itself.
            return r.on_gradient(i, grad) ? zeros_like(grad) : Tensor();
        }));
    }
}

DistributedDataParallel::~DistributedDataParallel() {
    for (RemovableHandle& h : reducer_->hooks) h.remove();
    // A reduction abandoned mid-flight (after an error) may still write into its
    // bucket; MPI forbids freeing the request, so keep the buffers alive.
    for (auto& b : reducer_->buckets) {
        if (b.request != MPI_REQUEST_NULL) {
            new std::shared_ptr<Reducer>(reducer_);  // deliberately leaked
            break;
        }
    }
}

Tensor DistributedDataParallel::forward(const Tensor& input) {
    Reducer& r = *reducer_;
    if (!r.sync && r.ready_count == 0) r.armed = false;  // this graph stays local
    if (options_.broadcast_buffers() && r.world > 1) {
        NoGradGuard no_grad;
        for (auto& [name, b] : named_buffers()) {
            Tensor t = b;
            dist::broadcast(t, 0);
        }
    }
    Tensor output = (*module_)(input);
    if (GradMode::is_enabled() && r.sync && output.defined() && output.requires_grad())
        r.prepare(output);
    return output;
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel& ddp)
    : ddp_(ddp), previous_(ddp.reducer_->sync) {
    ddp_.reducer_->sync = false;
}

DistributedDataParallel::NoSync::~NoSync() { ddp_.reducer_->sync = previous_; }

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_assignment() const {
    std::vector<std::vector<std::string>> out;
    for (const auto& b : reducer_->buckets) {
        out.emplace_back();
        for (std::size_t i : b.members) out.back().push_back(reducer_->names[i]);
    }
    return out;
}

}  // namespace xg::nn
