#!/usr/bin/python3
"""Writes the committed seed corpora in tests/fuzz/corpus/<target>/ and the handcrafted
regression inputs in tests/fuzz/regressions/<target>/ (run from anywhere, with
PyTorch 1.13: /usr/bin/python3 tests/fuzz/make_corpus.py).

Seeds are small, valid inputs that reach deep into each reader; libFuzzer
mutates from there. Most .pt pickles are written with stand-in torch classes
that pickle exactly as torch's do, which leaves every storage, view and pickle
protocol to choose (the regression inputs need views torch.save never writes);
the seeds that are xg::save's output are written by torch.save itself
(torch_save_seeds).
"""
import collections
import contextlib
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


def safetensors(tensors, metadata=None, pad=True):
    """tensors: name -> (dtype code, shape, raw bytes). With pad, the header is
    spaced to a multiple of 8 bytes, as xg::save writes it; without, to an odd
    length, so the data start at an odd byte, as other writers may."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8 if pad else 1 - len(text) % 2)
    return struct.pack("<Q", len(text)) + text + data


# ---- stand-in torch, so pickle writes torch's globals ----
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
for storage_name in ("FloatStorage", "DoubleStorage", "LongStorage", "HalfStorage",
                     "BFloat16Storage", "IntStorage", "ShortStorage", "CharStorage",
                     "ByteStorage", "BoolStorage"):
    cls = type(storage_name, (), {})
    cls.__module__ = "torch"
    setattr(torch, storage_name, cls)


@contextlib.contextmanager
def stand_in_torch():
    """pickle writes a global only if the module it names holds that very object,
    so the stand-ins are "torch" while they are pickled, and real torch
    (torch_save_seeds) is "torch" the rest of the time."""
    names = ("torch", "torch._utils")
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils
    try:
        yield
    finally:
        for name in names:
            if saved[name] is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved[name]


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
    with stand_in_torch():
        TorchPickler(buffer, protocol=protocol).dump(state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        entries = [("archive/data.pkl", buffer.getvalue())]
        entries += [(f"archive/data/{s.key}", s.raw) for s in storages]
        entries.append(("archive/version", b"3\n"))
        for name, data in entries:
            # A fixed time, as torch.save writes: the corpora come out the same every run.
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o600 << 16  # what writestr gives an entry named by a string
            z.writestr(info, data)
    return buffer.getvalue(), out.getvalue()


def safetensors_seeds():
    """Files the tests already use, plus every dtype, metadata, empty tensors and
    a file laid out as other writers may: header unpadded, tensors at odd offsets."""
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
    storage = collections.OrderedDict([
        ("u8", ("U8", [3], bytes([0, 255, 7]))),  # first, so the others start at odd offsets
        ("f16", ("F16", [2, 2], struct.pack("<4e", 1, -2, 6e-8, 65504))),
        ("bf16", ("BF16", [3], struct.pack("<3H", 0x3F80, 0xFF80, 0x7FC1))),
        ("i32", ("I32", [2], struct.pack("<2i", -2**31, 7))),
        ("i16", ("I16", [3], struct.pack("<3h", -2**15, 2**15 - 1, 0))),
        ("i8", ("I8", [2], struct.pack("<2b", -128, 127))),
        ("mask", ("BOOL", [2, 2], bytes([1, 0, 0, 1]))),
        ("inf", ("F16", [], struct.pack("<e", float("inf")))),
        ("none", ("BOOL", [0], b"")),
    ])
    write("safetensors", "storage_dtypes", safetensors(storage, metadata={"format": "pt"}))
    write("safetensors", "storage_dtypes_unaligned", safetensors(storage, pad=False))


def torch_pt_seeds():
    """First byte 0 = whole file, 1 = data.pkl only (the harness zips it next to
    storages "0".."7" of 4096 bytes)."""
    real = (SERIALIZE / "feed_forward.pt").read_bytes()
    write("torch_pt", "feed_forward_file", b"\0" + real)
    write("torch_pt", "feed_forward_pickle", b"\1" + zipfile.ZipFile(io.BytesIO(real)).read("feed_forward/data.pkl"))
    # Views (tied, transposed, stride-0) in the zip and the legacy (pre-1.6) format,
    # and every dtype in the legacy format.
    for name in ("views.pt", "views_legacy.pt"):
        write("torch_pt", name.replace(".pt", "_file"), b"\0" + (SERIALIZE / name).read_bytes())
    legacy = (SERIALIZE / "reference" / "torch_dtypes_legacy.pt").read_bytes()
    write("torch_pt", "dtypes_legacy_file", b"\0" + legacy)
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
    # Views of every storage dtype; bool last, since over the harness's storages
    # (bytes other than 0 and 1) it is refused.
    kinds = [("HalfStorage", 2), ("BFloat16Storage", 2), ("IntStorage", 4), ("ShortStorage", 2),
             ("CharStorage", 1), ("ByteStorage", 1), ("BoolStorage", 1)]

    def raw(kind, item):  # 8 elements; a bool is 0 or 1
        return bytes(b % 2 if kind == "BoolStorage" else b for b in range(8 * item))

    storages = [Storage(kind, str(k), raw(kind, item), item) for k, (kind, item) in enumerate(kinds)]
    half, bf16, i32, i16, i8, u8, flags = storages
    state = collections.OrderedDict([
        ("half", Tensor(half, 0, [2, 3], [3, 1], parameter=True)),
        ("bf16_t", Tensor(bf16, 0, [3, 2], [1, 3])),
        ("int", Tensor(i32, 5, [3], [1])),
        ("short_t", Tensor(i16, 0, [2, 2], [1, 2])),
        ("char_every_other", Tensor(i8, 1, [3], [2])),
        ("byte_scalar", Tensor(u8, 7, [], [])),
        ("byte_empty", Tensor(u8, 0, [0, 4], [4, 1])),
        ("bool", Tensor(flags, 0, [2, 4], [4, 1])),
    ])
    pkl, file = torch_zip(state, storages, 2)
    write("torch_pt", "storage_dtypes_views_file", b"\0" + file)
    write("torch_pt", "storage_dtypes_views_pickle", b"\1" + pkl)


def import_real_torch():
    try:
        import torch as real_torch
    except ImportError as e:
        sys.exit(f"make_corpus.py: cannot import torch ({e}); run it with /usr/bin/python3, "
                 "which has PyTorch 1.13 (Debian: apt install python3-torch)")
    return real_torch


def torch_save_seeds(real_torch):
    """The .pt writer's output as seeds, without building xgrad: torch.save's
    files of the storage dtypes, which xg::save writes byte for byte for the same
    tensors (test_torch_write.cpp checks that it does). Saved through a file
    object, so the zip's folder is "archive", as xg::save names it."""
    values = real_torch.tensor([[0, 1, -1], [2, -2, 3]])
    state = collections.OrderedDict()
    for dtype in (real_torch.float16, real_torch.bfloat16, real_torch.int32, real_torch.int16,
                  real_torch.int8, real_torch.uint8, real_torch.bool):
        state[str(dtype).replace("torch.", "")] = values.to(dtype)
    state["int32.scalar"] = real_torch.tensor(-7, dtype=real_torch.int32)
    state["tied.head"] = state["float16"]  # one tensor under two keys: one storage
    buffer = io.BytesIO()
    real_torch.save(state, buffer)
    file = buffer.getvalue()
    write("torch_pt", "xg_save_dtypes_file", b"\0" + file)
    # 8 storages, "0".."7": the pickle fits the harness's storages.
    pkl = zipfile.ZipFile(io.BytesIO(file)).read("archive/data.pkl")
    write("torch_pt", "xg_save_dtypes_pickle", b"\1" + pkl)


def load_state_dict_seeds():
    """JSON headers for the harness's model (data: up to 1024 fixed bytes)."""
    shapes = collections.OrderedDict([
        ("0.weight", [6, 4]), ("0.bias", [6]), ("1.weight", [6]), ("1.bias", [6]),
        ("2.layer1.weight", [12, 6]), ("2.layer1.bias", [12]), ("2.layer2.weight", [6, 12]),
        ("2.layer2.bias", [6]), ("2.linear_v.weight", [12, 6]),
    ])
    sizes = {"F32": 4, "F64": 8, "I64": 8, "F16": 2, "BF16": 2, "I8": 1, "BOOL": 1}

    def header(entries, dtype="F32"):
        out, offset = {}, 0
        for name, shape in entries.items():
            n = sizes[dtype]
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
    # The storage dtypes under the model's keys.
    write("load_state_dict", "float16", header(shapes, "F16"))
    write("load_state_dict", "bfloat16",
          header(collections.OrderedDict(list(shapes.items())[:4]), "BF16"))
    write("load_state_dict", "int8", header(collections.OrderedDict([("1.bias", [6])]), "I8"))
    write("load_state_dict", "bool", header(collections.OrderedDict([("0.bias", [6])]), "BOOL"))


def sharded_index_seeds():
    """Index files for the two shards the harness writes beside them:
    model-00001-of-00002.safetensors holds "a.weight" (float16 [2, 3]) and "a.bias"
    (int8 [3]); model-00002-of-00002.safetensors "b.weight" (bfloat16 [3]) and
    "b.mask" (bool [2]): 23 bytes of tensors."""
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    weight_map = {"a.weight": first, "a.bias": first, "b.weight": second, "b.mask": second}

    def index(changes, drop=()):
        """As transformers writes one: keys sorted, two-space indent, a final newline."""
        mapping = {k: v for k, v in {**weight_map, **changes}.items() if k not in drop}
        body = {"metadata": {"total_size": 23}, "weight_map": mapping}
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    write("sharded_index", "valid", index({}))
    compact = json.dumps({"weight_map": weight_map}, separators=(",", ":"))  # no metadata
    write("sharded_index", "valid_compact", compact.encode())
    write("sharded_index", "key_missing_from_shard", index({"c.weight": second}))
    write("sharded_index", "key_not_in_weight_map", index({}, drop=("b.mask",)))
    write("sharded_index", "key_in_other_shard", index({"a.bias": second}))
    write("sharded_index", "shard_name_escapes", index({"a.bias": "../" + first}))
    write("sharded_index", "shard_missing", index({"b.mask": "model-00003-of-00003.safetensors"}))
    write("sharded_index", "shard_is_the_index", index({"b.mask": "model.safetensors.index.json"}))
    write("sharded_index", "shard_not_a_string", index({"b.mask": 2}))
    write("sharded_index", "weight_map_not_an_object", b'{"weight_map": ["a.weight"]}\n')
    write("sharded_index", "malformed", index({})[:40])


def main():
    real_torch = import_real_torch()  # before anything is removed
    shutil.rmtree(ROOT / "corpus", ignore_errors=True)
    safetensors_seeds()
    torch_pt_seeds()
    torch_save_seeds(real_torch)
    load_state_dict_seeds()
    sharded_index_seeds()


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
