#!/usr/bin/env python3
"""Opens a URL in headless Chromium (Debian's `chromium`), driven over the DevTools
protocol on a pipe (no port, no websocket library), waits until noVNC reports it is
connected to the VNC server, and saves a screenshot of the page.

Prints JSON: {"connected": bool, "classes": ..., "canvas": [w, h], "title": ..., "url": ...}.
Exit 0 when connected with a non-empty canvas, 1 otherwise (the screenshot is saved anyway).
Usage: novnc-chromium.py URL SCREENSHOT.png [TIMEOUT_SECONDS]"""
import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chromium_pipe import Chromium  # noqa: E402

url, screenshot = sys.argv[1], sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 180
browser = Chromium(window="1024,768")
call = browser.call
state = {"connected": False}
try:
    session = browser.open(url)
    probe = ("JSON.stringify({classes: document.documentElement.className, title: document.title, url: location.href,"
             " canvas: (c => c ? [c.width, c.height] : null)(document.querySelector('canvas'))})")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = call("Runtime.evaluate", {"expression": probe, "returnByValue": True}, session=session)
            state = json.loads(value["result"]["value"])
        except (KeyError, RuntimeError, json.JSONDecodeError):
            pass
        state["connected"] = "noVNC_connected" in state.get("classes", "")
        if state["connected"] and state.get("canvas") and min(state["canvas"]) > 0:
            time.sleep(3)  # let the first framebuffer update paint
            break
        time.sleep(1)
    shot = call("Page.captureScreenshot", {"format": "png"}, session=session)
    with open(screenshot, "wb") as out:
        out.write(base64.b64decode(shot["data"]))
finally:
    browser.close()

print(json.dumps(state))
sys.exit(0 if state.get("connected") and state.get("canvas") and min(state["canvas"]) > 0 else 1)
