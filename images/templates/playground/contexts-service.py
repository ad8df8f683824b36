#!/usr/bin/python3
"""OmniRun code contexts: stateful Jupyter kernels inside the sandbox.

Started by the OmniRun agent on the first context request (as the sandbox's default user)
and spoken to over a Unix socket: one connection per request, the request a single JSON
line, the answer JSON lines ("ndjson"), then the connection closes.

Requests (field "op"):
  create  {language, cwd?}       -> {"type":"context","context":{id,language,cwd,created_at}}
  list    {}                     -> {"type":"contexts","contexts":[...]}
  execute {id, code, timeoutMillis?} -> stdout/stderr/result/error events, then
                                    {"type":"done","execution_count":N}
  restart {id}                   -> {"type":"context",...}  (a fresh kernel, same id and cwd)
  delete  {id}                   -> {"type":"deleted"}
  health  {}                     -> {"type":"ok"}
A request that fails answers one line {"type":"failure","status":4xx|5xx,"code","message"}.

Only Python 3 and the standard library plus Debian's python3-jupyter-client and
python3-ipykernel are used. Languages: Python everywhere; JavaScript where the template has
installed its kernel (the javascript template: images/templates/javascript).
"""

import datetime
import json
import os
import queue
import secrets
import socketserver
import sys
import threading
import time

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

# The context languages and their kernels; javascript where its kernel is installed.
LANGUAGES = {"python": "python3", "python3": "python3"}
if "javascript" in KernelSpecManager().find_kernel_specs():
    LANGUAGES.update({"javascript": "javascript", "js": "javascript", "node": "javascript"})
MIME_KEYS = {
    "text/plain": "text",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "text/html": "html",
    "image/svg+xml": "svg",
    "application/json": "json",
    "text/markdown": "markdown",
    "text/latex": "latex",
    "application/javascript": "javascript",
}
MAX_REQUEST = 16 << 20
KERNEL_START_TIMEOUT = 180
# A kernel takes ~40 MiB before it imports anything: below this much free memory a new
# context is refused (409) rather than pushing the sandbox into the OOM killer.
MIN_AVAILABLE_BYTES = 96 << 20
MAX_CONTEXTS = 32
INTERRUPT_GRACE = 10


class Failure(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Context:
    def __init__(self, language, cwd):
        self.id = "ctx_" + secrets.token_hex(8)
        self.language = language
        self.cwd = cwd
        self.created_at = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        self.lock = threading.Lock()
        self.manager = None
        self.client = None

    def view(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd, "created_at": self.created_at}

    def start(self):
        manager = KernelManager(kernel_name=LANGUAGES[self.language])
        manager.start_kernel(cwd=self.cwd, env=dict(os.environ, PWD=self.cwd, PYDEVD_DISABLE_FILE_VALIDATION="1"))
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
        except Exception as error:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
            raise Failure(503, "unavailable", f"the {self.language} kernel did not start: {error}")
        self.manager, self.client = manager, client

    def stop(self):
        if self.client is not None:
            self.client.stop_channels()
        if self.manager is not None:
            try:
                self.manager.shutdown_kernel(now=True)
            except Exception:
                pass
        self.manager = self.client = None

    def execute(self, code, timeout, emit):
        """Runs code, calling emit(event) for each output; returns the execution count."""
        client = self.client
        msg_id = client.execute(code, store_history=True, allow_stdin=False, stop_on_error=True)
        deadline = time.monotonic() + timeout if timeout else None
        interrupted_at = None
        count = None
        caller = emit
        gone = []

        def emit(event):
            # A caller that went away (the host gave up) stops the code: interrupt it and
            # wait for the kernel to be idle, so the next execute finds it ready.
            if gone:
                return
            try:
                caller(event)
            except OSError:
                gone.append(True)

        while True:
            if gone and interrupted_at is None:
                deadline = time.monotonic()
            wait = 1.0
            if deadline is not None:
                now = time.monotonic()
                if interrupted_at is None and now >= deadline:
                    # Too long: interrupt (KeyboardInterrupt in the kernel), then wait for idle.
                    self.manager.interrupt_kernel()
                    interrupted_at = now
                    if not gone:
                        emit({"type": "stderr", "data": f"execution timed out after {timeout:g} s; interrupted\n"})
                elif interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE:
                    # The interrupt did not take (code that ignores SIGINT): a fresh kernel.
                    self.manager.restart_kernel(now=True)
                    self.client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
                    emit({"type": "error", "name": "TimeoutError", "value": "execution did not stop after an interrupt; the context was restarted", "traceback": ""})
                    return count or 0
            try:
                message = client.get_iopub_msg(timeout=wait)
            except queue.Empty:
                if not self.manager.is_alive():
                    self.manager.restart_kernel(now=True)
                    self.client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
                    emit({"type": "error", "name": "KernelDied", "value": "the kernel died; the context was restarted", "traceback": ""})
                    return count or 0
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                emit({"type": "stdout" if content.get("name") == "stdout" else "stderr", "data": content.get("text", "")})
            elif kind in ("execute_result", "display_data"):
                bundle = {}
                for mime, value in content.get("data", {}).items():
                    key = MIME_KEYS.get(mime)
                    if key is not None:
                        bundle[key] = value.rstrip("\n") if key == "png" and isinstance(value, str) else value
                if bundle:
                    emit({"type": "result", "data": bundle, "is_main_result": kind == "execute_result"})
                if kind == "execute_result":
                    count = content.get("execution_count", count)
            elif kind == "execute_input":
                count = content.get("execution_count", count)
            elif kind == "error":
                emit({
                    "type": "error", "name": content.get("ename", ""), "value": content.get("evalue", ""),
                    "traceback": "\n".join(strip_ansi(line) for line in content.get("traceback", [])),
                })
            elif kind == "status" and content.get("execution_state") == "idle":
                return count or 0


def available_memory():
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def strip_ansi(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\x1b" and i + 1 < len(text) and text[i + 1] == "[":
            j = i + 2
            while j < len(text) and not ("@" <= text[j] <= "~"):
                j += 1
            i = j + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.contexts = {}

    def get(self, context_id):
        with self.lock:
            context = self.contexts.get(context_id)
        if context is None:
            raise Failure(404, "not_found", f"no context {context_id}")
        return context

    def create(self, language, cwd):
        if language not in LANGUAGES:
            supported = ", ".join(sorted(set(LANGUAGES.values()) - {"python3"} | {"python"}))
            raise Failure(400, "invalid_argument", f"language '{language}' is not supported in this sandbox; supported: {supported}")
        if not os.path.isabs(cwd):
            raise Failure(400, "invalid_argument", f"cwd must be an absolute path (got '{cwd}')")
        if not os.path.isdir(cwd):
            raise Failure(400, "invalid_argument", f"cwd {cwd} is not a directory")
        if not os.access(cwd, os.R_OK | os.X_OK):
            raise Failure(400, "invalid_argument", f"cwd {cwd} is not accessible to the sandbox user")
        with self.lock:
            count = len(self.contexts)
        if count >= MAX_CONTEXTS:
            raise Failure(409, "conflict", f"a sandbox has at most {MAX_CONTEXTS} contexts; delete one first")
        available = available_memory()
        if available is not None and available < MIN_AVAILABLE_BYTES:
            raise Failure(
                409, "conflict",
                f"not enough free memory for another context ({available >> 20} MiB available, {count} contexts running); "
                "delete a context or create the sandbox with more memory")
        context = Context(language, cwd)
        context.start()
        with self.lock:
            self.contexts[context.id] = context
        return context

    def delete(self, context_id):
        with self.lock:
            context = self.contexts.pop(context_id, None)
        if context is None:
            raise Failure(404, "not_found", f"no context {context_id}")
        with context.lock:
            context.stop()

    def views(self):
        with self.lock:
            contexts = sorted(self.contexts.values(), key=lambda c: (c.created_at, c.id))
        return [c.view() for c in contexts]


REGISTRY = Registry()


class Handler(socketserver.StreamRequestHandler):
    def emit(self, event):
        self.wfile.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self.wfile.flush()

    def handle(self):
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
            if len(line) > MAX_REQUEST:
                raise Failure(413, "too_large", "the request is larger than 16 MiB")
            try:
                request = json.loads(line)
            except ValueError:
                raise Failure(400, "invalid_argument", "the request is not one JSON line")
            if not isinstance(request, dict):
                raise Failure(400, "invalid_argument", "the request is not a JSON object")
            self.dispatch(request)
        except Failure as failure:
            self.try_emit({"type": "failure", "status": failure.status, "code": failure.code, "message": failure.message})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as error:
            self.try_emit({"type": "failure", "status": 500, "code": "failed", "message": f"{type(error).__name__}: {error}"})

    def try_emit(self, event):
        try:
            self.emit(event)
        except OSError:
            pass

    def dispatch(self, request):
        op = request.get("op")
        if op == "health":
            self.emit({"type": "ok"})
        elif op == "create":
            language = request.get("language") or "python"
            cwd = request.get("cwd") or os.environ.get("HOME", "/")
            if not isinstance(language, str) or not isinstance(cwd, str):
                raise Failure(400, "invalid_argument", "language and cwd must be strings")
            self.emit({"type": "context", "context": REGISTRY.create(language.lower(), cwd).view()})
        elif op == "list":
            self.emit({"type": "contexts", "contexts": REGISTRY.views()})
        elif op == "delete":
            REGISTRY.delete(str(request.get("id")))
            self.emit({"type": "deleted"})
        elif op == "restart":
            context = REGISTRY.get(str(request.get("id")))
            with context.lock:
                context.stop()
                context.start()
            self.emit({"type": "context", "context": context.view()})
        elif op == "execute":
            context = REGISTRY.get(str(request.get("id")))
            code = request.get("code")
            if not isinstance(code, str):
                raise Failure(400, "invalid_argument", "code must be a string")
            timeout = request.get("timeoutMillis")
            timeout = timeout / 1000.0 if isinstance(timeout, (int, float)) and timeout > 0 else None
            with context.lock:
                if context.client is None:
                    raise Failure(404, "not_found", f"context {context.id} was deleted")
                count = context.execute(code, timeout, self.emit)
            self.emit({"type": "done", "execution_count": count})
        else:
            raise Failure(400, "invalid_argument", f"unknown op {op!r}")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    if len(sys.argv) != 2:
        print("usage: contexts-service SOCKET", file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.umask(0o077)
    with Server(path, Handler) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
