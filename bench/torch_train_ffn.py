#!/usr/bin/python3
"""examples/train_ffn.cpp in PyTorch eager (Debian's python3-torch, 1.13), for
bench/compare_python.sh: the same model, data sizes, optimizer, schedule,
clipping, dropout and per-epoch validation, with the same flags.

    /usr/bin/python3 bench/torch_train_ffn.py [--variant swiglu] [--threads 2] [--quiet]

  model:  Linear(48, d_model) -> N x [x + FeedForward(LayerNorm(x))] -> Linear(d_model, 8)

The series follows examples/common/series.cpp's formula; its noise (and the
initialisation, dropout masks and shuffling) come from PyTorch's and Python's
generators instead of xgrad's, so losses match the C++ run closely but not bit
for bit. The last line is machine-readable, in the same form as
`train_ffn --bench-line`: a train step is forward + loss + zero_grad + backward
+ clip + optimizer.step, timed with time.perf_counter; step_ms is the median.
"""
import argparse
import math
import random
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

LOOKBACK, HORIZON = 48, 8


class FeedForward(nn.Module):
    """xgrad's nn::FeedForward (nn/src/feed_forward.cpp): layer2(dropout(act(layer1(x)) [*
    linear_v(x)])); the gated variants have no biases."""

    def __init__(self, d_model, d_ff, dropout, activation, gated):
        super().__init__()
        self.layer1 = nn.Linear(d_model, d_ff, bias=not gated)
        self.layer2 = nn.Linear(d_ff, d_model, bias=not gated)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation
        self.linear_v = nn.Linear(d_model, d_ff, bias=False) if gated else None

    def forward(self, x):
        g = self.activation(self.layer1(x))
        if self.linear_v is not None:
            g = g * self.linear_v(x)
        return self.layer2(self.dropout(g))


def make_ffn(variant, d, f, p):
    # (activation, gated) as Forecaster::make_ffn picks them; GELU is the exact (erf) one.
    kinds = {"relu": (nn.ReLU(), False), "gelu": (nn.GELU(), False), "glu": (nn.Sigmoid(), True),
             "bilinear": (nn.Identity(), True), "reglu": (nn.ReLU(), True),
             "geglu": (nn.GELU(), True), "swiglu": (nn.SiLU(), True)}
    activation, gated = kinds[variant]
    return FeedForward(d, f, p, activation, gated)


class Forecaster(nn.Module):
    def __init__(self, d_model, d_ff, n_blocks, dropout, variant):
        super().__init__()
        # Registered as the C++ Forecaster registers them (input, norm0, ffn0, ..., output),
        # so the parameters come in the same order and the state_dict keys are the same.
        self.input = nn.Linear(LOOKBACK, d_model)
        self.blocks = []
        for i in range(n_blocks):
            norm, ffn = nn.LayerNorm(d_model), make_ffn(variant, d_model, d_ff, dropout)
            self.add_module(f"norm{i}", norm)
            self.add_module(f"ffn{i}", ffn)
            self.blocks.append((norm, ffn))
        self.output = nn.Linear(d_model, HORIZON)

    def forward(self, x):
        h = self.input(x)
        for norm, ffn in self.blocks:
            h = h + ffn(norm(h))
        return self.output(h)


def make_forecast_data(seed, length=3000, season=24, second_period=60, noise=0.1,
                       validation_fraction=0.2):
    """examples/common/series.cpp: two sines, a trend and Gaussian noise, standardised with
    the statistics of the part the training windows see, cut into windows, split by time."""
    rng = random.Random(seed)
    raw = [math.sin(2 * math.pi * t / season) + 0.5 * math.sin(2 * math.pi * t / second_period)
           + 0.0005 * t + rng.gauss(0.0, noise) for t in range(length)]
    windows = length - LOOKBACK - HORIZON + 1
    n_val = int(windows * validation_fraction)
    n_train = windows - n_val
    seen = raw[:n_train + LOOKBACK + HORIZON - 1]
    mean = sum(seen) / len(seen)
    sd = math.sqrt(sum((v - mean) ** 2 for v in seen) / len(seen))
    series = [(v - mean) / sd for v in raw]
    cut = torch.tensor(series, dtype=torch.float64).unfold(0, LOOKBACK + HORIZON, 1).float()
    x, y = cut[:, :LOOKBACK].contiguous(), cut[:, LOOKBACK:].contiguous()
    last = season_err = 0.0
    for i in range(n_train, windows):
        for h in range(HORIZON):
            truth = series[i + LOOKBACK + h]
            last += (truth - series[i + LOOKBACK - 1]) ** 2
            season_err += (truth - series[i + LOOKBACK + h - season * (1 + h // season)]) ** 2
    n = n_val * HORIZON
    return (x[:n_train], y[:n_train], x[n_train:], y[n_train:], last / n, season_err / n)


def make_optimizer(args, params):
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=0.9)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=args.lr)
    return torch.optim.Adam(params, lr=args.lr)


def make_schedule(args, optimizer):
    epochs = args.epochs
    if args.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, max(epochs // 3, 1), 0.3)
    if args.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    if args.schedule == "warmup-cosine":
        warmup = max(1.0, epochs / 10)

        def factor(e):
            if e < warmup:
                return (e + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (e - warmup) / max(1.0, epochs - warmup)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


def evaluate(model, x, y):
    with torch.no_grad():
        model.eval()
        loss = F.mse_loss(model(x), y).item()
        model.train()
    return loss


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="relu", help="FFN variant",
                   choices=["relu", "gelu", "glu", "bilinear", "reglu", "geglu", "swiglu"])
    p.add_argument("--d-model", type=int, default=64, help="width of the residual stream")
    p.add_argument("--d-ff", type=int, default=256, help="hidden width inside each FeedForward")
    p.add_argument("--blocks", type=int, default=2, help="number of residual FFN blocks")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout inside the FFN blocks")
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw"])
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--schedule", default="cosine", help="learning-rate schedule",
                   choices=["none", "step", "cosine", "warmup-cosine"])
    p.add_argument("--clip", type=float, default=1.0,
                   help="clip the gradient norm to this (0 = off)")
    p.add_argument("--epochs", type=int, default=40, help="passes over the training windows")
    p.add_argument("--batch", type=int, default=64, help="windows per step")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for data, initialisation and dropout")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--quiet", action="store_true",
                   help="print only the final summary and the key=value line")
    return p.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x, train_y, val_x, val_y, naive_last, naive_season = make_forecast_data(args.seed)
    model = Forecaster(args.d_model, args.d_ff, args.blocks, args.dropout, args.variant)
    optimizer = make_optimizer(args, list(model.parameters()))
    schedule = make_schedule(args, optimizer)
    n = train_x.shape[0]
    if not args.quiet:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{model}\n{n_params} parameters, {n} training windows")

    step_ms = []
    shuffle = torch.Generator().manual_seed(args.seed)
    train_start = time.perf_counter()
    for epoch in range(args.epochs):
        epoch_start = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        total = 0.0
        for rows in order.split(args.batch):
            x, y = train_x[rows], train_y[rows]
            start = time.perf_counter()
            loss = F.mse_loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)  # xgrad's default (and PyTorch 2's)
            loss.backward()
            if args.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step_ms.append((time.perf_counter() - start) * 1e3)
            total += loss.item() * rows.numel()
        if schedule:
            schedule.step()
        val_loss = evaluate(model, val_x, val_y)
        if not args.quiet:
            print(f"epoch {epoch + 1:>3}  train {total / n:.5f}  val {val_loss:.5f}  "
                  f"lr {optimizer.param_groups[0]['lr']:.2e}  "
                  f"{time.perf_counter() - epoch_start:.2f}s")
    train_s = time.perf_counter() - train_start

    val = evaluate(model, val_x, val_y)
    best_naive = min(naive_last, naive_season)
    print(f"validation MSE {val:.5f} | naive last value {naive_last:.5f} | naive last season "
          f"{naive_season:.5f} | ratio to best naive {val / best_naive:.3f}")
    print(f"impl=torch-python example=train_ffn variant={args.variant} d_model={args.d_model} "
          f"d_ff={args.d_ff} blocks={args.blocks} batch={args.batch} threads={args.threads} "
          f"steps={len(step_ms)} step_ms={statistics.median(step_ms) if step_ms else 0:.4f} "
          f"train_s={train_s:.3f}")


if __name__ == "__main__":
    main()
