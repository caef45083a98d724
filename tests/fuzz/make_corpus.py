#!/usr/bin/env python3
"""Writes the committed seed corpora in tests/fuzz/corpus/<target>/ and the handcrafted
regression inputs in tests/fuzz/regressions/<target>/ (run from anywhere).

Seeds are small, valid inputs that reach deep into each reader; libFuzzer
mutates from there. torch is not needed: .pt pickles are written with stand-in
torch classes that pickle exactly as torch's do.
"""
import collections
import io
import json
import pathlib
import pickle
import shutil
import struct
import sys
import types
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent
SERIALIZE = ROOT.parent / "core" / "serialize"


def write(target, name, data):
    folder = ROOT / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype code, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


# ---- stand-in torch, so pickle writes torch's globals ----
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils
for storage_name in ("FloatStorage", "DoubleStorage", "LongStorage"):
    cls = type(storage_name, (), {})
    cls.__module__ = "torch"
    setattr(torch, storage_name, cls)


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


def _rebuild_parameter(*args):
    raise NotImplementedError


for fn in (_rebuild_tensor_v2, _rebuild_parameter):
    fn.__module__ = "torch._utils"
    setattr(torch_utils, fn.__name__, fn)


class Storage:
    def __init__(self, kind, key, raw, item):
        self.kind, self.key, self.raw, self.numel = kind, key, raw, len(raw) // item


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.parameter = parameter

    def __reduce_ex__(self, protocol):
        inner = (torch_utils._rebuild_tensor_v2, self.args)
        if not self.parameter:
            return inner
        return (torch_utils._rebuild_parameter, (_Reduced(inner), False, collections.OrderedDict()))


class _Reduced:
    def __init__(self, reduced):
        self.reduced = reduced

    def __reduce_ex__(self, protocol):
        return self.reduced


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel)
        return None


def torch_zip(state, storages, protocol):
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=protocol).dump(state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buffer.getvalue())
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.raw)
        z.writestr("archive/version", "3\n")
    return buffer.getvalue(), out.getvalue()


def main():
    shutil.rmtree(ROOT / "corpus", ignore_errors=True)

    # safetensors: files the tests already use, plus every dtype, metadata and empty tensors.
    for name in ("python_written.safetensors", "feed_forward_io.safetensors"):
        write("safetensors", name, (SERIALIZE / name).read_bytes())
    write("safetensors", "empty", safetensors({}))
    write("safetensors", "dtypes", safetensors({
        "f32": ("F32", [2, 2], struct.pack("<4f", 1, -2, 0.5, 3)),
        "f64": ("F64", [3], struct.pack("<3d", 1e-300, -0.0, 7)),
        "i64": ("I64", [1, 2], struct.pack("<2q", -(2**62), 5)),
        "scalar": ("F32", [], struct.pack("<f", 4)),
        "zero": ("F64", [0, 3], b""),
    }, metadata={"format": "pt", "step": "7"}))

    # torch_pt: first byte 0 = whole file, 1 = data.pkl only (the harness zips it
    # next to storages "0".."7" of 4096 bytes).
    real = (SERIALIZE / "feed_forward.pt").read_bytes()
    write("torch_pt", "feed_forward_file", b"\0" + real)
    write("torch_pt", "feed_forward_pickle", b"\1" + zipfile.ZipFile(io.BytesIO(real)).read("feed_forward/data.pkl"))
    # Views (tied, transposed, stride-0) in the zip and the legacy (pre-1.6) format.
    for name in ("views.pt", "views_legacy.pt"):
        write("torch_pt", name.replace(".pt", "_file"), b"\0" + (SERIALIZE / name).read_bytes())
    f32 = Storage("FloatStorage", "0", struct.pack("<6f", *range(6)), 4)
    f64 = Storage("DoubleStorage", "1", struct.pack("<4d", 1, 2, 3, 4), 8)
    i64 = Storage("LongStorage", "2", struct.pack("<3q", 7, -8, 9), 8)
    state = collections.OrderedDict([
        ("weight", Tensor(f32, 0, [2, 3], [3, 1], parameter=True)),
        ("weight_t", Tensor(f32, 0, [3, 2], [1, 3])),  # a transposed (strided) view
        ("tail", Tensor(f32, 4, [2], [1])),
        ("double", Tensor(f64, 0, [2, 2], [2, 1])),
        ("index", Tensor(i64, 1, [2], [1])),
        ("scalar", Tensor(f64, 3, [], [])),
    ])
    for protocol in (2, 4):
        pkl, file = torch_zip(state, [f32, f64, i64], protocol)
        write("torch_pt", f"mixed_p{protocol}_file", b"\0" + file)
        write("torch_pt", f"mixed_p{protocol}_pickle", b"\1" + pkl)

    # load_state_dict: JSON headers for the harness's model (data: 1024 fixed bytes).
    shapes = collections.OrderedDict([
        ("0.weight", [6, 4]), ("0.bias", [6]), ("1.weight", [6]), ("1.bias", [6]),
        ("2.layer1.weight", [12, 6]), ("2.layer1.bias", [12]), ("2.layer2.weight", [6, 12]),
        ("2.layer2.bias", [6]), ("2.linear_v.weight", [12, 6]),
    ])

    def header(entries, dtype="F32"):
        out, offset = {}, 0
        size = 8 if dtype != "F32" else 4
        for name, shape in entries.items():
            n = size
            for d in shape:
                n *= d
            out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
            offset += n
        return json.dumps(out).encode()

    write("load_state_dict", "exact", header(shapes))
    write("load_state_dict", "missing", header(collections.OrderedDict(list(shapes.items())[:-1])))
    extra = collections.OrderedDict(shapes)
    extra["2.extra"] = [1]
    write("load_state_dict", "unexpected", header(extra))
    wrong = collections.OrderedDict(shapes)
    wrong["0.weight"] = [4, 6]
    write("load_state_dict", "wrong_shape", header(wrong))
    write("load_state_dict", "float64", header(collections.OrderedDict(list(shapes.items())[:4]), "F64"))
    write("load_state_dict", "int64", header(collections.OrderedDict([("1.weight", [6])]), "I64"))


def regressions():
    """Handcrafted inputs for the bugs fuzzing found (or would have): each crashed
    or leaked before its fix. Inputs libFuzzer finds are copied in as they are."""
    def put(target, name, data):
        folder = ROOT / "regressions" / target
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    # A zero-size tensor: memcpy from a null data() (UBSan).
    put("safetensors", "empty_tensor_memcpy_null", safetensors({"zero": ("F32", [0], b"")}))
    # LONG_BINPUT to memo index 2^32 - 1: the memo was a vector resized to 32 GiB.
    put("torch_pt", "memo_index_4g", b"\1\x80\x02]r\xff\xff\xff\xff.")
    # A list appended to itself: a shared_ptr cycle that leaked.
    put("torch_pt", "list_contains_itself", b"\1\x80\x02]q\x00h\x00a.")
    # Views that would read outside their storage or allocate without bound.
    f32 = Storage("FloatStorage", "0", struct.pack("<6f", *range(6)), 4)
    for name, tensor in {
        "negative_stride": Tensor(f32, 5, [3], [-2]),
        "stride_overflow": Tensor(f32, 0, [2, 2], [2**62, 2**62]),
        "size_overflow": Tensor(f32, 0, [2**40, 2**40, 0, 2**40], [0, 0, 0, 0]),
        "more_elements_than_storage": Tensor(f32, 0, [1 << 30], [0]),
    }.items():
        put("torch_pt", name, b"\0" + torch_zip(collections.OrderedDict([("t", tensor)]), [f32], 2)[1])
    # A stored zip entry whose header claims 4 GiB: read_entry allocated what it claimed.
    _, file = torch_zip(collections.OrderedDict([("t", Tensor(f32, 0, [6], [1]))]), [f32], 2)
    file = bytearray(file)
    for signature, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := file.find(signature, start)) >= 0:
            file[start + at:start + at + 4] = struct.pack("<I", 0xFFFFFFF0)
            start += 4
    put("torch_pt", "zip_size_claims_4g", b"\0" + bytes(file))


if __name__ == "__main__":
    main()
    regressions()
