#!/usr/bin/env python3
"""Prints the share (0 to 1) of a PNG's pixels that are not the white page
background: at least one channel below 247. test_report.cpp checks it on
Chromium's screenshot of the HTML report, so a blank or failed render fails.

Decodes the 8-bit, non-interlaced PNGs Chromium writes (grey, RGB, RGBA) with
zlib alone, so the test needs no imaging library.

    nonwhite_share.py screenshot.png
"""
import struct
import sys
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> (channels per pixel, of which colour: alpha does not count)
CHANNELS = {0: (1, 1), 2: (3, 3), 4: (2, 1), 6: (4, 3)}


def chunks(data):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length  # length, type, body, CRC


def add_bytes(a, b):
    """Bytewise (a + b) mod 256 of two equal-length byte strings, in one big-int
    operation: the low seven bits add without crossing bytes, the top bit is
    the XOR of both top bits and the carry into it."""
    n = len(a)
    low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def unfilter(kind, line, prev, bpp):
    """Undoes one scanline's filter (PNG spec, section 9)."""
    if kind == 0:
        return bytes(line)
    if kind == 2:  # Up: the common case, done in one operation
        return add_bytes(line, prev)
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        up = prev[i]
        upleft = prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((left + up) >> 1)) & 0xFF
        elif kind == 4:
            out[i] = (out[i] + paeth(left, up, upleft)) & 0xFF
        else:
            sys.exit(f"unknown PNG filter {kind}")
    return bytes(out)


def nonwhite_share(path):
    data = open(path, "rb").read()
    if not data.startswith(SIGNATURE):
        sys.exit(f"{path}: not a PNG file")
    header, compressed = None, []
    for kind, body in chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
    width, height, depth, colour, _, _, interlace = header
    channels, colour_channels = CHANNELS.get(colour, (None, None))
    if depth != 8 or channels is None or interlace:
        sys.exit(f"{path}: expected an 8-bit non-interlaced grey/RGB/RGBA PNG "
                 f"(got depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(b"".join(compressed))
    stride = width * channels
    dark = bytes(1 if v < 247 else 0 for v in range(256))  # a channel off the background
    prev, count = bytes(stride), 0
    for y in range(height):
        start = y * (stride + 1)
        line = unfilter(raw[start], raw[start + 1:start + 1 + stride], prev, channels)
        prev = line
        marks = line.translate(dark)
        pixel = 0
        for c in range(colour_channels):
            pixel |= int.from_bytes(marks[c::channels], "big")
        count += bin(pixel).count("1")
    return count / (width * height)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"{nonwhite_share(sys.argv[1]):.6f}")
