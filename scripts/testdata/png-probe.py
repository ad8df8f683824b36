#!/usr/bin/env python3
"""Reads a PNG (8-bit RGB or RGBA, not interlaced) and prints JSON: its size and the
colour of the pixels asked for. Used by the desktop tests to check screenshots exactly.
Usage: png-probe.py FILE [X,Y ...] | png-probe.py FILE --diff OTHER"""
import json
import struct
import sys
import zlib


def decode(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + chunk) & 0xFFFFFFFF != crc:
            raise SystemExit(f"bad CRC in {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise SystemExit(f"unsupported PNG: depth {depth} colour type {colour} interlace {interlace}")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, colour, bpp, rows


if len(sys.argv) == 4 and sys.argv[2] == "--diff":
    # How many pixels of two screenshots of the same size differ, and where (a bounding box).
    first, second = decode(open(sys.argv[1], "rb").read()), decode(open(sys.argv[3], "rb").read())
    if first[:2] != second[:2]:
        print(json.dumps({"sizes": [first[:2], second[:2]]}))
        sys.exit(0)
    differing, box = 0, None
    for y, (a, b) in enumerate(zip(first[4], second[4])):
        if a == b:
            continue
        for x in range(first[0]):
            if a[x * first[3]:x * first[3] + 3] != b[x * second[3]:x * second[3] + 3]:
                differing += 1
                box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)] if box else [x, y, x, y]
    print(json.dumps({"width": first[0], "height": first[1], "differing": differing, "box": box}))
    sys.exit(0)

width, height, colour, bpp, rows = decode(open(sys.argv[1], "rb").read())
pixels = {}
for spec in sys.argv[2:]:
    x, y = (int(v) for v in spec.split(","))
    pixels[spec] = list(rows[y][x * bpp:x * bpp + 3])
print(json.dumps({"width": width, "height": height, "colourType": colour, "pixels": pixels}))
