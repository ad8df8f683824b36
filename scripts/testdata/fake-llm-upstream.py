#!/usr/bin/env python3
"""A stand-in for a paid LLM upstream, for the tests: the real protocols over a real
socket on 127.0.0.1 — OpenAI chat completions (SSE streaming with a final usage chunk,
GET /models), and Anthropic Messages (+ count_tokens) and OpenAI Responses with their
named SSE events (fake_upstream_protocols.py). Only the Python standard library.
Messages requests must carry the key as x-api-key and an anthropic-version; the others
as Authorization: Bearer.

Behaviour by model id (any vendor prefix):
  */echo          answers "echo: <last user message>"; usage without cost (price table)
  costly/*        like echo, and reports usage.cost = 0.01 (one cent)
  pricey/*        like echo, and reports usage.cost = 2.5 (250 cents)
  */broken        500 with an OpenAI-style error body
  */refuses       400 with an OpenAI-style error body
  */slow          waits 30 s before answering (proxy timeout -> 504)
  */stall         streams one chunk, then stalls 30 s (timeout mid-stream)
  */tool          (Messages, Responses) a tool call, then an answer from its result
Usage: 10 input tokens, one output token per word.
Streams send one word per event, WORD_DELAY seconds apart (default 0.2).
Requests are appended as JSON lines to the file given with --log (with the path and the
Anthropic headers as "_path", "_headers").
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
import fake_upstream_protocols as protocols

ARGS = None
LOCK = threading.Lock()
MODELS = ["test/echo", "costly/echo", "pricey/echo", "test/broken", "test/refuses", "test/slow", "test/stall", "test/tool"]


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

    def authorized(self, anthropic=False):
        if anthropic:
            if self.headers.get("x-api-key") != ARGS.key or not self.headers.get("anthropic-version"):
                self.reply(401, {"type": "error", "error": {"type": "authentication_error", "message": "bad upstream key or no version"}})
                return False
        elif self.headers.get("Authorization") != "Bearer " + ARGS.key:
            self.reply(401, {"error": {"message": "bad upstream key", "type": "invalid_request_error"}})
            return False
        return True

    def start_events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

    def event(self, name, data):
        self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())
        self.wfile.flush()

    def end_events(self):
        self.close_connection = True

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
        path = self.path.split("?")[0].rstrip("/")
        wire = "messages" if "/messages" in path else "responses" if path.endswith("/responses") else "chat"
        if not self.authorized(anthropic=wire == "messages"):
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.reply(400, {"error": {"message": "not JSON"}})
            return
        if ARGS.log:
            headers = {h: self.headers.get(h) for h in ("anthropic-version", "anthropic-beta") if self.headers.get(h)}
            with LOCK, open(ARGS.log, "a") as f:
                f.write(json.dumps(dict(body, _path=path, _headers=headers)) + "\n")
        model = body.get("model", "")
        kind = model.split("/")[-1]
        error = {"messages": protocols.messages_error, "responses": protocols.responses_error}.get(
            wire, lambda status, kind, message: (status, {"error": {"message": message, "type": kind}}))
        if kind == "broken":
            self.reply(*error(500, "api_error" if wire == "messages" else "server_error", "the upstream broke"))
            return
        if kind == "refuses":
            self.reply(*error(400, "invalid_request_error", "temperature is out of range"))
            return
        if kind == "slow":
            time.sleep(30)
        if path.endswith("/count_tokens"):
            return protocols.count_tokens(self, body)
        if wire != "chat":
            usage = {"input_tokens": 10, "output_tokens": protocols.output_words(wire, body)}
            if model.startswith("costly/"):
                usage["cost"] = 0.01
            if model.startswith("pricey/"):
                usage["cost"] = 2.5
            handle = protocols.messages if wire == "messages" else protocols.responses
            return handle(self, body, usage, ARGS.word_delay, kind == "stall")
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
