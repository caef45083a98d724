// The libFuzzer entry point, compiled once per target with XGRAD_FUZZ_TARGET
// naming one of the bodies in harness.hpp (safetensors, torch_pt, load_state_dict,
// sharded_index).
#include "harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::XGRAD_FUZZ_TARGET(data, size);
    return 0;
}
