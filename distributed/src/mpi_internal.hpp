// Private helpers shared by the collectives and DistributedDataParallel.
#pragma once

#include <mpi.h>

#include "xgrad/tensor.hpp"

namespace xg::distributed::detail {

// Throws xg::Error "distributed: <what> failed: <MPI's error string>" unless code is MPI_SUCCESS.
void check_mpi(int code, const char* what);
// xgrad's own duplicate of MPI_COMM_WORLD (errors return instead of aborting);
// throws when init() has not run.
MPI_Comm communicator(const char* op);
MPI_Datatype mpi_type(Dtype dtype);
std::size_t element_size(Dtype dtype);
// The first byte of a tensor's contiguous values.
void* raw_data(const Tensor& tensor);

}  // namespace xg::distributed::detail
