#!/usr/bin/python3
"""Writes the sharded Hugging Face checkpoint that test_sharded.cpp and test_key_map.cpp read
(run in this folder: /usr/bin/python3 gen_sharded.py).

- sharded_bf16/: the bfloat16 weights of a tiny Llama-style model (embeddings, one MLP, two
  norms, a head) split as huggingface_hub's split_torch_state_dict_into_shards splits them
  with max_shard_size=800 (bytes), laid out as transformers' save_pretrained writes them:
  shards model-00001-of-00002.safetensors, ... as the safetensors library writes a file
  (metadata {"format": "pt"}, tensors sorted by name, compact JSON header padded with spaces
  to 8 bytes), and model.safetensors.index.json as json.dumps(index, indent=2,
  sort_keys=True) plus a newline. Neither library is installed here, so both follow their
  published formats.
- sharded_bf16_expected.safetensors: the same tensors as float32 (exactly their values), in
  the model's key order, plus "mlp.input", a [3, 8] input, and "mlp.output", PyTorch's
  down_proj(silu(gate_proj(x)) * up_proj(x)) for it, computed in float32.
"""
import collections
import json
import struct

import torch

MAX_SHARD_BYTES = 800
CODES = {torch.bfloat16: "BF16", torch.float32: "F32"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits as int16
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors, metadata=None, sort_names=False):
    header, offset, blobs = collections.OrderedDict(), 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors) if sort_names else tensors:
        t = tensors[name]
        data = tensor_bytes(t)
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def split_into_shards(tensors, max_bytes):
    """Greedy in key order; a tensor over the limit gets a shard of its own where it comes."""
    shards, current, current_bytes = [], collections.OrderedDict(), 0
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        if size > max_bytes:
            shards.append({name: t})
            continue
        if current_bytes + size > max_bytes:
            shards.append(current)
            current, current_bytes = collections.OrderedDict(), 0
        current[name] = t
        current_bytes += size
    if current:
        shards.append(current)
    return shards


torch.manual_seed(0)
d_model, d_ff, vocab = 8, 16, 12
# The order of a Llama model's state_dict (attention left out to keep the files small).
model = collections.OrderedDict([
    ("model.embed_tokens.weight", torch.randn(vocab, d_model)),
    ("model.layers.0.mlp.gate_proj.weight", torch.randn(d_ff, d_model) / 3),
    ("model.layers.0.mlp.up_proj.weight", torch.randn(d_ff, d_model) / 3),
    ("model.layers.0.mlp.down_proj.weight", torch.randn(d_model, d_ff) / 4),
    ("model.layers.0.input_layernorm.weight", 1 + torch.randn(d_model) / 10),
    ("model.norm.weight", 1 + torch.randn(d_model) / 10),
    ("lm_head.weight", torch.randn(vocab, d_model)),
])
model = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in model.items())

shards = split_into_shards(model, MAX_SHARD_BYTES)
assert len(shards) == 2
weight_map = {}
for i, shard in enumerate(shards):
    name = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
    write_safetensors("sharded_bf16/" + name, shard, {"format": "pt"}, sort_names=True)
    weight_map.update((key, name) for key in shard)
total_size = sum(t.numel() * t.element_size() for t in model.values())
index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
with open("sharded_bf16/model.safetensors.index.json", "w", encoding="utf-8") as f:
    f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")

expected = collections.OrderedDict((k, v.float()) for k, v in model.items())
x = torch.randn(3, d_model)
mlp = "model.layers.0.mlp."
gate = torch.nn.functional.silu(x @ expected[mlp + "gate_proj.weight"].T)
hidden = gate * (x @ expected[mlp + "up_proj.weight"].T)
expected["mlp.input"] = x
expected["mlp.output"] = hidden @ expected[mlp + "down_proj.weight"].T
write_safetensors("sharded_bf16_expected.safetensors", expected)
