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
import shutil
import subprocess
import sys
import tempfile
import time

url, screenshot = sys.argv[1], sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 180
browser = shutil.which("chromium") or shutil.which("chromium-browser")
if not browser:
    raise SystemExit("chromium is not installed (scripts/install-deps.sh --desktop-tests)")

to_browser_r, to_browser_w = os.pipe()
from_browser_r, from_browser_w = os.pipe()
profile = tempfile.mkdtemp(prefix="omnirun-chromium-")


def child_fds():
    # the DevTools pipe: Chromium reads commands on fd 3 and writes answers on fd 4
    # (through high numbers first: the pipes' own numbers may be 3 or 4)
    read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)


process = subprocess.Popen(
    [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
     "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
     "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1024,768", "about:blank"],
    preexec_fn=child_fds, pass_fds=(3, 4),
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(to_browser_r)
os.close(from_browser_w)
pending = b""
next_id = 0


def call(method, params=None, session=None, wait=60):
    """Sends one command and returns its result (events in between are skipped)."""
    global pending, next_id
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session:
        message["sessionId"] = session
    os.write(to_browser_w, json.dumps(message).encode() + b"\0")
    deadline = time.time() + wait
    while time.time() < deadline:
        while b"\0" in pending:
            raw, pending = pending.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
        chunk = os.read(from_browser_r, 1 << 16)
        if not chunk:
            raise RuntimeError("chromium closed the DevTools pipe")
        pending += chunk
    raise TimeoutError(method)


state = {"connected": False}
try:
    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    call("Page.enable", session=session)
    call("Page.navigate", {"url": url}, session=session)
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
    try:
        call("Browser.close", wait=10)
    except Exception:
        pass
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(profile, ignore_errors=True)

print(json.dumps(state))
sys.exit(0 if state.get("connected") and state.get("canvas") and min(state["canvas"]) > 0 else 1)
