#!/usr/bin/env python3
"""Whether the desktop's screen is finished (the template's READY runs it until it passes,
and a create that changes the screen size waits for it): every panel XFCE is configured
with is mapped and painted (its window is not one flat colour), the desktop is mapped, and
two screenshots a moment apart are identical (nothing is still drawing). Exit 0 when so;
else 1, with the reason on stderr. Runs with DISPLAY=:0."""
import hashlib
import os
import re
import struct
import subprocess
import sys
import time
import zlib

PANEL_CONFIG = "/home/user/.config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml"


def run(*args):
    return subprocess.run(args, capture_output=True, timeout=30).stdout


def fail(reason):
    print("screen not settled: " + reason, file=sys.stderr)
    sys.exit(1)


def colours(png, enough):
    """How many distinct colours a PNG (8-bit RGB/RGBA, not interlaced) has, up to `enough`."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return 0
    pos, idat, header = 8, b"", None
    while pos + 12 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", png[pos + 8:pos + 21])
        elif kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or header[2] != 8 or header[3] not in (2, 6) or header[6] != 0:
        return 0
    width, height, bpp = header[0], header[1], 3 if header[3] == 2 else 4
    raw, stride, seen = zlib.decompress(idat), header[0] * bpp, set()
    prev, pos = bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
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
        for x in range(0, stride, bpp):
            seen.add(bytes(line[x:x + 3]))
        if len(seen) >= enough:
            return len(seen)
        prev = line
    return len(seen)


def main():
    os.environ.setdefault("DISPLAY", ":0")
    configured = set(re.findall(r'<property name="panel-(\d+)" type="empty">', open(PANEL_CONFIG).read()))
    # The panels: visible windows of class xfce4-panel the size of a bar (not a 1x1 leader).
    panels, seen = [], []
    for window in run("xdotool", "search", "--onlyvisible", "--class", "xfce4-panel").decode().split():
        info = run("xwininfo", "-id", window).decode(errors="replace")
        width = re.search(r"Width: (\d+)", info)
        height = re.search(r"Height: (\d+)", info)
        size = (int(width.group(1)), int(height.group(1))) if width and height else (0, 0)
        seen.append(f"{window} {size[0]}x{size[1]}")
        if min(size) >= 16 and "IsViewable" in info:
            panels.append(window)
    if len(panels) < len(configured):
        fail(f"{len(panels)} of {len(configured)} panels mapped (windows: {', '.join(seen) or 'none'})")
    if not run("xdotool", "search", "--onlyvisible", "--class", "xfdesktop").split():
        fail("the desktop is not mapped")
    for window in panels:
        if colours(run("maim", "--hidecursor", "--window", window), 4) < 4:
            fail(f"panel {window} is not painted yet")
    first = hashlib.sha256(run("maim", "--hidecursor")).digest()
    time.sleep(1)
    if hashlib.sha256(run("maim", "--hidecursor")).digest() != first:
        fail("the screen is still changing")


main()
