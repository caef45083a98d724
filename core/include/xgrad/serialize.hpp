// Saving and loading state dicts: safetensors files (Hugging Face's format)
// and PyTorch's torch.save zip files.
#pragma once

#include <map>
#include <string>

#include "xgrad/state_dict.hpp"

namespace xg {

// Writes `state_dict` as a safetensors file, keys in order. Atomic: the data
// goes to a temporary file in the same folder that is renamed over `path`.
void save(const StateDict& state_dict, const std::string& path,
          const std::map<std::string, std::string>& metadata = {});

// Reads a safetensors file or a torch.save(state_dict) zip, told apart by content.
StateDict load(const std::string& path);

// The "__metadata__" strings of a safetensors file (empty if none).
std::map<std::string, std::string> load_metadata(const std::string& path);

}  // namespace xg
