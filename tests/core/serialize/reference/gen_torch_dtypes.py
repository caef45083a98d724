#!/usr/bin/env python3
"""Writes the torch.save files of every dtype that test_torch_write.cpp loads:

  torch_dtypes.pt         per dtype a [3, 4] tensor of edge values, a 0-d one and
                          an empty [0, 3] one; then "tied.weight" and "tied.head",
                          one tensor saved twice. Written through a file object,
                          so its folder is "archive", as xg::save names it: xgrad
                          re-saves it byte for byte.
  torch_dtypes_views.pt   per dtype views of the [3, 4] tensor: its transpose, its
                          row 2 and its column 1 (strides and offsets to gather).
  torch_dtypes_legacy.pt  torch_dtypes.pt's dict in the pre-1.6 format.

The values are bit patterns (NaNs with payloads, infinities, subnormals, the
extremes of each integer type), listed again in test_torch_write.cpp.
Run with PyTorch 1.13:
    /usr/bin/python3 tests/core/serialize/reference/gen_torch_dtypes.py
"""
import collections
import os

import torch

# Per dtype, in xgrad's Dtype order: the element size and 12 values as bit
# patterns (integers as the two's complement of their value).
SPECIALS = collections.OrderedDict([
    (torch.float32, (4, [0x7FC00000, 0xFFC00001, 0x7FA00000, 0x7F800000, 0xFF800000, 0x00000001,
                         0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x80000000, 0x3FC00000, 0x00800000])),
    (torch.float64, (8, [0x7FF8000000000000, 0xFFF8000000000001, 0x7FF4000000000000,
                         0x7FF0000000000000, 0xFFF0000000000000, 0x0000000000000001,
                         0x800FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF,
                         0x8000000000000000, 0x3FF8000000000000, 0x0010000000000000])),
    (torch.int64, (8, [-2**63, 2**63 - 1, 0, -1, 1, 2**31, -2**31 - 1, 2**32, -2**40, 255, 256, -7])),
    (torch.bool, (1, [1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1])),
    (torch.float16, (2, [0x7E00, 0xFE01, 0x7D00, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x7BFF, 0xFBFF,
                         0x8000, 0x3E00, 0x0400])),
    (torch.bfloat16, (2, [0x7FC0, 0xFFC1, 0x7FA0, 0x7F80, 0xFF80, 0x0001, 0x807F, 0x7F7F, 0xFF7F,
                          0x8000, 0x3FC0, 0x0080])),
    (torch.int32, (4, [-2**31, 2**31 - 1, 0, -1, 1, 2**15, -2**15 - 1, 65536, -70000, 255, 256, -7])),
    (torch.int16, (2, [-2**15, 2**15 - 1, 0, -1, 1, 128, -129, 255, 256, -300, 1000, -7])),
    (torch.int8, (1, [-128, 127, 0, -1, 1, 2, -2, 64, -64, 100, -100, -7])),
    (torch.uint8, (1, [0, 255, 1, 128, 127, 2, 254, 64, 16, 100, 200, 7])),
])


def name(dtype):
    return str(dtype).replace("torch.", "")


def specials(dtype):
    """The [3, 4] tensor of dtype's values, built from their bytes."""
    size, values = SPECIALS[dtype]
    raw = b"".join((v & ((1 << (8 * size)) - 1)).to_bytes(size, "little") for v in values)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(3, 4).clone()


def plain():
    sd = collections.OrderedDict()
    for dtype in SPECIALS:
        sd[name(dtype)] = specials(dtype)
        sd[name(dtype) + ".scalar"] = specials(dtype)[1, 2].clone()
        sd[name(dtype) + ".empty"] = torch.empty(0, 3, dtype=dtype)
    tied = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    sd["tied.weight"] = tied
    sd["tied.head"] = tied
    return sd


def views():
    sd = collections.OrderedDict()
    for dtype in SPECIALS:
        whole = specials(dtype)
        sd[name(dtype) + ".t"] = whole.t()
        sd[name(dtype) + ".row"] = whole[2]
        sd[name(dtype) + ".col"] = whole[:, 1]
    return sd


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "torch_dtypes.pt"), "wb") as f:
        torch.save(plain(), f)
    with open(os.path.join(here, "torch_dtypes_views.pt"), "wb") as f:
        torch.save(views(), f)
    torch.save(plain(), os.path.join(here, "torch_dtypes_legacy.pt"),
               _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
