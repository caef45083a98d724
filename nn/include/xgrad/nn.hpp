// Everything in xg::nn: the Module system, layers and utilities.
#pragma once

#include "xgrad/nn/activation.hpp"
#include "xgrad/nn/dropout.hpp"
#include "xgrad/nn/embedding.hpp"
#include "xgrad/nn/feed_forward.hpp"
#include "xgrad/nn/layer_norm.hpp"
#include "xgrad/nn/linear.hpp"
#include "xgrad/nn/loss.hpp"
#include "xgrad/nn/module.hpp"
#include "xgrad/nn/module_dict.hpp"
#include "xgrad/nn/module_list.hpp"
#include "xgrad/nn/multihead_attention.hpp"
#include "xgrad/nn/sequential.hpp"
#include "xgrad/nn/transformer_encoder.hpp"
#include "xgrad/nn/transformer_encoder_layer.hpp"
#include "xgrad/nn/utils.hpp"
#include "xgrad/nn/value.hpp"
