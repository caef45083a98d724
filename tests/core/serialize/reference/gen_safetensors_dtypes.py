#!/usr/bin/python3
"""Writes the safetensors files of every dtype that test_safetensors_dtypes.cpp loads:

  safetensors_dtypes.safetensors            per dtype a [3, 4] tensor of edge values
                                            ("float32"), a 0-d one ("float32.scalar")
                                            and an empty [0, 3] one ("float32.empty"),
                                            then "odd", a uint8 [3]; the data in key
                                            order and the header spaced to a multiple
                                            of 8 bytes, as xg::save writes them (the
                                            safetensors library pads it so too).
  safetensors_dtypes_unaligned.safetensors  the same tensors, header in the same order,
                                            but the header is not padded (the data start
                                            at an odd byte) and "odd" comes first in the
                                            data, then the dtypes of 2 bytes or more, so
                                            those start at odd offsets: legal files,
                                            which other writers make.
  safetensors_dtypes.pt                     the same tensors by torch.save: the expected
                                            values, which xgrad's .pt reader and PyTorch read.

Neither the safetensors library nor a reader of ours is used: the files are
written by the published format here, and then checked against the .pt by
check_safetensors_with_torch.py. The values are bit patterns (NaNs with
payloads, signalling ones too, infinities, subnormals, -0, integer extremes),
listed again in test_safetensors_dtypes.cpp. Run with PyTorch 1.13:
    /usr/bin/python3 tests/core/serialize/reference/gen_safetensors_dtypes.py
"""
import collections
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import check_safetensors_with_torch as check  # noqa: E402

# Per dtype, in xgrad's Dtype order: safetensors' code, the element size and 12
# values as bit patterns (integers as the two's complement of their value).
SPECIALS = collections.OrderedDict([
    (torch.float32, ("F32", 4, [
        0x7FC00000, 0xFFC12345, 0x7F800001, 0x7FBFFFFF, 0x7F800000, 0xFF800000,
        0x00000001, 0x807FFFFF, 0x80000000, 0x7F7FFFFF, 0x00800000, 0x3F800001])),
    (torch.float64, ("F64", 8, [
        0x7FF8000000000000, 0xFFF8DEADBEEF0001, 0x7FF0000000000001, 0x7FF7FFFFFFFFFFFF,
        0x7FF0000000000000, 0xFFF0000000000000, 0x0000000000000001, 0x800FFFFFFFFFFFFF,
        0x8000000000000000, 0x7FEFFFFFFFFFFFFF, 0x0010000000000000, 0x3FF0000000000001])),
    (torch.int64, ("I64", 8, [
        -2**63, 2**63 - 1, 0, -1, 1, 2**53 + 1, -(2**53 + 1), 2**32, -2**31, 2**31 - 1, 255, -7])),
    (torch.bool, ("BOOL", 1, [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1])),
    (torch.float16, ("F16", 2, [
        0x7E00, 0xFE5A, 0x7C01, 0x7DFF, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x8000, 0x7BFF, 0x0400,
        0x3C01])),
    (torch.bfloat16, ("BF16", 2, [
        0x7FC0, 0xFFA5, 0x7F81, 0x7FBF, 0x7F80, 0xFF80, 0x0001, 0x807F, 0x8000, 0x7F7F, 0x0080,
        0x3F81])),
    (torch.int32, ("I32", 4, [
        -2**31, 2**31 - 1, 0, -1, 1, 2**24 + 1, -(2**24 + 1), 65536, -65537, 255, 256, -128])),
    (torch.int16, ("I16", 2, [
        -2**15, 2**15 - 1, 0, -1, 1, 255, 256, -256, 16384, -129, 128, 1000])),
    (torch.int8, ("I8", 1, [-128, 127, 0, -1, 1, 64, -64, 100, -100, 2, -2, 7])),
    (torch.uint8, ("U8", 1, [0, 255, 1, 128, 127, 254, 2, 64, 16, 200, 100, 7])),
])
SCALAR_INDEX = 1  # the 0-d tensor holds the dtype's second value
ODD = bytes([0xA5, 0x00, 0xFF])  # "odd": 3 bytes, so what follows it starts at odd offsets


def name(dtype):
    return str(dtype).replace("torch.", "")


def raw_values(dtype):
    _, size, values = SPECIALS[dtype]
    return [(v & ((1 << (8 * size)) - 1)).to_bytes(size, "little") for v in values]


def from_bytes(dtype, raw, shape):
    if not raw:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


def tensors():
    """name -> (code, tensor), in key order."""
    out = collections.OrderedDict()
    for dtype, (code, _, _) in SPECIALS.items():
        values = raw_values(dtype)
        out[name(dtype)] = (code, from_bytes(dtype, b"".join(values), [3, 4]))
        out[name(dtype) + ".scalar"] = (code, from_bytes(dtype, values[SCALAR_INDEX], []))
        out[name(dtype) + ".empty"] = (code, torch.empty(0, 3, dtype=dtype))
    out["odd"] = ("U8", from_bytes(torch.uint8, ODD, [3]))
    return out


def write_safetensors(path, entries, data_order, pad):
    """The header lists `entries` in their order; the data holds them in `data_order`."""
    offsets, blobs, at = {}, [], 0
    for key in data_order:
        raw = check.raw_bytes(torch, entries[key][1])
        offsets[key] = [at, at + len(raw)]
        blobs.append(raw)
        at += len(raw)
    header = collections.OrderedDict([("__metadata__", {"format": "pt"})])
    for key, (code, t) in entries.items():
        header[key] = {"dtype": code, "shape": list(t.shape), "data_offsets": offsets[key]}
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    elif len(text) % 2 == 0:
        text += b" "  # trailing whitespace is valid JSON; now 8 + len(text) is odd
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    entries = tensors()
    aligned = os.path.join(HERE, "safetensors_dtypes.safetensors")
    unaligned = os.path.join(HERE, "safetensors_dtypes_unaligned.safetensors")
    expected = os.path.join(HERE, "safetensors_dtypes.pt")
    keys = list(entries)
    write_safetensors(aligned, entries, keys, pad=True)
    # "odd" first, then the wider dtypes (whose sizes are even), then the 1-byte ones:
    # every tensor of 2 or more bytes an element starts at an odd offset.
    wide = [k for k in keys if entries[k][1].element_size() > 1]
    narrow = [k for k in keys if k != "odd" and k not in wide]
    write_safetensors(unaligned, entries, ["odd"] + wide + narrow, pad=False)
    with open(expected, "wb") as f:  # a file object: the zip's folder is "archive"
        torch.save(collections.OrderedDict((k, t) for k, (_, t) in entries.items()), f)
    for path in (aligned, unaligned):
        n = check.compare(torch, path, expected)
        print(f"{os.path.basename(path)}: {n} tensors, each as torch.save wrote it")


if __name__ == "__main__":
    main()
