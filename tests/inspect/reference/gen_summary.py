"""Generates summary_reference.hpp: what xg::inspect::summary should report for
four models, measured on their PyTorch twins.

Run from anywhere with /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 tests/inspect/reference/gen_summary.py

Forward pre hooks and forward hooks on every module give the rows: the order
calls start, their nesting depth, the output shapes and bytes, and which call
repeats a module. The mult-adds are not computed from a formula here: a
TorchDispatchMode sees every aten matrix product (mm, addmm, bmm, baddbmm) and
adds m * k * n (times the batch) to the innermost module running, so the C++
formulas are checked against the products PyTorch actually runs.

Parameters go to rows by summary.hpp's rule: each parameter once, on the
deepest row whose module holds it, the first such row in call order.

PyTorch's MultiheadAttention applies out_proj.weight inside
F.multi_head_attention_forward instead of calling out_proj; xgrad calls it, so
xgrad has an out_proj row. The script adds that row after each attention row,
moving out_proj's parameters and its product (rows * E * E, the last addmm the
attention ran) onto it.

The models run in eval mode with grad enabled: under no_grad, 1.13's
TransformerEncoderLayer takes its fused fast path and calls no submodule.
"""
import os
import sys

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "nn", "reference"))

from torch_layers import FeedForward, named_feed_forward, write_header  # noqa: E402

PRODUCTS = {
    torch.ops.aten.mm.default: lambda a, b: a.shape[0] * a.shape[1] * b.shape[1],
    torch.ops.aten.addmm.default: lambda c, a, b: a.shape[0] * a.shape[1] * b.shape[1],
    torch.ops.aten.bmm.default: lambda a, b: a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2],
    torch.ops.aten.baddbmm.default:
        lambda c, a, b: a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2],
}


class Recorder(TorchDispatchMode):
    """Rows of module calls, and the products run inside each."""

    def __init__(self, model):
        super().__init__()
        self.rows, self.open, self.called, self.handles = [], [], set(), []
        self.input_bytes = 0
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self.pre_hook(name)))
            self.handles.append(module.register_forward_hook(self.hook()))

    def pre_hook(self, name):
        def hook(module, args):
            if not self.open:
                self.input_bytes += sum(tensor_bytes(a) for a in args)
            self.rows.append({"name": name, "type": type(module).__name__, "module": module,
                              "depth": len(self.open), "recursive": id(module) in self.called,
                              "shapes": [], "output_bytes": 0, "mult_adds": 0})
            self.called.add(id(module))
            self.open.append(len(self.rows) - 1)
        return hook

    def hook(self):
        def hook(module, args, output):
            row = self.rows[self.open.pop()]
            assert row["module"] is module
            outputs = [o for o in (output if isinstance(output, tuple) else (output,))
                       if isinstance(o, torch.Tensor)]
            row["shapes"] = [list(o.shape) for o in outputs]
            row["output_bytes"] = sum(tensor_bytes(o) for o in outputs)
        return hook

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in PRODUCTS and self.open:
            self.rows[self.open[-1]]["mult_adds"] += PRODUCTS[func](*args)
            if func is torch.ops.aten.addmm.default:
                self.rows[self.open[-1]]["last_addmm"] = PRODUCTS[func](*args)
        return func(*args, **(kwargs or {}))


def tensor_bytes(t):
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def add_out_proj_rows(rows):
    out = []
    for row in rows:
        out.append(row)
        if isinstance(row["module"], nn.MultiheadAttention):
            attention = row["module"]
            e = attention.embed_dim
            product = row["shapes"][0][0] * row["shapes"][0][1] * e * e
            assert row.pop("last_addmm") == product  # out_proj's GEMM was the last one
            row["mult_adds"] -= product
            out_proj = attention.out_proj
            out.append({"name": row["name"] + ".out_proj", "type": type(out_proj).__name__,
                        "module": out_proj, "depth": row["depth"] + 1,
                        "recursive": row["recursive"], "shapes": row["shapes"],
                        "output_bytes": row["output_bytes"], "mult_adds": product})
    return out


def count_parameters(model, rows):
    owner = {}
    for r, row in enumerate(rows):
        if row["recursive"]:
            continue
        for p in row["module"].parameters():
            if id(p) not in owner or row["depth"] > rows[owner[id(p)]]["depth"]:
                owner[id(p)] = r
    for row in rows:
        row["params"] = row["trainable"] = 0
    totals = {"total_params": 0, "trainable_params": 0, "param_bytes": 0}
    for p in model.parameters():  # each parameter once, as xgrad's parameters()
        trainable = p.numel() if p.requires_grad else 0
        totals["total_params"] += p.numel()
        totals["trainable_params"] += trainable
        totals["param_bytes"] += tensor_bytes(p)
        if id(p) in owner:
            rows[owner[id(p)]]["params"] += p.numel()
            rows[owner[id(p)]]["trainable"] += trainable
    return totals


def summarise(model, x):
    model.eval()
    recorder = Recorder(model)
    with torch.enable_grad(), recorder:
        model(x)
    for handle in recorder.handles:
        handle.remove()
    rows = add_out_proj_rows(recorder.rows)
    totals = count_parameters(model, rows)
    totals["mult_adds"] = sum(row["mult_adds"] for row in rows)
    totals["input_bytes"] = recorder.input_bytes
    leaves = [r for i, r in enumerate(rows)
              if i + 1 == len(rows) or rows[i + 1]["depth"] <= r["depth"]]
    totals["activation_bytes"] = sum(r["output_bytes"] for r in leaves)
    return rows, totals


def models():
    torch.manual_seed(0)
    swiglu = named_feed_forward("swiglu", 4, 6)
    yield "swiglu", swiglu, torch.randn(2, 3, 4)

    # A module called twice (its second row is recursive), a FeedForward two
    # deep, and a frozen bias, so that Linear 0 is partly trainable.
    shared = nn.Linear(8, 8)
    stack = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), shared, shared,
                          FeedForward(8, 16, 0.1, nn.ReLU()), nn.Linear(8, 3))
    stack[0].bias.requires_grad_(False)
    yield "stack", stack, torch.randn(2, 4)

    # An output layer tied to the embedding: the weight counts once, on the embedding's row.
    tied = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    tied[1].weight = tied[0].weight
    yield "tied", tied, torch.randint(0, 10, (2, 3))

    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True)
    yield "encoder_layer", layer, torch.randn(2, 5, 8)


def cpp_row(row):
    shapes = ", ".join("{%s}" % ", ".join(str(d) for d in s) for s in row["shapes"])
    return '        {"%s", "%s", %d, {%s}, %d, %d, %d, %d, %s},' % (
        row["name"], row["type"], row["depth"], shapes, row["output_bytes"], row["params"],
        row["trainable"], row["mult_adds"], str(row["recursive"]).lower())


def main():
    body = [
        "",
        "struct Row {",
        "    std::string name, type;",
        "    std::size_t depth;",
        "    std::vector<std::vector<std::size_t>> output_shapes;",
        "    std::int64_t output_bytes, params, trainable, mult_adds;",
        "    bool recursive;",
        "};",
        "",
        "struct Model {",
        "    std::vector<std::size_t> input_shape;",
        "    std::vector<Row> rows;",
        "    std::int64_t total_params, trainable_params, mult_adds, input_bytes,",
        "        activation_bytes, param_bytes;",
        "};",
    ]
    for name, model, x in models():
        rows, totals = summarise(model, x)
        body += ["", "inline const Model %s = {" % name,
                 "    {%s}," % ", ".join(str(d) for d in x.shape), "    {"]
        body += [cpp_row(row) for row in rows]
        body += ["    },",
                 "    %d, %d, %d, %d, %d, %d," % (
                     totals["total_params"], totals["trainable_params"], totals["mult_adds"],
                     totals["input_bytes"], totals["activation_bytes"], totals["param_bytes"]),
                 "};"]
    body.append("")
    write_header(
        os.path.join(HERE, "summary_reference.hpp"), "gen_summary.py",
        ["Rows and totals of xg::inspect::summary for four models, measured on their PyTorch",
         "twins with forward hooks and a TorchDispatchMode counting matrix products."],
        "reference::summary", body)


if __name__ == "__main__":
    main()
