// Everything in xg::optim: optimizers and learning-rate schedulers.
#pragma once

#include "xgrad/optim/adam.hpp"
#include "xgrad/optim/adamw.hpp"
#include "xgrad/optim/lr_scheduler.hpp"
#include "xgrad/optim/optimizer.hpp"
#include "xgrad/optim/options.hpp"
#include "xgrad/optim/sgd.hpp"
