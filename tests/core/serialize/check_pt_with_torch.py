#!/usr/bin/python3
"""Checks a .pt file xgrad wrote against what test_torch_write.cpp says it holds.

    check_pt_with_torch.py FILE MANIFEST [--same-bytes-as-torch-save | --zip-only]

MANIFEST is JSON: {"tensors": [{"key", "dtype" (torch's name: "bfloat16"),
"shape", "hex" (the row-major bytes), "same_as" (an earlier key of the very
same tensor, or null), "shares_storage_with" (an earlier key of another tensor
over the same storage, or null)}, ...]}, in the state dict's order.

Always, with Python's zipfile: every entry passes its CRC-32, the entries are
<root>/data.pkl, the storages <root>/data/<key> in string order and
<root>/version = "3\\n", and each entry's data starts at a multiple of 64.
Then, unless --zip-only, with PyTorch: torch.load(FILE, weights_only=True)
gives an OrderedDict with the manifest's keys in order, each tensor of its
dtype, shape and bytes, contiguous over a storage of its own size (shared
storages shared, the same tensor the same object), without requires_grad.
--same-bytes-as-torch-save: torch.save of the same tensors writes FILE's bytes.
Exit status 0 when all holds; otherwise a message says what did not.
"""
import collections
import io
import json
import struct
import sys
import zipfile


def fail(message):
    print("check_pt_with_torch.py: " + message)
    sys.exit(1)


def check_zip(path):
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            fail(f"zip entry {bad} fails its CRC-32 check")
        infos = z.infolist()
        names = [i.filename for i in infos]
        root = names[0].split("/")[0]
        storages = [n for n in names[1:-1]]
        expected = ([f"{root}/data.pkl"] + sorted(storages, key=lambda n: n.split("/")[-1])
                    + [f"{root}/version"])
        if names != expected or not all(n.startswith(f"{root}/data/") for n in storages):
            fail(f"expected the entries data.pkl, data/<key> in string order, version (got {names})")
        if z.read(f"{root}/version") != b"3\n":
            fail(f"expected version 3 (got {z.read(f'{root}/version')!r})")
    raw = open(path, "rb").read()
    for info in infos:
        at = info.header_offset
        name_size, extra_size = struct.unpack("<HH", raw[at + 26:at + 30])
        start = at + 30 + name_size + extra_size
        if start % 64 != 0:
            fail(f"the data of {info.filename} starts at byte {start}, not a multiple of 64")


def raw_bytes(torch, t):
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def check_tensors(torch, sd, manifest):
    if type(sd) is not collections.OrderedDict:
        fail(f"expected an OrderedDict (got {type(sd).__name__})")
    keys = [e["key"] for e in manifest]
    if list(sd.keys()) != keys:
        fail(f"expected the keys {keys} (got {list(sd.keys())})")
    for e in manifest:
        t, key = sd[e["key"]], e["key"]
        if str(t.dtype) != "torch." + e["dtype"] or list(t.shape) != e["shape"]:
            fail(f"'{key}': expected {e['dtype']} {e['shape']} (got {t.dtype} {list(t.shape)})")
        if raw_bytes(torch, t).hex() != e["hex"]:
            fail(f"'{key}': expected bytes {e['hex']} (got {raw_bytes(torch, t).hex()})")
        if not t.is_contiguous() or t.storage_offset() != 0 or t.storage().size() != t.numel():
            fail(f"'{key}': expected a contiguous tensor over all of its storage")
        if t.requires_grad:
            fail(f"'{key}': expected requires_grad=False")
        if e["same_as"] is not None and t is not sd[e["same_as"]]:
            fail(f"'{key}': expected the very tensor '{e['same_as']}' is")
        other = e["shares_storage_with"]
        if other is not None and (t is sd[other] or t.data_ptr() != sd[other].data_ptr()):
            fail(f"'{key}': expected another tensor over the storage of '{other}'")


def rebuild(torch, manifest):
    """The state dict the manifest describes, as PyTorch tensors."""
    sd = collections.OrderedDict()
    for e in manifest:
        if e["same_as"] is not None:
            sd[e["key"]] = sd[e["same_as"]]
        elif e["shares_storage_with"] is not None:
            sd[e["key"]] = sd[e["shares_storage_with"]].detach()
        elif e["hex"]:
            dtype = getattr(torch, e["dtype"])
            raw = torch.frombuffer(bytearray.fromhex(e["hex"]), dtype=torch.uint8)
            sd[e["key"]] = raw.view(dtype).reshape(e["shape"]).clone()
        else:
            sd[e["key"]] = torch.empty(e["shape"], dtype=getattr(torch, e["dtype"]))
    return sd


def main():
    path, manifest_path = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    manifest = json.load(open(manifest_path))["tensors"]
    check_zip(path)
    if mode == "--zip-only":
        print("check_pt_with_torch.py: zip ok")
        return
    try:
        import torch
    except ImportError as e:
        fail(f"cannot import torch ({e}): the test needs PyTorch 1.13 for /usr/bin/python3 "
             "(Debian: apt install python3-torch)")
    check_tensors(torch, torch.load(path, weights_only=True), manifest)
    if mode == "--same-bytes-as-torch-save":
        buffer = io.BytesIO()  # a file object: PyTorch names the folder "archive", as xgrad does
        torch.save(rebuild(torch, manifest), buffer)
        ours, theirs = open(path, "rb").read(), buffer.getvalue()
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                      min(len(ours), len(theirs)))
            fail(f"torch.save writes other bytes: the first difference is at byte {at} "
                 f"(xgrad's file has {len(ours)} bytes, torch.save's {len(theirs)})")
    print(f"check_pt_with_torch.py: torch {torch.__version__} read {len(manifest)} tensors: ok")


if __name__ == "__main__":
    main()
