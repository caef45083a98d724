// The doctest main for the MPI tests: every rank runs every test case, so each
// collective inside a test is matched across ranks. Run under mpirun.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <xgrad/distributed.hpp>

int main(int argc, char** argv) {
    xg::distributed::Environment environment(argc, argv);
    doctest::Context context(argc, argv);
    if (xg::distributed::rank() != 0) {
        context.setOption("no-intro", true);
        context.setOption("no-version", true);
    }
    int failed = context.run();
    // Every rank exits with the same status, whichever rank saw the failure.
    xg::Tensor status = xg::full({1}, failed, xg::kInt64);
    xg::distributed::all_reduce(status, xg::distributed::ReduceOp::Max);
    return status.item<int>() != 0 ? 1 : 0;
}
