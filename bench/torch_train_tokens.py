#!/usr/bin/python3
"""examples/train_tokens.cpp in PyTorch eager (Debian's python3-torch, 1.13), for
bench/compare_python.sh: the same toy sequence (next = (3 t + 5 t-1 + 1) mod V, 10 %
of tokens replaced at random), model, Adam, batch, epochs and per-epoch validation.

    /usr/bin/python3 bench/torch_train_tokens.py [--threads 2] [--quiet]

  model:  Embedding(V, 16) of 3 tokens, flattened -> Linear(48, 64)
          -> h + SwiGLU FeedForward(LayerNorm(h)) (d_ff 128, no dropout) -> Linear(64, V)

The example has no --threads flag: xgrad then uses OpenBLAS's default, which follows
OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS); --threads defaults to the same here. The
sequence, initialisation and shuffling come from Python's and PyTorch's generators, so
the run matches the C++ one closely but not bit for bit. The last line is
machine-readable, as `train_tokens --bench-line` prints it: a train step is forward +
cross_entropy + zero_grad + backward + optimizer.step, timed with time.perf_counter;
step_ms is the median.
"""
import argparse
import os
import random
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

CONTEXT, DIM, D_MODEL, D_FF = 3, 16, 64, 128


class SwiGLU(nn.Module):
    """xgrad's FeedForward::swiglu (nn/src/feed_forward.cpp) with dropout 0:
    layer2(silu(layer1(x)) * linear_v(x)), no biases."""

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.layer1 = nn.Linear(d_model, d_ff, bias=False)
        self.layer2 = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(0.0)
        self.activation = nn.SiLU()
        self.linear_v = nn.Linear(d_model, d_ff, bias=False)

    def forward(self, x):
        return self.layer2(self.dropout(self.activation(self.layer1(x)) * self.linear_v(x)))


class TokenModel(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, DIM)
        self.input = nn.Linear(CONTEXT * DIM, D_MODEL)
        self.blocks = nn.Sequential(nn.LayerNorm(D_MODEL), SwiGLU(D_MODEL, D_FF))
        self.head = nn.Linear(D_MODEL, vocab)

    def forward(self, tokens):  # int64 [batch, context]
        h = self.input(self.embed(tokens).reshape(tokens.shape[0], -1))
        h = h + self.blocks(h)
        return self.head(h)


def default_threads():
    # What OpenBLAS reads for its default, which is what train_tokens runs with.
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(name, "").isdigit() and int(os.environ[name]) > 0:
            return int(os.environ[name])
    return os.cpu_count() or 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=12, help="vocabulary size")
    p.add_argument("--length", type=int, default=6000, help="tokens in the generated sequence")
    p.add_argument("--noise", type=float, default=0.1,
                   help="probability that a token is replaced at random")
    p.add_argument("--epochs", type=int, default=25, help="passes over the training windows")
    p.add_argument("--batch", type=int, default=128, help="windows per step")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for data, initialisation and shuffling")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="torch.set_num_threads (default: what OpenBLAS would use)")
    p.add_argument("--quiet", action="store_true",
                   help="print only the final summary and the key=value line")
    return p.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokens = [1, 2]
    while len(tokens) < args.length:
        following = (3 * tokens[-1] + 5 * tokens[-2] + 1) % args.vocab
        tokens.append(rng.randrange(args.vocab) if rng.random() < args.noise else following)
    windows = args.length - CONTEXT
    n_train = windows * 4 // 5
    cut = torch.tensor(tokens, dtype=torch.int64).unfold(0, CONTEXT + 1, 1)  # [windows, 4]
    x_all, y_all = cut[:, :CONTEXT].contiguous(), cut[:, CONTEXT].contiguous()
    train_x, train_y = x_all[:n_train], y_all[:n_train]
    val_x, val_y = x_all[n_train:], y_all[n_train:]

    model = TokenModel(args.vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shuffle = torch.Generator().manual_seed(args.seed)
    step_ms, val_accuracy = [], 0.0
    train_start = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(n_train, generator=shuffle)
        total = 0.0
        for rows in order.split(args.batch):
            x, y = train_x[rows], train_y[rows]
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)  # xgrad's default (and PyTorch 2's)
            loss.backward()
            optimizer.step()
            step_ms.append((time.perf_counter() - start) * 1e3)
            total += loss.item() * rows.numel()
        with torch.no_grad():  # the example validates in training mode (there is no dropout)
            val_accuracy = (model(val_x).argmax(1) == val_y).double().mean().item()
        if not args.quiet:
            print(f"epoch {epoch + 1:>3}  train loss {total / n_train:.4f}  "
                  f"val accuracy {val_accuracy:.3f}")
    train_s = time.perf_counter() - train_start

    best = 1 - args.noise + args.noise / args.vocab  # a corrupted token is right 1/V of the time
    print(f"validation accuracy {val_accuracy:.3f} | best achievable {best:.3f} | "
          f"ratio {val_accuracy / best:.3f}")
    print(f"impl=torch-python example=train_tokens vocab={args.vocab} context={CONTEXT} "
          f"d_model={D_MODEL} d_ff={D_FF} batch={args.batch} threads={args.threads} "
          f"steps={len(step_ms)} step_ms={statistics.median(step_ms) if step_ms else 0:.4f} "
          f"train_s={train_s:.3f}")


if __name__ == "__main__":
    main()
