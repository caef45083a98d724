// Saving and loading state dicts: safetensors files (Hugging Face's format),
// and reading PyTorch's torch.save files, zip (PyTorch >= 1.6) and legacy.
#pragma once

#include <map>
#include <string>

#include "xgrad/state_dict.hpp"

namespace xg {

// Writes `state_dict` as a safetensors file, keys in order. Atomic: the data
// goes to a temporary file in the same folder that is renamed over `path`.
void save(const StateDict& state_dict, const std::string& path,
          const std::map<std::string, std::string>& metadata = {});

struct LoadOptions {
    // A torch.save checkpoint such as {"model": state_dict, "optimizer": ...,
    // "epoch": 3}: the entry whose dict of tensors to load (xg::load(path,
    // {.key = "model"})). The other entries are parsed, never loaded. Empty: the
    // file holds the dict of tensors itself. Safetensors files are flat: no key.
    std::string key;
};

// Reads a safetensors file or a torch.save file (zip or legacy format), told
// apart by content. Tensors that are the same view of one storage in a .pt
// (tied weights) come back as one Tensor; other views are copied. A file is
// read piece by piece, each tensor's bytes straight into its storage.
StateDict load(const std::string& path, const LoadOptions& options = {});

// The "__metadata__" strings of a safetensors file (empty if none).
std::map<std::string, std::string> load_metadata(const std::string& path);

}  // namespace xg
