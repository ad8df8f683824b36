"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe: no
port, no websocket library. Used by the desktop live-view and the web console tests."""
import json
import os
import shutil
import subprocess
import tempfile
import time


class Chromium:
    def __init__(self, window="1280,800"):
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if not browser:
            raise SystemExit("chromium is not installed (scripts/install-deps.sh --browser)")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="omnirun-chromium-")

        def child_fds():
            # Chromium reads commands on fd 3 and writes answers on fd 4 (through high
            # numbers first: the pipes' own numbers may be 3 or 4).
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", f"--window-size={window}", "about:blank"],
            preexec_fn=child_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.pending = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, wait=60):
        """Sends one command and returns its result (events in between are skipped)."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.time() + wait
        while time.time() < deadline:
            while b"\0" in self.pending:
                raw, self.pending = self.pending.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.pending += chunk
        raise TimeoutError(method)

    def open(self, url):
        """A new tab at `url`; its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        return session

    def close(self):
        try:
            self.call("Browser.close", wait=10)
        except Exception:
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
