#!/usr/bin/python3
"""Checks that a safetensors file holds, bit for bit, the tensors of a torch.save file.

    check_safetensors_with_torch.py FILE.safetensors FILE.pt

The safetensors file is parsed by hand, by the published format, so that no
reader of ours is involved: an 8-byte little-endian header length, a JSON
object mapping each name to {"dtype", "shape", "data_offsets"} (plus an
optional "__metadata__" of strings), then the data, which the tensors' byte
ranges tile exactly. numpy has no bfloat16, so each tensor is rebuilt by
torch.frombuffer on its bytes and .view(dtype). The .pt is read by
torch.load(weights_only=True). Both must hold the same keys in the same order
(the safetensors header's order), each with the same dtype, shape and bytes.
Exit status 0 when all holds; otherwise a message says what did not.
test_safetensors_dtypes.cpp runs it on files xg::save wrote, and
reference/gen_safetensors_dtypes.py on the files it writes.
"""
import collections
import json
import struct
import sys

CODES = ["F32", "F64", "I64", "BOOL", "F16", "BF16", "I32", "I16", "I8", "U8"]


def fail(message):
    print("check_safetensors_with_torch.py: " + message)
    sys.exit(1)


def import_torch():
    try:
        import torch
    except ImportError as e:
        fail(f"cannot import torch ({e}): the test needs PyTorch 1.13 for /usr/bin/python3 "
             "(Debian: apt install python3-torch)")
    return torch


def torch_dtypes(torch):
    """safetensors' dtype codes, as the safetensors library maps them to torch."""
    return dict(zip(CODES, [torch.float32, torch.float64, torch.int64, torch.bool, torch.float16,
                            torch.bfloat16, torch.int32, torch.int16, torch.int8, torch.uint8]))


def parse_header(raw, path):
    if len(raw) < 8:
        fail(f"{path}: expected at least 8 bytes (got {len(raw)})")
    (size,) = struct.unpack("<Q", raw[:8])
    if size > len(raw) - 8:
        fail(f"{path}: the header length {size} runs past the end ({len(raw)} bytes)")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            fail(f"{path}: duplicate keys in the header: {keys}")
        return collections.OrderedDict(pairs)

    header = json.loads(raw[8:8 + size].decode("utf-8"), object_pairs_hook=no_duplicates)
    if not isinstance(header, dict):
        fail(f"{path}: expected the header to be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        fail(f"{path}: expected __metadata__ to map strings to strings (got {metadata})")
    return header, raw[8 + size:]


def check_tiling(header, data, path):
    ranges = sorted(tuple(e["data_offsets"]) for e in header.values())
    at = 0
    for begin, end in ranges:
        if begin != at or end < begin:
            fail(f"{path}: expected a tensor at data byte {at} (got [{begin}, {end}])")
        at = end
    if at != len(data):
        fail(f"{path}: the tensors end at data byte {at}, the data at {len(data)}")


def read_safetensors(torch, path):
    """name -> tensor, in the header's order, each rebuilt from its bytes."""
    header, data = parse_header(open(path, "rb").read(), path)
    check_tiling(header, data, path)
    dtypes = torch_dtypes(torch)
    out = collections.OrderedDict()
    for name, entry in header.items():
        if entry["dtype"] not in dtypes:
            fail(f"{path}: '{name}' has dtype code {entry['dtype']!r} (expected one of {CODES})")
        dtype, shape = dtypes[entry["dtype"]], entry["shape"]
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        numel = 1
        for d in shape:
            numel *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) != numel * itemsize:
            fail(f"{path}: '{name}' of shape {shape} needs {numel * itemsize} bytes "
                 f"(got {len(raw)})")
        if dtype == torch.bool and any(b > 1 for b in raw):
            fail(f"{path}: '{name}' is BOOL but holds bytes other than 0 and 1")
        if numel == 0:  # torch.frombuffer refuses an empty buffer
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            bytes_ = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
            out[name] = bytes_.view(dtype).reshape(shape)
    return out


def raw_bytes(torch, t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def compare(torch, safetensors_path, pt_path):
    """Fails unless both files hold the same tensors; returns how many."""
    ours = read_safetensors(torch, safetensors_path)
    theirs = torch.load(pt_path, weights_only=True)
    if list(ours.keys()) != list(theirs.keys()):
        fail(f"expected the keys of {pt_path}, {list(theirs.keys())}, in {safetensors_path} "
             f"(got {list(ours.keys())})")
    for name, t in ours.items():
        e = theirs[name]
        if t.dtype != e.dtype or list(t.shape) != list(e.shape):
            fail(f"'{name}': expected {e.dtype} {list(e.shape)} (got {t.dtype} {list(t.shape)})")
        if raw_bytes(torch, t) != raw_bytes(torch, e):
            fail(f"'{name}': expected the bytes {raw_bytes(torch, e).hex()} "
                 f"(got {raw_bytes(torch, t).hex()})")
    return len(ours)


def main():
    if len(sys.argv) != 3:
        fail("usage: check_safetensors_with_torch.py FILE.safetensors FILE.pt")
    torch = import_torch()
    n = compare(torch, sys.argv[1], sys.argv[2])
    print(f"check_safetensors_with_torch.py: torch {torch.__version__}: {n} tensors match: ok")


if __name__ == "__main__":
    main()
