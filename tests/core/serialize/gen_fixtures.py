#!/usr/bin/python3
"""Writes the interop fixtures for test_serialize.cpp (run: /usr/bin/python3 gen_fixtures.py).

- python_written.safetensors: written from the published format with json + numpy
  only (no safetensors library), to prove xgrad reads what others write.
- feed_forward.pt: torch.save(state_dict) of a PyTorch gated FeedForward shaped like
  labml's, plus feed_forward_io.safetensors with an input and PyTorch's output for it.
- views.pt / views_legacy.pt: one state_dict of views (tied weights, a transpose, a row,
  stride-0 expanded tensors, float64/int64, a scalar, an empty tensor) in the zip and in the
  pre-1.6 (_use_new_zipfile_serialization=False) formats.
- tied.pt: tied embeddings alone, {"embed.weight": w, "head.weight": w}.
- checkpoint.pt / checkpoint_legacy.pt: a training checkpoint {"model", "optimizer" (Adam
  after one step), "epoch", "config"} in both formats.
- torch_expected.safetensors: contiguous copies of what those files hold, as torch.load
  returns them ("model.<key>" for the checkpoint's model).
- past_end.pt, huge_shape.pt: torch.save files with their pickle edited to describe a view
  past the end of its storage, and a shape [0, 2^62, 4] whose element count overflows.
"""
import collections
import json
import os
import struct
import zipfile

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


def views():
    torch.manual_seed(11)
    w = torch.randn(4, 3)
    return collections.OrderedDict([
        ("embed.weight", w),
        ("head.weight", w),  # tied: the same tensor twice
        ("head_t", w.t()),  # another view of the same storage
        ("row", w[1]),  # storage offset 3
        ("expanded", torch.arange(3.0).expand(4, 3)),  # stride (0, 1)
        ("position_ids", torch.arange(5).expand(1, -1)),  # int64, stride (0, 1)
        ("double", torch.randn(2, 2, dtype=torch.float64)),
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 3)),
    ])


def checkpoint():
    torch.manual_seed(5)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3,
            "config": {"lr": 1e-3, "tags": ["adam", "tiny"], "seed": None, "ema": True}}


def with_pickle_edited(source, path, old, new):
    """Writes `source`'s zip to `path` with `old` replaced by `new`, once, in data.pkl."""
    with zipfile.ZipFile(source) as z:
        entries = [(info.filename, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            if name.endswith("/data.pkl"):
                assert data.count(old) == 1, (path, data.count(old))
                data = data.replace(old, new)
            z.writestr(name, data)
    os.remove(source)


torch.save(views(), "views.pt")
tied = views()
torch.save(collections.OrderedDict((k, tied[k]) for k in ("embed.weight", "head.weight")), "tied.pt")
torch.save(views(), "views_legacy.pt", _use_new_zipfile_serialization=False)
torch.save(checkpoint(), "checkpoint.pt")
torch.save(checkpoint(), "checkpoint_legacy.pt", _use_new_zipfile_serialization=False)
expected = collections.OrderedDict((k, v.contiguous().numpy()) for k, v in views().items())
for k, v in checkpoint()["model"].items():
    expected["model." + k] = v.numpy()
write_safetensors("torch_expected.safetensors", expected)

# w[1:] (offset 1, size [5]) of a 6-element storage, edited to size [6]: one past the end.
torch.save({"t": torch.arange(6.0)[1:]}, "past_end_source.pt")
with_pickle_edited("past_end_source.pt", "past_end.pt", b"K\x01K\x05\x85", b"K\x01K\x06\x85")
# An empty [0, 3, 4], edited to [0, 2^62, 4]: the count of the non-zero dims overflows.
torch.save({"t": torch.zeros(0, 3, 4)}, "huge_shape_source.pt")
with_pickle_edited("huge_shape_source.pt", "huge_shape.pt", b"K\x00K\x03K\x04\x87",
                   b"K\x00\x8a\x08" + struct.pack("<q", 2**62) + b"K\x04\x87")
