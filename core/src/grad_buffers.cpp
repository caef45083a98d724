// Taking over the buffers the aliasing rule allows (grad_buffers.hpp).
#include "grad_buffers.hpp"

namespace xg::autograd {

namespace {
// values' buffer, leaving values a consistent, empty husk.
template <class T>
xt::xarray<T> move_out(xt::xarray<T>& values) {
    xt::xarray<T> taken = std::move(values);
    values.resize(std::array<std::size_t, 1>{0});
    return taken;
}
}  // namespace

namespace detail_grad {

template <class T>
Tensor take_grad_output(const Tensor& g) {
    return detail::sole_owner(g) ? pass_on(g) : detail::empty_tensor<T>(g.data<T>().shape());
}

template <class T>
Tensor take_saved(const std::shared_ptr<Storage>& saved) {
    auto& values = std::get<xt::xarray<T>>(*saved);
    if (!backward_frees_saved_values() || saved.use_count() != 1)
        return detail::empty_tensor<T>(values.shape());
    return detail::wrap(move_out(values));
}

template Tensor take_grad_output<float>(const Tensor&);
template Tensor take_grad_output<double>(const Tensor&);
template Tensor take_saved<float>(const std::shared_ptr<Storage>&);
template Tensor take_saved<double>(const std::shared_ptr<Storage>&);

}  // namespace detail_grad

Tensor pass_on(const Tensor& g) {
    return detail::sole_owner(g) ? detail::tensor_of(g.impl()->storage) : g;
}

}  // namespace xg::autograd
