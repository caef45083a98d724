// Checkpoints: model state, optimizer state, step and the random generator in
// one safetensors file, so that a resumed run continues bit for bit.
#pragma once

#include <cstdint>
#include <string>

namespace xg {

namespace nn {
class Module;
}
namespace optim {
class Optimizer;
}

// Atomic, like xg::save.
void save_checkpoint(const std::string& path, nn::Module& module, const optim::Optimizer& optimizer,
                     std::int64_t step);

// Restores module, optimizer and generator; returns the saved step. On any
// error nothing is changed.
std::int64_t load_checkpoint(const std::string& path, nn::Module& module,
                             optim::Optimizer& optimizer);

}  // namespace xg
