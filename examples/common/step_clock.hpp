// Times each training step for the examples' --bench-line, the way
// bench/torch_train_*.py time PyTorch's: from the forward to the end of the
// optimizer step, the batch already gathered. Always on (two clock reads a
// step), so the flag changes only what is printed.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace xg::examples {

struct StepClock {
    using clock = std::chrono::steady_clock;
    clock::time_point run_start = clock::now(), step_start;
    std::vector<double> step_ms;
    double train_s = 0;  // the whole epoch loop, validation included

    void start_step() { step_start = clock::now(); }
    void end_step() {
        step_ms.push_back(
            std::chrono::duration<double, std::milli>(clock::now() - step_start).count());
    }
    void end_run() { train_s = std::chrono::duration<double>(clock::now() - run_start).count(); }
    double median_ms() const {  // as Python's statistics.median: the middle two averaged
        if (step_ms.empty()) return 0;
        std::vector<double> v = step_ms;
        std::sort(v.begin(), v.end());
        std::size_t n = v.size();
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }
};

}  // namespace xg::examples
