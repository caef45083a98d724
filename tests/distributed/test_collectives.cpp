// all_reduce, broadcast and barrier on every dtype and shape, including empty
// tensors and sizes that are not multiples of anything; MPI errors as xg::Error.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/distributed.hpp>
#include <xgrad/xgrad.hpp>

#include "mpi_internal.hpp"

namespace dist = xg::distributed;
using xg::Dtype;
using xg::Shape;
using xg::Tensor;

namespace {

const std::vector<Shape> kShapes = {{}, {0}, {3, 0, 2}, {1}, {7}, {2, 3, 4}, {1000003}};
const std::vector<Dtype> kDtypes = {xg::kFloat32, xg::kFloat64, xg::kInt64};

// Element k on rank r holds (k % 13) + 100 r: sums stay exact in float32.
template <class T>
Tensor pattern(const Shape& shape, int rank) {
    auto values = xt::xarray<T>::from_shape(shape);
    for (std::size_t k = 0; k < values.size(); ++k)
        values.flat(k) = static_cast<T>(static_cast<std::int64_t>(k % 13) + 100 * rank);
    return xg::tensor(values);
}

Tensor pattern(const Shape& shape, Dtype dtype, int rank) {
    switch (dtype) {
        case Dtype::Float32: return pattern<float>(shape, rank);
        case Dtype::Float64: return pattern<double>(shape, rank);
        case Dtype::Int64: return pattern<std::int64_t>(shape, rank);
        default: break;  // the collectives are tested on the compute dtypes
    }
    return {};
}

// Largest |t(k) - expected(k)| over all elements, in double.
template <class T, class F>
double max_error(const Tensor& t, F expected) {
    double worst = 0;
    const auto& values = t.data<T>();
    for (std::size_t k = 0; k < values.size(); ++k)
        worst = std::max(worst, std::abs(static_cast<double>(values.flat(k)) - expected(k)));
    return worst;
}

template <class F>
double max_error(const Tensor& t, F expected) {
    switch (t.dtype()) {
        case Dtype::Float32: return max_error<float>(t, expected);
        case Dtype::Float64: return max_error<double>(t, expected);
        case Dtype::Int64: return max_error<std::int64_t>(t, expected);
        default: break;  // not reduced over ranks
    }
    return -1;
}

}  // namespace

TEST_CASE("distributed: rank and world_size describe the job") {
    int r = dist::rank(), n = dist::world_size();
    CHECK(dist::is_initialized());
    CHECK(n >= 1);
    CHECK(r >= 0);
    CHECK(r < n);
    dist::barrier();
}

TEST_CASE("distributed: all_reduce sums, averages, maxes and mins every dtype and shape") {
    int r = dist::rank();
    double n = dist::world_size();
    double rank_sum = 100 * n * (n - 1) / 2;
    for (Dtype dtype : kDtypes) {
        for (const Shape& shape : kShapes) {
            CAPTURE(xg::dtype_name(dtype));
            CAPTURE(xg::shape_str(shape));
            Tensor t = pattern(shape, dtype, r);
            Tensor& same = dist::all_reduce(t);
            CHECK(same.impl() == t.impl());  // in place
            CHECK(t.shape() == shape);
            CHECK(t.dtype() == dtype);
            CHECK(max_error(t, [&](std::size_t k) { return n * double(k % 13) + rank_sum; }) == 0);

            t = pattern(shape, dtype, r);
            dist::all_reduce(t, dist::ReduceOp::Max);
            CHECK(max_error(t, [&](std::size_t k) { return double(k % 13) + 100 * (n - 1); }) == 0);
            t = pattern(shape, dtype, r);
            dist::all_reduce(t, dist::ReduceOp::Min);
            CHECK(max_error(t, [&](std::size_t k) { return double(k % 13); }) == 0);

            if (xg::is_floating_point(dtype)) {
                t = pattern(shape, dtype, r);
                dist::all_reduce(t, dist::ReduceOp::Avg);
                double tolerance = dtype == xg::kFloat32 ? 1e-4 : 1e-12;
                CHECK(max_error(t, [&](std::size_t k) {
                          return (n * double(k % 13) + rank_sum) / n;
                      }) <= tolerance);
            }
        }
    }
}

TEST_CASE("distributed: broadcast copies root's values on every dtype and shape") {
    int r = dist::rank(), n = dist::world_size();
    for (int root = 0; root < n; ++root) {
        for (Dtype dtype : kDtypes) {
            for (const Shape& shape : kShapes) {
                CAPTURE(root);
                CAPTURE(xg::dtype_name(dtype));
                CAPTURE(xg::shape_str(shape));
                Tensor t = pattern(shape, dtype, r);
                dist::broadcast(t, root);
                CHECK(t.shape() == shape);
                CHECK(max_error(t, [&](std::size_t k) { return double(k % 13) + 100 * root; }) ==
                      0);
            }
        }
    }
    // Only dtype and numel must match root's: the shape is the receiver's own.
    Tensor t = r == 0 ? pattern<double>({2, 3}, 0) : pattern<double>({6}, r);
    dist::broadcast(t, 0);
    CHECK(t.shape() == (r == 0 ? Shape{2, 3} : Shape{6}));
    CHECK(max_error(t, [](std::size_t k) { return double(k % 13); }) == 0);
}

TEST_CASE("distributed: collectives reject bad arguments with the same error on every rank") {
    int r = dist::rank(), n = dist::world_size();
    Tensor ints = xg::arange(5);
    CHECK_THROWS_WITH_AS(dist::all_reduce(ints, dist::ReduceOp::Avg),
                         "all_reduce: expected a floating-point tensor for ReduceOp::Avg (got "
                         "int64)",
                         xg::Error);
    Tensor undefined;
    CHECK_THROWS_WITH_AS(dist::all_reduce(undefined),
                         "all_reduce: expected a defined tensor (got an undefined one)", xg::Error);
    Tensor t = xg::zeros({3});
    CHECK_THROWS_WITH_AS(
        dist::broadcast(t, n),
        doctest::Contains(
            fmt::format("broadcast: expected root in [0, {}) (got {})", n, n).c_str()),
        xg::Error);
    if (n > 1) {
        // Rank 1 disagrees with root 0 about the size: every rank throws, none hangs.
        Tensor mine = xg::zeros({r == 1 ? std::size_t{5} : std::size_t{6}});
        CHECK_THROWS_WITH_AS(dist::broadcast(mine, 0),
                             doctest::Contains("broadcast: expected a float32 tensor of 6 "
                                               "elements on every rank, as on root 0 (got"),
                             xg::Error);
    }
    dist::barrier();  // still in step
}

TEST_CASE("distributed: MPI errors come back as xg::Error with MPI's message") {
    // The communicator returns errors instead of aborting, and check_mpi turns
    // them into xg::Error with the MPI error string.
    int value = 0;
    int code = MPI_Allreduce(MPI_IN_PLACE, &value, -1, MPI_INT, MPI_SUM,
                             dist::detail::communicator("test"));
    CHECK(code != MPI_SUCCESS);
    CHECK_THROWS_WITH_AS(dist::detail::check_mpi(code, "MPI_Allreduce"),
                         doctest::Contains("distributed: MPI_Allreduce failed: MPI_ERR_COUNT"),
                         xg::Error);
}
