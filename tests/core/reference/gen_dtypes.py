#!/usr/bin/env python3
"""Generates dtypes_reference.hpp: what PyTorch does with the storage dtypes
(float16, bfloat16, int32, int16, int8, uint8) beside the compute ones, for
tests/core/test_dtypes.cpp.

Run from anywhere with Debian's PyTorch (tested with 1.13, AVX2 CPU):
    /usr/bin/python3 tests/core/reference/gen_dtypes.py

Every value is written as its raw bits, so the test compares exactly: a
float16 or bfloat16 as its 16 bits, a float32 as 32, a float64 as 64, an
integer as its two's complement in its own width, a bool as 0 or 1.

- conversions: Tensor.to between dtypes for the edge cases of each pair
  (ties, subnormals, overflow, NaN payloads, out-of-range integers). The
  rows of one (from, to) pair are converted as one tensor, as the test does,
  but for float64 NaNs to bfloat16 (see conversion_groups).
- dtypes, promote_types, result_types: torch's names and element sizes, the
  10 x 10 promote_types table, and result_type of every pair of dtypes with
  and without 0-d operands.
- full_cases: torch.full of a float value in every dtype (or its refusal).
- op_cases: ops on float16 and bfloat16 inputs of multiples of 1/8, whose
  reference is an op in float32 rounded once to the 16-bit type, as most of
  PyTorch's bfloat16 CPU kernels compute. Where PyTorch 1.13's own kernel
  does that, its result is recorded; where it has none (most float16 ops) or
  rounds intermediate results as well (bfloat16 gelu(approximate="tanh"),
  log_softmax, layer_norm), the row is "emulated": PyTorch's float32 op,
  rounded once, with torch_ulps saying how far 1.13's own kernel is. `exact`
  rows have inputs that make float32 accumulation exact, so the result is
  bit-exact; the others (transcendental functions, normalisations) allow 1 ulp.
- grad cases: a bfloat16 MLP's loss and gradients, and gradients through
  x.to(float16 / bfloat16).to(float32).
- print_cases: repr() of short float16, bfloat16 and small-integer tensors.
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "nn", "reference"))
from torch_layers import cpp_number, cpp_string, write_header  # noqa: E402

torch.set_printoptions(profile="default")

# In xgrad's Dtype order (core/include/xgrad/tensor.hpp).
DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
    "bool": torch.bool, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
}
WIDTH = {"float32": 32, "float64": 64, "int64": 64, "bool": 8, "float16": 16,
         "bfloat16": 16, "int32": 32, "int16": 16, "int8": 8, "uint8": 8}
# The signed integer type of each width, to reinterpret float bits.
SIGNED = {16: torch.int16, 32: torch.int32, 64: torch.int64}
NAME = {v: k for k, v in DTYPES.items()}


def signed(bits, width):
    return bits - (1 << width) if bits >> (width - 1) else bits


def from_bits(name, bits):
    """A 1-D tensor of dtype `name` holding exactly these bit patterns."""
    width = WIDTH[name]
    if name == "bool":
        return torch.tensor([b != 0 for b in bits], dtype=torch.bool)
    if name == "uint8":
        return torch.tensor(bits, dtype=torch.uint8)
    values = [signed(b, width) for b in bits]
    if name in ("int64", "int32", "int16", "int8"):
        return torch.tensor(values, dtype=DTYPES[name])
    return torch.tensor(values, dtype=SIGNED[width]).view(DTYPES[name])


def to_bits(t):
    """The bit patterns of t's elements, row-major."""
    name = NAME[t.dtype]
    width = WIDTH[name]
    flat = t.detach().reshape(-1)
    if name == "bool":
        return [int(v) for v in flat.tolist()]
    if t.is_floating_point():
        flat = flat.view(SIGNED[width])
    return [v & ((1 << width) - 1) for v in flat.tolist()]


def hexbits(bits, width):
    return "0x%0*X" % (width // 4, bits)


def f32(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


# ---- Conversions ----------------------------------------------------------

# float32 sources for float16 and bfloat16: (what, bits).
FLOAT32_EDGES = [
    ("+0", f32(0.0)), ("-0", f32(-0.0)),
    # float16 subnormals are multiples of 2^-24 below 2^-14.
    ("2^-24: smallest float16 subnormal", f32(2**-24)), ("-2^-24", f32(-(2**-24))),
    ("2^-25: float16 tie between 0 and 2^-24 (to 0)", f32(2**-25)), ("-2^-25", f32(-(2**-25))),
    ("just above 2^-25", f32(2**-25) + 1), ("just below 2^-25", f32(2**-25) - 1),
    ("2^-26", f32(2**-26)),
    ("3 * 2^-25: float16 tie (to 2 * 2^-24)", f32(3 * 2**-25)),
    ("5 * 2^-25: float16 tie (to 2 * 2^-24)", f32(5 * 2**-25)),
    ("7 * 2^-25: float16 tie (to 4 * 2^-24)", f32(7 * 2**-25)),
    ("-7 * 2^-25", f32(-7 * 2**-25)),
    ("1022.5 * 2^-24: float16 tie (to 1022 * 2^-24)", f32(1022.5 * 2**-24)),
    ("1023 * 2^-24: largest float16 subnormal", f32(1023 * 2**-24)),
    ("-1023 * 2^-24", f32(-1023 * 2**-24)),
    ("1023.5 * 2^-24: float16 tie (up to the smallest normal)", f32(1023.5 * 2**-24)),
    ("just below 2^-14", f32(2**-14) - 1),
    ("2^-14: smallest float16 normal", f32(2**-14)), ("-2^-14", f32(-(2**-14))),
    # bfloat16 subnormals are float32 subnormals with 16 zero low bits.
    ("smallest float32 subnormal", 0x00000001), ("-smallest float32 subnormal", 0x80000001),
    ("0x00007FFF", 0x00007FFF), ("0x00008000: bfloat16 tie (to 0)", 0x00008000),
    ("0x00008001", 0x00008001),
    ("0x00010000: smallest bfloat16 subnormal", 0x00010000),
    ("0x00018000: bfloat16 tie (to 0x0002)", 0x00018000), ("0x00028000: bfloat16 tie (to 0x0002)", 0x00028000),
    ("-0x00018000", 0x80018000),
    ("0x007F0000: largest bfloat16 subnormal", 0x007F0000),
    ("0x007F8000: bfloat16 tie (up to the smallest normal)", 0x007F8000),
    ("0x007FFFFF: largest float32 subnormal", 0x007FFFFF),
    ("2^-126: smallest float32 and bfloat16 normal", 0x00800000),
    ("1", f32(1.0)), ("-1", f32(-1.0)),
    # Ties between neighbours, both ways to even, and one float32 ulp either side.
    ("1 + 2^-11: float16 tie (to 1)", f32(1 + 2**-11)),
    ("just above 1 + 2^-11", f32(1 + 2**-11) + 1), ("just below 1 + 2^-11", f32(1 + 2**-11) - 1),
    ("1 + 3 * 2^-11: float16 tie (up to 1 + 2^-9)", f32(1 + 3 * 2**-11)),
    ("just above 1 + 3 * 2^-11", f32(1 + 3 * 2**-11) + 1),
    ("just below 1 + 3 * 2^-11", f32(1 + 3 * 2**-11) - 1),
    ("-(1 + 2^-11)", f32(-(1 + 2**-11))), ("-(1 + 3 * 2^-11)", f32(-(1 + 3 * 2**-11))),
    ("1 + 2^-8: bfloat16 tie (to 1)", f32(1 + 2**-8)),
    ("just above 1 + 2^-8", f32(1 + 2**-8) + 1), ("just below 1 + 2^-8", f32(1 + 2**-8) - 1),
    ("1 + 3 * 2^-8: bfloat16 tie (up to 1 + 2^-6)", f32(1 + 3 * 2**-8)),
    ("just above 1 + 3 * 2^-8", f32(1 + 3 * 2**-8) + 1),
    ("just below 1 + 3 * 2^-8", f32(1 + 3 * 2**-8) - 1),
    ("-(1 + 3 * 2^-8)", f32(-(1 + 3 * 2**-8))),
    ("1024.5: float16 tie (to 1024)", f32(1024.5)), ("1025.5: float16 tie (to 1026)", f32(1025.5)),
    ("257: bfloat16 tie (to 256)", f32(257.0)), ("259: bfloat16 tie (to 260)", f32(259.0)),
    ("2049", f32(2049.0)), ("2051", f32(2051.0)),
    ("0.1", f32(0.1)), ("1/3", f32(1 / 3)), ("-2.5", f32(-2.5)), ("pi", f32(math.pi)),
    ("1e-3", f32(1e-3)), ("6e-5", f32(6e-5)), ("-6e-8", f32(-6e-8)),
    # The top of the float16 range: 65504 is the largest; 65520 is halfway to 2^16.
    ("65504: largest float16", f32(65504.0)), ("-65504", f32(-65504.0)),
    ("65519", f32(65519.0)), ("just below 65520", f32(65520.0) - 1),
    ("65520: float16 tie (to infinity)", f32(65520.0)), ("-65520", f32(-65520.0)),
    ("65536", f32(65536.0)), ("1e10", f32(1e10)),
    # The top of the bfloat16 range.
    ("0x7F7F0000: largest bfloat16", 0x7F7F0000),
    ("0x7F7F7FFF: just below a bfloat16 tie", 0x7F7F7FFF),
    ("0x7F7F8000: bfloat16 tie (to infinity)", 0x7F7F8000), ("-0x7F7F8000", 0xFF7F8000),
    ("FLT_MAX", 0x7F7FFFFF), ("-FLT_MAX", 0xFF7FFFFF),
    ("+inf", 0x7F800000), ("-inf", 0xFF800000),
    ("quiet NaN", 0x7FC00000), ("-quiet NaN", 0xFFC00000),
    ("quiet NaN, payload 0x12345", 0x7FC12345), ("-quiet NaN, payload 0x155555", 0xFFD55555),
    ("signalling NaN, payload 1", 0x7F800001), ("-signalling NaN, payload 1", 0xFF800001),
    ("signalling NaN, payload 0x200000", 0x7FA00000),
    ("signalling NaN, payload 0x2000", 0x7F802000),
    ("NaN, all ones", 0x7FFFFFFF), ("-NaN, all ones", 0xFFFFFFFF),
]

# float64 sources: the float32 edges widened (exactly), then what only a
# double can hold. PyTorch rounds a double to float32 first, then to 16 bits.
FLOAT64_EXTRA = [
    ("1 + 2^-11 + 2^-40: float32 rounds it to a float16 tie", f64(1 + 2**-11 + 2**-40)),
    ("1 + 2^-8 + 2^-30: float32 rounds it to a bfloat16 tie", f64(1 + 2**-8 + 2**-30)),
    ("2^-25 + 2^-60: float32 rounds it to a float16 tie", f64(2**-25 + 2**-60)),
    ("65519.999999: float32 rounds it to 65520", f64(65519.999999)),
    ("65519.99", f64(65519.99)),
    ("just below 0x7F7F8000: float32 rounds it to a bfloat16 tie",
     f64(struct.unpack("<f", struct.pack("<I", 0x7F7F8000))[0] * (1 - 2**-40))),
    ("0.1", f64(0.1)), ("1/3", f64(1 / 3)), ("-1e-300", f64(-1e-300)),
    ("5e-324: smallest float64 subnormal", 0x0000000000000001),
    ("-5e-324", 0x8000000000000001),
    ("1e300", f64(1e300)), ("-1e300", f64(-1e300)), ("DBL_MAX", 0x7FEFFFFFFFFFFFFF),
    ("quiet NaN", 0x7FF8000000000000), ("-quiet NaN", 0xFFF8000000000000),
    ("signalling NaN, payload 1", 0x7FF0000000000001),
    ("signalling NaN, payload 2^50", 0x7FF4000000000000),
    ("quiet NaN, payload 0x123456789", 0x7FF8000123456789),
    ("-NaN, all ones", 0xFFFFFFFFFFFFFFFF),
]


def widen(bits32):
    return f64(struct.unpack("<f", struct.pack("<I", bits32))[0])


FLOAT64_EDGES = [(w, widen(b)) for w, b in FLOAT32_EDGES
                 if (b & 0x7FFFFFFF) <= 0x7F800000] + FLOAT64_EXTRA

# float16 and bfloat16 bit patterns of every class.
FLOAT16_PATTERNS = [
    ("+0", 0x0000), ("-0", 0x8000), ("smallest subnormal", 0x0001), ("-smallest subnormal", 0x8001),
    ("subnormal 0x0200", 0x0200), ("largest subnormal", 0x03FF), ("-largest subnormal", 0x83FF),
    ("smallest normal", 0x0400), ("1", 0x3C00), ("1 + ulp", 0x3C01), ("-1", 0xBC00),
    ("0.333", 0x3555), ("-2.5", 0xC100), ("100.5", 0x5648), ("300", 0x5CB0), ("-300", 0xDCB0),
    ("2049 (as 2048)", 0x6800), ("largest", 0x7BFF), ("-largest", 0xFBFF),
    ("+inf", 0x7C00), ("-inf", 0xFC00),
    ("signalling NaN, payload 1", 0x7C01), ("-signalling NaN, payload 1", 0xFC01),
    ("signalling NaN, payload 0x100", 0x7D00), ("quiet NaN", 0x7E00), ("-quiet NaN", 0xFE00),
    ("quiet NaN, payload 1", 0x7E01), ("NaN, all ones", 0x7FFF), ("-NaN, all ones", 0xFFFF),
]
BFLOAT16_PATTERNS = [
    ("+0", 0x0000), ("-0", 0x8000), ("smallest subnormal", 0x0001), ("-smallest subnormal", 0x8001),
    ("largest subnormal", 0x007F), ("smallest normal", 0x0080), ("2^-24", 0x3380),
    ("2^-25", 0x3300), ("3 * 2^-25", 0x3340), ("1", 0x3F80), ("1 + ulp", 0x3F81),
    ("-1", 0xBF80), ("0.333", 0x3EAB), ("-2.5", 0xC020), ("100.5", 0x42C9),
    ("300", 0x4396), ("-300", 0xC396), ("65280", 0x477F), ("65536", 0x4780),
    ("about 1e10", 0x5015), ("about 3e9", 0x4F33), ("largest", 0x7F7F), ("-largest", 0xFF7F),
    ("+inf", 0x7F80), ("-inf", 0xFF80),
    ("signalling NaN, payload 1", 0x7F81), ("-signalling NaN, payload 1", 0xFF81),
    ("signalling NaN, payload 0x20", 0x7FA0), ("quiet NaN", 0x7FC0), ("-quiet NaN", 0xFFC0),
    ("quiet NaN, payload 1", 0x7FC1), ("NaN, all ones", 0x7FFF), ("-NaN, all ones", 0xFFFF),
]

# Floats to integers: truncation, wrapping, out of range, NaN, infinities.
TO_INT_VALUES = [
    0.0, -0.0, 0.5, -0.5, 0.9999, 1.5, -1.5, 2.5, -2.7, 100.9, 127.0, 127.9, 128.0, 200.0, 255.0,
    255.5, 256.0, 300.7, -1.0, -100.0, -128.0, -128.9, -129.0, -200.5, -255.0, -300.7, 32767.0,
    32768.0, 65535.0, 65536.0, 70000.5, -32768.0, -32769.0, -70000.5, 2147483520.0, 2**31,
    3000000256.0, -(2**31), -2147483904.0, -3e9, 2**32, 1e10, 2**62, 2**63, -(2**63), 1e19,
    -1e19, 1e30, 1e-30, math.inf, -math.inf,
]
TO_INT_FLOAT32 = [(repr(v), f32(v)) for v in TO_INT_VALUES] + [
    ("FLT_MAX", 0x7F7FFFFF), ("-FLT_MAX", 0xFF7FFFFF), ("smallest subnormal", 0x00000001),
    ("quiet NaN", 0x7FC00000), ("-quiet NaN", 0xFFC00000), ("signalling NaN", 0x7F800001),
]
TO_INT_FLOAT64 = [(repr(v), f64(v)) for v in TO_INT_VALUES] + [
    (repr(v), f64(v)) for v in [
        2147483647.5, 2147483647.9, -2147483648.9, 3000000001.0, 3000000001.5, -3000000001.0,
        4294967297.0, 4294967551.0, 9.2233720368547748e18, -9.2233720368547758e18, 1e300]
] + [("quiet NaN", 0x7FF8000000000000), ("-quiet NaN", 0xFFF8000000000000)]

INT_VALUES = {
    "int64": [0, 1, -1, 127, 128, 255, 256, -128, -129, 257, 2049, 2051, 32767, 32768, 65519,
              65520, 65535, 65536, -32769, 2**31 - 1, 2**31, 2**32 + 5, -(2**31) - 1,
              16777217, 16842753, 2**53 + 1, 2**63 - 1, -(2**63)],
    "int32": [0, 1, -1, 127, 128, 255, 256, -129, 257, 2049, 2051, 32768, 65519, 65520, 70000,
              16777217, 16842753, 2**31 - 1, -(2**31)],
    "int16": [0, 1, -1, 127, 128, 255, 256, -129, 257, 2049, 2051, 32767, -32768],
    "int8": [0, 1, -1, 100, -100, 127, -128],
    "uint8": [0, 1, 127, 128, 200, 255],
    "bool": [0, 1],
}
INTEGER_TARGETS = ["int8", "uint8", "int16", "int32", "int64", "bool"]


def conversion_groups():
    """(from, to, [(what, bits)]) for every pair the test converts."""
    groups = []
    for src, cases in [("float32", FLOAT32_EDGES), ("float64", FLOAT64_EDGES)]:
        for dst in ["float16", "bfloat16", "float64" if src == "float32" else "float32"]:
            if (src, dst) != ("float64", "bfloat16"):
                groups.append((src, dst, cases))
                continue
            # PyTorch converts float64 to bfloat16 16 elements at a time, writing a
            # NaN as 0xFFFF, and the last n % 16 one by one, writing 0x7FC0; NaNs
            # here go in a tensor of their own, shorter than 16.
            nan = [c for c in cases if (c[1] & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000]
            groups.append((src, dst, [c for c in cases if c not in nan]))
            assert len(nan) < 16
            groups.append((src, dst, nan))
    for src, cases in [("float16", FLOAT16_PATTERNS), ("bfloat16", BFLOAT16_PATTERNS)]:
        for dst in DTYPES:
            if dst != src:
                groups.append((src, dst, cases))
    for src, cases in [("float32", TO_INT_FLOAT32), ("float64", TO_INT_FLOAT64)]:
        for dst in INTEGER_TARGETS:
            groups.append((src, dst, cases))
    for src, values in INT_VALUES.items():
        cases = [(str(v), v & ((1 << WIDTH[src]) - 1)) for v in values]
        for dst in DTYPES:
            if dst != src:
                groups.append((src, dst, cases))
    return groups


def conversions():
    lines = ["// One element converted by Tensor::to; the rows of one (from, to) pair were",
             "// converted as one tensor (float64 NaNs to bfloat16 as a short one of their",
             "// own: PyTorch's vectorised loop writes 0xFFFF for them, its scalar tail 0x7FC0).",
             "struct Conversion {",
             "    const char* from;",
             "    const char* to;",
             "    std::uint64_t in, out;  // bits",
             "    const char* what;",
             "};", "",
             "inline constexpr Conversion conversions[] = {"]
    for src, dst, cases in conversion_groups():
        out = to_bits(from_bits(src, [b for _, b in cases]).to(DTYPES[dst]))
        for (what, bits), result in zip(cases, out):
            lines.append('    {"%s", "%s", %s, %s, %s},' % (
                src, dst, hexbits(bits, WIDTH[src]), hexbits(result, WIDTH[dst]),
                cpp_string(what)))
    lines.append("};")
    return lines


# ---- Dtypes and promotion -------------------------------------------------

def promotion():
    names = list(DTYPES)
    lines = ["// torch's name, element_size() and is_floating_point, in xgrad's Dtype order.",
             "struct DtypeInfo {", "    const char* name;", "    std::size_t element_size;",
             "    bool is_floating_point;", "};", "",
             "inline constexpr DtypeInfo dtypes[] = {"]
    for n, d in DTYPES.items():
        lines.append('    {"%s", %d, %s},' % (n, torch.empty(0, dtype=d).element_size(),
                                             str(d.is_floating_point).lower()))
    lines += ["};", "", "// promote_types[i][j]: torch.promote_types(dtypes[i], dtypes[j]).",
              "inline constexpr const char* promote_types[%d][%d] = {" % (len(names), len(names))]
    for a in names:
        row = [NAME[torch.promote_types(DTYPES[a], DTYPES[b])] for b in names]
        lines.append("    {" + ", ".join('"%s"' % r for r in row) + "},")
    lines += ["};", "",
              "// torch.result_type(a, b): a and b are [2] tensors, or 0-d when zero_d.",
              "struct ResultType {", "    const char* a;", "    bool a_zero_d;",
              "    const char* b;", "    bool b_zero_d;", "    const char* result;", "};", "",
              "inline constexpr ResultType result_types[] = {"]
    for a in names:
        for b in names:
            for za, zb in [(False, False), (False, True), (True, False), (True, True)]:
                ta = torch.ones([] if za else [2], dtype=DTYPES[a])
                tb = torch.ones([] if zb else [2], dtype=DTYPES[b])
                lines.append('    {"%s", %s, "%s", %s, "%s"},' % (
                    a, str(za).lower(), b, str(zb).lower(), NAME[torch.result_type(ta, tb)]))
    lines.append("};")
    return lines


FULL_VALUES = [2.5, -1.5, 0.1, -129.0, 70000.0, 1e6]


def full_cases():
    lines = ["// torch.full([2], value, dtype): the bits of an element, or refused (PyTorch",
             "// checks that the value fits the dtype).",
             "struct FullCase {", "    const char* dtype;", "    double value;",
             "    bool refused;", "    std::uint64_t bits;", "};", "",
             "inline constexpr FullCase full_cases[] = {"]
    for n, d in DTYPES.items():
        for v in FULL_VALUES:
            try:
                bits, refused = to_bits(torch.full([2], v, dtype=d))[0], False
            except RuntimeError:
                bits, refused = 0, True
            lines.append('    {"%s", %s, %s, %s},' % (n, cpp_number(v, False), str(refused).lower(),
                                                      hexbits(bits, WIDTH[n])))
    lines.append("};")
    return lines


# ---- Ops in float16 and bfloat16 ------------------------------------------

gen = torch.Generator().manual_seed(1613)


def eighths(shape, bound, nonzero=False):
    """Random multiples of 1/8 in [-bound, bound] (exact in both 16-bit types)."""
    n = int(bound * 8)
    v = torch.randint(1 if nonzero else -n, n + 1, shape, generator=gen).to(torch.float64) / 8
    if nonzero:
        v = v * (torch.randint(0, 2, shape, generator=gen) * 2 - 1)
    return v


def ulps(a, b):
    """The largest distance between two 16-bit tensors, in units in the last place."""
    def ordered(t):
        bits = torch.tensor(to_bits(t), dtype=torch.int64)
        return torch.where(bits >= 0x8000, 0x8000 - bits, bits)
    return int((ordered(a) - ordered(b)).abs().max())


def cpp_double(v):
    if math.isinf(v):
        return "%sstd::numeric_limits<double>::infinity()" % ("-" if v < 0 else "")
    return "std::numeric_limits<double>::quiet_NaN()" if math.isnan(v) else cpp_number(v, False)


def cpp_values(t):
    """{shape, bits, values}: aggregate-initialises Values."""
    width = WIDTH[NAME[t.dtype]]
    flat = t.detach().reshape(-1)
    return "{{%s}, {%s}, {%s}}" % (
        ", ".join(str(d) for d in t.shape),
        ", ".join(hexbits(b, width) for b in to_bits(t)),
        ", ".join(cpp_double(v) for v in flat.double().tolist()))


OPS = {
    # name: (function, inputs, exact). Inputs are float64 tensors.
    "add": (lambda x, y: x + y, ["x", "y"], True),
    "mul": (lambda x, y: x * y, ["x", "y"], True),
    "div": (lambda x, y: x / y, ["x", "y"], True),
    "relu": (torch.relu, ["x"], True),
    "exp": (torch.exp, ["x"], False),
    "tanh": (torch.tanh, ["x"], False),
    "sigmoid": (torch.sigmoid, ["x"], False),
    "gelu": (F.gelu, ["x"], False),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), ["x"], False),
    "matmul": (torch.matmul, ["a", "b"], True),
    "linear": (F.linear, ["p", "w", "bias"], True),
    "sum": (torch.sum, ["m"], True),
    "sum_dim1": (lambda m: m.sum(1), ["m"], True),
    "mean": (torch.mean, ["m"], False),
    "mean_dim1": (lambda m: m.mean(1), ["m"], True),
    "softmax": (lambda m: m.softmax(-1), ["m"], False),
    "log_softmax": (lambda m: m.log_softmax(-1), ["m"], False),
    "layer_norm": (lambda m, g, h: F.layer_norm(m, (4,), g, h), ["m", "gamma", "beta"], False),
}


def op_cases():
    inputs = {
        "x": eighths([12], 4), "y": eighths([12], 4, nonzero=True),
        "a": eighths([3, 5], 2), "b": eighths([5, 4], 2),
        "p": eighths([2, 5], 2), "w": eighths([3, 5], 2), "bias": eighths([3], 2),
        "m": eighths([3, 4], 2), "gamma": eighths([4], 2), "beta": eighths([4], 2),
    }
    lines = ["// Values of one tensor in the case's dtype: shape, bits, and the same as numbers.",
             "struct Values {", "    std::vector<std::size_t> shape;",
             "    std::vector<std::uint64_t> bits;", "    std::vector<double> values;", "};", "",
             "struct OpCase {", "    const char* dtype;", "    const char* op;",
             "    // The output is PyTorch's float32 op on the inputs, rounded once, where",
             "    // PyTorch 1.13's CPU kernel for the dtype is missing or rounds intermediates.",
             "    bool emulated;",
             "    bool exact;      // bit-exact; otherwise within 1 ulp",
             "    int torch_ulps;  // PyTorch 1.13's own kernel's distance from output (-1: none)",
             "    std::vector<Values> inputs;", "    Values output;", "};", "",
             "inline const std::vector<OpCase> op_cases = {"]
    for dname in ["float16", "bfloat16"]:
        d = DTYPES[dname]
        for op, (fn, names, exact) in OPS.items():
            args = [inputs[n].to(d) for n in names]
            rounded = fn(*[a.float() for a in args]).to(d)
            try:
                native = fn(*args)
                torch_ulps = ulps(native, rounded)
            except RuntimeError:
                native, torch_ulps = None, -1
            # Where PyTorch's own kernel rounds once, it is the reference; where it has
            # none, or rounds intermediate results too, the float32 op rounded once is.
            emulated = torch_ulps == -1 or torch_ulps > (0 if exact else 1)
            out = rounded if emulated else native
            if torch_ulps > (0 if exact else 1):
                print("note: %s %s: PyTorch 1.13's kernel is %d ulp from the float32 op rounded once"
                      % (dname, op, torch_ulps))
            lines.append('    {"%s", "%s", %s, %s, %d, {%s}, %s},' % (
                dname, op, str(emulated).lower(), str(exact).lower(), torch_ulps,
                ", ".join(cpp_values(a) for a in args), cpp_values(out)))
    lines.append("};")
    return lines


def grad_cases():
    bf16 = torch.bfloat16
    params = {"x": eighths([4, 3], 2), "w1": eighths([5, 3], 1), "b1": eighths([5], 1),
              "w2": eighths([2, 5], 1), "b2": eighths([2], 1)}
    t = {k: v.to(bf16).requires_grad_() for k, v in params.items()}
    h = torch.tanh(F.linear(t["x"], t["w1"], t["b1"]))
    out = F.linear(h, t["w2"], t["b2"])
    loss = (out * out).mean()
    loss.backward()
    # xgrad computes each op in float32 and rounds once, forward and backward; its
    # gradients can differ from PyTorch's by a few bfloat16 ulps (test tolerance:
    # 2^-5 of the largest gradient). Checked here on PyTorch's float32 ops.
    e = {k: v.to(bf16).requires_grad_() for k, v in params.items()}

    def once(fn, *args):
        return fn(*[a.float() for a in args]).to(bf16)

    hidden = once(torch.tanh, once(F.linear, e["x"], e["w1"], e["b1"]))
    emulated = once(F.linear, hidden, e["w2"], e["b2"])
    once(torch.mean, once(torch.mul, emulated, emulated)).backward()
    for k in t:
        error = (t[k].grad.double() - e[k].grad.double()).abs().max() / t[k].grad.double().abs().max()
        assert error <= 2**-5, (k, float(error))
    lines = ["// loss = mean(out * out), out = linear(tanh(linear(x, w1, b1)), w2, b2), all",
             "// bfloat16 and requiring grad; PyTorch's bfloat16 kernels round every op's",
             "// result and every gradient once (xgrad's float32 backward can differ by ulps).",
             "inline const std::vector<Values> mlp_inputs = {"]
    lines += ["    %s,  // %s" % (cpp_values(v), k) for k, v in t.items()]
    lines += ["};", "inline const Values mlp_loss = %s;" % cpp_values(loss),
              "inline const std::vector<Values> mlp_grads = {"]
    lines += ["    %s,  // %s" % (cpp_values(v.grad), k) for k, v in t.items()]
    lines += ["};", "",
              "// x (float32, requires grad) -> x.to(through).to(float32) * c -> sum: x.grad",
              "// is c rounded to `through` (the backward of .to(float32)), back in float32.",
              "struct ToGradCase {", "    const char* through;", "    Values x, c, grad;", "};",
              "inline const std::vector<ToGradCase> to_grad_cases = {"]
    x = torch.tensor([0.1, -2.5, 1000.3, 3e-6, 70000.0, -1.0], dtype=torch.float32)
    c = torch.tensor([1 / 3, -0.1, 2049.0, 1e-7, 257.0, 65520.0], dtype=torch.float32)
    for through in ["float16", "bfloat16"]:
        xr = x.clone().requires_grad_()
        (xr.to(DTYPES[through]).to(torch.float32) * c).sum().backward()
        assert xr.grad.dtype == torch.float32
        lines.append('    {"%s", %s, %s, %s},' % (through, cpp_values(x), cpp_values(c),
                                                 cpp_values(xr.grad)))
    lines.append("};")
    return lines


# ---- Printing -------------------------------------------------------------

def print_cases():
    cases = [
        ("float16", [1.0, 2.0], False), ("float16", [0.1, -2.5, 1000.0], False),
        ("float16", 1.5, False), ("float16", [65504.0, -math.inf, math.nan], False),
        ("float16", [1e-4, 1e4], False), ("float16", 2**-24, False),
        ("float16", [[1.0, 2.0], [3.0, 4.0]], True), ("float16", [0.5, -0.25], True),
        ("float16", [], False),
        ("bfloat16", [1.0, 2.0], False), ("bfloat16", [0.1, math.pi, -100.0], False),
        ("bfloat16", [math.inf, -math.inf, math.nan], False), ("bfloat16", 1e30, False),
        ("bfloat16", [1e-3, 1e3, 3.0], False), ("bfloat16", [[0.5], [1.25]], True),
        ("int8", [-128, 0, 127], False), ("int8", [[-128, 5], [0, 127]], False),
        ("uint8", [0, 128, 255], False), ("uint8", 7, False),
        ("int32", [[1, -2], [300000, 4]], False), ("int32", [2**31 - 1, -(2**31)], False),
        ("int16", [-32768, 5], False),
    ]
    lines = ["struct PrintCase {", "    const char* dtype;", "    std::vector<std::size_t> shape;",
             "    std::vector<std::uint64_t> bits;", "    bool requires_grad;",
             "    const char* expected;  // repr()", "};", "",
             "inline const std::vector<PrintCase> print_cases = {"]
    for dname, values, requires_grad in cases:
        t = torch.tensor(values, dtype=DTYPES[dname], requires_grad=requires_grad)
        lines.append('    {"%s", {%s}, {%s}, %s, %s},' % (
            dname, ", ".join(str(s) for s in t.shape),
            ", ".join(hexbits(b, WIDTH[dname]) for b in to_bits(t)),
            str(requires_grad).lower(), cpp_string(repr(t))))
    lines.append("};")
    return lines


def main():
    body = [""]
    for section in [conversions, promotion, full_cases, op_cases, grad_cases, print_cases]:
        body += section() + [""]
    path = os.path.join(HERE, "dtypes_reference.hpp")
    write_header(path, "gen_dtypes.py", [
        "The storage dtypes against PyTorch: conversions as raw bits, promotion, ops in",
        "float16 and bfloat16, gradients and printing (tests/core/test_dtypes.cpp).",
        "Bits: float16/bfloat16 16, float32 32, float64 64, integers two's complement",
        "in their own width, bool 0 or 1.",
    ], "reference::dtypes", body)
    print("wrote", path)


if __name__ == "__main__":
    main()
