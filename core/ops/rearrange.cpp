// expand, repeat, flip and roll: plain loops that move whole blocks. Like the
// other shape ops each returns a fresh copy; expand and repeat tile x, and their
// gradient sums the tiles back; flip and roll reorder entries along dims, and
// their gradient flips again or rolls back (the op itself, so under
// create_graph it records as it is).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <utility>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "shape_product.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::product;
using detail::wrap;

namespace {

// x (read as `shape`, its own shape with leading 1s) tiled reps[d] times along
// each dim d: one pass per tiled dim, each copying the blocks below that dim.
template <class T>
xt::xarray<T> tiled(const xt::xarray<T>& x, Shape shape, const Shape& reps) {
    xt::xarray<T> result;
    const T* from = x.data();
    bool copied = false;
    for (std::size_t d = shape.size(); d-- > 0;) {
        if (reps[d] == 1) continue;
        const std::size_t outer = std::accumulate(shape.begin(), shape.begin() + std::ptrdiff_t(d),
                                                  std::size_t{1}, std::multiplies<>());
        const std::size_t chunk = product(shape) / std::max<std::size_t>(outer, 1);
        shape[d] *= reps[d];
        auto next = detail::empty_array<T>(shape);
        for (std::size_t o = 0; o < outer; ++o) {
            for (std::size_t r = 0; r < reps[d]; ++r)
                std::copy_n(from + o * chunk, chunk, next.data() + (o * reps[d] + r) * chunk);
        }
        result = std::move(next);
        from = result.data();
        copied = true;
    }
    if (!copied) result = x;  // nothing tiled: a plain copy
    result.reshape(shape);
    return result;
}

// The gradient of tiled: g (of the tiled shape) with the tiles of each dim
// summed, back to `shape`. A dim tiled 0 times gets zeros.
template <class T>
xt::xarray<T> summed_tiles(const xt::xarray<T>& g, const Shape& shape, const Shape& reps) {
    Shape current(shape.size());
    for (std::size_t d = 0; d < shape.size(); ++d) current[d] = shape[d] * reps[d];
    xt::xarray<T> result = g;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (reps[d] == 1) continue;
        current[d] = shape[d];
        const std::size_t outer =
            std::accumulate(current.begin(), current.begin() + std::ptrdiff_t(d), std::size_t{1},
                            std::multiplies<>());
        const std::size_t chunk = product(current) / std::max<std::size_t>(outer, 1);
        xt::xarray<T> next = xt::zeros<T>(current);
        const T* from = result.data();
        for (std::size_t o = 0; o < outer; ++o) {
            T* to = next.data() + o * chunk;
            for (std::size_t r = 0; r < reps[d]; ++r) {
                const T* tile = from + (o * reps[d] + r) * chunk;
                for (std::size_t k = 0; k < chunk; ++k) to[k] += tile[k];
            }
        }
        result = std::move(next);
    }
    return result;
}

// summed_tiles with ops (reshape and sum), for double backward: along a dim
// tiled r times, entry t * size + j is entry j of tile t, so g read as
// [reps[0], padded[0], reps[1], padded[1], ...] sums its tiles over the reps dims.
Tensor summed_tiles_op(const Tensor& g, const Shape& padded, const Shape& reps,
                       const Shape& shape) {
    std::vector<std::int64_t> split;
    std::vector<int> tile_dims;
    for (std::size_t d = 0; d < padded.size(); ++d) {
        if (reps[d] != 1) {
            tile_dims.push_back(static_cast<int>(split.size()));
            split.push_back(static_cast<std::int64_t>(reps[d]));
        }
        split.push_back(static_cast<std::int64_t>(padded[d]));
    }
    // sum with no dims would sum them all: nothing tiled is a plain reshape.
    const Tensor summed = tile_dims.empty() ? g : sum(reshape(g, split), tile_dims);
    return reshape(summed, std::vector<std::int64_t>(shape.begin(), shape.end()));
}

// repeat and expand: x as `padded` tiled by reps; the gradient sums the tiles.
Tensor tile(const Tensor& x, const Shape& padded, const Shape& reps, const char* op,
            const char* node) {
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(tile(detail::computable(x), padded, reps, op, node), *to);
    Tensor out = detail::visit_any(
        x, op, [&]<class T>(xt::xarray<T>& a) { return wrap(tiled(a, padded, reps)); });
    return make_result(
        out, node, {x},
        [padded, reps, shape = x.shape(), op](const Tensor& g) {
            if (autograd::creating_graph())
                return autograd::Gradients{summed_tiles_op(g, padded, reps, shape)};
            return autograd::Gradients{
                detail::visit_floating(g, op, [&]<class T>(xt::xarray<T>& gv) {
                    xt::xarray<T> summed = summed_tiles(gv, padded, reps);
                    summed.reshape(shape);
                    return wrap(std::move(summed));
                })};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

// a with entry j of the dim laid out by `split` moved to entry to(j): one pass
// of flip or roll, copying whole rows below the dim.
template <class T, class To>
xt::xarray<T> moved(const xt::xarray<T>& a, const detail::DimSplit& split, To to) {
    auto out = detail::empty_array<T>(a.shape());
    for (std::size_t o = 0; o < split.outer; ++o) {
        for (std::size_t j = 0; j < split.size; ++j) {
            std::copy_n(a.data() + (o * split.size + j) * split.inner, split.inner,
                        out.data() + (o * split.size + to(j)) * split.inner);
        }
    }
    return out;
}

}  // namespace

Tensor expand(const Tensor& x, const std::vector<std::int64_t>& sizes) {
    check(x.defined(), "expand: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(expand(detail::computable(x), sizes), *to);
    const Shape shape = x.shape();
    if (sizes.size() < shape.size()) {
        fail("expand: expected at least {} sizes for a tensor of shape {} (got [{}])", shape.size(),
             shape_str(shape), fmt::join(sizes, ", "));
    }
    const std::size_t lead = sizes.size() - shape.size();
    Shape padded(lead, 1), reps(sizes.size(), 1);
    padded.insert(padded.end(), shape.begin(), shape.end());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] == -1 && i >= lead) continue;  // -1 keeps an existing dim
        check(sizes[i] >= 0, "expand: expected sizes >= 0, or -1 for an existing dim (got [{}])",
              fmt::join(sizes, ", "));
        const auto size = static_cast<std::size_t>(sizes[i]);
        check(size == padded[i] || padded[i] == 1,
              "expand: expected size {} at dim {} to expand {}, where only dims of size 1 grow "
              "(got [{}])",
              padded[i], i, shape_str(shape), fmt::join(sizes, ", "));
        if (padded[i] == 1) reps[i] = size;
    }
    return tile(x, padded, reps, "expand", "ExpandBackward");
}

Tensor repeat(const Tensor& x, const std::vector<std::int64_t>& repeats) {
    check(x.defined(), "repeat: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    if (repeats.size() < shape.size()) {
        fail("repeat: expected at least {} repeats for a tensor of shape {} (got [{}])",
             shape.size(), shape_str(shape), fmt::join(repeats, ", "));
    }
    check(std::all_of(repeats.begin(), repeats.end(), [](std::int64_t r) { return r >= 0; }),
          "repeat: expected repeats >= 0 (got [{}])", fmt::join(repeats, ", "));
    Shape padded(repeats.size() - shape.size(), 1);  // extra repeats tile new leading dims
    padded.insert(padded.end(), shape.begin(), shape.end());
    return tile(x, padded, Shape(repeats.begin(), repeats.end()), "repeat", "RepeatBackward");
}

Tensor flip(const Tensor& x, const std::vector<int>& dims) {
    check(x.defined(), "flip: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(flip(detail::computable(x), dims), *to);
    const Shape shape = x.shape();
    std::vector<bool> seen(std::max<std::size_t>(shape.size(), 1), false);
    std::vector<detail::DimSplit> splits;
    for (int dim : dims) {
        const std::size_t axis = detail::normalize_dim(dim, shape.size(), "flip");
        check(!seen[axis], "flip: expected each dim once (got [{}])", fmt::join(dims, ", "));
        seen[axis] = true;
        splits.push_back(detail::split_at(shape, axis));
    }
    Tensor out = detail::visit_any(x, "flip", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> result = splits.empty() ? a : xt::xarray<T>();
        for (std::size_t i = 0; i < splits.size(); ++i) {
            const std::size_t last = splits[i].size - 1;  // unused when the dim is empty
            result =
                moved(i == 0 ? a : result, splits[i], [last](std::size_t j) { return last - j; });
        }
        return wrap(std::move(result));
    });
    return make_result(
        out, "FlipBackward", {x},
        [dims](const Tensor& g) { return autograd::Gradients{flip(g, dims)}; },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

Tensor roll(const Tensor& x, const std::vector<std::int64_t>& shifts,
            const std::vector<int>& dims) {
    check(x.defined(), "roll: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(roll(detail::computable(x), shifts, dims), *to);
    check(!shifts.empty() && shifts.size() == std::max<std::size_t>(dims.size(), 1),
          "roll: expected one shift per dim, or one shift and no dims (got {} shifts and {} dims)",
          shifts.size(), dims.size());
    const Shape shape = x.shape();
    if (!dims.empty() && shape.empty()) {
        fail("roll: expected a tensor with at least 1 dimension to roll along dims (got {})",
             shape_str(shape));
    }
    // No dims: the flattened tensor rolls as one dim.
    std::vector<detail::DimSplit> splits;
    if (dims.empty()) splits.push_back({1, x.numel(), 1});
    for (int dim : dims)
        splits.push_back(detail::split_at(shape, detail::normalize_dim(dim, shape.size(), "roll")));
    std::vector<std::size_t> steps;  // each shift in [0, size): negative ones count back
    std::vector<std::int64_t> back;  // the shifts that undo them, for the gradient
    for (std::size_t i = 0; i < splits.size(); ++i) {
        const auto size = static_cast<std::int64_t>(splits[i].size);
        const std::int64_t step = size == 0 ? 0 : ((shifts[i] % size) + size) % size;
        steps.push_back(static_cast<std::size_t>(step));
        back.push_back(-step);
    }
    Tensor out = detail::visit_any(x, "roll", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> result;
        for (std::size_t i = 0; i < splits.size(); ++i) {
            const std::size_t size = splits[i].size, step = steps[i];
            result = moved(i == 0 ? a : result, splits[i],
                           [size, step](std::size_t j) { return (j + step) % size; });
        }
        return wrap(std::move(result));
    });
    return make_result(
        out, "RollBackward", {x},
        [back, dims](const Tensor& g) { return autograd::Gradients{roll(g, back, dims)}; },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

}  // namespace xg
