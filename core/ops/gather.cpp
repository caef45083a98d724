// Gathering and scattering along one dim by int64 indices: index_select,
// gather, scatter_add, index_add (the last two out of place), and one_hot.
//
// Each gradient is the matching op run the other way: index_select's is an
// index_add of g into zeros, gather's a scatter_add of g into zeros, and the
// two adds pass g to x and gather (or index_select) it for the values added.
// So under create_graph each backward calls its adjoint op, which records, and
// second derivatives come out of the four ops' own gradients.
//
// Indices follow PyTorch 1.13 on the CPU: int64 only, each in [0, size) of its
// dim. A negative index is an error there, not counted from the end, and so it
// is here. As in PyTorch, a 0-d tensor counts as a 1-d tensor of one entry
// (its "nonempty" shape) when shapes are compared and walked.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "shape_product.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// t's shape, with a 0-d tensor as [1]: how PyTorch's index kernels see it.
Shape walk_shape(const Tensor& t) {
    Shape shape = t.shape();
    if (shape.empty()) shape.push_back(1);
    return shape;
}

std::vector<std::size_t> strides_of(const Shape& shape) {
    std::vector<std::size_t> stride(shape.size());
    for (std::size_t d = shape.size(), step = 1; d-- > 0; step *= shape[d]) stride[d] = step;
    return stride;
}

void check_index(const Tensor& index, const char* op) {
    check(index.defined(), "{}: expected a defined index (got an undefined one)", op);
    if (index.dtype() != kInt64) {
        fail("{}: expected an int64 index (got {})", op, dtype_name(index.dtype()));
    }
}

// k as an entry of a dim of `size` entries; PyTorch's CPU kernels take no
// negative indices here, so neither do these.
std::size_t checked_entry(std::int64_t k, std::size_t size, std::size_t dim, const char* op) {
    check(k >= 0 && static_cast<std::size_t>(k) < size,
          "{}: expected an index in [0, {}) for dim {} of size {} (got {})", op, size, dim, size,
          k);
    return static_cast<std::size_t>(k);
}

// index.dim() == other.dim() and index.size(i) <= other.size(i) for every dim
// i but `skip` (none when skip is the rank), as torch.gather and
// torch.scatter_add require, so each walk stays inside both tensors.
void check_fits(const Shape& index, const Shape& other, std::size_t skip, const char* op,
                const char* name) {
    if (index.size() != other.size()) {
        fail("{}: expected an index with as many dims as {} {} (got {})", op, name,
             shape_str(other), shape_str(index));
    }
    bool fits = true;
    for (std::size_t i = 0; i < index.size(); ++i)
        fits = fits && (i == skip || index[i] <= other[i]);
    if (!fits) {
        fail("{}: expected an index no larger than {} {}{} (got {})", op, name, shape_str(other),
             skip < index.size() ? fmt::format(" outside dim {}", skip) : "", shape_str(index));
    }
}

// Rows [first, end) of a walk (see walk): f on each of their positions, in
// order. A row holding an index outside [0, size of dim) is skipped whole;
// the return value says whether there was one.
template <class F>
bool walk_rows(const Shape& index_shape, const std::vector<std::size_t>& xs,
               const std::vector<std::size_t>& ss, std::size_t dim, std::size_t size,
               const std::int64_t* index, std::size_t first, std::size_t end, const F& f) {
    const std::size_t rank = index_shape.size(), last = index_shape[rank - 1];
    const std::size_t dim_stride = xs[dim];
    const std::size_t x_step = dim == rank - 1 ? 0 : xs[rank - 1];  // along a row
    // An odometer over the leading dims, set to row `first`. x_base leaves dim
    // out: the index supplies it.
    detail::ArrayShape pos(rank, 0);
    std::size_t x_base = 0, s_base = 0;
    for (std::size_t d = rank - 1, r = first; d-- > 0; r /= index_shape[d]) {
        pos[d] = r % index_shape[d];
        x_base += d == dim ? 0 : pos[d] * xs[d];
        s_base += pos[d] * ss[d];
    }
    bool all_in_range = true;
    for (std::size_t r = first; r < end; ++r) {
        // The row's indices are checked first, so that the loop doing the work
        // has no call in it: with one, GCC kept j in memory (3x slower).
        const std::int64_t* row = index + r * last;
        bool bad = false;
        for (std::size_t j = 0; j < last; ++j) bad |= static_cast<std::uint64_t>(row[j]) >= size;
        if (bad) {
            all_in_range = false;
        } else {
            for (std::size_t j = 0; j < last; ++j)
                f(x_base + j * x_step + static_cast<std::size_t>(row[j]) * dim_stride, s_base + j);
        }
        for (std::size_t d = rank - 1; d-- > 0;) {
            const std::size_t step = d == dim ? 0 : xs[d];
            x_base += step;
            s_base += ss[d];
            if (++pos[d] < index_shape[d]) break;
            x_base -= step * pos[d];
            s_base -= ss[d] * pos[d];
            pos[d] = 0;
        }
    }
    return all_in_range;
}

// Which of its two offsets a walk's f writes at (see walk).
enum class Writes { AtIndex, AtPosition };

// f(x_offset, s_offset) for each position p of the index (walk shape
// `index_shape`): x_offset is p with p[dim] replaced by index[p] in an array of
// `x_shape`, s_offset is p itself in an array of `s_shape` (src, or an output).
// Shapes are checked by the caller, index values here. The index's rows (its
// last dim) split across threads when no two rows write at one place: always
// when f writes at s_offset, and when dim is the last when it writes at
// x_offset (two rows that differ only in dim would add into one row of x).
// Each row runs in order as on one thread, so sums are the same bits.
template <class F>
void walk(const Shape& index_shape, const Shape& x_shape, const Shape& s_shape, std::size_t dim,
          const std::int64_t* index, const char* op, Writes writes, const F& f) {
    const std::size_t n = detail::product(index_shape);
    if (n == 0) return;
    const std::size_t rank = index_shape.size(), last = index_shape[rank - 1];
    const auto xs = strides_of(x_shape), ss = strides_of(s_shape);
    const std::size_t size = x_shape[dim];
    std::atomic<bool> all_in_range{true};
    auto run = [&](std::size_t first, std::size_t count) {
        if (!walk_rows(index_shape, xs, ss, dim, size, index, first / last, (first + count) / last,
                       f))
            all_in_range.store(false, std::memory_order_relaxed);
    };
    if (writes == Writes::AtPosition || dim == rank - 1)
        detail::for_rows(n, last, run);
    else
        run(0, n);
    if (all_in_range.load()) return;
    for (std::size_t i = 0; i < n; ++i) checked_entry(index[i], size, dim, op);  // throws
}

// to += alpha * value; bools add as a logical or, as in PyTorch.
template <class T>
void add_scaled(T& to, T value, T alpha) {
    if constexpr (std::is_same_v<T, bool>)
        to = to || (value && alpha);
    else
        to += alpha * value;
}

// The index as a backward keeps it: its storage shared (detach), as every
// saved input in xgrad and as PyTorch saves it. Editing the index in place
// before backward changes the gradient (PyTorch's version counter would
// refuse; xgrad has none), where a copy would cost as much as the index.
Tensor saved(const Tensor& index) { return index.detach(); }

// Entries of `from` (walk shape from_walk) added at the index's positions along
// dim into zeros of x_shape: gather's gradient, with no copy of the zeros.
template <class T>
xt::xarray<T> scattered(const T* from, const Shape& from_walk, std::size_t dim, const Tensor& index,
                        const Shape& x_shape, const char* op) {
    auto out = detail::zeros_array<T>(x_shape);
    Shape x_walk = x_shape;
    if (x_walk.empty()) x_walk.push_back(1);
    T* o = out.data();
    walk(walk_shape(index), x_walk, from_walk, dim, index.data<std::int64_t>().data(), op,
         Writes::AtIndex,
         [o, from](std::size_t x_offset, std::size_t s_offset) { o[x_offset] += from[s_offset]; });
    return out;
}

// from (walk shape from_walk) gathered along dim into an array of out_shape;
// entries of out_shape that no index position reaches are 0 (scatter_add's
// src may be larger than its index).
template <class T>
xt::xarray<T> gathered(const T* from, const Shape& from_walk, std::size_t dim, const Tensor& index,
                       const Shape& out_shape, const char* op) {
    const Shape index_walk = walk_shape(index);
    Shape out_walk = out_shape;
    if (out_walk.empty()) out_walk.push_back(1);
    xt::xarray<T> out = out_walk == index_walk ? detail::empty_array<T>(out_shape)
                                               : detail::zeros_array<T>(out_shape);
    T* o = out.data();
    walk(index_walk, from_walk, out_walk, dim, index.data<std::int64_t>().data(), op,
         Writes::AtPosition,
         [o, from](std::size_t x_offset, std::size_t s_offset) { o[s_offset] = from[x_offset]; });
    return out;
}

std::vector<std::int64_t> sizes_of(const Shape& shape) {
    return std::vector<std::int64_t>(shape.begin(), shape.end());
}

// scatter_add's src gradient with ops, for double backward: g gathered at the
// index, padded with zeros to src's shape where src has entries no index
// position reaches (an empty index reaches none).
Tensor src_grad_op(const Tensor& g, std::size_t dim, const Tensor& index, const Shape& src_shape) {
    if (index.numel() == 0) return zeros(src_shape, g.dtype());
    Shape current = walk_shape(index), src_walk = src_shape;
    if (src_walk.empty()) src_walk.push_back(1);
    Tensor gs = reshape(gather(g, static_cast<int>(dim), index), sizes_of(current));
    for (std::size_t k = 0; k < current.size(); ++k) {
        if (current[k] == src_walk[k]) continue;
        Shape pad = current;
        pad[k] = src_walk[k] - current[k];
        gs = cat({gs, zeros(pad, g.dtype())}, static_cast<int>(k));
        current[k] = src_walk[k];
    }
    return reshape(gs, sizes_of(src_shape));
}

}  // namespace

Tensor index_select(const Tensor& x, int dim, const Tensor& index) {
    check(x.defined(), "index_select: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(index_select(detail::computable(x), dim, index), *to);
    check_index(index, "index_select");
    if (index.dim() > 1) {
        fail("index_select: expected a 1-d or 0-d index (got {})", shape_str(index.shape()));
    }
    const std::size_t d = detail::normalize_dim(dim, x.dim(), "index_select");
    const std::size_t n = index.numel();
    Shape out_shape = x.shape();
    if (out_shape.empty())  // PyTorch reads garbage for no index and fails backward for several
        check(n == 1, "index_select: expected one index for a 0-d tensor (got {})", n);
    else
        out_shape[d] = n;
    const auto split = detail::split_at(walk_shape(x), d);
    const std::int64_t* idx = index.data<std::int64_t>().data();
    Tensor out = detail::visit_any(x, "index_select", [&]<class T>(xt::xarray<T>& a) {
        auto result = detail::empty_array<T>(out_shape);
        for (std::size_t j = 0; j < n; ++j) {
            const std::size_t k = checked_entry(idx[j], split.size, d, "index_select");
            for (std::size_t o = 0; o < split.outer; ++o) {
                std::copy_n(a.data() + (o * split.size + k) * split.inner, split.inner,
                            result.data() + (o * n + j) * split.inner);
            }
        }
        return wrap(std::move(result));
    });
    // The backward is an op (index_add), so under create_graph it records as it is.
    return make_result(
        out, "IndexSelectBackward", {x},
        [index = saved(index), dim = static_cast<int>(d), shape = x.shape()](const Tensor& g) {
            return autograd::Gradients{index_add(zeros(shape, g.dtype()), dim, index, g)};
        },
        autograd::DoubleBackward::Supported);
}

Tensor gather(const Tensor& x, int dim, const Tensor& index) {
    check(x.defined(), "gather: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(gather(detail::computable(x), dim, index), *to);
    check_index(index, "gather");
    const std::size_t d = detail::normalize_dim(dim, x.dim(), "gather");
    const Shape x_walk = walk_shape(x);
    // PyTorch checks nothing more for an empty index: the result is empty too.
    if (index.numel() > 0) check_fits(walk_shape(index), x_walk, d, "gather", "the input");
    Tensor out = detail::visit_any(x, "gather", [&]<class T>(xt::xarray<T>& a) {
        return wrap(gathered(a.data(), x_walk, d, index, index.shape(), "gather"));
    });
    return make_result(
        out, "GatherBackward", {x},
        [index = saved(index), dim = static_cast<int>(d), shape = x.shape()](const Tensor& g) {
            if (autograd::creating_graph())  // the same sums, recorded by scatter_add's node
                return autograd::Gradients{scatter_add(zeros(shape, g.dtype()), dim, index, g)};
            return autograd::Gradients{
                detail::visit_floating(g, "gather", [&]<class T>(xt::xarray<T>& gv) {
                    return wrap(scattered(gv.data(), walk_shape(g), static_cast<std::size_t>(dim),
                                          index, shape, "gather"));
                })};
        },
        autograd::DoubleBackward::Supported);
}

Tensor scatter_add(const Tensor& x, int dim, const Tensor& index, const Tensor& src) {
    check(x.defined() && src.defined(),
          "scatter_add: expected a defined x and src (got an undefined tensor)");
    check_index(index, "scatter_add");
    detail::check_same_dtype(x, src, "scatter_add");
    if (auto to = detail::storage_dtype(x, src)) {
        return detail::rounded(
            scatter_add(detail::computable(x), dim, index, detail::computable(src)), *to);
    }
    const std::size_t d = detail::normalize_dim(dim, x.dim(), "scatter_add");
    const Shape x_walk = walk_shape(x), index_walk = walk_shape(index), src_walk = walk_shape(src);
    // As PyTorch: an empty index adds nothing, whatever its shape.
    if (index.numel() > 0) {
        check_fits(index_walk, x_walk, d, "scatter_add", "x");
        check_fits(index_walk, src_walk, index_walk.size(), "scatter_add", "src");
    }
    const std::int64_t* idx = index.data<std::int64_t>().data();
    Tensor out = detail::visit_any(x, "scatter_add", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> result = a;
        T* o = result.data();
        const T* s = src.data<T>().data();
        walk(index_walk, x_walk, src_walk, d, idx, "scatter_add", Writes::AtIndex,
             [&](std::size_t x_offset, std::size_t s_offset) {
                 add_scaled(o[x_offset], s[s_offset], T(1));
             });
        return wrap(std::move(result));
    });
    // src's gradient is gather(g, dim, index), with zeros where src has entries
    // no index position reaches (PyTorch 1.13 raises there instead).
    return make_result(
        out, "ScatterAddBackward", {x, src},
        [index = saved(index), d, x_walk, src_shape = src.shape()](const Tensor& g) {
            if (autograd::creating_graph())
                return autograd::Gradients{g, src_grad_op(g, d, index, src_shape)};
            Tensor gs = detail::visit_floating(g, "scatter_add", [&]<class T>(xt::xarray<T>& gv) {
                return wrap(gathered(gv.data(), x_walk, d, index, src_shape, "scatter_add"));
            });
            return autograd::Gradients{g, gs};
        },
        autograd::DoubleBackward::Supported);
}

Tensor index_add(const Tensor& x, int dim, const Tensor& index, const Tensor& source,
                 double alpha) {
    check(x.defined() && source.defined(),
          "index_add: expected a defined x and source (got an undefined tensor)");
    check_index(index, "index_add");
    if (index.dim() > 1) {
        fail("index_add: expected a 1-d or 0-d index (got {})", shape_str(index.shape()));
    }
    detail::check_same_dtype(x, source, "index_add");
    if (auto to = detail::storage_dtype(x, source)) {
        return detail::rounded(
            index_add(detail::computable(x), dim, index, detail::computable(source), alpha), *to);
    }
    const std::size_t d = detail::normalize_dim(dim, x.dim(), "index_add");
    const std::size_t n = index.numel();
    // source is x with index.numel() entries in dim (0-d tensors as [1]); PyTorch
    // also broadcasts some other shapes, which this does not.
    const Shape x_walk = walk_shape(x);
    Shape expected = x_walk;
    expected[d] = n;
    if (walk_shape(source) != expected) {
        fail("index_add: expected a source of shape {} (got {})", shape_str(expected),
             shape_str(source.shape()));
    }
    const auto split = detail::split_at(x_walk, d);
    const std::int64_t* idx = index.data<std::int64_t>().data();
    Tensor out = detail::visit_any(x, "index_add", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> result = a;
        const T* s = source.data<T>().data();
        const auto scale = static_cast<T>(alpha);  // PyTorch casts alpha to x's dtype too
        for (std::size_t j = 0; j < n; ++j) {
            const std::size_t k = checked_entry(idx[j], split.size, d, "index_add");
            for (std::size_t o = 0; o < split.outer; ++o) {
                T* to = result.data() + (o * split.size + k) * split.inner;
                const T* from = s + (o * n + j) * split.inner;
                for (std::size_t c = 0; c < split.inner; ++c) add_scaled(to[c], from[c], scale);
            }
        }
        return wrap(std::move(result));
    });
    // Ops only (index_select, mul, reshape): under create_graph it records as it is.
    return make_result(
        out, "IndexAddBackward", {x, source},
        [index = saved(index), dim = static_cast<int>(d), alpha,
         shape = source.shape()](const Tensor& g) {
            // A 0-d x's g as [1], so that several indices may pick it.
            Tensor gs = index_select(g.dim() == 0 ? reshape(g, {1}) : g, dim, index);
            if (alpha != 1.0) gs = gs * alpha;
            if (gs.shape() != shape)  // a 0-d source, or a 0-d x
                gs = reshape(gs, std::vector<std::int64_t>(shape.begin(), shape.end()));
            return autograd::Gradients{g, gs};
        },
        autograd::DoubleBackward::Supported);
}

Tensor one_hot(const Tensor& x, std::int64_t num_classes) {
    check(x.defined(), "one_hot: expected a defined tensor (got an undefined one)");
    if (x.dtype() != kInt64) {
        fail("one_hot: expected an int64 tensor of class indices (got {})", dtype_name(x.dtype()));
    }
    const auto& v = x.data<std::int64_t>();
    if (v.size() == 0) {
        check(num_classes > 0,
              "one_hot: expected num_classes > 0 for an empty tensor, which has no classes to "
              "count (got {})",
              num_classes);
    } else {
        const auto [low, high] = std::minmax_element(v.data(), v.data() + v.size());
        check(*low >= 0, "one_hot: expected class values >= 0 (got {})", *low);
        if (num_classes == -1) num_classes = *high + 1;
        check(*high < num_classes,
              "one_hot: expected class values smaller than num_classes {} (got {})", num_classes,
              *high);
    }
    const auto classes = static_cast<std::size_t>(num_classes);
    Shape shape = x.shape();
    shape.push_back(classes);
    xt::xarray<std::int64_t> out = xt::zeros<std::int64_t>(shape);
    for (std::size_t i = 0; i < v.size(); ++i)
        out.data()[i * classes + static_cast<std::size_t>(v.data()[i])] = 1;
    return wrap(std::move(out));  // int64: no gradient, as in PyTorch
}

}  // namespace xg
