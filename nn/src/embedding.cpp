// Embedding: row lookup in a learned table (see embedding.hpp).
#include "xgrad/nn/embedding.hpp"

#include "layer_helpers.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Embedding::Embedding(std::size_t num_embeddings, std::size_t embedding_dim)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
    weight = register_parameter("weight", randn({num_embeddings, embedding_dim}));
}

void Embedding::reset_parameters() {
    NoGradGuard no_grad;
    Tensor fresh = randn(weight.shape(), weight.dtype());
    if (weight.dtype() == kFloat64)
        weight.data<double>() = fresh.data<double>();
    else
        weight.data<float>() = fresh.data<float>();
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices); }

std::string Embedding::extra_repr() const {
    return fmt::format("{}, {}", num_embeddings, embedding_dim);
}

// Keeps the typed handles forward reads in step with the registry.
void Embedding::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "weight") weight = value;
}

std::shared_ptr<Module> Embedding::make_fresh() const {
    return detail::without_consuming_rng(
        [&] { return std::make_shared<Embedding>(num_embeddings, embedding_dim); });
}

}  // namespace xg::nn
