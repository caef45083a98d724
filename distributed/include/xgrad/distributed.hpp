// xg::distributed: processes, ranks and collectives over MPI, as torch.distributed.
//
// One process per rank, started by `mpirun -np N prog`. Call init() (or hold an
// Environment) before anything else here; every collective must be called by
// every rank, in the same order, with tensors of the same dtype and numel.
// Collectives work on a tensor's values in place and are not recorded by
// autograd. MPI errors come back as xg::Error carrying MPI's own message.
//
// While MPI is initialised, an exception that escapes main on any rank (or an
// Environment destroyed by one) aborts the whole job with the message, so a
// failing rank never leaves the others waiting in a collective forever.
#pragma once

#include <string>

#include "xgrad/distributed/sampler.hpp"
#include "xgrad/nn/distributed_data_parallel.hpp"
#include "xgrad/tensor.hpp"

namespace xg::distributed {

// MPI_Init unless MPI is already initialised (then only xgrad's communicator
// is set up); idempotent. argc/argv may be null.
void init(int* argc = nullptr, char*** argv = nullptr);
// MPI_Finalize if init() initialised MPI; idempotent.
void finalize();
bool is_initialized();

// RAII init()/finalize(). Destroyed while an exception propagates, it aborts
// the job instead: finalising one rank while others wait would hang them.
class Environment {
public:
    Environment(int* argc = nullptr, char*** argv = nullptr) { init(argc, argv); }
    Environment(int& argc, char**& argv) { init(&argc, &argv); }
    ~Environment();
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;
};

int rank();
int world_size();

enum class ReduceOp { Sum, Avg, Max, Min };

// Reduces `tensor` across ranks and leaves the result on every rank.
// Avg needs a floating-point tensor. Returns `tensor`.
Tensor& all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum);
// Copies root's values into `tensor` on every rank; shapes may differ but the
// dtype and numel must match root's (checked). Returns `tensor`.
Tensor& broadcast(Tensor& tensor, int root = 0);
void barrier();

// Prints "xgrad.distributed: rank R: <message>" to stderr and ends every rank
// of the job with `code` (MPI_Abort). Never returns.
[[noreturn]] void abort(const std::string& message, int code = 1);

}  // namespace xg::distributed
