// Saving and loading state dicts: safetensors files (Hugging Face's format),
// and reading PyTorch's torch.save files, zip (PyTorch >= 1.6) and legacy.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "xgrad/state_dict.hpp"

namespace xg {

// The file format xg::save writes.
enum class SaveFormat {
    ByExtension,  // ".pt", ".pth" and ".bin" are Torch, anything else Safetensors
    Safetensors,  // Hugging Face's format; `metadata` goes into its header
    Torch,        // torch.save's zip format, which torch.load(weights_only=True) reads
};

// Writes `state_dict`, keys in order, as a safetensors file or (by extension)
// a torch.save file. Atomic: the data go to a temporary file in the same
// folder that is renamed over `path`, so a failed or killed save leaves the
// old file as it was; the next save removes a killed one's temporary.
void save(const StateDict& state_dict, const std::string& path,
          const std::map<std::string, std::string>& metadata = {});
void save(const StateDict& state_dict, const std::string& path, SaveFormat format,
          const std::map<std::string, std::string>& metadata = {});

// A Hugging Face sharded checkpoint, as huggingface_hub writes one: in `dir`,
// safetensors shards "model-00001-of-00003.safetensors", ... of at most
// `max_shard_bytes` of tensor data each (a larger tensor gets a shard of its
// own), keys in order, and "model.safetensors.index.json" mapping each key to
// its shard. One shard is written as "model.safetensors", with no index.
void save_sharded(const StateDict& state_dict, const std::string& dir,
                  std::uint64_t max_shard_bytes = 5'000'000'000);

struct LoadOptions {
    // A torch.save checkpoint such as {"model": state_dict, "optimizer": ...,
    // "epoch": 3}: the entry whose dict of tensors to load (xg::load(path,
    // {.key = "model"})). The other entries are parsed, never loaded. Empty: the
    // file holds the dict of tensors itself. Safetensors files are flat: no key.
    std::string key;
};

// Reads a safetensors file or a torch.save file (zip or legacy format), told
// apart by content; or a sharded Hugging Face checkpoint, given its
// "*.safetensors.index.json" or the folder that holds it (or holds a single
// "model.safetensors"). Tensors that are the same view of one storage in a .pt
// (tied weights) come back as one Tensor; other views are copied. A file is
// read piece by piece, each tensor's bytes straight into its storage.
StateDict load(const std::string& path, const LoadOptions& options = {});

// The "__metadata__" strings of a safetensors file (empty if none).
std::map<std::string, std::string> load_metadata(const std::string& path);

}  // namespace xg
