#!/usr/bin/python3
"""The PyTorch side of examples/finetune_ffn.cpp (needs PyTorch; no download).

    finetune_ffn.py make <dir>    writes a Llama-style decoder layer's checkpoint in
                                  bfloat16, sharded in two safetensors files with a
                                  model.safetensors.index.json, as Hugging Face lays it out
    finetune_ffn.py check <dir>   loads what the example saved (finetuned.safetensors and
                                  finetuned.pt) with PyTorch, checks that both hold the
                                  same bfloat16 tensors, runs the MLP on the example's
                                  probe inputs and compares with the example's outputs

PyTorch 1.13 has no safetensors package, so the files are written and read with the
format's few rules: 8 bytes of little-endian header length, a JSON header, the data.
"""
import collections
import json
import os
import struct
import sys

import torch

D_MODEL, D_FF = 32, 88  # the example's sizes (a Llama MLP is d_ff ~ 8/3 d_model)
CODES = {torch.bfloat16: "BF16", torch.float32: "F32"}
DTYPES = {v: k for k, v in CODES.items()}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for key, t in tensors.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[key] = {"dtype": CODES[t.dtype], "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    out = collections.OrderedDict()
    for key, v in header.items():
        if key == "__metadata__":
            continue
        begin, end = v["data_offsets"]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8)
        out[key] = flat.view(DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def make(folder):
    """A "pretrained" decoder layer: its MLP and the norms around it (which the
    example leaves out with its key map), in two shards."""
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    gate = torch.nn.Linear(D_MODEL, D_FF, bias=False)
    up = torch.nn.Linear(D_MODEL, D_FF, bias=False)
    down = torch.nn.Linear(D_FF, D_MODEL, bias=False)
    prefix = "model.layers.0."
    shards = [
        collections.OrderedDict([
            (prefix + "input_layernorm.weight", torch.ones(D_MODEL)),
            (prefix + "mlp.gate_proj.weight", gate.weight.detach()),
            (prefix + "mlp.up_proj.weight", up.weight.detach()),
        ]),
        collections.OrderedDict([
            (prefix + "mlp.down_proj.weight", down.weight.detach()),
            (prefix + "post_attention_layernorm.weight", torch.ones(D_MODEL)),
        ]),
    ]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        shard = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in shard.items())
        write_safetensors(os.path.join(folder, name), shard)
        for key, t in shard.items():
            weight_map[key] = name
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


def mlp(state, x, prefix="model.layers.0.mlp."):
    w = {name: state[prefix + name + "_proj.weight"].float() for name in ("gate", "up", "down")}
    return torch.nn.functional.silu(x @ w["gate"].T) * (x @ w["up"].T) @ w["down"].T


def check(folder):
    safetensors = read_safetensors(os.path.join(folder, "finetuned.safetensors"))
    pt = torch.load(os.path.join(folder, "finetuned.pt"), weights_only=True)
    assert list(pt.keys()) == list(safetensors.keys()), (list(pt.keys()), list(safetensors))
    for key, t in pt.items():
        assert t.dtype == torch.bfloat16, (key, t.dtype)
        assert torch.equal(t.view(torch.int16), safetensors[key].view(torch.int16)), key
    probe = read_safetensors(os.path.join(folder, "probe.safetensors"))
    for name, state in (("finetuned.pt", pt), ("finetuned.safetensors", safetensors)):
        y = mlp(state, probe["x"])
        error = (y - probe["y"]).abs().max().item()
        scale = probe["y"].abs().max().item()
        print(f"{name}: PyTorch's outputs differ from xgrad's by at most {error:.3g} "
              f"(outputs up to {scale:.3g})")
        assert error <= 1e-5 * max(scale, 1.0), name
    print(f"check: PyTorch {torch.__version__} loads both files with {len(pt)} bfloat16 tensors")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(__doc__)
    (make if sys.argv[1] == "make" else check)(sys.argv[2])
