#!/usr/bin/python3
"""OmniRun's JavaScript kernel: a Jupyter kernel (ipykernel's wrapper-kernel base) around
one long-lived Node.js process that runs each cell in the same `vm` context, so variables,
functions and required modules persist from one execute to the next (code contexts with
`language: "javascript"`).

Node runs javascript-driver.js: cells arrive on its stdin as JSON lines; it answers on fd 3
with JSON lines (`result`, `error`, then `done`); what the code prints (console.*,
process.stdout/stderr) comes through Node's own stdout and stderr and is relayed as stream
output while the cell runs. An interrupt (the contexts service's timeout) reaches Node as
SIGINT, which stops a running cell without losing the context; a Node that died is started
again (its state is lost, and the cell says so).
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "javascript-driver.js")
# One answer line from the driver is at most this long (a result's text is cut well below).
MAX_LINE = 8 << 20


class JavaScriptKernel(Kernel):
    implementation = "omnirun-javascript"
    implementation_version = "1"
    language = "javascript"
    language_version = "22"
    language_info = {"name": "javascript", "mimetype": "application/javascript", "file_extension": ".js"}
    banner = "JavaScript (Node.js) in an OmniRun sandbox"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.node = None
        self.answers = None
        self.relays = []
        self.start_node()

    def start_node(self):
        answers_read, answers_write = os.pipe()
        self.node = subprocess.Popen(
            ["node", "--stack-size=4000", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(answers_write,), env=dict(os.environ, OMNIRUN_ANSWER_FD=str(answers_write)))
        os.close(answers_write)
        self.answers = os.fdopen(answers_read, "rb")
        self.relays = [threading.Thread(target=self.relay, args=(self.node.stdout, "stdout"), daemon=True),
                       threading.Thread(target=self.relay, args=(self.node.stderr, "stderr"), daemon=True)]
        for relay in self.relays:
            relay.start()

    def relay(self, pipe, name):
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not chunk:
                return
            self.send_response(self.iopub_socket, "stream", {"name": name, "text": chunk.decode("utf-8", "replace")})

    def answer(self):
        """The driver's next answer line, or None if Node is gone. An interrupt while waiting
        is passed on to Node (a SIGINT to this process alone does not reach it)."""
        while True:
            try:
                line = self.answers.readline(MAX_LINE)
            except KeyboardInterrupt:
                if self.node.poll() is None:
                    self.node.send_signal(signal.SIGINT)
                continue
            if not line:
                return None
            try:
                return json.loads(line)
            except ValueError:
                continue

    def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False):
        if self.node.poll() is not None:
            self.start_node()
        try:
            self.node.stdin.write(json.dumps({"code": code}).encode() + b"\n")
            self.node.stdin.flush()
        except OSError:
            pass
        outcome = {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}
        while True:
            answer = self.answer()
            if answer is None:
                # Node died (out of memory, process.exit()): a fresh one for the next cell.
                for relay in self.relays:
                    relay.join(timeout=2)
                self.node.wait()
                self.start_node()
                return self.fail(outcome, "NodeExited", "Node.js exited; the context starts again with nothing defined")
            kind = answer.get("type")
            if kind == "result" and not silent:
                self.send_response(self.iopub_socket, "execute_result", {
                    "execution_count": self.execution_count, "data": {"text/plain": answer.get("text", "")}, "metadata": {}})
            elif kind == "error":
                outcome = self.fail(outcome, answer.get("name", "Error"), answer.get("message", ""), answer.get("stack", ""))
            elif kind == "done":
                return outcome

    def fail(self, outcome, name, value, stack=""):
        content = {"ename": name, "evalue": value, "traceback": [stack or f"{name}: {value}"]}
        self.send_response(self.iopub_socket, "error", content)
        return dict(outcome, status="error", **content)

    def do_shutdown(self, restart):
        if self.node is not None and self.node.poll() is None:
            self.node.kill()
            self.node.wait()
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=JavaScriptKernel)
