#!/usr/bin/python3
"""Parses a safetensors file written by xgrad with json + numpy only, by the
published format, and checks it holds what test_serialize.cpp wrote:
  a: float32 [2, 3] = arange(6) / 2, b: float64 [] = -1.25, c: int64 [4] = [0, -1, 2, -3],
  e: float32 [0, 2], and metadata {"producer": "xgrad"}. Exit status 0 on success."""
import json
import struct
import sys

import numpy as np

raw = open(sys.argv[1], "rb").read()
(size,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + size])
data = raw[8 + size:]
types = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def tensor(name):
    entry = header[name]
    begin, end = entry["data_offsets"]
    return np.frombuffer(data[begin:end], dtype=types[entry["dtype"]]).reshape(entry["shape"])


assert header["__metadata__"] == {"producer": "xgrad"}, header["__metadata__"]
assert [k for k in header if k != "__metadata__"] == ["a", "b", "c", "e"], list(header)
assert np.array_equal(tensor("a"), np.arange(6, dtype=np.float32).reshape(2, 3) / 2)
assert tensor("b").shape == () and tensor("b") == -1.25
assert np.array_equal(tensor("c"), np.array([0, -1, 2, -3]))
assert tensor("e").shape == (0, 2)
print("python read the xgrad file: ok")
