// Printing tensors as torch's repr does (torch/_tensor_str.py with its default print options):
// one formatter per tensor chooses int mode ("2."), fixed ("2.0000") or scientific notation
// ("2.0000e+00") and a column width from the values shown; a tensor of more than kThreshold
// elements shows kEdgeItems items at each end of every longer dimension, with "..." between;
// rows wrap at kLineWidth; suffixes name an empty tensor's size, a non-default dtype and the
// autograd state, on a line of their own when they would pass the line width.
#include <cmath>
#include <limits>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "internal.hpp"

namespace xg {

namespace {

constexpr std::size_t kThreshold = 1000;
constexpr std::size_t kEdgeItems = 3;
constexpr std::size_t kLineWidth = 80;

// What one element is printed from: float32 values are formatted as the double they hold,
// as torch formats Python floats.
// bool elements print as True and False.
struct PrintedBool {
    PrintedBool(bool value) : value(value) {}  // NOLINT: the cast below
    bool value;
};
template <class T>
using Printed = std::conditional_t<std::is_same_v<T, bool>, PrintedBool,
                                   std::conditional_t<std::is_integral_v<T>, std::int64_t, double>>;

// A contiguous row-major tensor and whether it is summarised.
template <class T>
struct View {
    const T* data;
    Shape shape;
    std::vector<std::size_t> strides;
    bool summarize;
};

template <class T>
View<T> make_view(const xt::xarray<T>& a) {
    View<T> v{a.data(), detail::to_shape(a.shape()), {}, a.size() > kThreshold};
    v.strides.assign(v.shape.size(), 1);
    for (std::size_t d = v.shape.size(); d-- > 1;) v.strides[d - 1] = v.strides[d] * v.shape[d];
    return v;
}

// Calls shown(i) for every index printed along a dimension of size n, and gap() where
// "..." stands for the indices left out.
template <class F, class G>
void for_shown(std::size_t n, bool summarize, F&& shown, G&& gap) {
    if (!summarize || n <= 2 * kEdgeItems) {
        for (std::size_t i = 0; i < n; ++i) shown(i);
        return;
    }
    for (std::size_t i = 0; i < kEdgeItems; ++i) shown(i);
    gap();
    for (std::size_t i = n - kEdgeItems; i < n; ++i) shown(i);
}

// The printed elements in row-major order: only these decide the format, and a huge
// tensor is never walked in full.
template <class T>
void collect_shown(const View<T>& v, std::size_t dim, std::size_t offset,
                   std::vector<Printed<T>>& out) {
    if (dim == v.shape.size()) {
        out.push_back(static_cast<Printed<T>>(v.data[offset]));
        return;
    }
    for_shown(
        v.shape[dim], v.summarize,
        [&](std::size_t i) { collect_shown(v, dim + 1, offset + i * v.strides[dim], out); }, [] {});
}

// torch's _Formatter: the notation and the width shared by every element of one tensor.
class Formatter {
public:
    explicit Formatter(const std::vector<std::int64_t>& values) {
        for (auto v : values) width_ = std::max(width_, fmt::format("{}", v).size());
    }
    explicit Formatter(const std::vector<PrintedBool>& values) {
        for (auto v : values) width_ = std::max(width_, text(v).size());
    }

    // Int mode when every nonzero finite value is whole; scientific notation when those
    // values span more than 1000x, pass 1e8, or (not whole) fall under 1e-4.
    explicit Formatter(const std::vector<double>& values) {
        double lo = std::numeric_limits<double>::infinity(), hi = 0;
        std::vector<double> nonzero;
        for (double v : values) {
            if (!std::isfinite(v) || v == 0) continue;
            nonzero.push_back(v);
            lo = std::min(lo, std::fabs(v));
            hi = std::max(hi, std::fabs(v));
            int_mode_ = int_mode_ && v == std::ceil(v);
        }
        if (nonzero.empty()) return;
        sci_mode_ = hi / lo > 1000.0 || hi > 1.0e8 || (!int_mode_ && lo < 1.0e-4);
        for (double v : nonzero) width_ = std::max(width_, text(v).size());
    }

    std::size_t width() const { return width_; }

    std::string operator()(std::int64_t v) const { return pad(fmt::format("{}", v)); }
    std::string operator()(double v) const { return pad(text(v)); }
    std::string operator()(PrintedBool v) const { return pad(text(v)); }

private:
    static std::string text(PrintedBool v) { return v.value ? "True" : "False"; }
    std::string text(double v) const {
        if (std::isnan(v)) return "nan";  // fmt would keep the sign bit: "-nan"
        if (sci_mode_) return fmt::format("{:.4e}", v);
        if (!int_mode_) return fmt::format("{:.4f}", v);
        // A point marks a whole float as floating point; "inf" needs none.
        return fmt::format("{:.0f}", v) + (std::isinf(v) ? "" : ".");
    }

    std::string pad(std::string s) const {
        return std::string(width_ - std::min(width_, s.size()), ' ') + s;
    }

    bool int_mode_ = true;
    bool sci_mode_ = false;
    std::size_t width_ = 1;
};

// The last dimension: elements separated by ", ", as many to a line as fit in the line
// width after the indent (" ..." counts as one).
template <class T>
std::string vector_str(const View<T>& v, std::size_t offset, std::size_t indent,
                       const Formatter& format) {
    std::vector<std::string> items;
    std::size_t stride = v.strides.back();
    for_shown(
        v.shape.back(), v.summarize,
        [&](std::size_t i) { items.push_back(format(Printed<T>(v.data[offset + i * stride]))); },
        [&] { items.emplace_back(" ..."); });
    std::size_t room = indent < kLineWidth ? kLineWidth - indent : 0;
    std::size_t per_line = std::max<std::size_t>(1, room / (format.width() + 2));
    std::string out = "[";
    for (std::size_t k = 0; k < items.size(); ++k) {
        if (k > 0) out += k % per_line == 0 ? ",\n" + std::string(indent + 1, ' ') : ", ";
        out += items[k];
    }
    return out + "]";
}

// Nested brackets: slices of dimension `dim` separated by a comma, one newline per
// dimension below it, and the indent of the next bracket level.
template <class T>
std::string tensor_str(const View<T>& v, std::size_t dim, std::size_t offset, std::size_t indent,
                       const Formatter& format) {
    if (dim + 1 == v.shape.size()) return vector_str(v, offset, indent, format);
    std::string sep(",");
    sep.append(v.shape.size() - dim - 1, '\n').append(indent + 1, ' ');
    std::string out = "[";
    bool first = true;
    auto add = [&](const std::string& slice) {
        out += (first ? "" : sep) + slice;
        first = false;
    };
    for_shown(
        v.shape[dim], v.summarize,
        [&](std::size_t i) {
            add(tensor_str(v, dim + 1, offset + i * v.strides[dim], indent + 1, format));
        },
        [&] { add("..."); });
    return out + "]";
}

template <class T>
std::string values_str(const xt::xarray<T>& a, std::size_t indent) {
    if (a.size() == 0) return "[]";
    View<T> v = make_view(a);
    std::vector<Printed<T>> shown;
    collect_shown(v, 0, 0, shown);
    Formatter format(shown);
    return v.shape.empty() ? format(shown[0]) : tensor_str(v, 0, 0, indent, format);
}

// Python's tuple spelling: (2, 0), and (0,) for one element.
std::string size_tuple(const Shape& shape) {
    std::string out = "(";
    for (std::size_t d = 0; d < shape.size(); ++d)
        out += (d > 0 ? ", " : "") + std::to_string(shape[d]);
    return out + (shape.size() == 1 ? ",)" : ")");
}

// torch's suffix order. float32, int64 and bool go unnamed (their values tell them apart),
// except that an empty tensor has no values to tell an int64 or bool tensor by.
std::vector<std::string> suffixes(const Tensor& t) {
    std::vector<std::string> out;
    bool empty = t.numel() == 0;
    if (empty && t.dim() != 1) out.push_back("size=" + size_tuple(t.shape()));
    const bool named = t.dtype() != kFloat32 && t.dtype() != kInt64 && t.dtype() != kBool;
    if (named || (empty && t.dtype() != kFloat32))
        out.push_back("dtype=torch." + dtype_name(t.dtype()));
    if (t.grad_fn())
        out.push_back("grad_fn=<" + t.grad_fn_name() + ">");
    else if (t.requires_grad())
        out.push_back("requires_grad=True");
    return out;
}

// Appends ", suffix" while the last line stays within the line width, otherwise puts the
// suffix on a new line at the indent. The "+ 2" slack repeats torch's arithmetic.
std::string add_suffixes(std::string text, const std::vector<std::string>& suffixes,
                         std::size_t indent) {
    std::size_t newline = text.rfind('\n');
    std::size_t last_line =
        newline == std::string::npos ? text.size() + 2 : text.size() - newline + 1;
    for (const auto& s : suffixes) {
        if (last_line + s.size() + 2 > kLineWidth) {
            text += ",\n" + std::string(indent, ' ') + s;
            last_line = indent + s.size();
        } else {
            text += ", " + s;
            last_line += s.size() + 2;
        }
    }
    return text + ")";
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
    if (!t.defined()) return out << "tensor(undefined)";
    const std::string prefix = "tensor(";
    std::string text = std::visit(
        [&](const auto& a) { return prefix + values_str(a, prefix.size()); }, *t.impl()->storage);
    return out << add_suffixes(std::move(text), suffixes(t), prefix.size());
}

}  // namespace xg
