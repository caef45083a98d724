// The umbrella header: everything a user of xgrad needs. It lives in the top
// layer (checkpoint/) because it includes every layer below.
#pragma once

#include "xgrad/activation_checkpoint.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/checkpoint.hpp"
#include "xgrad/error.hpp"
#include "xgrad/half.hpp"
#include "xgrad/inspect.hpp"
#include "xgrad/key_map.hpp"
#include "xgrad/nn.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/optim.hpp"
#include "xgrad/parallel.hpp"
#include "xgrad/removable_handle.hpp"
#include "xgrad/serialize.hpp"
#include "xgrad/state_dict.hpp"
#include "xgrad/tensor.hpp"
#include "xgrad/to_dot.hpp"
