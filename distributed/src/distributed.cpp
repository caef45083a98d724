// xg::distributed: the MPI environment, xgrad's communicator, and the blocking
// collectives. Everything MPI returns goes through check_mpi.
#include "xgrad/distributed.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "mpi_internal.hpp"

namespace xg::distributed {

namespace detail {

namespace {
MPI_Comm world = MPI_COMM_NULL;  // our duplicate of MPI_COMM_WORLD
bool we_initialized_mpi = false;
std::terminate_handler previous_terminate = nullptr;

// An exception nobody caught on this rank: report it and take the job down,
// since the other ranks may be blocked in a collective waiting for this one.
[[noreturn]] void abort_on_terminate() {
    std::string message = "terminate called without an active exception";
    if (auto error = std::current_exception()) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            message = std::string("uncaught exception: ") + e.what();
        } catch (...) {
            message = "uncaught exception of unknown type";
        }
    }
    distributed::abort(message, 1);
}
}  // namespace

void check_mpi(int code, const char* what) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    throw Error(fmt::format("distributed: {} failed: {}", what,
                            length > 0 ? std::string(text, static_cast<std::size_t>(length))
                                       : fmt::format("MPI error code {}", code)));
}

MPI_Comm communicator(const char* op) {
    check(world != MPI_COMM_NULL,
          "{}: expected xg::distributed::init() to have been called (got no MPI environment)", op);
    return world;
}

MPI_Datatype mpi_type(Dtype dtype) {
    switch (dtype) {
        case Dtype::Float32: return MPI_FLOAT;
        case Dtype::Float64: return MPI_DOUBLE;
        case Dtype::Int64: return MPI_INT64_T;
        case Dtype::Bool: return MPI_C_BOOL;
        case Dtype::Int32: return MPI_INT32_T;
        case Dtype::Int16: return MPI_INT16_T;
        case Dtype::Int8: return MPI_INT8_T;
        case Dtype::UInt8: return MPI_UINT8_T;
        // MPI has no 16-bit floats: their bits travel as integers, which a
        // broadcast copies exactly; all_reduce refuses them.
        case Dtype::Float16:
        case Dtype::BFloat16: return MPI_UINT16_T;
    }
    throw Error("distributed: unknown dtype");
}

std::size_t element_size(Dtype dtype) { return xg::element_size(dtype); }

void* raw_data(const Tensor& tensor) { return tensor.data_ptr(); }

}  // namespace detail

using detail::check_mpi;
using detail::communicator;

void init(int* argc, char*** argv) {
    if (detail::world != MPI_COMM_NULL) return;
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    check(!finalized, "distributed::init: expected MPI not yet finalized (got finalized)");
    if (!initialized) {
        // MPI_THREAD_FUNNELED: only the main thread calls MPI; BLAS threads never do.
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            throw Error("distributed::init: MPI_Init_thread failed");
        detail::we_initialized_mpi = true;
    }
    check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
              "MPI_Comm_set_errhandler");
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &detail::world), "MPI_Comm_dup");
    check_mpi(MPI_Comm_set_errhandler(detail::world, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    detail::previous_terminate = std::set_terminate(detail::abort_on_terminate);
}

void finalize() {
    if (detail::world == MPI_COMM_NULL) return;
    std::set_terminate(detail::previous_terminate);
    MPI_Comm_free(&detail::world);
    detail::world = MPI_COMM_NULL;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (detail::we_initialized_mpi && !finalized) MPI_Finalize();
    detail::we_initialized_mpi = false;
}

bool is_initialized() { return detail::world != MPI_COMM_NULL; }

Environment::~Environment() {
    if (std::uncaught_exceptions() > 0 && is_initialized())
        abort("an exception is propagating past xg::distributed::Environment", 1);
    finalize();
}

int rank() {
    int r = 0;
    check_mpi(MPI_Comm_rank(communicator("distributed::rank"), &r), "MPI_Comm_rank");
    return r;
}

int world_size() {
    int n = 0;
    check_mpi(MPI_Comm_size(communicator("distributed::world_size"), &n), "MPI_Comm_size");
    return n;
}

namespace {
// Runs a count-taking MPI call over `numel` elements in chunks MPI's int can count.
template <class F>
void in_chunks(const Tensor& tensor, F&& f) {
    auto* bytes = static_cast<char*>(detail::raw_data(tensor));
    std::size_t size = detail::element_size(tensor.dtype());
    std::size_t numel = tensor.numel(), done = 0;
    do {
        std::size_t count = std::min<std::size_t>(numel - done, INT_MAX);
        f(bytes + done * size, static_cast<int>(count));
        done += count;
    } while (done < numel);
}
}  // namespace

Tensor& all_reduce(Tensor& tensor, ReduceOp op) {
    MPI_Comm comm = communicator("all_reduce");
    check(tensor.defined(), "all_reduce: expected a defined tensor (got an undefined one)");
    if (compute_dtype(tensor.dtype()) != tensor.dtype() && is_floating_point(tensor.dtype())) {
        fail(
            "all_reduce: expected a float32 or float64 tensor, which MPI can add (got {}; reduce "
            "it in float32 with .to(xg::kFloat32))",
            dtype_name(tensor.dtype()));
    }
    if (op == ReduceOp::Avg && !is_floating_point(tensor.dtype())) {
        fail("all_reduce: expected a floating-point tensor for ReduceOp::Avg (got {})",
             dtype_name(tensor.dtype()));
    }
    MPI_Op mpi_op = op == ReduceOp::Max ? MPI_MAX : op == ReduceOp::Min ? MPI_MIN : MPI_SUM;
    in_chunks(tensor, [&](void* data, int count) {
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, count, detail::mpi_type(tensor.dtype()), mpi_op,
                                comm),
                  "MPI_Allreduce");
    });
    if (op == ReduceOp::Avg) {
        double n = world_size();
        if (tensor.dtype() == kFloat32) {
            for (float& v : tensor.data<float>()) v = static_cast<float>(v / n);
        } else {
            for (double& v : tensor.data<double>()) v /= n;
        }
    }
    return tensor;
}

Tensor& broadcast(Tensor& tensor, int root) {
    MPI_Comm comm = communicator("broadcast");
    check(tensor.defined(), "broadcast: expected a defined tensor (got an undefined one)");
    int n = world_size();
    check(root >= 0 && root < n, "broadcast: expected root in [0, {}) (got {})", n, root);
    // Root's dtype and numel first: a mismatch would otherwise corrupt memory or hang.
    std::int64_t header[2] = {static_cast<std::int64_t>(tensor.dtype()),
                              static_cast<std::int64_t>(tensor.numel())};
    check_mpi(MPI_Bcast(header, 2, MPI_INT64_T, root, comm), "MPI_Bcast");
    // Every rank learns whether any rank mismatched, so all of them throw together.
    int matches = header[0] == static_cast<std::int64_t>(tensor.dtype()) &&
                  header[1] == static_cast<std::int64_t>(tensor.numel()),
        all_match = 0;
    check_mpi(MPI_Allreduce(&matches, &all_match, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
    if (!all_match) {
        fail(
            "broadcast: expected a {} tensor of {} elements on every rank, as on root {} (got {} "
            "of {} on rank {}{})",
            dtype_name(static_cast<Dtype>(header[0])), header[1], root, dtype_name(tensor.dtype()),
            tensor.numel(), rank(), matches ? ", and a mismatch on another rank" : "");
    }
    in_chunks(tensor, [&](void* data, int count) {
        check_mpi(MPI_Bcast(data, count, detail::mpi_type(tensor.dtype()), root, comm),
                  "MPI_Bcast");
    });
    return tensor;
}

void barrier() { check_mpi(MPI_Barrier(communicator("barrier")), "MPI_Barrier"); }

void abort(const std::string& message, int code) {
    int r = -1, initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    bool live = initialized && !finalized;
    if (live) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    std::fprintf(stderr, "xgrad.distributed: rank %d: %s\n", r, message.c_str());
    std::fflush(stderr);
    if (live) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}

}  // namespace xg::distributed
