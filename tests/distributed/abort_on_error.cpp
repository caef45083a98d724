// One rank throws while the others wait in a collective: the job must end with
// the error message rather than hang. Driven by run_abort.cmake with a timeout.
//
//   abort_on_error uncaught   the exception escapes main
//   abort_on_error unwind     it propagates through an Environment and is caught later
//   abort_on_error backward   it is thrown by a tensor hook in the middle of a DDP backward
#include <iostream>
#include <string>

#include <xgrad/distributed.hpp>
#include <xgrad/xgrad.hpp>

namespace dist = xg::distributed;

void fail_on_rank_1(const std::string& mode) {
    xg::Tensor t = xg::ones({4});
    dist::barrier();
    if (mode == "backward") {
        auto model = std::make_shared<xg::nn::Linear>(3, 2);
        xg::nn::DistributedDataParallel ddp(model);
        if (dist::rank() == 1)
            model->bias.register_hook(
                [](const xg::Tensor&) { throw xg::Error("rank 1 fails on purpose in backward"); });
        for (int step = 0; step < 3; ++step) xg::sum(ddp(xg::ones({5, 3}))).backward();
    }
    if (dist::rank() == 1) throw xg::Error("rank 1 fails on purpose");
    dist::all_reduce(t);  // rank 0 waits here for ever unless the job is aborted
}

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "uncaught";
    if (mode == "unwind") {
        try {
            dist::Environment environment(argc, argv);
            fail_on_rank_1(mode);
        } catch (const std::exception& e) {
            std::cerr << "caught too late: " << e.what() << "\n";
        }
        return 0;
    }
    dist::Environment environment(argc, argv);
    fail_on_rank_1(mode);
    return 0;
}
