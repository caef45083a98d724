// Embedding: a lookup table of learned vectors, as torch.nn.Embedding.
//
//   indices int64 [...] -> output [..., embedding_dim]
//   y[i...] = weight[indices[i...]],  weight: [num_embeddings, embedding_dim] ~ N(0, 1)
//
// An index outside [0, num_embeddings) throws xg::Error naming the index and the
// table size. The gradient scatter-adds into the rows that were read.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class Embedding : public Module {
public:
    Embedding(std::size_t num_embeddings, std::size_t embedding_dim);

    Tensor forward(const Tensor& indices) override;
    std::string extra_repr() const override;
    void reset_parameters();  // weight ~ N(0, 1)

    std::size_t num_embeddings, embedding_dim;
    Tensor weight;

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;
};

}  // namespace xg::nn
