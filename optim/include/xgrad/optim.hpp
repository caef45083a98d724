// Everything in xg::optim: optimizers and learning-rate schedulers.
#pragma once
