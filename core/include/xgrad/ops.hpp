// Differentiable ops on xg::Tensor, as free functions named like torch's.
// Each lives in core/ops/<family>.cpp next to its backward.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/tensor.hpp"

namespace xg {

// Elementwise, with NumPy broadcasting (core/ops/elementwise.cpp).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rdiv(double a, const Tensor& b);  // a / b
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor abs(const Tensor& x);
// More unary math, PyTorch's names, defaults and formulas (rows of elementwise_rules.hpp).
Tensor rsqrt(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor square(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor selu(const Tensor& x);
Tensor mish(const Tensor& x);
Tensor hardtanh(const Tensor& x, double min_val = -1.0, double max_val = 1.0);
Tensor logsigmoid(const Tensor& x);
Tensor erf(const Tensor& x);
// torch.clamp: min(max(x, min), max), NaN kept; g flows where min <= x <= max.
// Without a bound, that side is open; min > max gives max everywhere, as PyTorch.
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor clamp_min(const Tensor& x, double min);
Tensor clamp_max(const Tensor& x, double max);
// Elementwise max / min with broadcasting; a NaN wins; equal elements split g in half.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor dropout(const Tensor& x, double p, bool training);

// The middle of a feed-forward block as one op (core/ops/fused.cpp):
// dropout(act(h), p, training), or with a gate v of h's shape
// dropout(act(h) * v, p, training). Values, gradients and the dropout stream
// equal those of the separate ops; it makes one pass each way and saves fewer
// tensors (ReLU without a gate or dropout saves nothing but its output; with
// dropout it keeps h too, since a dropped output cannot tell PyTorch's NaN
// gradients from its zeros).
enum class FusedActivation { Identity, ReLU, GELU, GELUTanh, Sigmoid, SiLU, Tanh };
Tensor activation_dropout(const Tensor& h, const Tensor& v, FusedActivation activation, double p,
                          bool training);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(const Tensor& a, double b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(const Tensor& a, double b);
Tensor operator/(double a, const Tensor& b);

// Type promotion (PyTorch's): operands of different dtypes meet at
// result_type(a, b) (tensor.hpp), so float32 with float64 is float64 and int64
// with float32 is float32; `/` of integers divides truly (float32); a double
// scalar makes an integer tensor float32, while an integer scalar keeps it
// int64 (x + 1 as a Python int): the overloads below. Math rows (exp, sigmoid,
// ...) compute an integer tensor in float32; neg, abs, sign, relu, square and
// clamp with integral bounds keep int64.
namespace detail {
enum class ScalarOp { Add, Sub, ReverseSub, Mul };
Tensor integer_scalar(const Tensor& a, std::int64_t b, ScalarOp op);
template <class I>
concept IntegerScalar = std::integral<I> && !std::same_as<I, bool>;
}  // namespace detail
template <detail::IntegerScalar I>
Tensor add(const Tensor& a, I b) {
    return detail::integer_scalar(a, static_cast<std::int64_t>(b), detail::ScalarOp::Add);
}
template <detail::IntegerScalar I>
Tensor sub(const Tensor& a, I b) {
    return detail::integer_scalar(a, static_cast<std::int64_t>(b), detail::ScalarOp::Sub);
}
template <detail::IntegerScalar I>
Tensor rsub(I a, const Tensor& b) {
    return detail::integer_scalar(b, static_cast<std::int64_t>(a), detail::ScalarOp::ReverseSub);
}
template <detail::IntegerScalar I>
Tensor mul(const Tensor& a, I b) {
    return detail::integer_scalar(a, static_cast<std::int64_t>(b), detail::ScalarOp::Mul);
}
template <detail::IntegerScalar I>
Tensor operator+(const Tensor& a, I b) {
    return add(a, b);
}
template <detail::IntegerScalar I>
Tensor operator+(I a, const Tensor& b) {
    return add(b, a);
}
template <detail::IntegerScalar I>
Tensor operator-(const Tensor& a, I b) {
    return sub(a, b);
}
template <detail::IntegerScalar I>
Tensor operator-(I a, const Tensor& b) {
    return rsub(a, b);
}
template <detail::IntegerScalar I>
Tensor operator*(const Tensor& a, I b) {
    return mul(a, b);
}
template <detail::IntegerScalar I>
Tensor operator*(I a, const Tensor& b) {
    return mul(b, a);
}

// Matrix product, as torch.matmul (core/ops/matmul.cpp).
Tensor matmul(const Tensor& a, const Tensor& b);
// input [..., in] x weight [out, in]^T + bias [out] (bias may be undefined), as
// torch.nn.functional.linear: one gemm over all leading dims, no transpose copy.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());

// Reductions (core/ops/reduce.cpp). Full reductions return 0-d tensors.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);
std::pair<Tensor, Tensor> max(const Tensor& x, int dim, bool keepdim = false);
// Derived from the reductions above (their gradients compose):
std::pair<Tensor, Tensor> min(const Tensor& x, int dim, bool keepdim = false);
Tensor max(const Tensor& x);  // 0-d; the gradient goes to one arg max
Tensor min(const Tensor& x);
Tensor argmax(const Tensor& x, std::optional<int> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int> dim = std::nullopt, bool keepdim = false);
// torch.var / torch.std: over dims (all when empty), dividing by n - correction.
Tensor var(const Tensor& x, const std::vector<int>& dims = {}, double correction = 1.0,
           bool keepdim = false);
Tensor std(const Tensor& x, const std::vector<int>& dims = {}, double correction = 1.0,
           bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);
// torch.prod: the product of all entries (0-d) or along one dim. The gradient is
// the product of the others, exact when entries are zero.
Tensor prod(const Tensor& x);
Tensor prod(const Tensor& x, int dim, bool keepdim = false);
// torch.cumsum: running sums along dim; the gradient is the reversed running sum.
Tensor cumsum(const Tensor& x, int dim);
// torch.amax / amin over dims (all when empty). Unlike max(x, dim), the gradient
// is shared evenly among tied extremes.
Tensor amax(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
// torch.norm / torch.linalg.vector_norm: the p-norm over dims (all when empty);
// p = 1, 2, any p > 0, or infinity (the largest magnitude).
Tensor norm(const Tensor& x, double p = 2.0, const std::vector<int>& dims = {},
            bool keepdim = false);
Tensor softmax(const Tensor& x, int dim);
Tensor log_softmax(const Tensor& x, int dim);

// Shape ops (core/ops/shape.cpp). They copy; none aliases its input.
Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape);  // one -1 allowed
Tensor transpose(const Tensor& x, int dim0, int dim1);
Tensor permute(const Tensor& x, const std::vector<int>& dims);
Tensor unsqueeze(const Tensor& x, int dim);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int dim);
Tensor cat(const std::vector<Tensor>& tensors, int dim = 0);
// torch.narrow: `length` entries of dim starting at `start` (negative: from the end).
Tensor narrow(const Tensor& x, int dim, std::int64_t start, std::int64_t length);
// torch.chunk: narrow()s of ceil(size / chunks) entries each (the last may be smaller).
std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, int dim = 0);
// Built from the ops above (their gradients compose): torch.split by a size or by
// sizes, select (narrow + squeeze), unbind, stack (unsqueeze + cat), flatten,
// unflatten, broadcast_to (expand's copy), and tril / triu (a kBool mask in where).
std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, int dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, int dim = 0);
Tensor select(const Tensor& x, int dim, std::int64_t index);
std::vector<Tensor> unbind(const Tensor& x, int dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int dim = 0);
Tensor flatten(const Tensor& x, int start_dim = 0, int end_dim = -1);
Tensor unflatten(const Tensor& x, int dim, const std::vector<std::int64_t>& sizes);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor tril(const Tensor& x, std::int64_t diagonal = 0);
Tensor triu(const Tensor& x, std::int64_t diagonal = 0);
// torch.Tensor.expand: sizes for the trailing dims (new leading dims allowed); -1
// keeps a dim, and only size-1 dims grow. A copy here, as broadcast_to.
Tensor expand(const Tensor& x, const std::vector<std::int64_t>& sizes);
// torch.Tensor.repeat: tiles x repeats[i] times along dim i (more repeats than dims
// prepend dims of size 1). The gradient sums the tiles.
Tensor repeat(const Tensor& x, const std::vector<std::int64_t>& repeats);
// torch.flip: reverses the order of entries along each of dims.
Tensor flip(const Tensor& x, const std::vector<int>& dims);
// torch.roll: shifts entries along dims[i] by shifts[i], wrapping around; with no
// dims, rolls the flattened tensor and keeps its shape.
Tensor roll(const Tensor& x, const std::vector<std::int64_t>& shifts,
            const std::vector<int>& dims = {});

// Losses (core/ops/loss.cpp).
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");
Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const std::string& reduction = "mean");
// Derived from elementwise ops (their gradients compose); input and target of one shape.
Tensor l1_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      const std::string& reduction = "mean", double beta = 1.0);
Tensor huber_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean",
                  double delta = 1.0);
// pos_weight (optional) broadcasts over the last dim, weighting the positive term.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const std::string& reduction = "mean",
                                        const Tensor& pos_weight = Tensor());
// torch.nn.functional.cross_entropy with every option, after the reduction (the
// argument order xgrad had first): input [N, C] or [N, C, d1, ...] (or [C]);
// target int64 class indices [N, d1, ...] or class probabilities of the input's
// shape; weight [C] per class; targets equal to ignore_index count for nothing
// (and not in the mean's denominator); label_smoothing in [0, 1].
Tensor cross_entropy(const Tensor& input, const Tensor& target, const std::string& reduction,
                     const Tensor& weight, std::int64_t ignore_index = -100,
                     double label_smoothing = 0.0);
// torch.nn.functional.nll_loss on log-probabilities, same layout and options.
Tensor nll_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean",
                const Tensor& weight = Tensor(), std::int64_t ignore_index = -100);
// torch.nn.functional.binary_cross_entropy on probabilities (log clamped at -100,
// as PyTorch); weight broadcasts to the input.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target,
                            const std::string& reduction = "mean", const Tensor& weight = Tensor());
// torch.nn.functional.kl_div(input = log q, target = p or log p): reductions
// none|mean|sum|batchmean.
Tensor kl_div(const Tensor& input, const Tensor& target, const std::string& reduction = "mean",
              bool log_target = false);
// torch.nn.functional.cosine_similarity along dim; each norm is clamped at eps.
Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int dim = 1, double eps = 1e-8);
// torch.nn.functional.cosine_embedding_loss: 1 - cos where target is 1,
// max(0, cos - margin) where it is -1.
Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                             double margin = 0.0, const std::string& reduction = "mean");

}  // namespace xg

// Comparisons and logic (core/ops/compare.cpp): kBool results that need no grad;
// operands broadcast, and operands of different dtypes compare as float64.
namespace xg {
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
Tensor logical_and(const Tensor& a, const Tensor& b);  // nonzero (NaN included) is true
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
Tensor isnan(const Tensor& x);
Tensor isinf(const Tensor& x);
Tensor isfinite(const Tensor& x);
Tensor any(const Tensor& x);  // 0-d
Tensor all(const Tensor& x);
Tensor any(const Tensor& x, int dim, bool keepdim = false);
Tensor all(const Tensor& x, int dim, bool keepdim = false);
}  // namespace xg

// Indexing (core/ops/index.cpp).
namespace xg {
// Rows of weight [num, dim] picked by int64 indices of any shape -> [..., dim], as
// torch.nn.functional.embedding; an index outside [0, num) throws. Backward scatter-adds.
Tensor embedding(const Tensor& weight, const Tensor& indices);
// torch.masked_fill: value where the kBool mask is true (mask and x broadcast together).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// torch.where: a where the kBool condition is true, else b (all three broadcast together).
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
}  // namespace xg

// Gathering and scattering by int64 indices (core/ops/gather.cpp). An index out
// of range throws, naming it; each gradient is the matching scatter or gather.
// A backward shares the index's storage, as PyTorch saves it: edit an index in
// place only after the backward that uses it.
namespace xg {
// torch.index_select: the entries of dim at the 1-d (or 0-d) index, in its order.
Tensor index_select(const Tensor& x, int dim, const Tensor& index);
// torch.gather: out[i][j][k] = x[index[i][j][k]][j][k] for dim 0, and so on;
// index has x's number of dims and is no larger than x outside dim.
Tensor gather(const Tensor& x, int dim, const Tensor& index);
// torch.scatter_add (out of place): x with src[i][j][k] added at
// [index[i][j][k]][j][k] for dim 0, and so on.
Tensor scatter_add(const Tensor& x, int dim, const Tensor& index, const Tensor& src);
// torch.index_add (out of place): x with alpha * source's entry i of dim added at
// entry index[i] of dim.
Tensor index_add(const Tensor& x, int dim, const Tensor& index, const Tensor& source,
                 double alpha = 1.0);
// torch.nn.functional.one_hot: int64 [..., num_classes] (-1: the largest index + 1).
Tensor one_hot(const Tensor& x, std::int64_t num_classes = -1);
}  // namespace xg

// Attention (core/ops/attention.cpp).
namespace xg {
// torch.nn.functional.scaled_dot_product_attention (PyTorch 2):
// softmax(q k^T / sqrt(E) + attn_mask) v over the last two dims of query [..., L, E],
// key [..., S, E] and value [..., S, Ev], whose leading dims are equal -> [..., L, Ev].
// attn_mask is floating, of the query's dtype, broadcastable to [..., L, S] and added
// to the scores (-inf masks a key out; it may require grad); is_causal masks out key
// j > query i and excludes attn_mask. dropout_p > 0 drops attention weights (inverted
// dropout, applied whenever p > 0, as in PyTorch). One node; backward keeps q, k, v and
// the attention weights.
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                    bool is_causal = false);
}  // namespace xg

// Normalization (core/ops/normalization.cpp).
namespace xg {
// torch.nn.functional.layer_norm: normalises over the trailing normalized_shape dims
// (biased variance, eps inside the sqrt), then * weight + bias when they are defined.
// One fused node; its backward is the closed form, not a chain of primitives.
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
}  // namespace xg
