#!/usr/bin/env python3
"""A stand-in for a paid OpenAI-compatible upstream, for the tests: the real protocol
(chat completions, SSE streaming with a final usage chunk, GET /models) over a real
socket on 127.0.0.1. Only the Python standard library.

Behaviour by model id (any vendor prefix):
  */echo          answers "echo: <last user message>"; usage without cost (price table)
  costly/*        like echo, and reports usage.cost = 0.01 (one cent)
  pricey/*        like echo, and reports usage.cost = 2.5 (250 cents)
  */broken        500 with an OpenAI-style error body
  */refuses       400 with an OpenAI-style error body
  */slow          waits 30 s before answering (proxy timeout -> 504)
  */stall         streams one chunk, then stalls 30 s (timeout mid-stream)
Streams send one word per event, WORD_DELAY seconds apart (default 0.2).
Requests are appended as JSON lines to the file given with --log.
Prints "ready PORT" once it listens.

usage: fake-llm-upstream.py --key SECRET [--port N] [--log FILE]
"""
import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from helperlib import exit_with_parent

ARGS = None
LOCK = threading.Lock()
MODELS = ["test/echo", "costly/echo", "pricey/echo", "test/broken", "test/refuses", "test/slow", "test/stall"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("Authorization") != "Bearer " + ARGS.key:
            self.reply(401, {"error": {"message": "bad upstream key", "type": "invalid_request_error"}})
            return False
        return True

    def do_GET(self):
        if not self.authorized():
            return
        if self.path.rstrip("/").endswith("/models"):
            self.reply(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS]})
        else:
            self.reply(404, {"error": {"message": "no route"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.authorized():
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.reply(400, {"error": {"message": "not JSON"}})
            return
        if ARGS.log:
            with LOCK, open(ARGS.log, "a") as f:
                f.write(json.dumps(body) + "\n")
        model = body.get("model", "")
        kind = model.split("/")[-1]
        if kind == "broken":
            self.reply(500, {"error": {"message": "the upstream broke", "type": "server_error"}})
            return
        if kind == "refuses":
            self.reply(400, {"error": {"message": "temperature is out of range", "type": "invalid_request_error"}})
            return
        if kind == "slow":
            time.sleep(30)
        text = ""
        for message in body.get("messages", []):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                text = message["content"]
        answer = "echo: " + text
        words = answer.split(" ")
        usage = {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 10 + len(words)}
        if model.startswith("costly/"):
            usage["cost"] = 0.01
        if model.startswith("pricey/"):
            usage["cost"] = 2.5
        created = int(time.time())
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            delay = ARGS.word_delay
            for index, word in enumerate(words):
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": {"content": word if index == 0 else " " + word}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                if kind == "stall":
                    time.sleep(30)
                time.sleep(delay)
            end = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(b"data: " + json.dumps(end).encode() + b"\n\n")
            if (body.get("stream_options") or {}).get("include_usage"):
                final = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [], "usage": usage}
                self.wfile.write(b"data: " + json.dumps(final).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        self.reply(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": usage,
        })


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--word-delay", type=float, default=0.2)
    ARGS = parser.parse_args()
    exit_with_parent()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    print("ready %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
