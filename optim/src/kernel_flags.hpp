// Turns a runtime flag into a compile-time one, so each optimizer's update
// loop is instantiated without branches in its body and vectorises.
#pragma once

#include <type_traits>

namespace xg::optim::detail {

template <class F>
void with_flag(bool flag, F&& f) {
    if (flag)
        f(std::true_type{});
    else
        f(std::false_type{});
}

}  // namespace xg::optim::detail
