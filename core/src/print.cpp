// Printing tensors the way torch's repr does (nested brackets, aligned
// columns, 4 decimals for floats), with the autograd suffix.
#include <sstream>

#include "internal.hpp"

namespace xg {

namespace {

template <class T>
std::string format_value(T v) {
    if constexpr (std::is_integral_v<T>)
        return fmt::format("{}", v);
    else
        return fmt::format("{:.4f}", v);
}

template <class T>
void print_level(std::ostream& out, const T* data, const Shape& shape, std::size_t dim,
                 std::size_t width, std::size_t indent) {
    if (dim == shape.size()) {
        std::string text = format_value(*data);
        out << std::string(width - std::min(width, text.size()), ' ') << text;
        return;
    }
    std::size_t stride = 1;
    for (std::size_t d = dim + 1; d < shape.size(); ++d) stride *= shape[d];
    out << '[';
    for (std::size_t i = 0; i < shape[dim]; ++i) {
        if (i > 0) {
            out << ',';
            if (dim + 1 == shape.size())
                out << ' ';
            else
                out << std::string(shape.size() - dim - 1, '\n')
                    << std::string(indent + dim + 1, ' ');
        }
        print_level(out, data + i * stride, shape, dim + 1, width, indent);
    }
    out << ']';
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
    if (!t.defined()) return out << "tensor(undefined)";
    out << "tensor(";
    std::visit(
        [&](const auto& a) {
            std::size_t width = 0;
            for (auto v : a) width = std::max(width, format_value(v).size());
            Shape shape = detail::to_shape(a.shape());
            if (shape.empty())
                out << format_value(a());
            else
                print_level(out, a.data(), shape, 0, width, 7);
        },
        *t.impl()->storage);
    if (t.dtype() == kFloat64) out << ", dtype=float64";
    if (t.grad_fn())
        out << ", grad_fn=<" << t.grad_fn_name() << ">";
    else if (t.requires_grad())
        out << ", requires_grad=True";
    return out << ')';
}

}  // namespace xg
