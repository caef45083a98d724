#!/usr/bin/python3
"""Writes the interop fixtures for test_serialize.cpp (run: /usr/bin/python3 gen_fixtures.py).

- python_written.safetensors: written from the published format with json + numpy
  only (no safetensors library), to prove xgrad reads what others write.
- feed_forward.pt: torch.save(state_dict) of a PyTorch gated FeedForward shaped like
  labml's, plus feed_forward_io.safetensors with an input and PyTorch's output for it.
"""
import collections
import json
import struct

import numpy as np
import torch


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    codes = {np.float32: "F32", np.float64: "F64", np.int64: "I64"}
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[array.dtype.type], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


write_safetensors("python_written.safetensors", collections.OrderedDict([
    ("zeta", np.arange(6, dtype=np.float32).reshape(2, 3) / 4),
    ("alpha", np.array([[1.5, -2.25]], dtype=np.float64)),
    ("ids", np.array([3, -1, 7], dtype=np.int64)),
    ("scalar", np.array(0.5, dtype=np.float32)),
    ("nothing", np.zeros((0, 4), dtype=np.float32)),
]), metadata={"source": "numpy"})


class FeedForward(torch.nn.Module):
    """labml's FeedForward: the registration order defines the state_dict keys."""

    def __init__(self, d_model, d_ff, dropout=0.1, activation=torch.nn.ReLU(), is_gated=False,
                 bias1=True, bias2=True, bias_gate=True):
        super().__init__()
        self.layer1 = torch.nn.Linear(d_model, d_ff, bias=bias1)
        self.layer2 = torch.nn.Linear(d_ff, d_model, bias=bias2)
        self.dropout = torch.nn.Dropout(dropout)
        self.activation = activation
        self.is_gated = is_gated
        if is_gated:
            self.linear_v = torch.nn.Linear(d_model, d_ff, bias=bias_gate)

    def forward(self, x):
        g = self.activation(self.layer1(x))
        x = g * self.linear_v(x) if self.is_gated else g
        return self.layer2(self.dropout(x))


torch.manual_seed(7)
ffn = FeedForward(4, 8, dropout=0.0, activation=torch.nn.SiLU(), is_gated=True, bias_gate=False).eval()
torch.save(ffn.state_dict(), "feed_forward.pt")
x = torch.randn(3, 4)
with torch.no_grad():
    y = ffn(x)
write_safetensors("feed_forward_io.safetensors",
                  collections.OrderedDict([("input", x.numpy()), ("output", y.numpy())]))
