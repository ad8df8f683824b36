#!/usr/bin/env python3
"""Writes a test PNG with Python's zlib, independently of the product's PNG code: 8-bit,
colour type 0, 2, 3, 4 or 6, rows cycling through all five filter types, pixels from a
fixed pseudo-random sequence. Also writes the image's RGB bytes (alpha dropped, palette
and grey expanded) to OUT.rgb so a decoder can be checked byte for byte.
Usage: png-make.py OUT COLOUR_TYPE WIDTH HEIGHT"""
import struct
import sys
import zlib

out, colour, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
palette = [((i * 37) % 256, (i * 91) % 256, (i * 173) % 256) for i in range(16)]

state = 12345
def rand():
    global state
    state = (state * 1103515245 + 12345) & 0x7FFFFFFF
    return state >> 16

rows, rgb = [], bytearray()
for y in range(height):
    row = bytearray()
    for x in range(width):
        # smooth areas (so filters matter) with some noise
        base = [(x * 3 + y) % 256, (y * 5) % 256, (x * y) % 256, 200 + rand() % 56]
        if colour == 3:
            index = (x // 4 + y // 3 + rand() % 2) % len(palette)
            row.append(index)
            rgb += bytes(palette[index])
        elif colour in (0, 4):
            grey = (base[0] + rand() % 3) % 256
            row += bytes([grey] + ([base[3]] if colour == 4 else []))
            rgb += bytes([grey] * 3)
        else:
            px = [(base[i] + rand() % 4) % 256 for i in range(3)]
            row += bytes(px + ([base[3]] if colour == 6 else []))
            rgb += bytes(px)
    rows.append(row)

def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c

raw, prev = bytearray(), bytearray(width * channels)
for y, row in enumerate(rows):
    kind = y % 5
    raw.append(kind)
    for i, value in enumerate(row):
        a = row[i - channels] if i >= channels else 0
        b = prev[i]
        c = prev[i - channels] if i >= channels else 0
        predicted = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        raw.append((value - predicted) & 0xFF)
    prev = row

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
if colour == 3:
    png += chunk(b"PLTE", b"".join(bytes(p) for p in palette))
png += chunk(b"tEXt", b"Comment\x00made by png-make.py")
data = zlib.compress(bytes(raw), 9)
# two IDAT chunks: a decoder must join them
png += chunk(b"IDAT", data[: len(data) // 2]) + chunk(b"IDAT", data[len(data) // 2 :]) + chunk(b"IEND", b"")
open(out, "wb").write(png)
open(out + ".rgb", "wb").write(bytes(rgb))
