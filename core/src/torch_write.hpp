// Writing torch.save's zip format (torch_write.cpp). xg::save reaches it
// through save_torch (serialize_io.hpp); this is the same writer with its
// zip64 limit exposed, for tests.
#pragma once

#include <cstdint>
#include <string>

#include "xgrad/state_dict.hpp"

namespace xg::detail {

// save_torch, with every size and offset from `zip64_from` up written in zip64
// fields (ZipWriter): torch.save's layout at 0xFFFFFFFF, a small file's zip64
// layout below it.
void save_torch(const StateDict& state_dict, const std::string& path, std::uint64_t zip64_from);

}  // namespace xg::detail
