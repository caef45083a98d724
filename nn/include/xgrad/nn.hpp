// Everything in xg::nn: the Module system, layers and utilities.
#pragma once

#include "xgrad/nn/module.hpp"
